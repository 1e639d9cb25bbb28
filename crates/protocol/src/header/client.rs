//! Client registration, membership and query headers (spec §3.4, §3.5, §3.9, §3.12).

use serde::{Deserialize, Serialize};

/// HEART_BEAT response keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponseHeader {
    #[serde(rename = "IS_SUPPORT_HEART_BEAT_V2")]
    pub is_support_heart_beat_v2: Option<bool>,
    #[serde(rename = "IS_SUB_CHANGE")]
    pub is_sub_change: Option<bool>,
}

/// UNREGISTER_CLIENT (35); note the capital `ID` in `clientID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnregisterClientRequestHeader {
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub producer_group: Option<String>,
    pub consumer_group: Option<String>,
}

/// GET_CONSUMER_LIST_BY_GROUP (38) and NOTIFY_CONSUMER_IDS_CHANGED (40).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConsumerListByGroupRequestHeader {
    pub consumer_group: String,
}

pub type NotifyConsumerIdsChangedRequestHeader = GetConsumerListByGroupRequestHeader;

/// QUERY_MESSAGE (12).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryMessageRequestHeader {
    pub topic: String,
    pub key: String,
    pub max_num: i32,
    pub begin_timestamp: i64,
    pub end_timestamp: i64,
    /// `"true"` when `key` is a UNIQ_KEY.
    #[serde(rename = "_UNIQUE_KEY_QUERY")]
    pub unique_key_query: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryMessageResponseHeader {
    pub index_last_update_timestamp: i64,
    pub index_last_update_phyoffset: i64,
}

/// VIEW_MESSAGE_BY_ID (33).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewMessageRequestHeader {
    pub topic: Option<String>,
    /// Commit-log offset decoded from an offsetMsgId.
    pub offset: i64,
}

/// GET_CONSUMER_RUNNING_INFO (307), relayed to a client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConsumerRunningInfoRequestHeader {
    pub consumer_group: String,
    pub client_id: String,
    #[serde(default)]
    pub jstack_enable: bool,
}

/// CONSUME_MESSAGE_DIRECTLY (309).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeMessageDirectlyResultRequestHeader {
    pub consumer_group: String,
    pub client_id: Option<String>,
    pub msg_id: Option<String>,
    pub broker_name: Option<String>,
    pub topic: Option<String>,
    pub topic_sys_flag: Option<i32>,
    pub group_sys_flag: Option<i32>,
}

/// RESET_CONSUMER_CLIENT_OFFSET (220), broker to client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetOffsetRequestHeader {
    pub topic: String,
    pub group: String,
    pub timestamp: i64,
    #[serde(rename = "isForce", default)]
    pub is_force: bool,
    #[serde(default = "all_queues")]
    pub queue_id: i32,
    pub offset: Option<i64>,
}

fn all_queues() -> i32 {
    -1
}
