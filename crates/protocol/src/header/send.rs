//! Send, retry and transaction headers (spec §3.1, §3.6, §3.7).

use serde::{Deserialize, Serialize};

use crate::code::RequestCode;
use crate::command::RemotingCommand;
use crate::error::Result;

/// SEND_MESSAGE (10) with long keys; also the shared form every send path works on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequestHeader {
    pub producer_group: String,
    pub topic: String,
    pub default_topic: String,
    pub default_topic_queue_nums: i32,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: Option<String>,
    pub reconsume_times: Option<i32>,
    #[serde(default)]
    pub unit_mode: bool,
    #[serde(default)]
    pub batch: bool,
    pub max_reconsume_times: Option<i32>,
    /// Broker name the client targeted (5.x inherited key).
    pub bname: Option<String>,
}

/// SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320): the same fields under one-letter
/// keys, which is what every Java client sends by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMessageRequestHeaderV2 {
    #[serde(rename = "a")]
    pub producer_group: String,
    #[serde(rename = "b")]
    pub topic: String,
    #[serde(rename = "c")]
    pub default_topic: String,
    #[serde(rename = "d")]
    pub default_topic_queue_nums: i32,
    #[serde(rename = "e")]
    pub queue_id: i32,
    #[serde(rename = "f")]
    pub sys_flag: i32,
    #[serde(rename = "g")]
    pub born_timestamp: i64,
    #[serde(rename = "h")]
    pub flag: i32,
    #[serde(rename = "i")]
    pub properties: Option<String>,
    #[serde(rename = "j")]
    pub reconsume_times: Option<i32>,
    #[serde(rename = "k", default)]
    pub unit_mode: bool,
    #[serde(rename = "l")]
    pub max_reconsume_times: Option<i32>,
    #[serde(rename = "m", default)]
    pub batch: bool,
    #[serde(rename = "n")]
    pub broker_name: Option<String>,
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v2: SendMessageRequestHeaderV2) -> Self {
        Self {
            producer_group: v2.producer_group,
            topic: v2.topic,
            default_topic: v2.default_topic,
            default_topic_queue_nums: v2.default_topic_queue_nums,
            queue_id: v2.queue_id,
            sys_flag: v2.sys_flag,
            born_timestamp: v2.born_timestamp,
            flag: v2.flag,
            properties: v2.properties,
            reconsume_times: v2.reconsume_times,
            unit_mode: v2.unit_mode,
            batch: v2.batch,
            max_reconsume_times: v2.max_reconsume_times,
            bname: v2.broker_name,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v1: SendMessageRequestHeader) -> Self {
        Self {
            producer_group: v1.producer_group,
            topic: v1.topic,
            default_topic: v1.default_topic,
            default_topic_queue_nums: v1.default_topic_queue_nums,
            queue_id: v1.queue_id,
            sys_flag: v1.sys_flag,
            born_timestamp: v1.born_timestamp,
            flag: v1.flag,
            properties: v1.properties,
            reconsume_times: v1.reconsume_times,
            unit_mode: v1.unit_mode,
            max_reconsume_times: v1.max_reconsume_times,
            batch: v1.batch,
            broker_name: v1.bname,
        }
    }
}

impl SendMessageRequestHeader {
    /// Reads the send header of any send code: long keys for 10 and 324, short keys for
    /// 310, 320 and 325. Code 320 is always a batch.
    pub fn decode_from(command: &RemotingCommand) -> Result<Self> {
        let code = command.request_code();
        let mut header: Self = match code {
            RequestCode::SendMessageV2
            | RequestCode::SendBatchMessage
            | RequestCode::SendReplyMessageV2 => command
                .decode_header::<SendMessageRequestHeaderV2>()?
                .into(),
            _ => command.decode_header()?,
        };
        header.batch |= code == RequestCode::SendBatchMessage;
        Ok(header)
    }
}

/// Response of every send code, sent with codes 0, 10, 11 and 12 alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageResponseHeader {
    /// offsetMsgId of the stored record, comma-joined for a batch.
    pub msg_id: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub transaction_id: Option<String>,
    pub batch_uniq_id: Option<String>,
    pub recall_handle: Option<String>,
    #[serde(rename = "MSG_REGION")]
    pub msg_region: Option<String>,
    #[serde(rename = "TRACE_ON")]
    pub trace_on: Option<String>,
}

/// CONSUMER_SEND_MSG_BACK (36).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSendMsgBackRequestHeader {
    /// Commit-log (physical) offset of the failed message.
    pub offset: i64,
    pub group: String,
    pub delay_level: i32,
    pub origin_msg_id: Option<String>,
    pub origin_topic: Option<String>,
    #[serde(default)]
    pub unit_mode: bool,
    pub max_reconsume_times: Option<i32>,
    pub bname: Option<String>,
}

/// END_TRANSACTION (37).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndTransactionRequestHeader {
    pub producer_group: String,
    pub tran_state_table_offset: i64,
    pub commit_log_offset: i64,
    /// 0 = unknown, 8 = commit, 12 = rollback (MessageSysFlag transaction types).
    pub commit_or_rollback: i32,
    pub from_transaction_check: Option<bool>,
    pub msg_id: String,
    pub transaction_id: Option<String>,
    pub topic: Option<String>,
    pub bname: Option<String>,
}

/// CHECK_TRANSACTION_STATE (39), broker to producer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckTransactionStateRequestHeader {
    pub topic: Option<String>,
    pub tran_state_table_offset: i64,
    pub commit_log_offset: i64,
    pub msg_id: Option<String>,
    pub transaction_id: Option<String>,
    pub offset_msg_id: Option<String>,
    pub bname: Option<String>,
}
