//! Consumer and producer group subcommands: updateSubGroup, deleteSubGroup,
//! consumerProgress, consumerConnection, producerConnection, resetOffsetByTime.

use std::collections::BTreeMap;

use clap::{ArgGroup, Args};
use karman_client::admin::{OffsetReset, ResetTarget};
use karman_client::{ClientError, MessageQueue};
use karman_protocol::ResponseCode;
use karman_protocol::body::{ConsumeType, ConsumerConnection, SubscriptionGroupConfig};
use serde::Serialize;

use super::out::{Table, human_time, parse_time, version_name};
use super::{Ctx, bad_args, parse_bool, target_brokers};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct UpdateSubGroupArgs {
    /// Create the group on this broker (ip:port).
    #[arg(short = 'b', long = "brokerAddr", value_name = "ADDR")]
    broker_addr: Option<String>,
    /// Create the group on every master of this cluster.
    #[arg(short = 'c', long = "clusterName", value_name = "CLUSTER")]
    cluster: Option<String>,
    /// Group name.
    #[arg(short = 'g', long = "groupName")]
    group: String,
    /// Consumption allowed (true|false; default true).
    #[arg(short = 's', long = "consumeEnable", value_parser = parse_bool, value_name = "BOOL")]
    consume_enable: Option<bool>,
    /// A new group starts from the min offset (true|false; default false).
    #[arg(short = 'm', long = "consumeFromMinEnable", value_parser = parse_bool, value_name = "BOOL")]
    consume_from_min_enable: Option<bool>,
    /// Broadcast consumption allowed (true|false; default false).
    #[arg(short = 'd', long = "consumeBroadcastEnable", value_parser = parse_bool, value_name = "BOOL")]
    consume_broadcast_enable: Option<bool>,
    /// Orderly consumption (true|false; default false).
    #[arg(short = 'o', long = "consumeMessageOrderly", value_parser = parse_bool, value_name = "BOOL")]
    consume_message_orderly: Option<bool>,
    /// Retry queue count (default 1).
    #[arg(short = 'q', long = "retryQueueNums")]
    retry_queue_nums: Option<i32>,
    /// Deliveries before a message goes to the DLQ (default 16).
    #[arg(short = 'r', long = "retryMaxTimes")]
    retry_max_times: Option<i32>,
    /// Retry policy as JSON (POP consumers), e.g. {"type":"EXPONENTIAL",...}.
    #[arg(short = 'p', long = "groupRetryPolicy", value_name = "JSON")]
    group_retry_policy: Option<String>,
    /// Broker id to consume from (default 0, the master).
    #[arg(short = 'i', long = "brokerId")]
    broker_id: Option<i64>,
    /// Broker id to consume from when consumption is slow (default 1).
    #[arg(short = 'w', long = "whichBrokerWhenConsumeSlowly")]
    which_broker_when_consume_slowly: Option<i64>,
    /// Tell clients when the group's members change (true|false; default true).
    #[arg(short = 'a', long = "notifyConsumerIdsChanged", value_parser = parse_bool, value_name = "BOOL")]
    notify_consumer_ids_changed: Option<bool>,
    /// Attributes `+key=value,...` (the group's attributes become these).
    #[arg(long = "attributes", value_name = "ATTRS")]
    attributes: Option<String>,
}

impl UpdateSubGroupArgs {
    /// The config mqadmin sends: Java's defaults, except that broadcast and
    /// consume-from-min are off unless asked for.
    fn config(&self) -> anyhow::Result<SubscriptionGroupConfig> {
        let mut config = SubscriptionGroupConfig::new(self.group.trim());
        config.consume_broadcast_enable = self.consume_broadcast_enable.unwrap_or(false);
        config.consume_from_min_enable = self.consume_from_min_enable.unwrap_or(false);
        config.consume_enable = self.consume_enable.unwrap_or(config.consume_enable);
        config.consume_message_orderly = self
            .consume_message_orderly
            .unwrap_or(config.consume_message_orderly);
        config.retry_queue_nums = self.retry_queue_nums.unwrap_or(config.retry_queue_nums);
        config.retry_max_times = self.retry_max_times.unwrap_or(config.retry_max_times);
        config.broker_id = self.broker_id.unwrap_or(config.broker_id);
        config.which_broker_when_consume_slowly = self
            .which_broker_when_consume_slowly
            .unwrap_or(config.which_broker_when_consume_slowly);
        config.notify_consumer_ids_changed_enable = self
            .notify_consumer_ids_changed
            .unwrap_or(config.notify_consumer_ids_changed_enable);
        if let Some(policy) = &self.group_retry_policy {
            config.group_retry_policy = Some(
                serde_json::from_str(policy)
                    .map_err(|e| bad_args(format!("-p is not a JSON retry policy: {e}")))?,
            );
        }
        if let Some(spec) = &self.attributes {
            for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                if item.starts_with('-') {
                    continue;
                }
                let Some((key, value)) = item.trim_start_matches('+').split_once('=') else {
                    return Err(bad_args(format!(
                        "attribute `{item}` is not of the form +key=value"
                    )));
                };
                config.attributes.insert(key.to_owned(), value.to_owned());
            }
        }
        Ok(config)
    }
}

fn group_config_line(c: &SubscriptionGroupConfig) -> String {
    let attributes: Vec<String> = c
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "SubscriptionGroupConfig [groupName={}, consumeEnable={}, consumeFromMinEnable={}, consumeBroadcastEnable={}, \
         consumeMessageOrderly={}, retryQueueNums={}, retryMaxTimes={}, brokerId={}, whichBrokerWhenConsumeSlowly={}, \
         notifyConsumerIdsChangedEnable={}, groupSysFlag={}, consumeTimeoutMinute={}, attributes={{{}}}]",
        c.group_name,
        c.consume_enable,
        c.consume_from_min_enable,
        c.consume_broadcast_enable,
        c.consume_message_orderly,
        c.retry_queue_nums,
        c.retry_max_times,
        c.broker_id,
        c.which_broker_when_consume_slowly,
        c.notify_consumer_ids_changed_enable,
        c.group_sys_flag,
        c.consume_timeout_minute,
        attributes.join(", ")
    )
}

pub async fn update_sub_group(ctx: &mut Ctx<'_>, args: UpdateSubGroupArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let brokers = target_brokers(
        ctx.admin,
        args.broker_addr.as_deref(),
        args.cluster.as_deref(),
    )
    .await?;
    for addr in &brokers {
        ctx.admin.create_subscription_group(addr, &config).await?;
        ctx.out
            .text(format!("create subscription group to {addr} success."))?;
    }
    ctx.out.text(group_config_line(&config))?;
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Report<'a> {
        brokers: &'a [String],
        group_config: &'a SubscriptionGroupConfig,
    }
    ctx.out.json(&Report {
        brokers: &brokers,
        group_config: &config,
    })
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["broker_addr", "cluster"])))]
pub struct DeleteSubGroupArgs {
    /// Delete the group from this broker (ip:port).
    #[arg(short = 'b', long = "brokerAddr", value_name = "ADDR")]
    broker_addr: Option<String>,
    /// Delete the group from every master of this cluster, with its retry and DLQ topics.
    #[arg(short = 'c', long = "clusterName", value_name = "CLUSTER")]
    cluster: Option<String>,
    /// Group name.
    #[arg(short = 'g', long = "groupName")]
    group: String,
    /// Also remove the group's committed offsets (true|false; default false).
    #[arg(short = 'r', long = "removeOffset", value_parser = parse_bool, value_name = "BOOL")]
    remove_offset: Option<bool>,
}

pub async fn delete_sub_group(ctx: &mut Ctx<'_>, args: DeleteSubGroupArgs) -> anyhow::Result<()> {
    let group = args.group.trim();
    let clean_offset = args.remove_offset.unwrap_or(false);
    let brokers = target_brokers(
        ctx.admin,
        args.broker_addr.as_deref(),
        args.cluster.as_deref(),
    )
    .await?;
    for addr in &brokers {
        ctx.admin
            .delete_subscription_group(addr, group, clean_offset)
            .await?;
        let text = match &args.cluster {
            Some(cluster) if args.broker_addr.is_none() => format!(
                "delete subscription group [{group}] from broker [{addr}] in cluster [{cluster}] success."
            ),
            _ => format!("delete subscription group [{group}] from broker [{addr}] success."),
        };
        ctx.out.text(text)?;
    }
    let mut deleted_topics = Vec::new();
    if let (Some(cluster), None) = (&args.cluster, &args.broker_addr) {
        for topic in [format!("%RETRY%{group}"), format!("%DLQ%{group}")] {
            ctx.admin.delete_topic(cluster.trim(), &topic).await?;
            ctx.out.text(format!(
                "delete topic [{topic}] from cluster [{cluster}] success."
            ))?;
            deleted_topics.push(topic);
        }
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Report<'a> {
        group: &'a str,
        brokers: &'a [String],
        clean_offset: bool,
        deleted_topics: Vec<String>,
    }
    ctx.out.json(&Report {
        group,
        brokers: &brokers,
        clean_offset,
        deleted_topics,
    })
}

#[derive(Debug, Args)]
pub struct ConsumerProgressArgs {
    /// Group name; without it, a summary of every group.
    #[arg(short = 'g', long = "groupName")]
    group: Option<String>,
    /// Only this topic (its brokers are asked, even if the group never had a consumer).
    #[arg(short = 't', long = "topicName")]
    topic: Option<String>,
    /// Show which client holds each queue (true|false).
    #[arg(short = 's', long = "showClientIP", value_parser = parse_bool, value_name = "BOOL")]
    show_client_ip: Option<bool>,
    /// Cluster name (accepted for mqadmin compatibility; the route decides the brokers).
    #[arg(short = 'c', long = "cluster", value_name = "CLUSTER")]
    cluster: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueProgress {
    topic: String,
    broker_name: String,
    queue_id: i32,
    broker_offset: i64,
    consumer_offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<String>,
    diff: i64,
    inflight: i64,
    last_timestamp: i64,
}

/// Which client holds each queue, from every online client's running info.
async fn queue_owners(ctx: &Ctx<'_>, group: &str) -> BTreeMap<MessageQueue, String> {
    let mut owners = BTreeMap::new();
    let Ok(connection) = ctx.admin.consumer_connection(group).await else {
        return owners;
    };
    for conn in &connection.connection_set {
        if let Ok(info) = ctx
            .admin
            .consumer_running_info(group, &conn.client_id)
            .await
        {
            let ip = conn.client_id.split('@').next().unwrap_or_default();
            for mq in info.mq_table.keys() {
                owners.insert(mq.0.clone(), ip.to_owned());
            }
        }
    }
    owners
}

pub async fn consumer_progress(
    ctx: &mut Ctx<'_>,
    args: ConsumerProgressArgs,
) -> anyhow::Result<()> {
    let _ = &args.cluster;
    let Some(group) = args.group.as_deref().map(str::trim) else {
        return groups_summary(ctx).await;
    };
    let stats = ctx
        .admin
        .consume_stats(group, args.topic.as_deref().map(str::trim))
        .await
        .map_err(|error| match error {
            ClientError::NoRoute { topic, .. } if args.topic.is_none() => anyhow::anyhow!(
                "no consumer of group {group} has ever connected, so no broker serves its retry topic {topic}; \
                 pass -t TOPIC to see the group's offsets on that topic's brokers"
            ),
            other => other.into(),
        })?;
    let show_ip = args.show_client_ip.unwrap_or(false);
    let owners = if show_ip {
        queue_owners(ctx, group).await
    } else {
        BTreeMap::new()
    };
    let queues: Vec<QueueProgress> = stats
        .offset_table
        .iter()
        .map(|(mq, o)| QueueProgress {
            topic: mq.0.topic.clone(),
            broker_name: mq.0.broker_name.clone(),
            queue_id: mq.0.queue_id,
            broker_offset: o.broker_offset,
            consumer_offset: o.consumer_offset,
            client_ip: show_ip.then(|| owners.get(&mq.0).cloned().unwrap_or_else(|| "N/A".into())),
            diff: o.broker_offset - o.consumer_offset,
            inflight: o.pull_offset - o.consumer_offset,
            last_timestamp: o.last_timestamp,
        })
        .collect();
    let mut headers = vec![
        "Topic",
        "Broker Name",
        "QID>",
        "Broker Offset>",
        "Consumer Offset>",
    ];
    if show_ip {
        headers.push("Client IP");
    }
    headers.extend(["Diff>", "Inflight>", "LastTime"]);
    let mut table = Table::new(&headers);
    for q in &queues {
        let mut row = vec![
            q.topic.clone(),
            q.broker_name.clone(),
            q.queue_id.to_string(),
            q.broker_offset.to_string(),
            q.consumer_offset.to_string(),
        ];
        if let Some(ip) = &q.client_ip {
            row.push(ip.clone());
        }
        row.extend([
            q.diff.to_string(),
            q.inflight.to_string(),
            human_time(q.last_timestamp),
        ]);
        table.row(row);
    }
    let diff_total: i64 = queues.iter().map(|q| q.diff).sum();
    let inflight_total: i64 = queues.iter().map(|q| q.inflight).sum();
    ctx.out.text(format!(
        "{}\nConsume TPS: {:.2}\nConsume Diff Total: {diff_total}\nConsume Inflight Total: {inflight_total}",
        table.render(),
        stats.consume_tps
    ))?;
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Report<'a> {
        group: &'a str,
        consume_tps: f64,
        diff_total: i64,
        inflight_total: i64,
        queues: Vec<QueueProgress>,
    }
    ctx.out.json(&Report {
        group,
        consume_tps: stats.consume_tps,
        diff_total,
        inflight_total,
        queues,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupSummary {
    group: String,
    count: usize,
    version: String,
    consume_type: String,
    message_model: String,
    consume_tps: i64,
    diff_total: i64,
}

fn summary_of(
    group: String,
    stats: Option<(f64, i64)>,
    cc: Option<&ConsumerConnection>,
) -> GroupSummary {
    let count = cc.map_or(0, |cc| cc.connection_set.len());
    let online = cc.filter(|_| count > 0);
    GroupSummary {
        group,
        count,
        version: online
            .and_then(|cc| cc.connection_set.iter().map(|c| c.version).min())
            .map_or_else(|| "OFFLINE".to_owned(), version_name),
        consume_type: online.map_or_else(String::new, |cc| {
            match cc.consume_type {
                ConsumeType::ConsumeActively => "PULL",
                ConsumeType::ConsumePassively => "PUSH",
                ConsumeType::ConsumePop => "POP",
            }
            .to_owned()
        }),
        message_model: online.map_or_else(String::new, |cc| {
            serde_json::to_value(cc.message_model)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        }),
        consume_tps: stats.map_or(0, |(tps, _)| tps as i64),
        diff_total: stats.map_or(0, |(_, diff)| diff),
    }
}

/// consumerProgress without -g: one line per group that has a retry topic.
async fn groups_summary(ctx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let topics = ctx.admin.topic_list().await?;
    let mut groups = Vec::new();
    for group in topics.iter().filter_map(|t| t.strip_prefix("%RETRY%")) {
        let stats = ctx.admin.consume_stats(group, None).await.ok().map(|s| {
            let diff = s
                .offset_table
                .values()
                .map(|o| o.broker_offset - o.consumer_offset)
                .sum();
            (s.consume_tps, diff)
        });
        let cc = ctx.admin.consumer_connection(group).await.ok();
        groups.push(summary_of(group.to_owned(), stats, cc.as_ref()));
    }
    let mut table = Table::new(&[
        "Group",
        "Count>",
        "Version",
        "Type",
        "Model",
        "TPS>",
        "Diff Total>",
    ]);
    for g in &groups {
        table.row(vec![
            g.group.clone(),
            g.count.to_string(),
            g.version.clone(),
            g.consume_type.clone(),
            g.message_model.clone(),
            g.consume_tps.to_string(),
            g.diff_total.to_string(),
        ]);
    }
    ctx.out.text(table.render())?;
    #[derive(Serialize)]
    struct Report<'a> {
        groups: &'a [GroupSummary],
    }
    ctx.out.json(&Report { groups: &groups })
}

#[derive(Debug, Args)]
pub struct ConsumerConnectionArgs {
    /// Consumer group name.
    #[arg(short = 'g', long = "consumerGroup")]
    group: String,
    /// Ask this broker (ip:port) instead of one serving the group's retry topic.
    #[arg(short = 'b', long = "brokerAddr", value_name = "ADDR")]
    broker_addr: Option<String>,
}

fn not_online(group: &str, error: ClientError) -> anyhow::Error {
    if error.response_code() == Some(ResponseCode::ConsumerNotOnline) {
        anyhow::anyhow!("no consumer of group {group} is online ({error})")
    } else {
        error.into()
    }
}

pub async fn consumer_connection(
    ctx: &mut Ctx<'_>,
    args: ConsumerConnectionArgs,
) -> anyhow::Result<()> {
    let group = args.group.trim();
    let cc = match &args.broker_addr {
        Some(addr) => ctx.admin.consumer_connection_at(addr.trim(), group).await,
        None => ctx.admin.consumer_connection(group).await,
    }
    .map_err(|e| not_online(group, e))?;
    let mut clients = Table::new(&["ClientId", "ClientAddr", "Language", "Version"]);
    for c in &cc.connection_set {
        clients.row(vec![
            c.client_id.clone(),
            c.client_addr.clone(),
            c.language.clone(),
            version_name(c.version),
        ]);
    }
    let mut subscriptions = Table::new(&["Topic", "SubExpression"]);
    for (topic, sub) in &cc.subscription_table {
        subscriptions.row(vec![topic.clone(), sub.sub_string.clone()]);
    }
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    ctx.out.text(format!(
        "{}\nBelow is subscription:\n{}\nConsumeType: {}\nMessageModel: {}\nConsumeFromWhere: {}",
        clients.render(),
        subscriptions.render(),
        name(serde_json::to_value(cc.consume_type)),
        name(serde_json::to_value(cc.message_model)),
        name(serde_json::to_value(cc.consume_from_where)),
    ))?;
    #[derive(Serialize)]
    struct Report<'a> {
        group: &'a str,
        #[serde(flatten)]
        connection: &'a ConsumerConnection,
    }
    ctx.out.json(&Report {
        group,
        connection: &cc,
    })
}

#[derive(Debug, Args)]
pub struct ProducerConnectionArgs {
    /// Producer group name.
    #[arg(short = 'g', long = "producerGroup")]
    group: String,
    /// A topic the group sends to (its brokers are asked).
    #[arg(short = 't', long = "topic")]
    pub topic: String,
}

pub async fn producer_connection(
    ctx: &mut Ctx<'_>,
    args: ProducerConnectionArgs,
) -> anyhow::Result<()> {
    let (group, topic) = (args.group.trim(), args.topic.trim());
    let pc = ctx
        .admin
        .producer_connection(group, topic)
        .await
        .map_err(|error| match error {
            ClientError::Broker { .. } => anyhow::anyhow!(
                "no producer of group {group} is connected to the brokers of topic {topic} ({error})"
            ),
            other => other.into(),
        })?;
    let mut table = Table::new(&["No", "ClientId", "ClientAddr", "Language", "Version"]);
    for (i, c) in pc.connection_set.iter().enumerate() {
        table.row(vec![
            format!("{:04}", i + 1),
            c.client_id.clone(),
            c.client_addr.clone(),
            c.language.clone(),
            version_name(c.version),
        ]);
    }
    ctx.out.text(table.render())?;
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Report<'a> {
        group: &'a str,
        topic: &'a str,
        connection_set: &'a std::collections::BTreeSet<karman_protocol::body::Connection>,
    }
    ctx.out.json(&Report {
        group,
        topic,
        connection_set: &pc.connection_set,
    })
}

#[derive(Debug, Args)]
pub struct ResetOffsetByTimeArgs {
    /// Consumer group.
    #[arg(short = 'g', long = "group")]
    group: String,
    /// Topic.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Where to: now, epoch ms, or yyyy-MM-dd#HH:mm:ss:SSS (local time).
    #[arg(short = 's', long = "timestamp", value_parser = parse_time, value_name = "TIME")]
    timestamp: Option<i64>,
    /// Roll back even past what was consumed (true|false; deprecated, default true).
    #[arg(short = 'f', long = "force", value_parser = parse_bool, value_name = "BOOL")]
    force: Option<bool>,
    /// Only on this broker (ip:port).
    #[arg(short = 'b', long = "broker", value_name = "ADDR")]
    broker_addr: Option<String>,
    /// Only this queue id.
    #[arg(short = 'q', long = "queue", value_name = "QID")]
    queue_id: Option<i32>,
    /// Set this queue offset instead of looking one up by time (needs -q).
    #[arg(short = 'o', long = "offset")]
    offset: Option<i64>,
    /// Cluster name (accepted for mqadmin compatibility; the route decides the brokers).
    #[arg(short = 'c', long = "cluster", value_name = "CLUSTER")]
    cluster: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueOffset {
    broker_name: String,
    queue_id: i32,
    offset: i64,
}

pub async fn reset_offset_by_time(
    ctx: &mut Ctx<'_>,
    args: ResetOffsetByTimeArgs,
) -> anyhow::Result<()> {
    let _ = &args.cluster;
    let (group, topic) = (args.group.trim(), args.topic.trim());
    let target = match (args.offset, args.queue_id, args.timestamp) {
        (Some(_), None, _) => return Err(bad_args("-o needs -q: it sets one queue's offset")),
        (Some(offset), Some(_), _) => ResetTarget::Offset(offset),
        (None, _, Some(timestamp)) => ResetTarget::Timestamp(timestamp),
        (None, _, None) => {
            return Err(bad_args(
                "pass -s TIME (now, epoch ms or yyyy-MM-dd#HH:mm:ss:SSS), or -q QID -o OFFSET",
            ));
        }
    };
    let brokers = match &args.broker_addr {
        Some(addr) => vec![addr.trim().to_owned()],
        None => {
            let route = ctx.admin.topic_route(topic).await?;
            route
                .broker_datas
                .iter()
                .filter_map(|bd| bd.select_broker_addr().map(str::to_owned))
                .collect()
        }
    };
    let reset = OffsetReset {
        group,
        topic,
        queue_id: args.queue_id,
        target,
    };
    let moved = ctx
        .admin
        .reset_offset(&brokers, &reset, args.force.unwrap_or(true))
        .await?;
    let offsets: Vec<QueueOffset> = moved
        .into_iter()
        .map(|(mq, offset)| QueueOffset {
            broker_name: mq.broker_name,
            queue_id: mq.queue_id,
            offset,
        })
        .collect();
    let to = match target {
        ResetTarget::Offset(offset) => format!("offset {offset}"),
        ResetTarget::Timestamp(ms) if ms <= 0 => {
            "the first message stored (timestamp 0)".to_owned()
        }
        ResetTarget::Timestamp(ms) => format!(
            "the first message stored at or after {} ({ms})",
            human_time(ms)
        ),
    };
    let mut table = Table::new(&["Broker Name", "QID>", "Offset>"]);
    for o in &offsets {
        table.row(vec![
            o.broker_name.clone(),
            o.queue_id.to_string(),
            o.offset.to_string(),
        ]);
    }
    ctx.out.text(format!(
        "reset consumer offsets of group [{group}] on topic [{topic}] to {to}:\n{}",
        table.render()
    ))?;
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Report<'a> {
        group: &'a str,
        topic: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<i64>,
        offsets: Vec<QueueOffset>,
    }
    ctx.out.json(&Report {
        group,
        topic,
        timestamp: match target {
            ResetTarget::Timestamp(ms) => Some(ms),
            ResetTarget::Offset(_) => None,
        },
        offsets,
    })
}
