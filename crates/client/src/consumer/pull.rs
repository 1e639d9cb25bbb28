//! One pull (spec remoting.md §3.2): which broker member to ask, the request, and what the
//! answer means. Also the per-queue offset queries consumers and admin tools use (§3.3).
//!
//! Pulled messages are post-processed as Java's `PullAPIWrapper` does: compressed bodies
//! are inflated, messages whose tag is not in the subscription are dropped (the broker
//! filters by tag hash, which collides), and `MIN_OFFSET`/`MAX_OFFSET` are set.

use std::collections::HashMap;
use std::time::Duration;

use karman_protocol::body::{MessageQueue, SubscriptionData};
use karman_protocol::header::{
    GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader, OffsetResponseHeader,
    PullMessageRequestHeader, PullMessageResponseHeader, SearchOffsetRequestHeader,
};
use karman_protocol::message::compress::decompress;
use karman_protocol::message::sysflag::{message as msg_flag, pull as pull_flag};
use karman_protocol::message::{MessageExt, property};
use karman_protocol::{RequestCode, ResponseCode};
use parking_lot::Mutex;
use tracing::warn;

use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, command_with_header};
use crate::route::MASTER_ID;

/// Largest body a compressed message may inflate to.
const DECOMPRESSED_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What the broker said about a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Messages (possibly all filtered out locally).
    Found,
    /// Nothing new (19); pull again from `next_begin_offset`.
    NoNewMsg,
    /// Entries existed but none matched (20); pull again from `next_begin_offset`.
    NoMatchedMsg,
    /// The offset is out of range (21); `next_begin_offset` is where to go.
    OffsetIllegal,
}

/// The outcome of one pull.
#[derive(Debug, Clone)]
pub struct PullResult {
    pub status: PullStatus,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    pub messages: Vec<MessageExt>,
}

/// The parameters of one pull.
#[derive(Debug, Clone)]
pub(crate) struct PullArgs<'a> {
    pub group: &'a str,
    pub mq: &'a MessageQueue,
    pub offset: i64,
    pub max_msg_nums: i32,
    /// Commit offset to piggyback (clustering push), if any.
    pub commit_offset: Option<i64>,
    /// Send the subscription with the pull (lite pull) instead of relying on the heartbeat.
    pub post_subscription: bool,
    pub lite: bool,
    pub suspend: Duration,
    pub rpc_timeout: Duration,
    pub subscription: &'a SubscriptionData,
}

/// Remembers, per queue, which broker member the last answer suggested (spec §7.8).
#[derive(Debug, Default)]
pub(crate) struct PullApi {
    suggested: Mutex<HashMap<MessageQueue, i64>>,
}

impl PullApi {
    pub(crate) async fn pull(
        &self,
        instance: &ClientInstance,
        args: PullArgs<'_>,
    ) -> Result<PullResult> {
        let broker_id = self
            .suggested
            .lock()
            .get(args.mq)
            .copied()
            .unwrap_or(MASTER_ID);
        let (addr, slave) = match instance.subscribe_addr(&args.mq.broker_name, broker_id) {
            Some(found) => found,
            None => {
                let _ = instance.update_route(&args.mq.topic, None).await;
                instance
                    .subscribe_addr(&args.mq.broker_name, broker_id)
                    .ok_or_else(|| ClientError::BrokerNotFound {
                        broker_name: args.mq.broker_name.clone(),
                    })?
            }
        };
        let commit = args.commit_offset.filter(|o| *o > 0 && !slave);
        // A zero suspend asks for an answer now (admin tools); anything else may be held.
        let sys_flag = pull_flag::build(
            commit.is_some(),
            !args.suspend.is_zero(),
            args.post_subscription,
            false,
        ) | if args.lite { pull_flag::LITE_PULL } else { 0 };
        let header = pull_header(&args, sys_flag, commit);
        let code = if args.lite {
            RequestCode::LitePullMessage
        } else {
            RequestCode::PullMessage
        };
        let request = command_with_header(code, &header)?;
        let response = instance
            .invoke_broker_timeout(&addr, request.clone(), args.rpc_timeout)
            .await?;
        let status = match response.response_code() {
            ResponseCode::Success => PullStatus::Found,
            ResponseCode::PullNotFound => PullStatus::NoNewMsg,
            ResponseCode::PullRetryImmediately => PullStatus::NoMatchedMsg,
            ResponseCode::PullOffsetMoved => PullStatus::OffsetIllegal,
            _ => return Err(ClientError::from_response(&addr, &request, &response)),
        };
        let answer: PullMessageResponseHeader = response
            .decode_header()
            .map_err(|source| ClientError::decode(&addr, "PULL_MESSAGE response header", source))?;
        self.suggested
            .lock()
            .insert(args.mq.clone(), answer.suggest_which_broker_id);
        let messages = if status == PullStatus::Found {
            let body = response.body.to_bytes();
            let decoded = MessageExt::decode_all(&body)
                .map_err(|source| ClientError::decode(&addr, "PULL_MESSAGE body", source))?;
            post_process(decoded, args.subscription, &answer)
        } else {
            Vec::new()
        };
        Ok(PullResult {
            status,
            next_begin_offset: answer.next_begin_offset,
            min_offset: answer.min_offset,
            max_offset: answer.max_offset,
            messages,
        })
    }

    pub(crate) fn forget(&self, mq: &MessageQueue) {
        self.suggested.lock().remove(mq);
    }
}

fn pull_header(
    args: &PullArgs<'_>,
    sys_flag: i32,
    commit: Option<i64>,
) -> PullMessageRequestHeader {
    PullMessageRequestHeader {
        consumer_group: args.group.to_owned(),
        topic: args.mq.topic.clone(),
        queue_id: args.mq.queue_id,
        queue_offset: args.offset,
        max_msg_nums: args.max_msg_nums,
        sys_flag,
        commit_offset: commit.unwrap_or(0),
        suspend_timeout_millis: i64::try_from(args.suspend.as_millis()).unwrap_or(i64::MAX),
        subscription: Some(args.subscription.sub_string.clone()),
        sub_version: args.subscription.sub_version,
        expression_type: Some(
            args.subscription
                .expression_type
                .clone()
                .unwrap_or_else(|| karman_protocol::body::expression_type::TAG.to_owned()),
        ),
        max_msg_bytes: None,
        request_source: None,
        proxy_froward_client_id: None,
        bname: Some(args.mq.broker_name.clone()),
    }
}

/// Inflates, re-filters by tag string, and stamps the queue's min/max offsets.
pub(crate) fn post_process(
    messages: Vec<MessageExt>,
    subscription: &SubscriptionData,
    answer: &PullMessageResponseHeader,
) -> Vec<MessageExt> {
    messages
        .into_iter()
        .filter_map(|mut message| {
            if message.sys_flag & msg_flag::COMPRESSED != 0 {
                match decompress(&message.body, message.sys_flag, DECOMPRESSED_BODY_BYTES_MAX) {
                    Ok(body) => {
                        message.body = body.into();
                        message.sys_flag &= !(msg_flag::COMPRESSED | msg_flag::COMPRESSION_MASK);
                    }
                    Err(error) => {
                        warn!(topic = %message.topic, offset = message.queue_offset, %error, "cannot inflate a message body; delivered as stored");
                    }
                }
            }
            let keep = subscription.tags_set.is_empty()
                || subscription.class_filter_mode
                || !subscription.is_tag_type()
                || message.tags().is_some_and(|tag| subscription.tags_set.contains(tag));
            if !keep {
                return None;
            }
            message.properties.insert(property::MIN_OFFSET, answer.min_offset.to_string());
            message.properties.insert(property::MAX_OFFSET, answer.max_offset.to_string());
            Some(message)
        })
        .collect()
}

async fn offset_query<H: serde::Serialize>(
    instance: &ClientInstance,
    mq: &MessageQueue,
    code: RequestCode,
    header: &H,
) -> Result<i64> {
    let addr = match instance.master_or_any_addr(&mq.broker_name) {
        Some(addr) => addr,
        None => {
            let _ = instance.update_route(&mq.topic, None).await;
            instance
                .master_or_any_addr(&mq.broker_name)
                .ok_or_else(|| ClientError::BrokerNotFound {
                    broker_name: mq.broker_name.clone(),
                })?
        }
    };
    let request = command_with_header(code, header)?;
    let response = instance.invoke_broker(&addr, request.clone()).await?;
    if response.response_code() != ResponseCode::Success {
        return Err(ClientError::from_response(&addr, &request, &response));
    }
    let answer: OffsetResponseHeader = response
        .decode_header()
        .map_err(|source| ClientError::decode(&addr, "offset response", source))?;
    Ok(answer.offset)
}

/// GET_MAX_OFFSET: the offset the next message of the queue will get.
pub(crate) async fn max_offset(instance: &ClientInstance, mq: &MessageQueue) -> Result<i64> {
    let header = GetMaxOffsetRequestHeader {
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        committed: Some(true),
        bname: Some(mq.broker_name.clone()),
    };
    offset_query(instance, mq, RequestCode::GetMaxOffset, &header).await
}

/// GET_MIN_OFFSET: the first offset still stored.
pub(crate) async fn min_offset(instance: &ClientInstance, mq: &MessageQueue) -> Result<i64> {
    let header = GetMinOffsetRequestHeader {
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        bname: Some(mq.broker_name.clone()),
    };
    offset_query(instance, mq, RequestCode::GetMinOffset, &header).await
}

/// SEARCH_OFFSET_BY_TIMESTAMP: the first message stored at or after `timestamp_ms`.
pub(crate) async fn search_offset(
    instance: &ClientInstance,
    mq: &MessageQueue,
    timestamp_ms: i64,
) -> Result<i64> {
    let header = SearchOffsetRequestHeader {
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        timestamp: timestamp_ms,
        boundary_type: None,
        bname: Some(mq.broker_name.clone()),
    };
    offset_query(instance, mq, RequestCode::SearchOffsetByTimestamp, &header).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::process_queue::tests::message;
    use karman_protocol::message::compress::zlib_compress;

    fn answer() -> PullMessageResponseHeader {
        PullMessageResponseHeader {
            min_offset: 0,
            max_offset: 9,
            ..PullMessageResponseHeader::default()
        }
    }

    #[test]
    fn tag_collisions_are_filtered_by_tag_string() {
        let sub = SubscriptionData::from_tag_expression("T", "TagA || TagB", 1);
        let messages = vec![
            message("T", 0, 0, b"a", "TAGS\u{1}TagA\u{2}"),
            message("T", 0, 1, b"c", "TAGS\u{1}TagC\u{2}"),
            message("T", 0, 2, b"n", ""),
            message("T", 0, 3, b"b", "TAGS\u{1}TagB\u{2}"),
        ];
        let kept = post_process(messages, &sub, &answer());
        assert_eq!(
            kept.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
            [0, 3]
        );
        assert_eq!(kept[0].properties.get("MAX_OFFSET"), Some("9"));
        let all = SubscriptionData::from_tag_expression("T", "*", 1);
        assert_eq!(
            post_process(vec![message("T", 0, 2, b"n", "")], &all, &answer()).len(),
            1
        );
        let sql = SubscriptionData::sql92("T", "a > 1", 1);
        assert_eq!(
            post_process(vec![message("T", 0, 2, b"n", "")], &sql, &answer()).len(),
            1
        );
    }

    #[test]
    fn compressed_bodies_are_inflated_and_the_flag_cleared() {
        let mut m = message("T", 0, 0, b"x", "");
        m.body = zlib_compress(&[b'q'; 5000], 5).into();
        m.sys_flag = 0x301;
        let out = post_process(
            vec![m],
            &SubscriptionData::from_tag_expression("T", "*", 1),
            &answer(),
        );
        assert_eq!(out[0].body.len(), 5000);
        assert_eq!(out[0].sys_flag, 0);
    }
}
