//! Admin commands used by mqadmin and the dashboard (spec remoting.md §3.11, §8.5).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::body::fastjson::{self, ObjectKey};
use karman_protocol::body::{
    Connection, ConsumeStats, ConsumeStatsList, ConsumerConnection, GroupList, KVTable,
    MessageQueue, OffsetWrapper, ProducerConnection, ProducerInfo, ProducerTableInfo,
    QueryConsumeTimeSpanBody, QuerySubscriptionResponseBody, QueueTimeSpan, ResetOffsetBody,
    SubscriptionGroupConfig, TopicConfig, TopicConfigAndMappingSerializeWrapper, TopicFilterType,
    TopicList, TopicOffset, TopicStatsTable,
};
use karman_protocol::header::{
    CloneGroupOffsetRequestHeader, CreateTopicRequestHeader, DeleteSubscriptionGroupRequestHeader,
    GetAllTopicConfigResponseHeader, GetBrokerConfigResponseHeader, GetConsumeStatsRequestHeader,
    GetConsumerConnectionListRequestHeader, GetConsumerRunningInfoRequestHeader,
    GetProducerConnectionListRequestHeader, GroupRequestHeader,
    InvokeBrokerToResetOffsetRequestHeader, QuerySubscriptionByConsumerRequestHeader,
    TopicGroupRequestHeader, TopicRequestHeader,
};
use karman_protocol::message::sysflag::perm;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{Channel, ProcessError, ProcessResult, RequestProcessor};
use karman_store::{BoundaryType, Clock, CommitLogOffset, MessageStore, QueueOffset};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{fail, json_body, ok};
use crate::client_table::ClientTable;
use crate::config::BrokerRole;
use crate::group_table::{GroupTable, validate_group_name};
use crate::offset_table::OffsetTable;
use crate::schedule::ScheduleService;
use crate::stats::{BrokerStats, Rates};
use crate::topic_table::{TopicTable, name, validate_topic_name};
use crate::{BrokerIdentity, SharedConfig};

/// How long a relayed admin call waits for the client (Java: 10 s).
const RELAY_TIMEOUT: Duration = Duration::from_secs(10);

pub const CODES: &[RequestCode] = &[
    RequestCode::UpdateAndCreateTopic,
    RequestCode::UpdateAndCreateTopicList,
    RequestCode::GetAllTopicConfig,
    RequestCode::DeleteTopicInBroker,
    RequestCode::GetTopicConfig,
    RequestCode::UpdateAndCreateSubscriptiongroup,
    RequestCode::UpdateAndCreateSubscriptiongroupList,
    RequestCode::GetAllSubscriptiongroupConfig,
    RequestCode::DeleteSubscriptiongroup,
    RequestCode::GetSubscriptiongroupConfig,
    RequestCode::GetTopicStatsInfo,
    RequestCode::GetConsumerConnectionList,
    RequestCode::GetProducerConnectionList,
    RequestCode::GetAllProducerInfo,
    RequestCode::GetConsumeStats,
    RequestCode::GetBrokerConsumeStats,
    RequestCode::InvokeBrokerToResetOffset,
    RequestCode::GetConsumerRunningInfo,
    RequestCode::ConsumeMessageDirectly,
    RequestCode::GetBrokerRuntimeInfo,
    RequestCode::UpdateBrokerConfig,
    RequestCode::GetBrokerConfig,
    RequestCode::GetAllConsumerOffset,
    RequestCode::GetAllDelayOffset,
    RequestCode::QueryTopicConsumeByWho,
    RequestCode::QueryTopicsByConsumer,
    RequestCode::QuerySubscriptionByConsumer,
    RequestCode::QueryConsumeTimeSpan,
    RequestCode::GetSystemTopicListFromBroker,
    RequestCode::CloneGroupOffset,
    RequestCode::CleanExpiredConsumequeue,
    RequestCode::CleanUnusedTopic,
    RequestCode::DeleteExpiredCommitlog,
];

#[derive(Debug)]
pub struct AdminProcessor {
    pub config: SharedConfig,
    pub identity: Arc<BrokerIdentity>,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<MessageStore>,
    pub topics: Arc<TopicTable>,
    pub groups: Arc<GroupTable>,
    pub offsets: Arc<OffsetTable>,
    pub clients: Arc<ClientTable>,
    pub schedule: Arc<ScheduleService>,
    pub transactions: Arc<crate::transaction::TransactionService>,
    pub stats: Arc<BrokerStats>,
    pub boot_timestamp_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TopicConfigList {
    topic_config_list: Vec<TopicConfig>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GroupConfigList {
    group_config_list: Vec<SubscriptionGroupConfig>,
}

#[async_trait]
impl RequestProcessor for AdminProcessor {
    async fn process(&self, _channel: &Channel, request: RemotingCommand) -> ProcessResult {
        let r = &request;
        match request.request_code() {
            RequestCode::UpdateAndCreateTopic => self.create_topic(r),
            RequestCode::UpdateAndCreateTopicList => self.create_topic_list(r),
            RequestCode::GetAllTopicConfig => self.all_topic_config(r),
            RequestCode::DeleteTopicInBroker => self.delete_topic(r),
            RequestCode::GetTopicConfig => self.topic_config(r),
            RequestCode::UpdateAndCreateSubscriptiongroup => self.create_group(r),
            RequestCode::UpdateAndCreateSubscriptiongroupList => self.create_group_list(r),
            RequestCode::GetAllSubscriptiongroupConfig => {
                Ok(Some(json_body(r, &self.groups.snapshot())))
            }
            RequestCode::DeleteSubscriptiongroup => self.delete_group(r),
            RequestCode::GetSubscriptiongroupConfig => self.group_config(r),
            RequestCode::GetTopicStatsInfo => self.topic_stats(r),
            RequestCode::GetConsumerConnectionList => self.consumer_connections(r),
            RequestCode::GetProducerConnectionList => self.producer_connections(r),
            RequestCode::GetAllProducerInfo => self.all_producers(r),
            RequestCode::GetConsumeStats => self.consume_stats(r),
            RequestCode::GetBrokerConsumeStats => self.broker_consume_stats(r),
            RequestCode::InvokeBrokerToResetOffset => self.reset_offset(r),
            RequestCode::GetConsumerRunningInfo => self.relay_running_info(r).await,
            RequestCode::ConsumeMessageDirectly => self.relay_consume_directly(r).await,
            RequestCode::GetBrokerRuntimeInfo => Ok(Some(json_body(r, &self.runtime_info()))),
            RequestCode::UpdateBrokerConfig => self.update_config(r),
            RequestCode::GetBrokerConfig => self.broker_config(r),
            RequestCode::GetAllConsumerOffset => Ok(Some(json_body(r, &self.offsets.snapshot()))),
            RequestCode::GetAllDelayOffset => Ok(Some(json_body(r, &self.schedule.offsets()))),
            RequestCode::QueryTopicConsumeByWho => self.topic_consumed_by(r),
            RequestCode::QueryTopicsByConsumer => self.topics_of_group(r),
            RequestCode::QuerySubscriptionByConsumer => self.subscription_of_group(r),
            RequestCode::QueryConsumeTimeSpan => self.consume_time_span(r),
            RequestCode::GetSystemTopicListFromBroker => {
                let topic_list: BTreeSet<String> = self
                    .topics
                    .names()
                    .into_iter()
                    .filter(|t| name::is_system_topic(t))
                    .collect();
                Ok(Some(json_body(
                    r,
                    &TopicList {
                        broker_addr: None,
                        topic_list,
                    },
                )))
            }
            RequestCode::CloneGroupOffset => self.clone_group_offset(r),
            RequestCode::DeleteExpiredCommitlog => {
                self.store.run_retention_now(true).map_err(|e| {
                    fail(
                        ResponseCode::SystemError,
                        format!("retention run failed: {e}"),
                    )
                })?;
                Ok(Some(ok(r)))
            }
            RequestCode::CleanExpiredConsumequeue | RequestCode::CleanUnusedTopic => {
                Ok(Some(ok(r)))
            }
            _ => Ok(Some(karman_remoting::processor::not_supported(r))),
        }
    }
}

/// `+k=v,+k2=v2,-k3` (spec §3.11) applied to a topic's attributes.
fn apply_attributes(
    attributes: &mut BTreeMap<String, String>,
    spec: &str,
) -> Result<(), ProcessError> {
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if let Some(key) = item.strip_prefix('-') {
            attributes.remove(key);
        } else if let Some((key, value)) = item.strip_prefix('+').and_then(|kv| kv.split_once('='))
        {
            attributes.insert(key.to_owned(), value.to_owned());
        } else {
            return Err(fail(
                ResponseCode::InvalidParameter,
                format!("topic attribute `{item}` is not of the form +key=value or -key"),
            ));
        }
    }
    Ok(())
}

impl AdminProcessor {
    fn create_topic(&self, request: &RemotingCommand) -> ProcessResult {
        let header: CreateTopicRequestHeader = request.decode_header()?;
        validate_topic_name(&header.topic)
            .map_err(|reason| fail(ResponseCode::InvalidParameter, reason))?;
        if name::is_system_topic(&header.topic) && header.topic != name::AUTO_CREATE_TOPIC_KEY {
            return Err(fail(
                ResponseCode::InvalidParameter,
                format!("The topic[{}] is conflict with system topic.", header.topic),
            ));
        }
        let mut config = self.topics.get(&header.topic).unwrap_or_default();
        config.topic_name = header.topic.clone();
        config.read_queue_nums = header.read_queue_nums;
        config.write_queue_nums = header.write_queue_nums;
        config.perm = header.perm;
        config.topic_filter_type =
            TopicFilterType::from_name(&header.topic_filter_type).unwrap_or_default();
        config.topic_sys_flag = header.topic_sys_flag.unwrap_or(0);
        config.order = header.order;
        if let Some(spec) = header.attributes.as_deref() {
            apply_attributes(&mut config.attributes, spec)?;
        }
        if config.read_queue_nums <= 0 || config.write_queue_nums <= 0 {
            return Err(fail(
                ResponseCode::InvalidParameter,
                "queue counts must be at least 1",
            ));
        }
        self.topics.upsert(config);
        Ok(Some(ok(request)))
    }

    fn create_topic_list(&self, request: &RemotingCommand) -> ProcessResult {
        let list: TopicConfigList =
            fastjson::from_slice(&request.body.to_bytes(), "topicConfigList")?;
        for config in &list.topic_config_list {
            validate_topic_name(&config.topic_name)
                .map_err(|reason| fail(ResponseCode::InvalidParameter, reason))?;
        }
        for config in list.topic_config_list {
            self.topics.upsert(config);
        }
        Ok(Some(ok(request)))
    }

    fn all_topic_config(&self, request: &RemotingCommand) -> ProcessResult {
        let topic_config_table = self.topics.all();
        let total = i32::try_from(topic_config_table.len()).unwrap_or(i32::MAX);
        let wrapper = TopicConfigAndMappingSerializeWrapper {
            data_version: self.topics.data_version(),
            topic_config_table,
            ..TopicConfigAndMappingSerializeWrapper::default()
        };
        let response =
            json_body(request, &wrapper).with_header(&GetAllTopicConfigResponseHeader {
                total_topic_num: Some(total),
            })?;
        Ok(Some(response))
    }

    fn delete_topic(&self, request: &RemotingCommand) -> ProcessResult {
        let header: TopicRequestHeader = request.decode_header()?;
        if name::is_system_topic(&header.topic) {
            return Err(fail(
                ResponseCode::InvalidParameter,
                format!("The topic[{}] is conflict with system topic.", header.topic),
            ));
        }
        self.topics.delete(&header.topic);
        self.offsets.remove_topic(&header.topic);
        self.store.delete_topic(&header.topic).map_err(|e| {
            fail(
                ResponseCode::SystemError,
                format!("deleting the queues of {} failed: {e}", header.topic),
            )
        })?;
        Ok(Some(ok(request)))
    }

    fn topic_config(&self, request: &RemotingCommand) -> ProcessResult {
        let header: TopicRequestHeader = request.decode_header()?;
        match self.topics.get(&header.topic) {
            Some(config) => Ok(Some(json_body(request, &config))),
            None => Err(fail(
                ResponseCode::TopicNotExist,
                format!("No topic in this broker. topic: {}", header.topic),
            )),
        }
    }

    fn create_group(&self, request: &RemotingCommand) -> ProcessResult {
        let config: SubscriptionGroupConfig =
            fastjson::from_slice(&request.body.to_bytes(), "SubscriptionGroupConfig")?;
        validate_group_name(&config.group_name)
            .map_err(|reason| fail(ResponseCode::InvalidParameter, reason))?;
        self.groups.upsert(config);
        Ok(Some(ok(request)))
    }

    fn create_group_list(&self, request: &RemotingCommand) -> ProcessResult {
        let list: GroupConfigList =
            fastjson::from_slice(&request.body.to_bytes(), "groupConfigList")?;
        for config in list.group_config_list {
            validate_group_name(&config.group_name)
                .map_err(|reason| fail(ResponseCode::InvalidParameter, reason))?;
            self.groups.upsert(config);
        }
        Ok(Some(ok(request)))
    }

    fn delete_group(&self, request: &RemotingCommand) -> ProcessResult {
        let header: DeleteSubscriptionGroupRequestHeader = request.decode_header()?;
        self.groups.delete(&header.group_name);
        if header.clean_offset {
            self.offsets.remove_group(&header.group_name);
        }
        Ok(Some(ok(request)))
    }

    fn group_config(&self, request: &RemotingCommand) -> ProcessResult {
        let header: GroupRequestHeader = request.decode_header()?;
        match self.groups.get(&header.group) {
            Some(config) => Ok(Some(json_body(request, &config))),
            None => Err(fail(
                ResponseCode::SubscriptionGroupNotExist,
                format!("No group in this broker. group: {}", header.group),
            )),
        }
    }

    fn mq(&self, topic: &str, queue_id: i32) -> ObjectKey<MessageQueue> {
        ObjectKey(MessageQueue::new(
            topic,
            self.identity.name.clone(),
            queue_id,
        ))
    }

    /// Store time of the last message before `offset`, or 0.
    fn last_store_time(&self, topic: &str, queue_id: i32, offset: i64) -> i64 {
        if offset <= 0 {
            return 0;
        }
        self.store
            .message_store_timestamp(topic, queue_id, QueueOffset(offset - 1))
            .unwrap_or(0)
    }

    fn topic_stats(&self, request: &RemotingCommand) -> ProcessResult {
        let header: TopicRequestHeader = request.decode_header()?;
        let Some(config) = self.topics.get(&header.topic) else {
            return Err(fail(
                ResponseCode::TopicNotExist,
                format!("topic[{}] not exist", header.topic),
            ));
        };
        let mut table = TopicStatsTable {
            topic_put_tps: self.stats.topic_put_tps(&header.topic),
            ..TopicStatsTable::default()
        };
        for queue_id in 0..config.write_queue_nums {
            let min_offset = self.store.min_offset_in_queue(&header.topic, queue_id).0;
            let max_offset = self.store.max_offset_in_queue(&header.topic, queue_id).0;
            table.offset_table.insert(
                self.mq(&header.topic, queue_id),
                TopicOffset {
                    last_update_timestamp: self.last_store_time(
                        &header.topic,
                        queue_id,
                        max_offset,
                    ),
                    max_offset,
                    min_offset,
                },
            );
        }
        Ok(Some(json_body(request, &table)))
    }

    fn consumer_connections(&self, request: &RemotingCommand) -> ProcessResult {
        let header: GetConsumerConnectionListRequestHeader = request.decode_header()?;
        let Some(info) = self.clients.consumer_group(&header.consumer_group) else {
            return Err(fail(
                ResponseCode::ConsumerNotOnline,
                format!("the consumer group[{}] not online", header.consumer_group),
            ));
        };
        let body = ConsumerConnection {
            connection_set: info
                .channels
                .values()
                .map(|c| Connection {
                    client_addr: c.channel.remote_addr().to_string(),
                    client_id: c.client_id.clone(),
                    language: c.language.name().to_owned(),
                    version: c.version,
                })
                .collect(),
            consume_from_where: info.consume_from_where,
            consume_type: info.consume_type,
            message_model: info.message_model,
            subscription_table: info.subscriptions,
        };
        Ok(Some(json_body(request, &body)))
    }

    fn producer_connections(&self, request: &RemotingCommand) -> ProcessResult {
        let header: GetProducerConnectionListRequestHeader = request.decode_header()?;
        let clients = self.clients.producer_clients(&header.producer_group);
        if clients.is_empty() {
            return Err(fail(
                ResponseCode::SystemError,
                format!("the producer group[{}] not exist", header.producer_group),
            ));
        }
        let body = ProducerConnection {
            connection_set: clients
                .into_iter()
                .map(|c| Connection {
                    client_addr: c.channel.remote_addr().to_string(),
                    client_id: c.client_id,
                    language: c.language.name().to_owned(),
                    version: c.version,
                })
                .collect(),
        };
        Ok(Some(json_body(request, &body)))
    }

    fn all_producers(&self, request: &RemotingCommand) -> ProcessResult {
        let data = self
            .clients
            .all_producers()
            .into_iter()
            .map(|(group, clients)| {
                let infos = clients
                    .into_iter()
                    .map(|c| ProducerInfo {
                        client_id: c.client_id,
                        language: c.language.name().to_owned(),
                        last_update_timestamp: c.last_update_timestamp_ms,
                        remote_ip: c.channel.remote_addr().to_string(),
                        version: c.version,
                    })
                    .collect();
                (group, infos)
            })
            .collect();
        Ok(Some(json_body(request, &ProducerTableInfo { data })))
    }

    /// Topics a group consumes: subscribed online, or with committed offsets.
    fn group_topics(&self, group: &str) -> BTreeSet<String> {
        let mut topics: BTreeSet<String> =
            self.offsets.topics_of_group(group).into_iter().collect();
        if let Some(info) = self.clients.consumer_group(group) {
            topics.extend(info.subscriptions.into_keys());
        }
        topics.retain(|t| self.topics.contains(t));
        topics
    }

    fn stats_of(&self, group: &str, topics: &BTreeSet<String>) -> ConsumeStats {
        let mut stats = ConsumeStats::default();
        for topic in topics {
            let Some(config) = self.topics.get(topic) else {
                continue;
            };
            let committed = self.offsets.queue_offsets(group, topic);
            for queue_id in 0..config.read_queue_nums {
                let broker_offset = self.store.max_offset_in_queue(topic, queue_id).0;
                let consumer_offset = committed.get(&queue_id).copied().unwrap_or(0);
                stats.offset_table.insert(
                    self.mq(topic, queue_id),
                    OffsetWrapper {
                        broker_offset,
                        consumer_offset,
                        last_timestamp: self.last_store_time(topic, queue_id, consumer_offset),
                        pull_offset: consumer_offset,
                    },
                );
            }
        }
        stats.consume_tps = self.stats.rates(60).get_tps;
        stats
    }

    fn consume_stats(&self, request: &RemotingCommand) -> ProcessResult {
        let header: GetConsumeStatsRequestHeader = request.decode_header()?;
        let topics: BTreeSet<String> = match (&header.topic, &header.topic_list) {
            (Some(topic), _) if !topic.is_empty() => [topic.clone()].into(),
            (_, Some(list)) if !list.is_empty() => list.split(';').map(str::to_owned).collect(),
            _ => self.group_topics(&header.consumer_group),
        };
        Ok(Some(json_body(
            request,
            &self.stats_of(&header.consumer_group, &topics),
        )))
    }

    fn broker_consume_stats(&self, request: &RemotingCommand) -> ProcessResult {
        let mut list = ConsumeStatsList {
            broker_addr: self.identity.addr.clone(),
            ..ConsumeStatsList::default()
        };
        for group in self.groups.names() {
            let topics = self.group_topics(&group);
            if topics.is_empty() {
                continue;
            }
            let stats = self.stats_of(&group, &topics);
            list.total_diff += stats
                .offset_table
                .values()
                .map(|o| o.broker_offset - o.consumer_offset)
                .sum::<i64>();
            list.consume_stats_list.push([(group, vec![stats])].into());
        }
        Ok(Some(json_body(request, &list)))
    }

    fn reset_offset(&self, request: &RemotingCommand) -> ProcessResult {
        let header: InvokeBrokerToResetOffsetRequestHeader = request.decode_header()?;
        let Some(config) = self.topics.get(&header.topic) else {
            return Err(fail(
                ResponseCode::TopicNotExist,
                format!("topic[{}] not exist", header.topic),
            ));
        };
        let queues: Vec<i32> = match header.queue_id {
            Some(queue_id) if queue_id >= 0 => vec![queue_id],
            _ => (0..config.read_queue_nums).collect(),
        };
        let mut targets = BTreeMap::new();
        let mut body = ResetOffsetBody::default();
        for queue_id in queues {
            let target = match header.offset {
                Some(offset) if offset >= 0 => offset,
                _ if header.timestamp < 0 => {
                    self.store.max_offset_in_queue(&header.topic, queue_id).0
                }
                _ => {
                    self.store
                        .offset_by_time(
                            &header.topic,
                            queue_id,
                            header.timestamp,
                            BoundaryType::Lower,
                        )
                        .0
                }
            };
            targets.insert(queue_id, target);
            body.offset_table
                .insert(self.mq(&header.topic, queue_id), target);
        }
        self.offsets.reset(&header.group, &header.topic, &targets);
        info!(group = %header.group, topic = %header.topic, queues = targets.len(), "consumer offsets reset");
        Ok(Some(json_body(request, &body)))
    }

    async fn relay_running_info(&self, request: &RemotingCommand) -> ProcessResult {
        let header: GetConsumerRunningInfoRequestHeader = request.decode_header()?;
        self.relay(&header.consumer_group, &header.client_id, request)
            .await
    }

    async fn relay_consume_directly(&self, request: &RemotingCommand) -> ProcessResult {
        let header: karman_protocol::header::ConsumeMessageDirectlyResultRequestHeader =
            request.decode_header()?;
        let client_id = header.client_id.clone().unwrap_or_default();
        let mut forwarded = request.clone();
        if let Some(record) = header
            .msg_id
            .as_deref()
            .and_then(|id| karman_protocol::message::id::parse_offset_msg_id(id).ok())
            .and_then(|(_, offset)| self.store.read_message(CommitLogOffset(offset)))
        {
            forwarded.body = record.into();
        }
        self.relay(&header.consumer_group, &client_id, &forwarded)
            .await
    }

    /// Sends an admin request on to one client and returns its answer as is.
    async fn relay(
        &self,
        group: &str,
        client_id: &str,
        request: &RemotingCommand,
    ) -> ProcessResult {
        let Some(channel) = self.clients.consumer_channel(group, client_id) else {
            return Err(fail(
                ResponseCode::SystemError,
                format!("The Consumer <{group}> <{client_id}> not online"),
            ));
        };
        let mut forwarded = RemotingCommand::request(request.request_code());
        forwarded.ext_fields = request.ext_fields.clone();
        forwarded.body = request.body.clone();
        match channel.invoke(forwarded, RELAY_TIMEOUT).await {
            Ok(mut answer) => {
                answer.opaque = request.opaque;
                Ok(Some(answer))
            }
            Err(karman_remoting::RemotingError::Timeout { .. }) => Err(fail(
                ResponseCode::ConsumeMsgTimeout,
                format!(
                    "the consumer <{group}> <{client_id}> did not answer within {RELAY_TIMEOUT:?}"
                ),
            )),
            Err(error) => Err(fail(
                ResponseCode::SystemError,
                format!("relay to <{client_id}> failed: {error}"),
            )),
        }
    }

    fn runtime_info(&self) -> KVTable {
        let stats = self.store.runtime_stats();
        let rates = self.stats.rates(60);
        let now = self.clock.now_ms();
        let uptime_secs = (now - self.boot_timestamp_ms).max(0) / 1000;
        let config = self.config.read();
        let mut table = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            table.insert(k.to_owned(), v);
        };
        put(
            "brokerVersionDesc",
            format!("Karman {}", env!("CARGO_PKG_VERSION")),
        );
        put(
            "brokerVersion",
            karman_protocol::code::version::KARMAN.to_string(),
        );
        put("brokerRole", config.broker_role.name().to_owned());
        put("brokerName", self.identity.name.clone());
        put("brokerId", self.identity.id.to_string());
        put("brokerAddr", self.identity.addr.clone());
        put("clusterName", self.identity.cluster.clone());
        put("bootTimestamp", self.boot_timestamp_ms.to_string());
        put(
            "runtime",
            format!(
                "[ {} days, {} hours, {} minutes, {} seconds ]",
                uptime_secs / 86_400,
                uptime_secs / 3600 % 24,
                uptime_secs / 60 % 60,
                uptime_secs % 60
            ),
        );
        let put_total = self
            .stats
            .put_messages
            .load(std::sync::atomic::Ordering::Relaxed);
        let get_total = self
            .stats
            .get_messages
            .load(std::sync::atomic::Ordering::Relaxed);
        put("msgPutTotalTodayNow", put_total.to_string());
        put("msgGetTotalTodayNow", get_total.to_string());
        let mornings = self.stats.mornings();
        put("msgPutTotalTodayMorning", mornings.today_put.to_string());
        put("msgGetTotalTodayMorning", mornings.today_get.to_string());
        put(
            "msgPutTotalYesterdayMorning",
            mornings.yesterday_put.to_string(),
        );
        put(
            "msgGetTotalYesterdayMorning",
            mornings.yesterday_get.to_string(),
        );
        // "10 s, 60 s, 600 s", as RocketMQ's StoreStatsService prints them.
        let windows = [self.stats.rates(10), rates, self.stats.rates(600)];
        let three = |tps: fn(&Rates) -> f64| {
            format!(
                "{:.2} {:.2} {:.2}",
                tps(&windows[0]),
                tps(&windows[1]),
                tps(&windows[2])
            )
        };
        put("putTps", three(|r| r.put_tps));
        // RocketMQ versions spell this key both ways; tools may read either.
        put("getTransferedTps", three(|r| r.get_tps));
        put("getTransferredTps", three(|r| r.get_tps));
        put(
            "commitLogMinOffset",
            stats.commit_log_min_offset.to_string(),
        );
        put(
            "commitLogMaxOffset",
            stats.commit_log_max_offset.to_string(),
        );
        put(
            "commitLogDiskRatio",
            format!("{:.4}", stats.disk_used_ratio),
        );
        put("dispatchBehindBytes", stats.dispatch_lag_bytes.to_string());
        put(
            "sendThreadPoolQueueCapacity",
            config.send_thread_pool_queue_capacity.to_string(),
        );
        put(
            "startAcceptSendRequestTimeStamp",
            self.boot_timestamp_ms.to_string(),
        );
        put("pageCacheLockTimeMills", "0".to_owned());
        // clusterList's Hour: how far back the log reaches; -1 while it is empty, as in
        // RocketMQ.
        let earliest = (stats.commit_log_min_offset < stats.commit_log_max_offset)
            .then(|| {
                self.store
                    .store_timestamp_at(CommitLogOffset(stats.commit_log_min_offset))
            })
            .flatten()
            .unwrap_or(-1);
        put("earliestMessageTimeStamp", earliest.to_string());
        // clusterList's ACTIVATED: RocketMQ 5 reports whether the master-only services
        // (delay schedule, transaction check-back) run, which they do on a master.
        put(
            "brokerActive",
            (config.broker_role != BrokerRole::Slave).to_string(),
        );
        for (key, value) in self.transactions.runtime_info() {
            table.insert(key.to_owned(), value);
        }
        KVTable { table }
    }

    fn update_config(&self, request: &RemotingCommand) -> ProcessResult {
        let text = String::from_utf8_lossy(&request.body.to_bytes()).into_owned();
        let mut config = self.config.write();
        let mut updated = config.clone();
        let report = updated
            .apply_text(&text, true)
            .map_err(|e| fail(ResponseCode::SystemError, e.to_string()))?;
        if let Some(unknown) = report.unknown_keys.first() {
            return Err(fail(
                ResponseCode::SystemError,
                format!("unknown broker config key `{unknown}`"),
            ));
        }
        *config = updated;
        info!(keys = ?report.applied_keys, "broker config updated");
        if report.applied_keys.iter().any(|k| k == "brokerPermission") {
            self.topics.changed.notify_one();
        }
        Ok(Some(ok(request)))
    }

    fn broker_config(&self, request: &RemotingCommand) -> ProcessResult {
        let text = self.config.read().render();
        let version =
            String::from_utf8(fastjson::to_vec(&self.topics.data_version())).unwrap_or_default();
        let response = ok(request)
            .with_body(text)
            .with_header(&GetBrokerConfigResponseHeader {
                version: Some(version),
            })?;
        Ok(Some(response))
    }

    fn topic_consumed_by(&self, request: &RemotingCommand) -> ProcessResult {
        let header: TopicRequestHeader = request.decode_header()?;
        let mut groups: BTreeSet<String> = self
            .clients
            .groups_subscribing(&header.topic)
            .into_iter()
            .collect();
        groups.extend(self.offsets.groups_of_topic(&header.topic));
        Ok(Some(json_body(request, &GroupList { group_list: groups })))
    }

    fn topics_of_group(&self, request: &RemotingCommand) -> ProcessResult {
        let header: GroupRequestHeader = request.decode_header()?;
        let topic_list = self.group_topics(&header.group);
        Ok(Some(json_body(
            request,
            &TopicList {
                broker_addr: Some(self.identity.addr.clone()),
                topic_list,
            },
        )))
    }

    fn subscription_of_group(&self, request: &RemotingCommand) -> ProcessResult {
        let header: QuerySubscriptionByConsumerRequestHeader = request.decode_header()?;
        let topic = header.topic.clone().unwrap_or_default();
        let subscription = self
            .clients
            .subscription(&header.group, &topic)
            .unwrap_or_default();
        Ok(Some(json_body(
            request,
            &QuerySubscriptionResponseBody {
                group: header.group,
                subscription_data: subscription,
                topic,
            },
        )))
    }

    fn consume_time_span(&self, request: &RemotingCommand) -> ProcessResult {
        let header: TopicGroupRequestHeader = request.decode_header()?;
        let Some(config) = self.topics.get(&header.topic) else {
            return Err(fail(
                ResponseCode::TopicNotExist,
                format!("topic[{}] not exist", header.topic),
            ));
        };
        let committed = self.offsets.queue_offsets(&header.group, &header.topic);
        let mut body = QueryConsumeTimeSpanBody::default();
        for queue_id in 0..config.write_queue_nums {
            let min = self.store.min_offset_in_queue(&header.topic, queue_id).0;
            let max = self.store.max_offset_in_queue(&header.topic, queue_id).0;
            let consumed = committed.get(&queue_id).copied().unwrap_or(0);
            let time_at = |offset: i64| {
                self.store
                    .message_store_timestamp(&header.topic, queue_id, QueueOffset(offset))
                    .unwrap_or(0)
            };
            let max_time = self.last_store_time(&header.topic, queue_id, max);
            let consume_time = self.last_store_time(&header.topic, queue_id, consumed);
            body.consume_time_span_set.push(QueueTimeSpan {
                consume_time_stamp: consume_time,
                delay_time: if consumed < max {
                    max_time - consume_time
                } else {
                    0
                },
                max_time_stamp: max_time,
                message_queue: MessageQueue::new(
                    &header.topic,
                    self.identity.name.clone(),
                    queue_id,
                ),
                min_time_stamp: time_at(min),
            });
        }
        Ok(Some(json_body(request, &body)))
    }

    fn clone_group_offset(&self, request: &RemotingCommand) -> ProcessResult {
        let header: CloneGroupOffsetRequestHeader = request.decode_header()?;
        let topics: Vec<String> = match header.topic.filter(|t| !t.is_empty()) {
            Some(topic) => vec![topic],
            None => self.offsets.topics_of_group(&header.src_group),
        };
        for topic in topics {
            let offsets = self.offsets.queue_offsets(&header.src_group, &topic);
            for (queue_id, offset) in offsets {
                self.offsets
                    .commit(&header.dest_group, &topic, queue_id, offset);
            }
        }
        Ok(Some(ok(request)))
    }
}

/// Whether the broker as a whole is writeable, for runtime info and registration.
pub fn writeable(config: &SharedConfig) -> bool {
    perm::is_writeable(config.read().broker_permission)
}
