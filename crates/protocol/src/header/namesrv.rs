//! NameServer command headers (spec §3.10).

use serde::{Deserialize, Serialize};

/// REGISTER_BROKER (103).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBrokerRequestHeader {
    pub broker_name: String,
    pub broker_addr: String,
    pub cluster_name: String,
    pub ha_server_addr: String,
    pub broker_id: i64,
    pub heartbeat_timeout_millis: Option<i64>,
    pub enable_acting_master: Option<bool>,
    #[serde(default)]
    pub compressed: bool,
    /// CRC32 of the body masked with `0x7FFFFFFF`; 0 or absent means unchecked.
    pub body_crc32: Option<i32>,
    #[serde(rename = "__ZONE_NAME")]
    pub zone_name: Option<String>,
}

/// REGISTER_BROKER response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBrokerResponseHeader {
    pub ha_server_addr: Option<String>,
    pub master_addr: Option<String>,
}

/// UNREGISTER_BROKER (104).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnRegisterBrokerRequestHeader {
    pub broker_name: String,
    pub broker_addr: String,
    pub cluster_name: String,
    pub broker_id: i64,
}

/// GET_ROUTEINFO_BY_TOPIC (105).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetRouteInfoRequestHeader {
    pub topic: String,
    pub accept_standard_json_only: Option<bool>,
}

/// PUT_KV_CONFIG (100).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutKVConfigRequestHeader {
    pub namespace: String,
    pub key: String,
    pub value: String,
}

/// GET_KV_CONFIG (101) and DELETE_KV_CONFIG (102).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetKVConfigRequestHeader {
    pub namespace: String,
    pub key: String,
}

pub type DeleteKVConfigRequestHeader = GetKVConfigRequestHeader;

/// GET_KV_CONFIG response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetKVConfigResponseHeader {
    pub value: Option<String>,
}

/// GET_KVLIST_BY_NAMESPACE (219).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetKVListByNamespaceRequestHeader {
    pub namespace: String,
}

/// WIPE_WRITE_PERM_OF_BROKER (205) and ADD_WRITE_PERM_OF_BROKER (327).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WipeWritePermOfBrokerRequestHeader {
    pub broker_name: String,
}

pub type AddWritePermOfBrokerRequestHeader = WipeWritePermOfBrokerRequestHeader;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WipeWritePermOfBrokerResponseHeader {
    pub wipe_topic_count: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddWritePermOfBrokerResponseHeader {
    pub add_topic_count: i32,
}

/// GET_TOPICS_BY_CLUSTER (224).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTopicsByClusterRequestHeader {
    pub cluster: String,
}

/// DELETE_TOPIC_IN_NAMESRV (216).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteTopicFromNamesrvRequestHeader {
    pub topic: String,
    pub cluster_name: Option<String>,
}

/// REGISTER_TOPIC_IN_NAMESRV (217).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterTopicRequestHeader {
    pub topic: String,
}

/// QUERY_DATA_VERSION (322).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryDataVersionRequestHeader {
    pub broker_name: String,
    pub broker_addr: String,
    pub cluster_name: String,
    pub broker_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryDataVersionResponseHeader {
    pub changed: bool,
}

/// BROKER_HEARTBEAT (904).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerHeartbeatRequestHeader {
    pub cluster_name: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: Option<i64>,
    pub epoch: Option<i32>,
    pub max_offset: Option<i64>,
    pub confirm_offset: Option<i64>,
    pub heartbeat_timeout_mills: Option<i64>,
    pub election_priority: Option<i32>,
}

/// GET_BROKER_MEMBER_GROUP (901).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetBrokerMemberGroupRequestHeader {
    pub cluster_name: String,
    pub broker_name: String,
}
