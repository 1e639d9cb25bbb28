//! Topic subcommands: updateTopic, deleteTopic, topicList, topicRoute, topicStatus.

use std::collections::BTreeSet;

use clap::{ArgGroup, Args};
use karman_protocol::body::{ClusterInfo, TopicConfig};
use serde::Serialize;

use super::out::{Table, human_time};
use super::{Ctx, bad_args, cluster_masters, parse_bool, target_brokers};

/// NameServer KV namespace of ordered topics' queue layout (`brokerName:queues;...`).
const ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct UpdateTopicArgs {
    /// Create the topic on this broker (ip:port).
    #[arg(short = 'b', long = "brokerAddr", value_name = "ADDR")]
    broker_addr: Option<String>,
    /// Create the topic on every master of this cluster.
    #[arg(short = 'c', long = "clusterName", value_name = "CLUSTER")]
    cluster: Option<String>,
    /// Topic name.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Read queue count.
    #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
    read_queue_nums: i32,
    /// Write queue count.
    #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
    write_queue_nums: i32,
    /// Permission: 2 write, 4 read, 6 read and write.
    #[arg(short = 'p', long = "perm", default_value_t = 6, value_parser = parse_perm)]
    perm: i32,
    /// Ordered topic (true|false): also records its queue layout on the NameServer.
    #[arg(short = 'o', long = "order", value_parser = parse_bool, value_name = "BOOL")]
    order: Option<bool>,
    /// Unit topic (true|false).
    #[arg(short = 'u', long = "unit", value_parser = parse_bool, value_name = "BOOL")]
    unit: Option<bool>,
    /// Has unit subscriptions (true|false).
    #[arg(short = 's', long = "hasUnitSub", value_parser = parse_bool, value_name = "BOOL")]
    has_unit_sub: Option<bool>,
    /// Attribute changes: `+key=value,+key2=value2,-key3`.
    #[arg(short = 'a', long = "attributes", value_name = "CHANGES")]
    attributes: Option<String>,
}

fn parse_perm(value: &str) -> Result<i32, String> {
    match value.trim() {
        "2" => Ok(2),
        "4" => Ok(4),
        "6" => Ok(6),
        _ => Err(format!(
            "perm must be 2 (write), 4 (read) or 6 (read and write), got `{value}`"
        )),
    }
}

/// Java's `PermName.perm2String`: `RW-`, `R--`, `RWX`.
fn perm_string(perm: i32) -> String {
    let flag = |bit: i32, c: char| if perm & bit != 0 { c } else { '-' };
    [flag(4, 'R'), flag(2, 'W'), flag(1, 'X')].iter().collect()
}

fn topic_config_line(config: &TopicConfig) -> String {
    let attributes: Vec<String> = config
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "TopicConfig [topicName={}, readQueueNums={}, writeQueueNums={}, perm={}, topicFilterType={}, topicSysFlag={}, order={}, attributes={{{}}}]",
        config.topic_name,
        config.read_queue_nums,
        config.write_queue_nums,
        perm_string(config.perm),
        config.topic_filter_type.name(),
        config.topic_sys_flag,
        config.order,
        attributes.join(", ")
    )
}

/// The broker name registered for a broker address.
fn broker_name_of(info: &ClusterInfo, addr: &str) -> Option<String> {
    info.broker_addr_table
        .values()
        .find(|bd| bd.broker_addrs.values().any(|a| a == addr))
        .map(|bd| bd.broker_name.clone())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UpdateTopicReport {
    brokers: Vec<String>,
    topic_config: TopicConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_conf: Option<String>,
}

pub async fn update_topic(ctx: &mut Ctx<'_>, args: UpdateTopicArgs) -> anyhow::Result<()> {
    if args.read_queue_nums <= 0 || args.write_queue_nums <= 0 {
        return Err(bad_args("-r and -w must be at least 1"));
    }
    let brokers = target_brokers(
        ctx.admin,
        args.broker_addr.as_deref(),
        args.cluster.as_deref(),
    )
    .await?;
    let mut config = TopicConfig::new(
        args.topic.trim(),
        args.read_queue_nums,
        args.write_queue_nums,
        args.perm,
    );
    config.order = args.order.unwrap_or(false);
    config.topic_sys_flag = i32::from(args.unit.unwrap_or(false))
        | (i32::from(args.has_unit_sub.unwrap_or(false)) << 1);
    for addr in &brokers {
        ctx.admin
            .create_topic_with_attributes(addr, &config, args.attributes.as_deref())
            .await?;
        ctx.out.text(format!("create topic to {addr} success."))?;
    }
    let order_conf = if config.order {
        let info = ctx.admin.cluster_info().await?;
        let layout: Vec<String> = brokers
            .iter()
            .filter_map(|addr| broker_name_of(&info, addr))
            .map(|name| format!("{name}:{}", config.write_queue_nums))
            .collect();
        let layout = layout.join(";");
        ctx.admin
            .put_kv_config(ORDER_TOPIC_CONFIG, &config.topic_name, &layout)
            .await?;
        ctx.out.text(format!(
            "set orderConf on the NameServer. isOrder=true, orderConf=[{layout}]"
        ))?;
        Some(layout)
    } else {
        None
    };
    // Show what the broker stored (attributes merged), not what was asked.
    if let Some(addr) = brokers.first()
        && let Some(stored) = ctx.admin.topic_config(addr, &config.topic_name).await?
    {
        config = stored;
    }
    ctx.out.text(topic_config_line(&config))?;
    ctx.out.json(&UpdateTopicReport {
        brokers,
        topic_config: config,
        order_conf,
    })
}

#[derive(Debug, Args)]
pub struct DeleteTopicArgs {
    /// Topic name.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Delete the topic from this cluster's masters.
    #[arg(short = 'c', long = "clusterName", value_name = "CLUSTER")]
    cluster: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeleteTopicReport<'a> {
    topic: &'a str,
    cluster: &'a str,
    brokers: Vec<String>,
}

pub async fn delete_topic(ctx: &mut Ctx<'_>, args: DeleteTopicArgs) -> anyhow::Result<()> {
    let (topic, cluster) = (args.topic.trim(), args.cluster.trim());
    let brokers = cluster_masters(ctx.admin, cluster).await?;
    ctx.admin.delete_topic(cluster, topic).await?;
    ctx.out.text(format!(
        "delete topic [{topic}] from cluster [{cluster}] success.\n\
         delete topic [{topic}] from NameServer success."
    ))?;
    ctx.out.json(&DeleteTopicReport {
        topic,
        cluster,
        brokers,
    })
}

#[derive(Debug, Args)]
pub struct TopicListArgs {
    /// Also show each topic's cluster and consumer groups (retry and DLQ topics left out).
    #[arg(short = 'c', long = "clusterModel")]
    cluster_model: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicEntry {
    cluster: String,
    topic: String,
    consumer_groups: BTreeSet<String>,
}

pub async fn topic_list(ctx: &mut Ctx<'_>, args: TopicListArgs) -> anyhow::Result<()> {
    let topics = ctx.admin.topic_list().await?;
    if !args.cluster_model {
        let mut text = String::new();
        for topic in &topics {
            text.push_str(topic);
            text.push('\n');
        }
        ctx.out.text(text)?;
        #[derive(Serialize)]
        struct Topics<'a> {
            topics: &'a BTreeSet<String>,
        }
        return ctx.out.json(&Topics { topics: &topics });
    }
    let info = ctx.admin.cluster_info().await?;
    let mut entries = Vec::new();
    for topic in topics
        .iter()
        .filter(|t| !t.starts_with("%RETRY%") && !t.starts_with("%DLQ%"))
    {
        // A topic whose route or groups cannot be read is still listed, with blanks.
        let cluster = match ctx.admin.topic_route(topic).await {
            Ok(route) => route
                .broker_datas
                .first()
                .and_then(|bd| {
                    info.cluster_addr_table
                        .iter()
                        .find(|(_, names)| names.contains(&bd.broker_name))
                        .map(|(cluster, _)| cluster.clone())
                })
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        let consumer_groups = ctx
            .admin
            .topic_consumer_groups(topic)
            .await
            .unwrap_or_default();
        entries.push(TopicEntry {
            cluster,
            topic: topic.clone(),
            consumer_groups,
        });
    }
    let mut table = Table::new(&["Cluster Name", "Topic", "Consumer Group"]);
    for entry in &entries {
        if entry.consumer_groups.is_empty() {
            table.row(vec![
                entry.cluster.clone(),
                entry.topic.clone(),
                String::new(),
            ]);
        }
        for group in &entry.consumer_groups {
            table.row(vec![
                entry.cluster.clone(),
                entry.topic.clone(),
                group.clone(),
            ]);
        }
    }
    ctx.out.text(table.render())?;
    #[derive(Serialize)]
    struct Topics<'a> {
        topics: &'a [TopicEntry],
    }
    ctx.out.json(&Topics { topics: &entries })
}

#[derive(Debug, Args)]
pub struct TopicRouteArgs {
    /// Topic name.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Print a table instead of the route JSON.
    #[arg(short = 'l', long = "list")]
    list: bool,
}

pub async fn topic_route(ctx: &mut Ctx<'_>, args: TopicRouteArgs) -> anyhow::Result<()> {
    let route = ctx.admin.topic_route(args.topic.trim()).await?;
    if !args.list {
        ctx.out.text(serde_json::to_string_pretty(&route)?)?;
        return ctx.out.json(&route);
    }
    let mut table = Table::new(&[
        "ClusterName",
        "BrokerName",
        "BrokerAddrs",
        "ReadQueue>",
        "WriteQueue>",
        "Perm",
    ]);
    let (mut read_total, mut write_total) = (0, 0);
    let mut brokers = route.broker_datas.clone();
    brokers.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    for bd in &brokers {
        let Some(queue) = route
            .queue_datas
            .iter()
            .find(|q| q.broker_name == bd.broker_name)
        else {
            continue;
        };
        read_total += queue.read_queue_nums;
        write_total += queue.write_queue_nums;
        let addrs: Vec<String> = bd
            .broker_addrs
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect();
        table.row(vec![
            bd.cluster.clone(),
            bd.broker_name.clone(),
            addrs.join(","),
            queue.read_queue_nums.to_string(),
            queue.write_queue_nums.to_string(),
            format!("{} ({})", perm_string(queue.perm), queue.perm),
        ]);
    }
    table.row(vec![
        "Total:".into(),
        brokers.len().to_string(),
        String::new(),
        read_total.to_string(),
        write_total.to_string(),
        String::new(),
    ]);
    ctx.out.text(table.render())?;
    ctx.out.json(&route)
}

#[derive(Debug, Args)]
pub struct TopicStatusArgs {
    /// Topic name.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Cluster name (accepted for mqadmin compatibility; the route decides the brokers).
    #[arg(short = 'c', long = "cluster", value_name = "CLUSTER")]
    cluster: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueStatus {
    broker_name: String,
    queue_id: i32,
    min_offset: i64,
    max_offset: i64,
    last_update_timestamp: i64,
}

pub async fn topic_status(ctx: &mut Ctx<'_>, args: TopicStatusArgs) -> anyhow::Result<()> {
    let _ = args.cluster;
    let topic = args.topic.trim();
    let stats = ctx.admin.topic_stats(topic).await?;
    let queues: Vec<QueueStatus> = stats
        .offset_table
        .iter()
        .map(|(mq, offset)| QueueStatus {
            broker_name: mq.0.broker_name.clone(),
            queue_id: mq.0.queue_id,
            min_offset: offset.min_offset,
            max_offset: offset.max_offset,
            last_update_timestamp: offset.last_update_timestamp,
        })
        .collect();
    let mut table = Table::new(&[
        "Broker Name",
        "QID>",
        "Min Offset>",
        "Max Offset>",
        "Last Updated",
    ]);
    for q in &queues {
        table.row(vec![
            q.broker_name.clone(),
            q.queue_id.to_string(),
            q.min_offset.to_string(),
            q.max_offset.to_string(),
            human_time(q.last_update_timestamp),
        ]);
    }
    ctx.out.text(format!(
        "{}\nTopic Put TPS: {:.2}",
        table.render(),
        stats.topic_put_tps
    ))?;
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Report<'a> {
        topic: &'a str,
        topic_put_tps: f64,
        queues: Vec<QueueStatus>,
    }
    ctx.out.json(&Report {
        topic,
        topic_put_tps: stats.topic_put_tps,
        queues,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_reads_like_java_perm2string() {
        assert_eq!(perm_string(6), "RW-");
        assert_eq!(perm_string(7), "RWX");
        assert_eq!(perm_string(4), "R--");
        assert_eq!(perm_string(2), "-W-");
    }

    #[test]
    fn perm_option_takes_2_4_or_6() {
        assert_eq!(parse_perm("6"), Ok(6));
        assert!(parse_perm("7").is_err());
    }
}
