//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361) with long polling (spec remoting.md
//! §3.2, §7.5, §7.6). Messages go out as slices of the mapped commit log, unsent copies of
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::body::{MessageModel, SubscriptionData, expression_type};
use karman_protocol::header::{PullMessageRequestHeader, PullMessageResponseHeader};
use karman_protocol::message::sysflag::{perm, pull as pull_flag};
use karman_protocol::{Body, RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{Channel, ProcessError, ProcessResult, RequestProcessor};
use karman_store::{GetMessageResult, GetMessageStatus, MessageStore, QueueOffset};

use super::fail;
use crate::client_table::ClientTable;
use crate::filter::SubscriptionFilter;
use crate::group_table::GroupTable;
use crate::long_polling::PullHolds;
use crate::offset_table::OffsetTable;
use crate::stats::BrokerStats;
use crate::topic_table::{TopicTable, name};
use crate::{BrokerIdentity, SharedConfig};

pub const CODES: &[RequestCode] = &[RequestCode::PullMessage, RequestCode::LitePullMessage];

#[derive(Debug)]
pub struct PullProcessor {
    pub config: SharedConfig,
    pub identity: Arc<BrokerIdentity>,
    pub store: Arc<MessageStore>,
    pub topics: Arc<TopicTable>,
    pub groups: Arc<GroupTable>,
    pub clients: Arc<ClientTable>,
    pub offsets: Arc<OffsetTable>,
    pub holds: Arc<PullHolds>,
    pub stats: Arc<BrokerStats>,
}

/// What a checked pull request resolved to.
struct Resolved {
    filter: Arc<SubscriptionFilter>,
    topic_sys_flag: i32,
    group_sys_flag: i32,
    broker_id_hot: i64,
    broker_id_cold: i64,
}

#[async_trait]
impl RequestProcessor for PullProcessor {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult {
        let header: PullMessageRequestHeader = request.decode_header()?;
        let resolved = self.check(&request, &header, channel)?;
        let base = PullMessageResponseHeader {
            topic_sys_flag: Some(resolved.topic_sys_flag),
            group_sys_flag: Some(resolved.group_sys_flag),
            ..PullMessageResponseHeader::default()
        };
        if let Some(reset) =
            self.offsets
                .take_reset(&header.consumer_group, &header.topic, header.queue_id)
        {
            let (min, max) = self.queue_bounds(&header);
            let response_header = PullMessageResponseHeader {
                next_begin_offset: reset,
                min_offset: min,
                max_offset: max,
                ..base
            };
            let response = RemotingCommand::response_to(&request, ResponseCode::PullOffsetMoved)
                .with_header(&response_header)?
                .with_remark("OFFSET_RESET");
            return Ok(Some(response));
        }
        let commit =
            header.sys_flag & pull_flag::COMMIT_OFFSET != 0 && self.config.read().is_master();
        if commit && header.commit_offset >= 0 {
            self.offsets.commit(
                &header.consumer_group,
                &header.topic,
                header.queue_id,
                header.commit_offset,
            );
        }
        let mut result = self.read(&header, &resolved.filter);
        if response_code(result.status, header.queue_offset) == ResponseCode::PullNotFound
            && header.sys_flag & pull_flag::SUSPEND != 0
        {
            result = self.hold(channel, &header, &resolved.filter, result).await;
        }
        self.respond(&request, &header, &resolved, base, result)
    }
}

impl PullProcessor {
    /// Spec §3.2 "other pull errors", in Java's order.
    fn check(
        &self,
        request: &RemotingCommand,
        header: &PullMessageRequestHeader,
        channel: &Channel,
    ) -> Result<Resolved, ProcessError> {
        let config = self.config.read().clone_pull_settings();
        let forbidden = |remark: String| fail(ResponseCode::NoPermission, remark);
        if request.request_code() == RequestCode::LitePullMessage && !config.lite_pull_enable {
            return Err(forbidden(format!(
                "the broker[{}] for lite pull consumer is disabled",
                self.identity.addr
            )));
        }
        if !perm::is_readable(config.broker_permission) {
            return Err(forbidden(format!(
                "the broker[{}] pulling message is forbidden",
                self.identity.addr
            )));
        }
        let Some(group) = self.groups.find_or_create(&header.consumer_group) else {
            return Err(fail(
                ResponseCode::SubscriptionGroupNotExist,
                format!(
                    "subscription group [{}] does not exist; create it with `karman admin updateSubGroup -g {}`",
                    header.consumer_group, header.consumer_group
                ),
            ));
        };
        if !group.consume_enable {
            return Err(forbidden(format!(
                "subscription group no permission, {}",
                header.consumer_group
            )));
        }
        let Some(topic) = self.topics.get(&header.topic) else {
            return Err(fail(
                ResponseCode::TopicNotExist,
                format!("topic[{}] not exist, apply first please!", header.topic),
            ));
        };
        if !perm::is_readable(topic.perm) {
            return Err(forbidden(format!(
                "the topic[{}] pulling message is forbidden",
                header.topic
            )));
        }
        if header.queue_id < 0 || header.queue_id >= topic.read_queue_nums {
            return Err(fail(
                ResponseCode::InvalidParameter,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}] consumer:[{}]",
                    header.queue_id,
                    header.topic,
                    topic.read_queue_nums,
                    channel.remote_addr()
                ),
            ));
        }
        let subscription = self.subscription(header, &group.group_name)?;
        if !subscription.is_tag_type() && !config.enable_property_filter {
            return Err(fail(
                ResponseCode::SystemError,
                "The broker does not support consumer to filter message by SQL92; set enablePropertyFilter=true in broker.conf",
            ));
        }
        let filter = if name::is_retry_topic(&header.topic) && !config.filter_support_retry {
            SubscriptionFilter::All
        } else {
            SubscriptionFilter::new(&subscription).map_err(|e| {
                fail(
                    ResponseCode::SubscriptionParseFailed,
                    format!(
                        "parse the consumer's subscription[{}] failed, group: {}: {e}",
                        subscription.sub_string, header.consumer_group
                    ),
                )
            })?
        };
        Ok(Resolved {
            filter: Arc::new(filter),
            topic_sys_flag: topic.topic_sys_flag,
            group_sys_flag: group.group_sys_flag,
            broker_id_hot: group.broker_id,
            broker_id_cold: group.which_broker_when_consume_slowly,
        })
    }

    /// The pull's subscription: carried in the request, or registered by heartbeat.
    fn subscription(
        &self,
        header: &PullMessageRequestHeader,
        group: &str,
    ) -> Result<SubscriptionData, ProcessError> {
        if header.sys_flag & pull_flag::SUBSCRIPTION != 0 {
            let expression = header.subscription.as_deref().unwrap_or("*");
            return Ok(
                if expression_type::is_tag(header.expression_type.as_deref()) {
                    SubscriptionData::from_tag_expression(
                        &header.topic,
                        expression,
                        header.sub_version,
                    )
                } else {
                    SubscriptionData::sql92(&header.topic, expression, header.sub_version)
                },
            );
        }
        let Some(info) = self.clients.consumer_group(group) else {
            return Err(fail(
                ResponseCode::SubscriptionNotExist,
                format!(
                    "the consumer's group info not exist, group: {group}; it must send a heartbeat first"
                ),
            ));
        };
        if info.message_model == MessageModel::Broadcasting
            && !self
                .groups
                .get(group)
                .is_none_or(|g| g.consume_broadcast_enable)
        {
            return Err(fail(
                ResponseCode::NoPermission,
                format!("the consumer group[{group}] can not consume by broadcast way"),
            ));
        }
        let Some(subscription) = info.subscriptions.get(&header.topic) else {
            return Err(fail(
                ResponseCode::SubscriptionNotExist,
                format!(
                    "the consumer's subscription not exist, group: {group}, topic: {}",
                    header.topic
                ),
            ));
        };
        if subscription.sub_version < header.sub_version {
            return Err(fail(
                ResponseCode::SubscriptionNotLatest,
                format!(
                    "the consumer's subscription not latest, group: {group}, topic: {}",
                    header.topic
                ),
            ));
        }
        Ok(subscription.clone())
    }

    fn read(
        &self,
        header: &PullMessageRequestHeader,
        filter: &SubscriptionFilter,
    ) -> GetMessageResult {
        self.store.get_message(
            &header.topic,
            header.queue_id,
            QueueOffset(header.queue_offset),
            usize::try_from(header.max_msg_nums).unwrap_or(0).max(1),
            0,
            filter,
        )
    }

    fn queue_bounds(&self, header: &PullMessageRequestHeader) -> (i64, i64) {
        (
            self.store
                .min_offset_in_queue(&header.topic, header.queue_id)
                .0,
            self.store
                .max_offset_in_queue(&header.topic, header.queue_id)
                .0,
        )
    }

    /// Long polling: waits until a matching message arrives, the hold ends or the
    /// connection closes, then reads once more (spec §7.6).
    async fn hold(
        &self,
        channel: &Channel,
        header: &PullMessageRequestHeader,
        filter: &Arc<SubscriptionFilter>,
        first: GetMessageResult,
    ) -> GetMessageResult {
        let (long_polling, short_ms) = {
            let config = self.config.read();
            (config.long_polling_enable, config.short_polling_time_ms)
        };
        let hold_for = if long_polling {
            Duration::from_millis(u64::try_from(header.suspend_timeout_millis).unwrap_or(0))
        } else {
            Duration::from_millis(short_ms)
        };
        let Some(mut guard) = self.holds.hold(
            &header.topic,
            header.queue_id,
            header.queue_offset,
            filter.clone(),
        ) else {
            return first;
        };
        // A message may have landed between the first read and the registration.
        let recheck = self.read(header, filter);
        if response_code(recheck.status, header.queue_offset) != ResponseCode::PullNotFound {
            return recheck;
        }
        let reason = tokio::select! {
            _ = &mut guard.woken => "woken",
            _ = tokio::time::sleep(hold_for) => "hold ended",
            _ = channel.closing() => "connection closing",
        };
        tracing::debug!(topic = %header.topic, queue_id = header.queue_id, offset = header.queue_offset, reason, "held pull resumes");
        drop(guard);
        self.read(header, filter)
    }

    fn respond(
        &self,
        request: &RemotingCommand,
        header: &PullMessageRequestHeader,
        resolved: &Resolved,
        base: PullMessageResponseHeader,
        result: GetMessageResult,
    ) -> ProcessResult {
        let code = response_code(result.status, header.queue_offset);
        let suggest = if self.config.read().slave_read_enable && result.suggest_pulling_from_slave {
            resolved.broker_id_cold
        } else if self.config.read().slave_read_enable {
            resolved.broker_id_hot
        } else {
            0
        };
        let response_header = PullMessageResponseHeader {
            suggest_which_broker_id: suggest,
            next_begin_offset: result.next_begin_offset.0,
            min_offset: result.min_offset.0,
            max_offset: result.max_offset.0,
            ..base
        };
        self.stats
            .record_get(result.messages.len(), result.total_bytes);
        let mut response = RemotingCommand::response_to(request, code)
            .with_header(&response_header)?
            .with_remark(result.status.name());
        if code == ResponseCode::Success {
            response.body = Body::from(result.messages);
        }
        Ok(Some(response))
    }
}

/// Store status to response code (spec §3.2 table).
fn response_code(status: GetMessageStatus, requested_offset: i64) -> ResponseCode {
    match status {
        GetMessageStatus::Found => ResponseCode::Success,
        GetMessageStatus::NoMatchedMessage | GetMessageStatus::MessageWasRemoving => {
            ResponseCode::PullRetryImmediately
        }
        GetMessageStatus::NoMatchedLogicQueue | GetMessageStatus::NoMessageInQueue
            if requested_offset != 0 =>
        {
            ResponseCode::PullOffsetMoved
        }
        GetMessageStatus::NoMatchedLogicQueue
        | GetMessageStatus::NoMessageInQueue
        | GetMessageStatus::OffsetOverflowOne
        | GetMessageStatus::OffsetFoundNull => ResponseCode::PullNotFound,
        GetMessageStatus::OffsetTooSmall | GetMessageStatus::OffsetOverflowBadly => {
            ResponseCode::PullOffsetMoved
        }
    }
}

/// The settings one pull reads, copied out under one short lock.
pub(crate) struct PullSettings {
    pub lite_pull_enable: bool,
    pub broker_permission: i32,
    pub enable_property_filter: bool,
    pub filter_support_retry: bool,
}

impl crate::config::BrokerConfig {
    pub(crate) fn clone_pull_settings(&self) -> PullSettings {
        PullSettings {
            lite_pull_enable: self.lite_pull_message_enable,
            broker_permission: self.broker_permission,
            enable_property_filter: self.enable_property_filter,
            filter_support_retry: self.filter_support_retry,
        }
    }
}
