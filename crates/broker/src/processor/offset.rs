//! Offset commands (spec remoting.md §3.3): committed offsets and the queue positions a
//! consumer starts from.

use std::sync::Arc;

use async_trait::async_trait;
use karman_protocol::header::{
    GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader,
    GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader, OffsetResponseHeader,
    QueryConsumerOffsetRequestHeader, SearchOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{Channel, ProcessResult, RequestProcessor};
use karman_store::{AcceptAll, BoundaryType, MessageStore, QueueOffset};

use super::{fail, ok};
use crate::group_table::GroupTable;
use crate::offset_table::OffsetTable;
use crate::topic_table::TopicTable;

pub const CODES: &[RequestCode] = &[
    RequestCode::QueryConsumerOffset,
    RequestCode::UpdateConsumerOffset,
    RequestCode::SearchOffsetByTimestamp,
    RequestCode::GetMaxOffset,
    RequestCode::GetMinOffset,
    RequestCode::GetEarliestMsgStoretime,
];

#[derive(Debug)]
pub struct OffsetProcessor {
    pub store: Arc<MessageStore>,
    pub topics: Arc<TopicTable>,
    pub groups: Arc<GroupTable>,
    pub offsets: Arc<OffsetTable>,
}

fn offset_response(request: &RemotingCommand, offset: i64) -> ProcessResult {
    Ok(Some(
        ok(request).with_header(&OffsetResponseHeader { offset })?,
    ))
}

#[async_trait]
impl RequestProcessor for OffsetProcessor {
    async fn process(&self, _channel: &Channel, request: RemotingCommand) -> ProcessResult {
        match request.request_code() {
            RequestCode::QueryConsumerOffset => self.query(&request),
            RequestCode::UpdateConsumerOffset => self.update(&request),
            RequestCode::SearchOffsetByTimestamp => {
                let header: SearchOffsetRequestHeader = request.decode_header()?;
                let boundary = match header.boundary_type.as_deref() {
                    Some(b) if b.eq_ignore_ascii_case("UPPER") => BoundaryType::Upper,
                    _ => BoundaryType::Lower,
                };
                let offset = self.store.offset_by_time(
                    &header.topic,
                    header.queue_id,
                    header.timestamp,
                    boundary,
                );
                offset_response(&request, offset.0)
            }
            RequestCode::GetMaxOffset => {
                let header: GetMaxOffsetRequestHeader = request.decode_header()?;
                offset_response(
                    &request,
                    self.store
                        .max_offset_in_queue(&header.topic, header.queue_id)
                        .0,
                )
            }
            RequestCode::GetMinOffset => {
                let header: GetMinOffsetRequestHeader = request.decode_header()?;
                offset_response(
                    &request,
                    self.store
                        .min_offset_in_queue(&header.topic, header.queue_id)
                        .0,
                )
            }
            RequestCode::GetEarliestMsgStoretime => {
                let header: GetEarliestMsgStoretimeRequestHeader = request.decode_header()?;
                let timestamp = self
                    .store
                    .earliest_message_time(&header.topic, header.queue_id)
                    .unwrap_or(-1);
                Ok(Some(ok(&request).with_header(
                    &GetEarliestMsgStoretimeResponseHeader { timestamp },
                )?))
            }
            _ => Ok(Some(karman_remoting::processor::not_supported(&request))),
        }
    }
}

impl OffsetProcessor {
    /// With no committed offset, a queue that still starts at 0 and whose first message is
    /// hot answers 0 so a new group reads a young topic from its beginning (spec §7.3).
    fn query(&self, request: &RemotingCommand) -> ProcessResult {
        let header: QueryConsumerOffsetRequestHeader = request.decode_header()?;
        if let Some(offset) =
            self.offsets
                .query(&header.consumer_group, &header.topic, header.queue_id)
        {
            return offset_response(request, offset);
        }
        let min = self
            .store
            .min_offset_in_queue(&header.topic, header.queue_id)
            .0;
        let synthesize = header.set_zero_if_not_found != Some(false)
            && min <= 0
            && self.first_message_is_hot(&header.topic, header.queue_id);
        if synthesize {
            return offset_response(request, 0);
        }
        Err(fail(
            ResponseCode::QueryNotFound,
            "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
        ))
    }

    fn first_message_is_hot(&self, topic: &str, queue_id: i32) -> bool {
        let first = self
            .store
            .get_message(topic, queue_id, QueueOffset(0), 1, 0, &AcceptAll);
        // An empty queue is trivially "in memory": new messages will be.
        first.messages.is_empty() || !first.suggest_pulling_from_slave
    }

    fn update(&self, request: &RemotingCommand) -> ProcessResult {
        let header: UpdateConsumerOffsetRequestHeader = request.decode_header()?;
        if self.groups.find_or_create(&header.consumer_group).is_none() {
            return Err(fail(
                ResponseCode::SubscriptionGroupNotExist,
                format!(
                    "subscription group [{}] does not exist",
                    header.consumer_group
                ),
            ));
        }
        if !self.topics.contains(&header.topic) {
            return Err(fail(
                ResponseCode::TopicNotExist,
                format!("topic[{}] not exist", header.topic),
            ));
        }
        self.offsets.commit(
            &header.consumer_group,
            &header.topic,
            header.queue_id,
            header.commit_offset,
        );
        Ok(Some(ok(request)))
    }
}
