//! Offset headers (spec §3.3).

use serde::{Deserialize, Serialize};

/// QUERY_CONSUMER_OFFSET (14).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryConsumerOffsetRequestHeader {
    pub consumer_group: String,
    pub topic: String,
    pub queue_id: i32,
    pub set_zero_if_not_found: Option<bool>,
    pub bname: Option<String>,
}

/// UPDATE_CONSUMER_OFFSET (15).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConsumerOffsetRequestHeader {
    pub consumer_group: String,
    pub topic: String,
    pub queue_id: i32,
    pub commit_offset: i64,
    pub bname: Option<String>,
}

/// GET_MAX_OFFSET (30), GET_MIN_OFFSET (31), GET_EARLIEST_MSG_STORETIME (32).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetMaxOffsetRequestHeader {
    pub topic: String,
    pub queue_id: i32,
    pub committed: Option<bool>,
    pub bname: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetMinOffsetRequestHeader {
    pub topic: String,
    pub queue_id: i32,
    pub bname: Option<String>,
}

pub type GetEarliestMsgStoretimeRequestHeader = GetMinOffsetRequestHeader;

/// SEARCH_OFFSET_BY_TIMESTAMP (29).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchOffsetRequestHeader {
    pub topic: String,
    pub queue_id: i32,
    pub timestamp: i64,
    /// `LOWER` (default) or `UPPER`.
    pub boundary_type: Option<String>,
    pub bname: Option<String>,
}

/// The response of 14, 29, 30 and 31: one `offset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetResponseHeader {
    pub offset: i64,
}

/// GET_EARLIEST_MSG_STORETIME response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEarliestMsgStoretimeResponseHeader {
    pub timestamp: i64,
}
