//! Cluster, broker and NameServer subcommands: clusterList, brokerStatus, getBrokerConfig,
//! updateBrokerConfig, wipeWritePerm, addWritePerm, updateKvConfig, deleteKvConfig.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgGroup, Args};
use karman_client::admin::Admin;
use karman_protocol::body::ClusterInfo;
use serde::Serialize;

use super::out::{Table, key_values};
use super::{Ctx, parse_bool, target_brokers};

/// One broker of the cluster table: (cluster, broker name, broker id, address).
type BrokerRow = (String, String, i64, String);

/// Every broker registered, in cluster, name and id order; only `cluster` when given.
fn brokers_of(info: &ClusterInfo, cluster: Option<&str>) -> anyhow::Result<Vec<BrokerRow>> {
    if let Some(cluster) = cluster
        && !info.cluster_addr_table.contains_key(cluster)
    {
        let known: Vec<&str> = info.cluster_addr_table.keys().map(String::as_str).collect();
        anyhow::bail!(
            "cluster {cluster} is not registered with the NameServer (clusters known: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    let mut rows = Vec::new();
    for (cluster_name, names) in &info.cluster_addr_table {
        if cluster.is_some_and(|c| c != cluster_name) {
            continue;
        }
        for name in names {
            let Some(bd) = info.broker_addr_table.get(name) else {
                continue;
            };
            for (id, addr) in &bd.broker_addrs {
                rows.push((cluster_name.clone(), name.clone(), *id, addr.clone()));
            }
        }
    }
    Ok(rows)
}

#[derive(Debug, Args)]
pub struct ClusterListArgs {
    /// Message totals of today and yesterday instead of the load columns.
    #[arg(short = 'm', long = "moreStats")]
    more_stats: bool,
    /// Only this cluster.
    #[arg(short = 'c', long = "clusterName", value_name = "CLUSTER")]
    cluster: Option<String>,
    /// Print again every this many seconds, until interrupted.
    #[arg(short = 'i', long = "interval", value_name = "SECS")]
    interval: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BrokerEntry {
    cluster: String,
    broker_name: String,
    broker_id: i64,
    addr: String,
    version: String,
    in_tps: f64,
    out_tps: f64,
    commit_log_disk_ratio: Option<f64>,
    /// Every runtime counter the broker reported.
    runtime_info: BTreeMap<String, String>,
    /// Why the runtime counters are missing, if they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The first number of a `putTps`-style value (`"12.50 11.00 10.20"`).
fn first_rate(info: &BTreeMap<String, String>, key: &str) -> f64 {
    info.get(key)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn number(info: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    info.get(key).and_then(|v| v.trim().parse().ok())
}

async fn broker_entries(admin: &Admin, rows: Vec<BrokerRow>) -> Vec<BrokerEntry> {
    let mut entries = Vec::with_capacity(rows.len());
    for (cluster, broker_name, broker_id, addr) in rows {
        let (runtime_info, error) = match admin.broker_runtime_info(&addr).await {
            Ok(info) => (info, None),
            Err(error) => (BTreeMap::new(), Some(error.to_string())),
        };
        entries.push(BrokerEntry {
            version: runtime_info
                .get("brokerVersionDesc")
                .cloned()
                .unwrap_or_default(),
            in_tps: first_rate(&runtime_info, "putTps"),
            out_tps: first_rate(&runtime_info, "getTransferredTps"),
            commit_log_disk_ratio: number(&runtime_info, "commitLogDiskRatio"),
            cluster,
            broker_name,
            broker_id,
            addr,
            runtime_info,
            error,
        });
    }
    entries
}

/// `12.50` plus Java's `(queue size,head wait ms)` when the broker reports them.
fn load_cell(tps: f64, info: &BTreeMap<String, String>, pool: &str) -> String {
    match (
        info.get(&format!("{pool}ThreadPoolQueueSize")),
        info.get(&format!("{pool}ThreadPoolQueueHeadWaitTimeMills")),
    ) {
        (Some(size), Some(wait)) => format!("{tps:.2}({size},{wait}ms)"),
        _ => format!("{tps:.2}"),
    }
}

fn base_row(entry: &BrokerEntry) -> Vec<String> {
    let info = &entry.runtime_info;
    if let Some(error) = &entry.error {
        let mut row = vec![
            entry.cluster.clone(),
            entry.broker_name.clone(),
            entry.broker_id.to_string(),
            entry.addr.clone(),
        ];
        row.push(format!("unreachable: {error}"));
        row.extend(std::iter::repeat_n(String::new(), 7));
        return row;
    }
    let timer = match (
        number(info, "timerReadBehind"),
        number(info, "timerOffsetBehind"),
        number(info, "timerCongestNum"),
    ) {
        (Some(read), Some(offset), Some(congest)) => format!(
            "{read}-{offset}({:.1}w, {:.1}, {:.1})",
            congest / 10_000.0,
            number(info, "timerEnqueueTps").unwrap_or(0.0),
            number(info, "timerDequeueTps").unwrap_or(0.0)
        ),
        _ => "-".to_owned(),
    };
    let hours = number(info, "earliestMessageTimeStamp")
        .filter(|t| *t > 0.0)
        .map(|t| {
            let now = karman_client::wall_clock_ms() as f64;
            format!("{:.2}", (now - t) / 3_600_000.0)
        })
        .unwrap_or_else(|| "-".to_owned());
    let cell = |key: &str| info.get(key).cloned().unwrap_or_else(|| "-".to_owned());
    vec![
        entry.cluster.clone(),
        entry.broker_name.clone(),
        entry.broker_id.to_string(),
        entry.addr.clone(),
        entry.version.clone(),
        load_cell(entry.in_tps, info, "send"),
        load_cell(entry.out_tps, info, "pull"),
        timer,
        cell("pageCacheLockTimeMills"),
        hours,
        entry
            .commit_log_disk_ratio
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.4}")),
        cell("brokerActive"),
    ]
}

/// `-m`: today's and yesterday's message totals, from the day counters.
fn more_stats_row(entry: &BrokerEntry) -> Vec<String> {
    let info = &entry.runtime_info;
    let count = |key: &str| number(info, key).unwrap_or(0.0) as i64;
    vec![
        entry.cluster.clone(),
        entry.broker_name.clone(),
        format!("{:.2}", entry.in_tps),
        format!("{:.2}", entry.out_tps),
        (count("msgPutTotalTodayMorning") - count("msgPutTotalYesterdayMorning")).to_string(),
        (count("msgGetTotalTodayMorning") - count("msgGetTotalYesterdayMorning")).to_string(),
        (count("msgPutTotalTodayNow") - count("msgPutTotalTodayMorning")).to_string(),
        (count("msgGetTotalTodayNow") - count("msgGetTotalTodayMorning")).to_string(),
    ]
}

pub async fn cluster_list(ctx: &mut Ctx<'_>, args: ClusterListArgs) -> anyhow::Result<()> {
    loop {
        let info = ctx.admin.cluster_info().await?;
        let rows = brokers_of(&info, args.cluster.as_deref().map(str::trim))?;
        let no_broker = rows.is_empty();
        let entries = broker_entries(ctx.admin, rows).await;
        let table = if args.more_stats {
            let mut table = Table::new(&[
                "Cluster Name",
                "Broker Name",
                "InTPS>",
                "OutTPS>",
                "InTotalYest>",
                "OutTotalYest>",
                "InTotalToday>",
                "OutTotalToday>",
            ]);
            for entry in entries.iter().filter(|e| e.broker_id == 0) {
                table.row(more_stats_row(entry));
            }
            table
        } else {
            let mut table = Table::new(&[
                "Cluster Name",
                "Broker Name",
                "BID>",
                "Addr",
                "Version",
                "InTPS(LOAD)>",
                "OutTPS(LOAD)>",
                "Timer(Progress)",
                "PCWait(ms)>",
                "Hour>",
                "SPACE>",
                "ACTIVATED",
            ]);
            for entry in &entries {
                table.row(base_row(entry));
            }
            table
        };
        ctx.out.text(table.render())?;
        if no_broker {
            eprintln!(
                "karman: no broker is registered with the NameServer at {}",
                ctx.namesrv
            );
        }
        #[derive(Serialize)]
        struct Report {
            brokers: Vec<BrokerEntry>,
        }
        ctx.out.json(&Report { brokers: entries })?;
        match args.interval {
            Some(secs) if !ctx.out.is_json() => {
                tokio::time::sleep(Duration::from_secs(secs.max(1))).await;
                ctx.out.text("")?;
            }
            _ => return Ok(()),
        }
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct BrokerStatusArgs {
    /// Broker address (ip:port).
    #[arg(short = 'b', long = "brokerAddr", value_name = "ADDR")]
    broker_addr: Option<String>,
    /// Every broker (masters and slaves) of this cluster.
    #[arg(short = 'c', long = "clusterName", value_name = "CLUSTER")]
    cluster: Option<String>,
}

/// `-b addr`, or every broker of `-c cluster` (slaves included).
async fn all_brokers(
    admin: &Admin,
    broker_addr: Option<&str>,
    cluster: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    if let Some(addr) = broker_addr {
        return Ok(vec![addr.trim().to_owned()]);
    }
    let info = admin.cluster_info().await?;
    Ok(brokers_of(&info, cluster.map(str::trim))?
        .into_iter()
        .map(|(_, _, _, addr)| addr)
        .collect())
}

pub async fn broker_status(ctx: &mut Ctx<'_>, args: BrokerStatusArgs) -> anyhow::Result<()> {
    let addrs = all_brokers(
        ctx.admin,
        args.broker_addr.as_deref(),
        args.cluster.as_deref(),
    )
    .await?;
    let mut all = BTreeMap::new();
    for addr in addrs {
        let info = ctx.admin.broker_runtime_info(&addr).await?;
        all.insert(addr, info);
    }
    let text = if let [(_, info)] = all.iter().collect::<Vec<_>>()[..] {
        key_values(info.iter().map(|(k, v)| (k.as_str(), v.clone())))
    } else {
        let mut table = Table::new(&["Broker Addr", "Key", "Value"]);
        for (addr, info) in &all {
            for (key, value) in info {
                table.row(vec![addr.clone(), key.clone(), value.clone()]);
            }
        }
        table.render()
    };
    ctx.out.text(text)?;
    #[derive(Serialize)]
    struct Report {
        brokers: BTreeMap<String, BTreeMap<String, String>>,
    }
    ctx.out.json(&Report { brokers: all })
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct GetBrokerConfigArgs {
    /// Broker address (ip:port).
    #[arg(short = 'b', long = "brokerAddr", value_name = "ADDR")]
    broker_addr: Option<String>,
    /// Every broker (masters and slaves) of this cluster.
    #[arg(short = 'c', long = "clusterName", value_name = "CLUSTER")]
    cluster: Option<String>,
}

pub async fn get_broker_config(ctx: &mut Ctx<'_>, args: GetBrokerConfigArgs) -> anyhow::Result<()> {
    let addrs = all_brokers(
        ctx.admin,
        args.broker_addr.as_deref(),
        args.cluster.as_deref(),
    )
    .await?;
    let several = addrs.len() > 1;
    let mut all = BTreeMap::new();
    for addr in addrs {
        let text = ctx.admin.broker_config(&addr).await?;
        let config: BTreeMap<String, String> = karman_protocol::java_properties::parse(&text)
            .into_iter()
            .collect();
        let width = config.keys().map(String::len).max().unwrap_or(0);
        let mut out = String::new();
        if several {
            out.push_str(&format!("============{addr}============\n"));
        }
        for (key, value) in &config {
            out.push_str(format!("{key:<width$}  =  {value}").trim_end());
            out.push('\n');
        }
        ctx.out.text(out)?;
        all.insert(addr, config);
    }
    #[derive(Serialize)]
    struct Report {
        brokers: BTreeMap<String, BTreeMap<String, String>>,
    }
    ctx.out.json(&Report { brokers: all })
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct UpdateBrokerConfigArgs {
    /// Broker address (ip:port).
    #[arg(short = 'b', long = "brokerAddr", value_name = "ADDR")]
    broker_addr: Option<String>,
    /// Every master of this cluster (with -a true, the slaves too).
    #[arg(short = 'c', long = "clusterName", value_name = "CLUSTER")]
    cluster: Option<String>,
    /// With -c: update the slaves too (true|false).
    #[arg(short = 'a', long = "updateAllBroker", value_parser = parse_bool, value_name = "BOOL")]
    update_all_broker: Option<bool>,
    /// Config key (broker.conf name, e.g. autoCreateTopicEnable).
    #[arg(short = 'k', long = "key")]
    key: String,
    /// New value.
    #[arg(short = 'v', long = "value")]
    value: String,
}

pub async fn update_broker_config(
    ctx: &mut Ctx<'_>,
    args: UpdateBrokerConfigArgs,
) -> anyhow::Result<()> {
    let addrs = if args.update_all_broker.unwrap_or(false) && args.broker_addr.is_none() {
        all_brokers(ctx.admin, None, args.cluster.as_deref()).await?
    } else {
        target_brokers(
            ctx.admin,
            args.broker_addr.as_deref(),
            args.cluster.as_deref(),
        )
        .await?
    };
    let (key, value) = (args.key.trim(), args.value.trim());
    let properties = BTreeMap::from([(key.to_owned(), value.to_owned())]);
    for addr in &addrs {
        ctx.admin
            .update_broker_config(addr, &properties)
            .await
            .with_context(|| format!("broker {addr} refused {key}={value}"))?;
        ctx.out
            .text(format!("update broker config success, {addr}"))?;
    }
    #[derive(Serialize)]
    struct Report<'a> {
        key: &'a str,
        value: &'a str,
        brokers: &'a [String],
    }
    ctx.out.json(&Report {
        key,
        value,
        brokers: &addrs,
    })
}

#[derive(Debug, Args)]
pub struct WritePermArgs {
    /// Broker name (not address), e.g. broker-a.
    #[arg(short = 'b', long = "brokerName", value_name = "NAME")]
    broker_name: String,
}

pub async fn write_perm(
    ctx: &mut Ctx<'_>,
    args: WritePermArgs,
    writable: bool,
) -> anyhow::Result<()> {
    let name = args.broker_name.trim();
    let info = ctx.admin.cluster_info().await?;
    if !info.broker_addr_table.contains_key(name) {
        let known: Vec<&str> = info.broker_addr_table.keys().map(String::as_str).collect();
        anyhow::bail!(
            "broker {name} is not registered with the NameServer (brokers known: {}); -b takes a broker name, not an address",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    let counts = ctx.admin.set_write_perm(name, writable).await?;
    let verb = if writable { "add" } else { "wipe" };
    let mut text = String::new();
    for (namesrv, count) in &counts {
        text.push_str(&format!(
            "{verb} write perm of broker[{name}] in name server[{namesrv}] OK, {count}\n"
        ));
    }
    ctx.out.text(text)?;
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct NameServer<'a> {
        addr: &'a str,
        topic_count: i32,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Report<'a> {
        broker_name: &'a str,
        writable: bool,
        name_servers: Vec<NameServer<'a>>,
    }
    ctx.out.json(&Report {
        broker_name: name,
        writable,
        name_servers: counts
            .iter()
            .map(|(addr, count)| NameServer {
                addr,
                topic_count: *count,
            })
            .collect(),
    })
}

#[derive(Debug, Args)]
pub struct UpdateKvConfigArgs {
    /// Namespace, e.g. ORDER_TOPIC_CONFIG.
    #[arg(short = 's', long = "namespace")]
    namespace: String,
    /// Key.
    #[arg(short = 'k', long = "key")]
    key: String,
    /// Value.
    #[arg(short = 'v', long = "value")]
    value: String,
}

#[derive(Debug, Serialize)]
struct KvReport<'a> {
    namespace: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
}

pub async fn update_kv_config(ctx: &mut Ctx<'_>, args: UpdateKvConfigArgs) -> anyhow::Result<()> {
    let (namespace, key, value) = (args.namespace.trim(), args.key.trim(), args.value.trim());
    ctx.admin.put_kv_config(namespace, key, value).await?;
    ctx.out
        .text("create or update kv config to namespace success.")?;
    ctx.out.json(&KvReport {
        namespace,
        key,
        value: Some(value),
    })
}

#[derive(Debug, Args)]
pub struct DeleteKvConfigArgs {
    /// Namespace.
    #[arg(short = 's', long = "namespace")]
    namespace: String,
    /// Key.
    #[arg(short = 'k', long = "key")]
    key: String,
}

pub async fn delete_kv_config(ctx: &mut Ctx<'_>, args: DeleteKvConfigArgs) -> anyhow::Result<()> {
    let (namespace, key) = (args.namespace.trim(), args.key.trim());
    ctx.admin.delete_kv_config(namespace, key).await?;
    ctx.out.text("delete kv config from namespace success.")?;
    ctx.out.json(&KvReport {
        namespace,
        key,
        value: None,
    })
}
