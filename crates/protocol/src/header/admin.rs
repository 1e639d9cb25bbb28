//! Broker admin headers used by mqadmin and the dashboard (spec §3.11).

use serde::{Deserialize, Serialize};

/// UPDATE_AND_CREATE_TOPIC (17).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTopicRequestHeader {
    pub topic: String,
    pub default_topic: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    /// `SINGLE_TAG` or `MULTI_TAG`.
    pub topic_filter_type: String,
    pub topic_sys_flag: Option<i32>,
    #[serde(default)]
    pub order: bool,
    /// `+k=v,+k2=v2,-k3`.
    pub attributes: Option<String>,
    pub force: Option<bool>,
}

/// DELETE_TOPIC_IN_BROKER (215), GET_TOPIC_STATS_INFO (202), GET_TOPIC_CONFIG (351),
/// QUERY_TOPIC_CONSUME_BY_WHO (300).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRequestHeader {
    pub topic: String,
}

/// DELETE_SUBSCRIPTIONGROUP (207).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteSubscriptionGroupRequestHeader {
    pub group_name: String,
    #[serde(default)]
    pub clean_offset: bool,
}

/// GET_SUBSCRIPTIONGROUP_CONFIG (352), QUERY_TOPICS_BY_CONSUMER (343).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRequestHeader {
    pub group: String,
}

/// GET_CONSUMER_CONNECTION_LIST (203).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConsumerConnectionListRequestHeader {
    pub consumer_group: String,
}

/// GET_PRODUCER_CONNECTION_LIST (204).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetProducerConnectionListRequestHeader {
    pub producer_group: String,
}

/// GET_CONSUME_STATS (208).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConsumeStatsRequestHeader {
    pub consumer_group: String,
    pub topic: Option<String>,
    /// `;`-separated.
    pub topic_list: Option<String>,
}

/// INVOKE_BROKER_TO_RESET_OFFSET (222).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeBrokerToResetOffsetRequestHeader {
    pub group: String,
    pub topic: String,
    pub queue_id: Option<i32>,
    pub offset: Option<i64>,
    /// −1 means the max offset.
    pub timestamp: i64,
    #[serde(rename = "isForce", default)]
    pub is_force: bool,
}

/// QUERY_SUBSCRIPTION_BY_CONSUMER (345).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySubscriptionByConsumerRequestHeader {
    pub group: String,
    pub topic: Option<String>,
}

/// QUERY_CONSUME_TIME_SPAN (303), INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicGroupRequestHeader {
    pub topic: String,
    pub group: String,
    pub client_addr: Option<String>,
}

/// GET_ALL_TOPIC_CONFIG (21) response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAllTopicConfigResponseHeader {
    pub total_topic_num: Option<i32>,
}

/// GET_BROKER_CONFIG (26) response: `version` is the DataVersion JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBrokerConfigResponseHeader {
    pub version: Option<String>,
}

/// CLONE_GROUP_OFFSET (314).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloneGroupOffsetRequestHeader {
    pub src_group: String,
    pub dest_group: String,
    pub topic: Option<String>,
    #[serde(default)]
    pub offline: bool,
}

/// GET_BROKER_CONSUME_STATS (317).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBrokerConsumeStatsRequestHeader {
    #[serde(rename = "isOrder", default)]
    pub is_order: bool,
}

/// VIEW_BROKER_STATS_DATA (315).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewBrokerStatsDataRequestHeader {
    pub stats_name: String,
    pub stats_key: String,
}
