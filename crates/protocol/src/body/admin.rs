//! Admin bodies used by mqadmin and the dashboard (spec §4.6).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::consumer::MessageQueue;
use super::fastjson::ObjectKey;
use super::heartbeat::{ConsumeFromWhere, ConsumeType, MessageModel, SubscriptionData};
use super::route::{DataVersion, TopicConfig};

/// A consumer group's configuration on a broker. Defaults are Java's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    pub attributes: BTreeMap<String, String>,
    pub broker_id: i64,
    pub consume_broadcast_enable: bool,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_message_orderly: bool,
    pub consume_timeout_minute: i32,
    pub group_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_retry_policy: Option<serde_json::Value>,
    pub group_sys_flag: i32,
    pub notify_consumer_ids_changed_enable: bool,
    pub retry_max_times: i32,
    pub retry_queue_nums: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data_set: Option<serde_json::Value>,
    pub which_broker_when_consume_slowly: i64,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        Self {
            attributes: BTreeMap::new(),
            broker_id: 0,
            consume_broadcast_enable: true,
            consume_enable: true,
            consume_from_min_enable: true,
            consume_message_orderly: false,
            consume_timeout_minute: 15,
            group_name: String::new(),
            group_retry_policy: None,
            group_sys_flag: 0,
            notify_consumer_ids_changed_enable: true,
            retry_max_times: 16,
            retry_queue_nums: 1,
            subscription_data_set: None,
            which_broker_when_consume_slowly: 1,
        }
    }
}

impl SubscriptionGroupConfig {
    pub fn new(group_name: impl Into<String>) -> Self {
        Self {
            group_name: group_name.into(),
            ..Self::default()
        }
    }
}

/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupWrapper {
    pub data_version: DataVersion,
    pub forbidden_table: BTreeMap<String, BTreeMap<String, i32>>,
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
}

/// GET_ALL_TOPIC_CONFIG response (TopicConfigAndMappingSerializeWrapper).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigAndMappingSerializeWrapper {
    pub data_version: DataVersion,
    pub mapping_data_version: DataVersion,
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    pub topic_queue_mapping_detail_map: BTreeMap<String, serde_json::Value>,
    pub topic_queue_mapping_info_map: BTreeMap<String, serde_json::Value>,
}

/// One client connection as admin tools show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    pub client_addr: String,
    pub client_id: String,
    pub language: String,
    pub version: i32,
}

/// GET_CONSUMER_CONNECTION_LIST response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerConnection {
    pub connection_set: BTreeSet<Connection>,
    pub consume_from_where: ConsumeFromWhere,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

/// GET_PRODUCER_CONNECTION_LIST response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerConnection {
    pub connection_set: BTreeSet<Connection>,
}

/// One producer client in GET_ALL_PRODUCER_INFO.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerInfo {
    pub client_id: String,
    pub language: String,
    pub last_update_timestamp: i64,
    #[serde(rename = "remoteIP")]
    pub remote_ip: String,
    pub version: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProducerTableInfo {
    pub data: BTreeMap<String, Vec<ProducerInfo>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicOffset {
    pub last_update_timestamp: i64,
    pub max_offset: i64,
    pub min_offset: i64,
}

/// GET_TOPIC_STATS_INFO response: keyed by MessageQueue objects (fastjson dialect).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicStatsTable {
    pub offset_table: BTreeMap<ObjectKey<MessageQueue>, TopicOffset>,
    pub topic_put_tps: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetWrapper {
    pub broker_offset: i64,
    pub consumer_offset: i64,
    pub last_timestamp: i64,
    pub pull_offset: i64,
}

/// GET_CONSUME_STATS response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeStats {
    pub consume_tps: f64,
    pub offset_table: BTreeMap<ObjectKey<MessageQueue>, OffsetWrapper>,
}

/// GET_BROKER_CONSUME_STATS response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeStatsList {
    pub broker_addr: String,
    pub consume_stats_list: Vec<BTreeMap<String, Vec<ConsumeStats>>>,
    pub total_diff: i64,
    pub total_inflight_diff: i64,
}

/// INVOKE_BROKER_TO_RESET_OFFSET response and RESET_CONSUMER_CLIENT_OFFSET body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResetOffsetBody {
    pub offset_table: BTreeMap<ObjectKey<MessageQueue>, i64>,
}

/// GET_ALL_CONSUMER_OFFSET response: `topic@group -> queueId -> offset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerOffsetSerializeWrapper {
    pub data_version: DataVersion,
    pub offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// GET_ALL_DELAY_OFFSET response: delay level -> progress offset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DelayOffsetSerializeWrapper {
    pub data_version: DataVersion,
    pub offset_table: BTreeMap<i32, i64>,
}

/// QUERY_CONSUME_TIME_SPAN entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueTimeSpan {
    pub consume_time_stamp: i64,
    pub delay_time: i64,
    pub max_time_stamp: i64,
    pub message_queue: MessageQueue,
    pub min_time_stamp: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryConsumeTimeSpanBody {
    pub consume_time_span_set: Vec<QueueTimeSpan>,
}

/// QUERY_SUBSCRIPTION_BY_CONSUMER response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QuerySubscriptionResponseBody {
    pub group: String,
    pub subscription_data: SubscriptionData,
    pub topic: String,
}

/// CONSUME_MESSAGE_DIRECTLY result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeMessageDirectlyResult {
    pub auto_commit: bool,
    pub consume_result: Option<String>,
    pub order: bool,
    pub remark: Option<String>,
    pub spent_time_mills: i64,
}

/// One process queue of a consumer as GET_CONSUMER_RUNNING_INFO reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProcessQueueInfo {
    pub cached_msg_count: i32,
    pub cached_msg_max_offset: i64,
    pub cached_msg_min_offset: i64,
    #[serde(rename = "cachedMsgSizeInMiB")]
    pub cached_msg_size_in_mib: i32,
    pub commit_offset: i64,
    /// Spelled this way by Java.
    pub droped: bool,
    pub last_consume_timestamp: i64,
    pub last_lock_timestamp: i64,
    pub last_pull_timestamp: i64,
    pub locked: bool,
    pub transaction_msg_count: i32,
    pub transaction_msg_max_offset: i64,
    pub transaction_msg_min_offset: i64,
    pub try_unlock_times: i64,
}

/// Per-topic consumption rates in GET_CONSUMER_RUNNING_INFO.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeStatus {
    pub consume_failed_msgs: i64,
    #[serde(rename = "consumeFailedTPS")]
    pub consume_failed_tps: f64,
    #[serde(rename = "consumeOKTPS")]
    pub consume_ok_tps: f64,
    #[serde(rename = "consumeRT")]
    pub consume_rt: f64,
    #[serde(rename = "pullRT")]
    pub pull_rt: f64,
    #[serde(rename = "pullTPS")]
    pub pull_tps: f64,
}

/// GET_CONSUMER_RUNNING_INFO answer of a client (spec §3.12, §4.6); queue-keyed maps use
/// fastjson's object keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerRunningInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jstack: Option<String>,
    pub mq_pop_table: BTreeMap<ObjectKey<MessageQueue>, serde_json::Value>,
    pub mq_table: BTreeMap<ObjectKey<MessageQueue>, ProcessQueueInfo>,
    pub properties: BTreeMap<String, String>,
    pub status_table: BTreeMap<String, ConsumeStatus>,
    pub subscription_set: BTreeSet<SubscriptionDataOrd>,
    pub user_consumer_info: BTreeMap<String, String>,
}

/// A [`SubscriptionData`] ordered by topic, so a set of them serializes deterministically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionDataOrd(pub SubscriptionData);

impl Ord for SubscriptionDataOrd {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.0.topic, &self.0.sub_string).cmp(&(&other.0.topic, &other.0.sub_string))
    }
}

impl PartialOrd for SubscriptionDataOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::fastjson;

    #[test]
    fn golden_topic_stats_table_from_spec_4_6() {
        let golden = r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"lastUpdateTimestamp":1700000000005,"maxOffset":3,"minOffset":0}},"topicPutTps":0.0}"#;
        let mut table = TopicStatsTable::default();
        table.offset_table.insert(
            ObjectKey(MessageQueue::new("T", "broker-a", 0)),
            TopicOffset {
                last_update_timestamp: 1_700_000_000_005,
                max_offset: 3,
                min_offset: 0,
            },
        );
        assert_eq!(String::from_utf8(fastjson::to_vec(&table)).unwrap(), golden);
        let back: TopicStatsTable =
            fastjson::from_slice(golden.as_bytes(), "TopicStatsTable").unwrap();
        assert_eq!(back, table);
    }

    #[test]
    fn consumer_offsets_use_unquoted_queue_ids() {
        let mut wrapper = ConsumerOffsetSerializeWrapper::default();
        wrapper
            .offset_table
            .insert("topic@group".into(), [(0, 12), (1, 7)].into());
        let text = String::from_utf8(fastjson::to_vec(&wrapper)).unwrap();
        assert!(
            text.contains(r#""offsetTable":{"topic@group":{0:12,1:7}}"#),
            "{text}"
        );
    }

    #[test]
    fn consumer_running_info_round_trips_with_object_keys() {
        let mut info = ConsumerRunningInfo::default();
        info.properties
            .insert("consumeType".into(), "CONSUME_PASSIVELY".into());
        info.mq_table.insert(
            ObjectKey(MessageQueue::new("T", "broker-a", 1)),
            ProcessQueueInfo {
                cached_msg_count: 3,
                commit_offset: 7,
                locked: true,
                ..ProcessQueueInfo::default()
            },
        );
        info.subscription_set
            .insert(SubscriptionDataOrd(SubscriptionData::from_tag_expression(
                "T", "*", 1,
            )));
        let text = String::from_utf8(fastjson::to_vec(&info)).unwrap();
        assert!(
            text.contains(
                r#"{"brokerName":"broker-a","queueId":1,"topic":"T"}:{"cachedMsgCount":3"#
            ),
            "{text}"
        );
        assert!(text.contains(r#""cachedMsgSizeInMiB":0"#), "{text}");
        let back: ConsumerRunningInfo = fastjson::from_slice(text.as_bytes(), "info").unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn subscription_group_defaults_match_java() {
        let parsed: SubscriptionGroupConfig = serde_json::from_str(r#"{"groupName":"g"}"#).unwrap();
        assert_eq!(parsed.retry_max_times, 16);
        assert!(parsed.consume_enable);
        assert_eq!(parsed.which_broker_when_consume_slowly, 1);
    }
}
