//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320) and
//! CONSUMER_SEND_MSG_BACK (36): spec remoting.md §3.1 and §3.6, in Java's order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::body::TopicConfig;
use karman_protocol::code::version;
use karman_protocol::header::{
    ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader, SendMessageResponseHeader,
};
use karman_protocol::message::batch::decode_batch;
use karman_protocol::message::id::{UniqIdGenerator, offset_msg_id};
use karman_protocol::message::sysflag::{message as sysflag, perm};
use karman_protocol::message::{MessageView, Properties, StoredRecord, property};
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{Channel, ProcessError, ProcessResult, RequestProcessor};
use karman_store::{
    AppendMessage, AppendResult, AppendStatus, Clock, CommitLogOffset, MessageStore,
};
use tokio::sync::Semaphore;
use tracing::debug;

use super::{fail, ok};
use crate::group_table::GroupTable;
use crate::lock_table::LockTable;
use crate::message::InnerMessage;
use crate::schedule::ScheduleService;
use crate::stats::BrokerStats;
use crate::timer::{self, TimerLimits};
use crate::topic_table::{TopicTable, name, validate_topic_name};
use crate::{BrokerIdentity, SharedConfig};

pub const CODES: &[RequestCode] = &[
    RequestCode::SendMessage,
    RequestCode::SendMessageV2,
    RequestCode::SendBatchMessage,
    RequestCode::ConsumerSendMsgBack,
];

#[derive(Debug)]
pub struct SendProcessor {
    pub config: SharedConfig,
    pub identity: Arc<BrokerIdentity>,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<MessageStore>,
    pub topics: Arc<TopicTable>,
    pub groups: Arc<GroupTable>,
    pub locks: Arc<LockTable>,
    pub schedule: Arc<ScheduleService>,
    pub timer: Arc<crate::timer::TimerService>,
    pub stats: Arc<BrokerStats>,
    /// The bounded send queue: sends waiting for the store beyond it are refused.
    pub send_permits: Arc<Semaphore>,
    pub uniq_ids: Arc<UniqIdGenerator>,
}

#[async_trait]
impl RequestProcessor for SendProcessor {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult {
        match request.request_code() {
            RequestCode::ConsumerSendMsgBack => self.send_back(&request).await,
            _ => self.send(channel, &request).await,
        }
    }
}

/// Store status to response code (spec §3.1 step 12).
fn status_code(status: &AppendStatus) -> ResponseCode {
    match status {
        AppendStatus::PutOk => ResponseCode::Success,
        AppendStatus::FlushDiskTimeout => ResponseCode::FlushDiskTimeout,
        AppendStatus::MessageIllegal(_) | AppendStatus::PropertiesSizeExceeded { .. } => {
            ResponseCode::MessageIllegal
        }
        AppendStatus::ServiceNotAvailable(_) => ResponseCode::ServiceNotAvailable,
        AppendStatus::OsPageCacheBusy => ResponseCode::SystemBusy,
        AppendStatus::UnknownError => ResponseCode::SystemError,
    }
}

/// The size a message takes in the commit log, to derive every offsetMsgId of a batch
/// from the offset of its first record.
fn record_len(message: &AppendMessage) -> i64 {
    let record = StoredRecord {
        topic: &message.topic,
        queue_id: message.queue_id,
        flag: message.flag,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: message.sys_flag,
        born_timestamp_ms: message.born_timestamp_ms,
        born_host: message.born_host,
        store_timestamp_ms: 0,
        store_host: message.store_host,
        reconsume_times: message.reconsume_times,
        prepared_transaction_offset: message.prepared_transaction_offset,
        body: &message.body,
        properties: &message.properties,
    };
    record
        .encoded_len()
        .map_or(0, |n| i64::try_from(n).unwrap_or(0))
}

impl SendProcessor {
    async fn enter_send_queue(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ProcessError> {
        let wait = Duration::from_millis(self.config.read().wait_time_mills_in_send_queue);
        match tokio::time::timeout(wait, self.send_permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(fail(
                ResponseCode::SystemBusy,
                format!(
                    "[PCBUSY_CLEAN_QUEUE]broker busy, start flow control for a while, period in queue: {}ms, size of queue: {}",
                    wait.as_millis(),
                    self.config.read().send_thread_pool_queue_capacity
                ),
            )),
        }
    }

    /// Spec §3.1 steps 2 to 5: permissions, the name, forbidden topics, lookup and
    /// auto-creation.
    fn check_topic(&self, header: &SendMessageRequestHeader) -> Result<TopicConfig, ProcessError> {
        let broker_permission = self.config.read().broker_permission;
        if !perm::is_writeable(broker_permission) {
            return Err(fail(
                ResponseCode::NoPermission,
                format!(
                    "the broker[{}] sending message is forbidden",
                    self.identity.addr
                ),
            ));
        }
        validate_topic_name(&header.topic)
            .map_err(|reason| fail(ResponseCode::InvalidParameter, reason))?;
        if name::is_send_forbidden(&header.topic) {
            return Err(fail(
                ResponseCode::NoPermission,
                format!("Sending message to topic[{}] is forbidden.", header.topic),
            ));
        }
        let auto_create = self.config.read().auto_create_topic_enable;
        let found = self.topics.find_or_create_on_send(
            &header.topic,
            &header.default_topic,
            header.default_topic_queue_nums,
            0,
            auto_create,
        );
        let config = match found {
            Some(config) => config,
            None if name::is_retry_topic(&header.topic) => {
                self.topics
                    .find_or_create_system(&header.topic, 1, perm::READ_WRITE)
            }
            None => {
                return Err(fail(
                    ResponseCode::TopicNotExist,
                    format!(
                        "topic[{}] not exist, apply first please! (autoCreateTopicEnable={auto_create}; create it with `karman admin updateTopic -t {}`)",
                        header.topic, header.topic
                    ),
                ));
            }
        };
        if !perm::is_writeable(config.perm) {
            return Err(fail(
                ResponseCode::NoPermission,
                format!("the topic[{}] sending message is forbidden", header.topic),
            ));
        }
        Ok(config)
    }

    /// Spec §3.1 steps 6 and 7.
    fn choose_queue(
        &self,
        header: &SendMessageRequestHeader,
        config: &TopicConfig,
    ) -> Result<i32, ProcessError> {
        let queues = config.read_queue_nums.max(config.write_queue_nums);
        if header.queue_id >= queues {
            return Err(fail(
                ResponseCode::InvalidParameter,
                format!(
                    "request queueId[{}] is illegal, topic:[{}] topicConfig.writeQueueNums: [{}]",
                    header.queue_id, header.topic, config.write_queue_nums
                ),
            ));
        }
        if header.queue_id >= 0 {
            return Ok(header.queue_id);
        }
        let writable = config.write_queue_nums.max(1);
        Ok(i32::try_from(rand_index(u64::try_from(writable).unwrap_or(1))).unwrap_or(0))
    }

    /// Properties the broker adds to every message (spec §3.1 steps 1, 9, 10).
    fn add_broker_properties(&self, properties: &mut Properties, with_region: bool) {
        properties.remove(property::POP_CK);
        if with_region {
            let config = self.config.read();
            properties.insert(property::MSG_REGION, config.region_id.clone());
            properties.insert(property::TRACE_SWITCH, config.trace_on.to_string());
        }
        if properties.uniq_key().is_none() {
            properties.insert(
                property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX,
                self.uniq_ids.next_id(self.clock.now_ms()),
            );
        }
        properties.insert(property::CLUSTER, self.identity.cluster.clone());
    }

    async fn send(&self, channel: &Channel, request: &RemotingCommand) -> ProcessResult {
        let header = SendMessageRequestHeader::decode_from(request)?;
        let _permit = self.enter_send_queue().await?;
        let topic_config = self.check_topic(&header)?;
        let queue_id = self.choose_queue(&header, &topic_config)?;
        if header.batch {
            return self.send_batch(channel, request, &header, queue_id).await;
        }
        let mut message = InnerMessage {
            topic: header.topic.clone(),
            queue_id,
            flag: header.flag,
            body: request.body.to_bytes(),
            properties: Properties::decode(header.properties.as_deref().unwrap_or("")),
            sys_flag: header.sys_flag,
            born_timestamp_ms: header.born_timestamp,
            born_host: channel.remote_addr(),
            reconsume_times: header.reconsume_times.unwrap_or(0),
            prepared_transaction_offset: 0,
        };
        if topic_config.topic_filter_type == karman_protocol::body::TopicFilterType::MultiTag {
            message.sys_flag |= sysflag::MULTI_TAGS;
        }
        self.add_broker_properties(&mut message.properties, true);
        if name::is_retry_topic(&message.topic) {
            self.redirect_exhausted_retry(&mut message, &header, request.version)?;
        }
        let target_queue_id = message.queue_id;
        self.route_special(&mut message)?;
        let uniq = message.uniq_key().map(str::to_owned);
        let append = message.into_append(self.identity.store_host);
        let body_bytes = append.body.len();
        let topic = append.topic.clone();
        let result = self.store.append(append).await;
        self.stats
            .record_put(&topic, 1, body_bytes, result.status.is_ok());
        respond(
            request,
            &result,
            target_queue_id,
            uniq,
            vec![result.offset_msg_id().unwrap_or_default()],
            &self.config,
        )
    }

    /// Spec §3.1 step 8: a retry message past its maximum, or from a group holding orderly
    /// locks, goes to the group's dead-letter queue instead.
    fn redirect_exhausted_retry(
        &self,
        message: &mut InnerMessage,
        header: &SendMessageRequestHeader,
        request_version: i32,
    ) -> Result<(), ProcessError> {
        let group = message
            .topic
            .trim_start_matches(name::RETRY_GROUP_TOPIC_PREFIX)
            .to_owned();
        let Some(group_config) = self.groups.find_or_create(&group) else {
            return Err(fail(
                ResponseCode::SubscriptionGroupNotExist,
                format!(
                    "subscription group [{group}] does not exist; create it with `karman admin updateSubGroup -g {group}`"
                ),
            ));
        };
        let max = match header.max_reconsume_times {
            Some(max) if request_version >= version::V3_4_9 => max,
            _ => group_config.retry_max_times,
        };
        let locked = self
            .locks
            .group_holds_locks(&group, tokio::time::Instant::now());
        if message.reconsume_times > max || locked {
            let dlq = name::dlq_topic(&group);
            self.topics.find_or_create_system(&dlq, 1, perm::READ_WRITE);
            debug!(group = %group, reconsume = message.reconsume_times, max, locked, "retry message sent to the DLQ");
            message.topic = dlq;
            message.queue_id = 0;
            message.properties.insert(property::DELAY_TIME_LEVEL, "-1");
        }
        Ok(())
    }

    /// Half messages, delay levels and timers (spec §3.1 step 11, §3.7, §7.4).
    fn route_special(&self, message: &mut InnerMessage) -> Result<(), ProcessError> {
        let prepared = message
            .properties
            .get(property::TRANSACTION_PREPARED)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if prepared && !(message.reconsume_times > 0 && message.delay_level() > 0) {
            if self.config.read().reject_transaction_message {
                return Err(fail(
                    ResponseCode::NoPermission,
                    format!(
                        "the broker[{}] sending transaction message is forbidden",
                        self.identity.addr
                    ),
                ));
            }
            if let Some(uniq) = message.uniq_key().map(str::to_owned) {
                message.properties.insert(property::TRANSACTION_ID, uniq);
            }
            message.sys_flag =
                sysflag::with_transaction_type(message.sys_flag, sysflag::TRANSACTION_NOT_TYPE);
            message.park(name::TRANS_HALF_TOPIC, 0);
            return Ok(());
        }
        let kind = sysflag::transaction_type(message.sys_flag);
        if kind != sysflag::TRANSACTION_NOT_TYPE && kind != sysflag::TRANSACTION_COMMIT_TYPE {
            return Ok(());
        }
        if self.schedule.park(message) {
            for trigger in [
                property::TIMER_DELIVER_MS,
                property::TIMER_DELAY_SEC,
                property::TIMER_DELAY_MS,
            ] {
                message.properties.remove(trigger);
            }
            return Ok(());
        }
        let limits = {
            let config = self.config.read();
            TimerLimits {
                enabled: config.timer_wheel_enable,
                max_delay_ms: i64::try_from(config.timer_max_delay_sec.saturating_mul(1000))
                    .unwrap_or(i64::MAX),
            }
        };
        let now = self.clock.now_ms();
        if timer::park(message, limits, now)? {
            let due = timer::requested_delivery_ms(message, now).unwrap_or(now);
            self.timer.note_delay(due - now);
        }
        Ok(())
    }

    async fn send_batch(
        &self,
        channel: &Channel,
        request: &RemotingCommand,
        header: &SendMessageRequestHeader,
        queue_id: i32,
    ) -> ProcessResult {
        if name::is_retry_topic(&header.topic) {
            return Err(fail(
                ResponseCode::MessageIllegal,
                "batch request does not support retry group",
            ));
        }
        let body = request.body.to_bytes();
        let entries = decode_batch(&body).map_err(|e| {
            fail(
                ResponseCode::MessageIllegal,
                format!("the batch body is malformed: {e}"),
            )
        })?;
        let batch_properties = Properties::decode(header.properties.as_deref().unwrap_or(""));
        let mut messages = Vec::with_capacity(entries.len());
        let mut uniq_keys = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut properties = Properties::decode_bytes(&entry.properties);
            self.add_broker_properties(&mut properties, false);
            uniq_keys.push(properties.uniq_key().unwrap_or_default().to_owned());
            let message = InnerMessage {
                topic: header.topic.clone(),
                queue_id,
                flag: entry.flag,
                body: entry.body,
                properties,
                sys_flag: header.sys_flag,
                born_timestamp_ms: header.born_timestamp,
                born_host: channel.remote_addr(),
                reconsume_times: header.reconsume_times.unwrap_or(0),
                prepared_transaction_offset: 0,
            };
            messages.push(message.into_append(self.identity.store_host));
        }
        if let (Some(first), Some(wait)) = (
            messages.first_mut(),
            batch_properties.get(property::WAIT_STORE_MSG_OK),
        ) {
            first.wait_store_msg_ok = wait != "false";
        }
        let sizes: Vec<i64> = messages.iter().map(record_len).collect();
        let (count, body_bytes) = (messages.len(), messages.iter().map(|m| m.body.len()).sum());
        let result = self.store.append_batch(messages).await;
        self.stats
            .record_put(&header.topic, count, body_bytes, result.status.is_ok());
        let mut ids = Vec::with_capacity(sizes.len());
        let mut offset = result.physical_offset.0;
        for size in sizes {
            ids.push(offset_msg_id(self.identity.store_host, offset));
            offset += size;
        }
        let batch_uniq = batch_properties
            .uniq_key()
            .map(str::to_owned)
            .or_else(|| Some(uniq_keys.join(",")));
        respond(request, &result, queue_id, batch_uniq, ids, &self.config)
    }

    /// CONSUMER_SEND_MSG_BACK (spec §3.6).
    async fn send_back(&self, request: &RemotingCommand) -> ProcessResult {
        let header: ConsumerSendMsgBackRequestHeader = request.decode_header()?;
        let Some(group_config) = self.groups.find_or_create(&header.group) else {
            return Err(fail(
                ResponseCode::SubscriptionGroupNotExist,
                format!(
                    "subscription group [{}] does not exist; create it with `karman admin updateSubGroup -g {}`",
                    header.group, header.group
                ),
            ));
        };
        if !perm::is_writeable(self.config.read().broker_permission) {
            return Err(fail(
                ResponseCode::NoPermission,
                format!(
                    "the broker[{}] sending message is forbidden",
                    self.identity.addr
                ),
            ));
        }
        if group_config.retry_queue_nums <= 0 {
            return Ok(Some(ok(request)));
        }
        let retry_topic = name::retry_topic(&header.group);
        let retry_config = self.topics.find_or_create_system(
            &retry_topic,
            group_config.retry_queue_nums,
            perm::READ_WRITE,
        );
        let Some(record) = self.store.read_message(CommitLogOffset(header.offset)) else {
            return Err(fail(
                ResponseCode::SystemError,
                format!("look message by offset failed, {}", header.offset),
            ));
        };
        let view = MessageView::parse(&record).map_err(|e| {
            fail(
                ResponseCode::SystemError,
                format!("message at offset {} is unreadable: {e}", header.offset),
            )
        })?;
        let mut message = InnerMessage::from_stored(&view, &record);
        if !message.properties.contains(property::RETRY_TOPIC) {
            message.properties.insert(property::RETRY_TOPIC, view.topic);
        }
        let max = match header.max_reconsume_times {
            Some(max) if request.version >= version::V3_4_9 => max,
            _ => group_config.retry_max_times,
        };
        let to_dlq = view.reconsume_times >= max || header.delay_level < 0;
        if to_dlq {
            let dlq = name::dlq_topic(&header.group);
            self.topics.find_or_create_system(&dlq, 1, perm::READ_WRITE);
            message.topic = dlq;
            message.queue_id = 0;
            message.properties.remove(property::DELAY_TIME_LEVEL);
        } else {
            let level = if header.delay_level > 0 {
                header.delay_level
            } else {
                3 + view.reconsume_times
            };
            message.topic = retry_topic;
            message.queue_id = i32::try_from(rand_index(
                u64::try_from(retry_config.write_queue_nums.max(1)).unwrap_or(1),
            ))
            .unwrap_or(0);
            message
                .properties
                .insert(property::DELAY_TIME_LEVEL, level.to_string());
        }
        message.reconsume_times = view.reconsume_times + 1;
        if !message.properties.contains(property::ORIGIN_MESSAGE_ID) {
            let origin = header
                .origin_msg_id
                .clone()
                .unwrap_or_else(|| offset_msg_id(view.store_host, view.physical_offset));
            message
                .properties
                .insert(property::ORIGIN_MESSAGE_ID, origin);
        }
        message
            .properties
            .insert(property::WAIT_STORE_MSG_OK, "false");
        if !to_dlq {
            self.schedule.park(&mut message);
        }
        let topic = message.topic.clone();
        let result = self
            .store
            .append(message.into_append(self.identity.store_host))
            .await;
        self.stats
            .record_put(&topic, 1, view.body.len(), result.status.is_ok());
        if result.status.is_ok() {
            debug!(group = %header.group, topic = %topic, "message sent back for retry");
            Ok(Some(ok(request)))
        } else {
            Err(fail(ResponseCode::SystemError, result.status.to_string()))
        }
    }
}

fn respond(
    request: &RemotingCommand,
    result: &AppendResult,
    target_queue_id: i32,
    transaction_id: Option<String>,
    msg_ids: Vec<String>,
    config: &SharedConfig,
) -> ProcessResult {
    let code = status_code(&result.status);
    if !matches!(code, ResponseCode::Success | ResponseCode::FlushDiskTimeout) {
        return Err(fail(code, result.status.to_string()));
    }
    let (region, trace_on) = {
        let config = config.read();
        (config.region_id.clone(), config.trace_on.to_string())
    };
    let header = SendMessageResponseHeader {
        msg_id: msg_ids.join(","),
        queue_id: target_queue_id,
        queue_offset: result.queue_offset.0,
        transaction_id,
        msg_region: Some(region),
        trace_on: Some(trace_on),
        ..SendMessageResponseHeader::default()
    };
    let mut response = RemotingCommand::response_to(request, code).with_header(&header)?;
    if code != ResponseCode::Success {
        response.remark = Some(result.status.to_string());
    }
    Ok(Some(response))
}

/// A cheap uniform-enough index for spreading sends over queues.
fn rand_index(bound: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    // splitmix64 step: statistically fine for load spreading, no dependency.
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % bound.max(1)
}
