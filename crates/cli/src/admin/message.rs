//! Message subcommands: queryMsgById, queryMsgByKey, queryMsgByUniqueKey,
//! queryMsgByOffset, sendMessage, consumeMessage, printMsg.
//!
//! Bodies are shown as text when they are UTF-8 (control characters escaped, so a body
//! cannot move the cursor or break a table line) and as a byte count otherwise; `--json`
//! carries UTF-8 bodies as `body` and other bodies as `bodyHex`. Unlike mqadmin, nothing
//! is written under /tmp.

use std::collections::BTreeMap;

use clap::Args;
use karman_client::admin::{Admin, QUERY_MAX_NUM_DEFAULT, TOOLS_CONSUMER_GROUP};
use karman_client::consumer::PullStatus;
use karman_client::producer::Producer;
use karman_client::{ClientConfig, Message, MessageExt, MessageQueue, SendStatus};
use serde::Serialize;

use super::out::{Table, human_time, key_values, parse_time};
use super::{Ctx, bad_args, parse_bool};

/// Messages per pull when reading ranges (mqadmin's printMsg uses 32).
const PULL_BATCH_COUNT: i32 = 32;
/// printMsg prints a queue's table every this many messages, so long topics stream.
const PRINT_CHUNK_ROWS: usize = 1024;

/// A body as one line of text, or what it is when it is not text.
fn body_text(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(text) => text
            .chars()
            .flat_map(|c| {
                let escaped: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                escaped
            })
            .collect(),
        Err(_) => format!("({} bytes, not UTF-8 text)", body.len()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `-f`: only UTF-8 is supported (mqadmin takes any Java charset name).
fn check_charset(charset: Option<&str>) -> anyhow::Result<()> {
    match charset.map(|c| c.trim().to_ascii_uppercase().replace('-', "")) {
        None => Ok(()),
        Some(c) if c == "UTF8" => Ok(()),
        Some(_) => Err(bad_args(
            "only UTF-8 bodies can be printed (-f UTF-8); use --json for the raw bytes in hex",
        )),
    }
}

/// One message as `--json` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageView {
    msg_id: String,
    offset_msg_id: String,
    topic: String,
    tags: Option<String>,
    keys: Vec<String>,
    queue_id: i32,
    queue_offset: i64,
    commit_log_offset: i64,
    reconsume_times: i32,
    born_timestamp: i64,
    store_timestamp: i64,
    born_host: String,
    store_host: String,
    sys_flag: i32,
    properties: BTreeMap<String, String>,
    body_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_hex: Option<String>,
}

impl MessageView {
    fn new(m: &MessageExt, with_body: bool) -> Self {
        let text = std::str::from_utf8(&m.body).ok().map(str::to_owned);
        Self {
            msg_id: m.msg_id(),
            offset_msg_id: m.offset_msg_id(),
            topic: m.topic.clone(),
            tags: m.tags().map(str::to_owned),
            keys: m.keys().map(str::to_owned).collect(),
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            commit_log_offset: m.commit_log_offset,
            reconsume_times: m.reconsume_times,
            born_timestamp: m.born_timestamp_ms,
            store_timestamp: m.store_timestamp_ms,
            born_host: m.born_host.to_string(),
            store_host: m.store_host.to_string(),
            sys_flag: m.sys_flag,
            properties: m
                .properties
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            body_bytes: m.body.len(),
            body_hex: (with_body && text.is_none()).then(|| hex(&m.body)),
            body: text.filter(|_| with_body),
        }
    }
}

/// mqadmin's message detail block.
fn detail(m: &MessageExt) -> String {
    let properties: Vec<String> = m
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let keys: Vec<&str> = m.keys().collect();
    key_values([
        ("OffsetID", m.offset_msg_id()),
        ("Message ID", m.msg_id()),
        ("Topic", m.topic.clone()),
        ("Tags", format!("[{}]", m.tags().unwrap_or_default())),
        ("Keys", format!("[{}]", keys.join(" "))),
        ("Queue ID", m.queue_id.to_string()),
        ("Queue Offset", m.queue_offset.to_string()),
        ("CommitLog Offset", m.commit_log_offset.to_string()),
        ("Reconsume Times", m.reconsume_times.to_string()),
        ("Born Timestamp", human_time(m.born_timestamp_ms)),
        ("Store Timestamp", human_time(m.store_timestamp_ms)),
        ("Born Host", m.born_host.to_string()),
        ("Store Host", m.store_host.to_string()),
        ("System Flag", m.sys_flag.to_string()),
        ("Properties", format!("{{{}}}", properties.join(", "))),
        ("Message Body", body_text(&m.body)),
    ])
}

fn print_details(ctx: &mut Ctx<'_>, messages: &[MessageExt]) -> anyhow::Result<()> {
    let blocks: Vec<String> = messages.iter().map(detail).collect();
    ctx.out.text(blocks.join("\n"))?;
    #[derive(Serialize)]
    struct Report {
        messages: Vec<MessageView>,
    }
    ctx.out.json(&Report {
        messages: messages.iter().map(|m| MessageView::new(m, true)).collect(),
    })
}

/// The message table of consumeMessage and printMsg.
fn message_table(with_body: bool) -> Table {
    let mut headers = vec![
        "Broker Name",
        "QID>",
        "Offset>",
        "Message ID",
        "Tags",
        "Keys",
        "Store Time",
    ];
    if with_body {
        headers.push("Body");
    }
    Table::new(&headers)
}

fn message_row(broker_name: &str, m: &MessageExt, with_body: bool) -> Vec<String> {
    let mut row = vec![
        broker_name.to_owned(),
        m.queue_id.to_string(),
        m.queue_offset.to_string(),
        m.msg_id(),
        m.tags().unwrap_or_default().to_owned(),
        m.keys().collect::<Vec<_>>().join(" "),
        human_time(m.store_timestamp_ms),
    ];
    if with_body {
        row.push(body_text(&m.body));
    }
    row
}

#[derive(Debug, Args)]
pub struct QueryMsgByIdArgs {
    /// Offset message id(s), comma-separated (with -t, client message ids work too).
    #[arg(short = 'i', long = "msgId")]
    msg_id: String,
    /// Topic, to look up ids that are client message ids (UNIQ_KEY) in its index.
    #[arg(short = 't', long = "topic")]
    topic: Option<String>,
    /// Body charset (only UTF-8).
    #[arg(short = 'f', long = "bodyFormat", value_name = "CHARSET")]
    body_format: Option<String>,
    /// Cluster name (accepted for mqadmin compatibility).
    #[arg(short = 'c', long = "cluster", value_name = "CLUSTER")]
    cluster: Option<String>,
}

pub async fn query_msg_by_id(ctx: &mut Ctx<'_>, args: QueryMsgByIdArgs) -> anyhow::Result<()> {
    let _ = &args.cluster;
    check_charset(args.body_format.as_deref())?;
    let mut found = Vec::new();
    for id in args
        .msg_id
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        let by_offset = karman_protocol::message::id::parse_offset_msg_id(id).is_ok();
        let viewed = if by_offset {
            Some(ctx.admin.view_message(id).await)
        } else {
            None
        };
        match (viewed, args.topic.as_deref()) {
            (Some(Ok(message)), _) => found.push(message),
            (viewed, Some(topic)) => {
                let mut messages = ctx
                    .admin
                    .query_message_by_unique_key(topic.trim(), id)
                    .await?;
                messages.sort_by_key(|m| m.store_timestamp_ms);
                match (messages.into_iter().next(), viewed) {
                    (Some(message), _) => found.push(message),
                    (None, Some(Err(error))) => return Err(error.into()),
                    (None, _) => anyhow::bail!(
                        "no message with id {id} in topic {topic}: it is neither a stored offset id nor a client id in the index"
                    ),
                }
            }
            (Some(Err(error)), None) => return Err(error.into()),
            (None, None) => {
                return Err(bad_args(format!(
                    "{id} is not an offset message id; for a client message id (UNIQ_KEY) pass -t TOPIC, or use queryMsgByUniqueKey"
                )));
            }
        }
    }
    print_details(ctx, &found)
}

#[derive(Debug, Args)]
pub struct QueryMsgByKeyArgs {
    /// Topic.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Message key (one of the KEYS).
    #[arg(short = 'k', long = "msgKey")]
    key: String,
    /// Stored at or after this time (epoch ms; default 0).
    #[arg(short = 'b', long = "beginTimestamp", default_value_t = 0)]
    begin_ms: i64,
    /// Stored at or before this time (epoch ms; default no limit).
    #[arg(short = 'e', long = "endTimestamp", default_value_t = i64::MAX)]
    end_ms: i64,
    /// At most this many messages per broker.
    #[arg(short = 'm', long = "maxNum", default_value_t = QUERY_MAX_NUM_DEFAULT)]
    max_num: i32,
    /// Cluster name (accepted for mqadmin compatibility).
    #[arg(short = 'c', long = "cluster", value_name = "CLUSTER")]
    cluster: Option<String>,
}

pub async fn query_msg_by_key(ctx: &mut Ctx<'_>, args: QueryMsgByKeyArgs) -> anyhow::Result<()> {
    let _ = &args.cluster;
    if args.max_num <= 0 {
        return Err(bad_args("-m must be at least 1"));
    }
    let mut messages = ctx
        .admin
        .query_message_by_key(
            args.topic.trim(),
            args.key.trim(),
            args.max_num,
            args.begin_ms,
            args.end_ms,
        )
        .await?;
    messages.sort_by_key(|m| m.store_timestamp_ms);
    let mut table = Table::new(&["Message ID", "QID>", "Offset>", "Store Time"]);
    for m in &messages {
        table.row(vec![
            m.msg_id(),
            m.queue_id.to_string(),
            m.queue_offset.to_string(),
            human_time(m.store_timestamp_ms),
        ]);
    }
    ctx.out.text(table.render())?;
    #[derive(Serialize)]
    struct Report {
        messages: Vec<MessageView>,
    }
    ctx.out.json(&Report {
        messages: messages.iter().map(|m| MessageView::new(m, true)).collect(),
    })
}

#[derive(Debug, Args)]
pub struct QueryMsgByUniqueKeyArgs {
    /// Client message id (UNIQ_KEY, the msgId a producer gets back).
    #[arg(short = 'i', long = "msgId")]
    msg_id: String,
    /// Topic.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Print every stored copy (at most 32), not only the first.
    #[arg(short = 'a', long = "showAll")]
    show_all: bool,
    /// Cluster name (accepted for mqadmin compatibility).
    #[arg(short = 'c', long = "cluster", value_name = "CLUSTER")]
    cluster: Option<String>,
}

pub async fn query_msg_by_unique_key(
    ctx: &mut Ctx<'_>,
    args: QueryMsgByUniqueKeyArgs,
) -> anyhow::Result<()> {
    let _ = &args.cluster;
    let (topic, id) = (args.topic.trim(), args.msg_id.trim());
    let mut messages = ctx.admin.query_message_by_unique_key(topic, id).await?;
    if messages.is_empty() {
        anyhow::bail!("no message with client id (UNIQ_KEY) {id} in the index of topic {topic}");
    }
    messages.sort_by_key(|m| m.store_timestamp_ms);
    if !args.show_all {
        messages.truncate(1);
    }
    print_details(ctx, &messages)
}

#[derive(Debug, Args)]
pub struct QueryMsgByOffsetArgs {
    /// Topic.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Broker name (not address), e.g. broker-a.
    #[arg(short = 'b', long = "brokerName", value_name = "NAME")]
    broker_name: String,
    /// Queue id.
    #[arg(short = 'i', long = "queueId")]
    queue_id: i32,
    /// Queue offset.
    #[arg(short = 'o', long = "offset")]
    offset: i64,
    /// Body charset (only UTF-8).
    #[arg(short = 'f', long = "bodyFormat", value_name = "CHARSET")]
    body_format: Option<String>,
}

/// The topic's readable queues, failing with a missing route (which gets explained) or a
/// broker the topic is not on.
async fn readable_queues(
    ctx: &Ctx<'_>,
    topic: &str,
    broker_name: Option<&str>,
) -> anyhow::Result<Vec<MessageQueue>> {
    let route = ctx.admin.topic_route(topic).await?;
    let queues = karman_client::route::subscribe_queues(topic, &route);
    let Some(broker_name) = broker_name else {
        return Ok(queues);
    };
    let on_broker: Vec<MessageQueue> = queues
        .into_iter()
        .filter(|q| q.broker_name == broker_name)
        .collect();
    if on_broker.is_empty() {
        let names: Vec<&str> = route
            .queue_datas
            .iter()
            .map(|q| q.broker_name.as_str())
            .collect();
        anyhow::bail!(
            "topic {topic} has no readable queue on broker {broker_name} (it is on: {}); -b takes a broker name",
            names.join(", ")
        );
    }
    Ok(on_broker)
}

pub async fn query_msg_by_offset(
    ctx: &mut Ctx<'_>,
    args: QueryMsgByOffsetArgs,
) -> anyhow::Result<()> {
    check_charset(args.body_format.as_deref())?;
    let (topic, broker_name) = (args.topic.trim(), args.broker_name.trim());
    let queues = readable_queues(ctx, topic, Some(broker_name)).await?;
    let Some(mq) = queues.into_iter().find(|q| q.queue_id == args.queue_id) else {
        anyhow::bail!(
            "topic {topic} has no readable queue {} on broker {broker_name}",
            args.queue_id
        );
    };
    let pulled = ctx
        .admin
        .pull(TOOLS_CONSUMER_GROUP, &mq, "*", args.offset, 1)
        .await?;
    let Some(message) = pulled
        .messages
        .into_iter()
        .find(|m| m.queue_offset == args.offset)
    else {
        let holds = if pulled.min_offset >= pulled.max_offset {
            format!(
                "the queue is empty (its next offset is {})",
                pulled.max_offset
            )
        } else {
            format!(
                "the queue holds offsets {} to {}",
                pulled.min_offset,
                pulled.max_offset - 1
            )
        };
        anyhow::bail!(
            "no message at offset {} of {topic} queue {} on {broker_name}: {holds}",
            args.offset,
            args.queue_id
        );
    };
    print_details(ctx, &[message])
}

#[derive(Debug, Args)]
pub struct SendMessageArgs {
    /// Topic.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Body (UTF-8 text).
    #[arg(short = 'p', long = "body")]
    body: String,
    /// Keys, space-separated.
    #[arg(short = 'k', long = "key")]
    keys: Option<String>,
    /// Tag.
    #[arg(short = 'c', long = "tags")]
    tags: Option<String>,
    /// Send to this broker (name, not address).
    #[arg(short = 'b', long = "broker", value_name = "NAME")]
    broker_name: Option<String>,
    /// Send to this queue of -b.
    #[arg(short = 'i', long = "qid")]
    queue_id: Option<i32>,
    /// Message trace (true|false); only false is supported.
    #[arg(short = 'm', long = "msgTraceEnable", value_parser = parse_bool, value_name = "BOOL")]
    trace: Option<bool>,
}

fn status_name(status: SendStatus) -> &'static str {
    match status {
        SendStatus::SendOk => "SEND_OK",
        SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
        SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
        SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
    }
}

pub async fn send_message(ctx: &mut Ctx<'_>, args: SendMessageArgs) -> anyhow::Result<()> {
    if args.trace == Some(true) {
        return Err(bad_args(
            "message trace (-m true) is not supported by karman admin yet",
        ));
    }
    if args.queue_id.is_some() && args.broker_name.is_none() {
        return Err(bad_args(
            "-i needs -b: the queue id is a queue of that broker",
        ));
    }
    let topic = args.topic.trim();
    let mut message = Message::new(topic, args.body.clone().into_bytes());
    if let Some(tags) = args
        .tags
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        message = message.with_tags(tags);
    }
    if let Some(keys) = &args.keys {
        message = message.with_keys(keys.split_whitespace());
    }
    let producer = Producer::builder()
        .client_config(ClientConfig {
            namesrv_addr: ctx.namesrv.to_owned(),
            ..ClientConfig::default()
        })
        .group(karman_client::wall_clock_ms().to_string())
        .build()
        .await?;
    let result = send_to(&producer, message, &args).await;
    producer.shutdown().await;
    let sent = result?;
    let mut table = Table::new(&[
        "Broker Name",
        "QID>",
        "Send Result",
        "MsgId",
        "Offset Msg ID",
    ]);
    table.row(vec![
        sent.queue.broker_name.clone(),
        sent.queue.queue_id.to_string(),
        status_name(sent.status).to_owned(),
        sent.msg_id.clone(),
        sent.offset_msg_id.clone(),
    ]);
    ctx.out.text(table.render())?;
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Report<'a> {
        broker_name: &'a str,
        queue_id: i32,
        queue_offset: i64,
        send_status: &'a str,
        msg_id: &'a str,
        offset_msg_id: &'a str,
    }
    ctx.out.json(&Report {
        broker_name: &sent.queue.broker_name,
        queue_id: sent.queue.queue_id,
        queue_offset: sent.queue_offset,
        send_status: status_name(sent.status),
        msg_id: &sent.msg_id,
        offset_msg_id: &sent.offset_msg_id,
    })
}

async fn send_to(
    producer: &Producer,
    message: Message,
    args: &SendMessageArgs,
) -> anyhow::Result<karman_client::SendResult> {
    let Some(broker_name) = args.broker_name.as_deref().map(str::trim) else {
        return Ok(producer.send(message).await?);
    };
    let queues: Vec<MessageQueue> = producer
        .fetch_publish_queues(&message.topic)
        .await?
        .into_iter()
        .filter(|q| q.broker_name == broker_name)
        .collect();
    let queue = match args.queue_id {
        Some(id) => queues.into_iter().find(|q| q.queue_id == id),
        None => {
            let count = queues.len().max(1);
            let pick = usize::try_from(karman_client::wall_clock_ms()).unwrap_or(0) % count;
            queues.into_iter().nth(pick)
        }
    };
    let Some(queue) = queue else {
        anyhow::bail!(
            "topic {} has no writable queue {} on broker {broker_name}",
            message.topic,
            args.queue_id.map_or_else(String::new, |q| q.to_string())
        );
    };
    Ok(producer.send_to_queue(message, queue).await?)
}

#[derive(Debug, Args)]
pub struct ConsumeMessageArgs {
    /// Topic.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Only this broker (name).
    #[arg(short = 'b', long = "brokerName", value_name = "NAME")]
    broker_name: Option<String>,
    /// Only this queue of -b.
    #[arg(short = 'i', long = "queueId")]
    queue_id: Option<i32>,
    /// Start at this offset of -i.
    #[arg(short = 'o', long = "offset")]
    offset: Option<i64>,
    /// Pull as this consumer group (default TOOLS_CONSUMER); no offset is committed.
    #[arg(short = 'g', long = "consumerGroup")]
    group: Option<String>,
    /// Stored at or after this time: epoch ms or yyyy-MM-dd#HH:mm:ss:SSS.
    #[arg(short = 's', long = "beginTimestamp", value_parser = parse_time, value_name = "TIME")]
    begin: Option<i64>,
    /// Stored before this time: epoch ms or yyyy-MM-dd#HH:mm:ss:SSS.
    #[arg(short = 'e', long = "endTimestamp", value_parser = parse_time, value_name = "TIME")]
    end: Option<i64>,
    /// At most this many messages.
    #[arg(short = 'c', long = "MessageNumber", default_value_t = 128)]
    count: u32,
}

/// The offsets `[from, to)` of a queue to read, from its min/max and the time bounds.
async fn queue_range(
    ctx: &Ctx<'_>,
    mq: &MessageQueue,
    begin: Option<i64>,
    end: Option<i64>,
) -> anyhow::Result<(i64, i64)> {
    let from = match begin {
        Some(ms) => ctx.admin.search_offset(mq, ms).await?,
        None => ctx.admin.min_offset(mq).await?,
    };
    let to = match end {
        Some(ms) => ctx.admin.search_offset(mq, ms).await?,
        None => ctx.admin.max_offset(mq).await?,
    };
    Ok((from, to))
}

/// Reads `[from, to)` of one queue with a tag expression, one pull at a time.
struct RangeReader<'a> {
    group: &'a str,
    mq: &'a MessageQueue,
    expression: &'a str,
    offset: i64,
    to: i64,
}

impl<'a> RangeReader<'a> {
    fn new(
        group: &'a str,
        mq: &'a MessageQueue,
        expression: &'a str,
        (from, to): (i64, i64),
    ) -> Self {
        Self {
            group,
            mq,
            expression,
            offset: from,
            to,
        }
    }

    /// The next batch (possibly empty when nothing in it matched), `None` at the end.
    async fn next(&mut self, admin: &Admin) -> anyhow::Result<Option<Vec<MessageExt>>> {
        if self.offset >= self.to {
            return Ok(None);
        }
        let batch = i32::try_from(self.to - self.offset)
            .unwrap_or(i32::MAX)
            .min(PULL_BATCH_COUNT);
        let pulled = admin
            .pull(self.group, self.mq, self.expression, self.offset, batch)
            .await?;
        match pulled.status {
            PullStatus::Found | PullStatus::NoMatchedMsg => {}
            PullStatus::NoNewMsg | PullStatus::OffsetIllegal => return Ok(None),
        }
        if pulled.next_begin_offset <= self.offset {
            return Ok(None);
        }
        self.offset = pulled.next_begin_offset;
        let to = self.to;
        Ok(Some(
            pulled
                .messages
                .into_iter()
                .filter(|m| m.queue_offset < to)
                .collect(),
        ))
    }
}

pub async fn consume_message(ctx: &mut Ctx<'_>, args: ConsumeMessageArgs) -> anyhow::Result<()> {
    if args.queue_id.is_some() && args.broker_name.is_none() {
        return Err(bad_args(
            "-i needs -b: the queue id is a queue of that broker",
        ));
    }
    if args.offset.is_some() && args.queue_id.is_none() {
        return Err(bad_args(
            "-o needs -i: the offset is an offset of that queue",
        ));
    }
    if args.count == 0 {
        return Err(bad_args("-c must be at least 1"));
    }
    if let (Some(begin), Some(end)) = (args.begin, args.end)
        && begin > end
    {
        return Err(bad_args("-s must not be after -e"));
    }
    let topic = args.topic.trim();
    let group = args
        .group
        .as_deref()
        .map_or(TOOLS_CONSUMER_GROUP, str::trim);
    let mut queues =
        readable_queues(ctx, topic, args.broker_name.as_deref().map(str::trim)).await?;
    if let Some(id) = args.queue_id {
        queues.retain(|q| q.queue_id == id);
        if queues.is_empty() {
            anyhow::bail!("topic {topic} has no readable queue {id} on that broker");
        }
    }
    let mut left = u64::from(args.count);
    let mut messages = Vec::new();
    for mq in &queues {
        if left == 0 {
            break;
        }
        let (mut from, to) = queue_range(ctx, mq, args.begin, args.end).await?;
        if let Some(offset) = args.offset {
            from = from.max(offset);
        }
        let to = to.min(from.saturating_add(i64::try_from(left).unwrap_or(i64::MAX)));
        let mut reader = RangeReader::new(group, mq, "*", (from, to));
        while let Some(batch) = reader.next(ctx.admin).await? {
            left = left.saturating_sub(batch.len() as u64);
            messages.extend(batch.into_iter().map(|m| (mq.broker_name.clone(), m)));
        }
    }
    let mut table = message_table(true);
    for (broker, m) in &messages {
        table.row(message_row(broker, m, true));
    }
    ctx.out.text(table.render())?;
    #[derive(Serialize)]
    struct Report {
        messages: Vec<MessageView>,
    }
    ctx.out.json(&Report {
        messages: messages
            .iter()
            .map(|(_, m)| MessageView::new(m, true))
            .collect(),
    })
}

#[derive(Debug, Args)]
pub struct PrintMsgArgs {
    /// Topic.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Body charset (only UTF-8).
    #[arg(short = 'c', long = "charsetName", value_name = "CHARSET")]
    charset: Option<String>,
    /// Tag expression, e.g. `TagA || TagB` (default `*`).
    #[arg(short = 's', long = "subExpression", default_value = "*")]
    expression: String,
    /// Stored at or after this time: epoch ms or yyyy-MM-dd#HH:mm:ss:SSS.
    #[arg(short = 'b', long = "beginTimestamp", value_parser = parse_time, value_name = "TIME")]
    begin: Option<i64>,
    /// Stored before this time: epoch ms or yyyy-MM-dd#HH:mm:ss:SSS.
    #[arg(short = 'e', long = "endTimestamp", value_parser = parse_time, value_name = "TIME")]
    end: Option<i64>,
    /// Print bodies (true|false; default true).
    #[arg(short = 'd', long = "printBody", value_parser = parse_bool, value_name = "BOOL")]
    print_body: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueDump {
    broker_name: String,
    queue_id: i32,
    min_offset: i64,
    max_offset: i64,
    messages: Vec<MessageView>,
}

pub async fn print_msg(ctx: &mut Ctx<'_>, args: PrintMsgArgs) -> anyhow::Result<()> {
    check_charset(args.charset.as_deref())?;
    let topic = args.topic.trim();
    let with_body = args.print_body.unwrap_or(true);
    let queues = readable_queues(ctx, topic, None).await?;
    let json = ctx.out.is_json();
    let mut dumps = Vec::new();
    for mq in &queues {
        let range = queue_range(ctx, mq, args.begin, args.end).await?;
        ctx.out.text(format!(
            "minOffset={}, maxOffset={}, MessageQueue [topic={}, brokerName={}, queueId={}]",
            range.0, range.1, mq.topic, mq.broker_name, mq.queue_id
        ))?;
        let mut table = message_table(with_body);
        let mut views = Vec::new();
        let mut reader = RangeReader::new(TOOLS_CONSUMER_GROUP, mq, args.expression.trim(), range);
        while let Some(batch) = reader.next(ctx.admin).await? {
            for m in &batch {
                if json {
                    views.push(MessageView::new(m, with_body));
                } else {
                    table.row(message_row(&mq.broker_name, m, with_body));
                }
            }
            if table.len() >= PRINT_CHUNK_ROWS {
                let full = std::mem::replace(&mut table, message_table(with_body));
                ctx.out.text(full.render())?;
            }
        }
        if !table.is_empty() {
            ctx.out.text(table.render())?;
        }
        ctx.out
            .text("--------------------------------------------------------")?;
        dumps.push(QueueDump {
            broker_name: mq.broker_name.clone(),
            queue_id: mq.queue_id,
            min_offset: range.0,
            max_offset: range.1,
            messages: views,
        });
    }
    #[derive(Serialize)]
    struct Report<'a> {
        topic: &'a str,
        queues: Vec<QueueDump>,
    }
    ctx.out.json(&Report {
        topic,
        queues: dumps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_print_as_one_safe_line() {
        assert_eq!(body_text(b"hello"), "hello");
        assert_eq!(body_text(b"a\nb\x1b[2J"), "a\\nb\\u{1b}[2J");
        assert_eq!(body_text(&[0xff, 0xfe]), "(2 bytes, not UTF-8 text)");
    }

    #[test]
    fn only_utf8_is_a_known_charset() {
        assert!(check_charset(None).is_ok());
        assert!(check_charset(Some("utf-8")).is_ok());
        assert!(check_charset(Some("GBK")).is_err());
    }
}
