//! The admin API behind `karman admin` and the dashboard (spec semantics.md §10, remoting.md
//! §3.10–§3.11): topics, subscription groups, routes, offsets, stats, message queries and
//! NameServer KV settings. Each call names the NameServer or broker it talks to; results
//! are the protocol's own body types.
//!
//! ```no_run
//! use karman_client::admin::Admin;
//!
//! # async fn run() -> Result<(), karman_client::ClientError> {
//! let admin = Admin::connect("127.0.0.1:9876").await?;
//! for topic in admin.topic_list().await? {
//!     let stats = admin.topic_stats(&topic).await?;
//!     println!("{topic}: {} queues", stats.offset_table.len());
//! }
//! admin.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use karman_protocol::body::fastjson::{self, ObjectKey};
use karman_protocol::body::{
    ClusterInfo, ConsumeStats, ConsumerConnection, ConsumerRunningInfo, GroupList, KVTable,
    MessageQueue, ProducerConnection, ResetOffsetBody, SubscriptionData, SubscriptionGroupConfig,
    TopicConfig, TopicList, TopicRouteData, TopicStatsTable,
};
use karman_protocol::header::*;
use karman_protocol::message::MessageExt;
use karman_protocol::message::id::parse_offset_msg_id;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use serde::de::DeserializeOwned;

use crate::config::ClientConfig;
use crate::consumer::PullResult;
use crate::consumer::pull_offsets::{self, PullApi, PullArgs};
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, client_command, command_with_header};
use crate::route::{AUTO_CREATE_TOPIC_KEY, MASTER_ID, retry_topic};

/// Index lookups return at most this many messages per broker by default (mqadmin `-m`).
pub const QUERY_MAX_NUM_DEFAULT: i32 = 64;

/// The consumer group admin pulls run as; every broker knows it (Java's `TOOLS_CONSUMER`).
pub const TOOLS_CONSUMER_GROUP: &str = "TOOLS_CONSUMER";

/// Why the NameServer has no route for a topic, so that an error can say which of the
/// causes it is (see [`Admin::diagnose_no_route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRouteCause {
    /// No broker is registered with the NameServer at all.
    NoBrokerRegistered,
    /// These brokers have the topic, but the NameServer has no route for it: the broker
    /// has not registered since the topic was made, or it registers elsewhere.
    NotRegistered { brokers: Vec<String> },
    /// No registered broker has the topic. Broker names are split by their
    /// `autoCreateTopicEnable` (on: the first send creates the topic), and those that did
    /// not answer.
    TopicMissing {
        auto_create_on: Vec<String>,
        auto_create_off: Vec<String>,
        unreachable: Vec<String>,
    },
}

/// Where a consumer offset reset moves a group (mqadmin `resetOffsetByTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// The first message stored at or after this time; −1 means the max offset.
    Timestamp(i64),
    /// This queue offset.
    Offset(i64),
}

/// One consumer offset reset: a group, a topic, one queue or all of them.
#[derive(Debug, Clone, Copy)]
pub struct OffsetReset<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    /// `None`: every queue of the topic.
    pub queue_id: Option<i32>,
    pub target: ResetTarget,
}

/// An admin connection; see the module docs.
#[derive(Debug)]
pub struct Admin {
    instance: Arc<ClientInstance>,
    closed: std::sync::atomic::AtomicBool,
    pull_api: PullApi,
}

impl Admin {
    /// Connects to the NameServers in `namesrv_addr` (`;`-separated).
    pub async fn connect(namesrv_addr: &str) -> Result<Self> {
        let config = ClientConfig {
            namesrv_addr: namesrv_addr.to_owned(),
            ..ClientConfig::default()
        };
        Self::with_config(config).await
    }

    pub async fn with_config(config: ClientConfig) -> Result<Self> {
        let instance = ClientInstance::get_or_create(&config)?;
        instance.register_admin();
        Ok(Self {
            instance,
            closed: std::sync::atomic::AtomicBool::new(false),
            pull_api: PullApi::default(),
        })
    }

    /// Releases the client instance (once; later calls do nothing).
    pub async fn shutdown(&self) {
        if !self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            self.instance.unregister_admin().await;
        }
    }

    async fn namesrv_call(&self, request: RemotingCommand) -> Result<(String, RemotingCommand)> {
        let (addr, response) = self.instance.invoke_namesrv(request.clone()).await?;
        if response.response_code() != ResponseCode::Success {
            return Err(ClientError::from_response(&addr, &request, &response));
        }
        Ok((addr, response))
    }

    async fn broker_call(&self, addr: &str, request: RemotingCommand) -> Result<RemotingCommand> {
        let response = self.instance.invoke_broker(addr, request.clone()).await?;
        if response.response_code() != ResponseCode::Success {
            return Err(ClientError::from_response(addr, &request, &response));
        }
        Ok(response)
    }

    fn body<T: DeserializeOwned>(
        addr: &str,
        response: &RemotingCommand,
        what: &'static str,
    ) -> Result<T> {
        fastjson::from_slice(&response.body.to_bytes(), what)
            .map_err(|source| ClientError::decode(addr, what, source))
    }

    // ---------------------------------------------------------------------------------
    // NameServer

    /// Brokers per cluster (GET_BROKER_CLUSTER_INFO).
    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let (addr, response) = self
            .namesrv_call(client_command(RequestCode::GetBrokerClusterInfo))
            .await?;
        Self::body(&addr, &response, "ClusterInfo")
    }

    /// Every topic the NameServer knows.
    pub async fn topic_list(&self) -> Result<BTreeSet<String>> {
        let (addr, response) = self
            .namesrv_call(client_command(RequestCode::GetAllTopicListFromNameserver))
            .await?;
        Ok(Self::body::<TopicList>(&addr, &response, "TopicList")?.topic_list)
    }

    /// A topic's route.
    pub async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
        self.instance
            .fetch_route(topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.to_owned(),
                reason: "the NameServer does not know the topic".into(),
            })
    }

    pub async fn put_kv_config(&self, namespace: &str, key: &str, value: &str) -> Result<()> {
        let header = PutKVConfigRequestHeader {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.namesrv_call(command_with_header(RequestCode::PutKvConfig, &header)?)
            .await?;
        Ok(())
    }

    /// A KV value, `None` when absent.
    pub async fn get_kv_config(&self, namespace: &str, key: &str) -> Result<Option<String>> {
        let header = GetKVConfigRequestHeader {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
        };
        let request = command_with_header(RequestCode::GetKvConfig, &header)?;
        let (addr, response) = self.instance.invoke_namesrv(request.clone()).await?;
        match response.response_code() {
            ResponseCode::Success => {
                let answer: GetKVConfigResponseHeader =
                    response.decode_header().map_err(|source| {
                        ClientError::decode(&addr, "GET_KV_CONFIG response", source)
                    })?;
                Ok(answer.value)
            }
            ResponseCode::QueryNotFound => Ok(None),
            _ => Err(ClientError::from_response(&addr, &request, &response)),
        }
    }

    pub async fn delete_kv_config(&self, namespace: &str, key: &str) -> Result<()> {
        let header = GetKVConfigRequestHeader {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
        };
        self.namesrv_call(command_with_header(RequestCode::DeleteKvConfig, &header)?)
            .await?;
        Ok(())
    }

    /// Clears or restores the write permission of a broker group on every NameServer;
    /// returns the topic count each one changed.
    pub async fn set_write_perm(
        &self,
        broker_name: &str,
        writable: bool,
    ) -> Result<Vec<(String, i32)>> {
        let header = WipeWritePermOfBrokerRequestHeader {
            broker_name: broker_name.to_owned(),
        };
        let code = if writable {
            RequestCode::AddWritePermOfBroker
        } else {
            RequestCode::WipeWritePermOfBroker
        };
        let mut counts = Vec::new();
        for addr in self.instance.config.namesrv_addrs() {
            let response = self
                .broker_call(&addr, command_with_header(code, &header)?)
                .await?;
            let count = response
                .ext_fields
                .get(if writable {
                    "addTopicCount"
                } else {
                    "wipeTopicCount"
                })
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            counts.push((addr, count));
        }
        Ok(counts)
    }

    // ---------------------------------------------------------------------------------
    // Topics

    /// The master addresses of a cluster.
    pub async fn cluster_masters(&self, cluster: &str) -> Result<Vec<String>> {
        let info = self.cluster_info().await?;
        let names = info
            .cluster_addr_table
            .get(cluster)
            .cloned()
            .unwrap_or_default();
        Ok(names
            .iter()
            .filter_map(|name| info.broker_addr_table.get(name))
            .filter_map(|bd| bd.broker_addrs.get(&MASTER_ID).cloned())
            .collect())
    }

    /// UPDATE_AND_CREATE_TOPIC on one broker. The attributes of `config` are added to the
    /// topic's (`+key=value`); use [`Admin::create_topic_with_attributes`] to remove some.
    pub async fn create_topic(&self, broker_addr: &str, config: &TopicConfig) -> Result<()> {
        let spec: Vec<String> = config
            .attributes
            .iter()
            .map(|(k, v)| format!("+{k}={v}"))
            .collect();
        let spec = (!spec.is_empty()).then(|| spec.join(","));
        self.create_topic_with_attributes(broker_addr, config, spec.as_deref())
            .await
    }

    /// UPDATE_AND_CREATE_TOPIC on one broker with an attribute change in mqadmin's syntax
    /// (`+key=value,-key`, spec remoting.md §3.11); `config.attributes` is not sent.
    pub async fn create_topic_with_attributes(
        &self,
        broker_addr: &str,
        config: &TopicConfig,
        attributes: Option<&str>,
    ) -> Result<()> {
        let header = CreateTopicRequestHeader {
            topic: config.topic_name.clone(),
            default_topic: AUTO_CREATE_TOPIC_KEY.to_owned(),
            read_queue_nums: config.read_queue_nums,
            write_queue_nums: config.write_queue_nums,
            perm: config.perm,
            topic_filter_type: config.topic_filter_type.name().to_owned(),
            topic_sys_flag: Some(config.topic_sys_flag),
            order: config.order,
            attributes: attributes.map(str::to_owned),
            force: None,
        };
        self.broker_call(
            broker_addr,
            command_with_header(RequestCode::UpdateAndCreateTopic, &header)?,
        )
        .await?;
        Ok(())
    }

    /// Creates or updates a topic on every master of a cluster (mqadmin `updateTopic -c`).
    pub async fn create_topic_in_cluster(
        &self,
        cluster: &str,
        config: &TopicConfig,
    ) -> Result<Vec<String>> {
        let masters = self.cluster_masters(cluster).await?;
        for addr in &masters {
            self.create_topic(addr, config).await?;
        }
        Ok(masters)
    }

    /// Deletes a topic from a cluster's masters and from the NameServer.
    pub async fn delete_topic(&self, cluster: &str, topic: &str) -> Result<()> {
        let header = TopicRequestHeader {
            topic: topic.to_owned(),
        };
        for addr in self.cluster_masters(cluster).await? {
            self.broker_call(
                &addr,
                command_with_header(RequestCode::DeleteTopicInBroker, &header)?,
            )
            .await?;
        }
        let header = DeleteTopicFromNamesrvRequestHeader {
            topic: topic.to_owned(),
            cluster_name: Some(cluster.to_owned()),
        };
        for addr in self.instance.config.namesrv_addrs() {
            self.broker_call(
                &addr,
                command_with_header(RequestCode::DeleteTopicInNamesrv, &header)?,
            )
            .await?;
        }
        Ok(())
    }

    /// Master addresses of the brokers serving `topic`.
    async fn topic_masters(&self, topic: &str) -> Result<Vec<String>> {
        let route = self.topic_route(topic).await?;
        Ok(route
            .broker_datas
            .iter()
            .filter_map(|bd| bd.select_broker_addr().map(str::to_owned))
            .collect())
    }

    /// Min/max offsets of every queue of a topic, merged over its brokers.
    pub async fn topic_stats(&self, topic: &str) -> Result<TopicStatsTable> {
        let mut merged = TopicStatsTable::default();
        let header = TopicRequestHeader {
            topic: topic.to_owned(),
        };
        for addr in self.topic_masters(topic).await? {
            let response = self
                .broker_call(
                    &addr,
                    command_with_header(RequestCode::GetTopicStatsInfo, &header)?,
                )
                .await?;
            let table: TopicStatsTable = Self::body(&addr, &response, "TopicStatsTable")?;
            merged.offset_table.extend(table.offset_table);
            merged.topic_put_tps += table.topic_put_tps;
        }
        Ok(merged)
    }

    /// A topic's configuration on one broker (GET_TOPIC_CONFIG); `None` when the broker
    /// does not have the topic.
    pub async fn topic_config(
        &self,
        broker_addr: &str,
        topic: &str,
    ) -> Result<Option<TopicConfig>> {
        let header = TopicRequestHeader {
            topic: topic.to_owned(),
        };
        let request = command_with_header(RequestCode::GetTopicConfig, &header)?;
        let response = self
            .instance
            .invoke_broker(broker_addr, request.clone())
            .await?;
        match response.response_code() {
            ResponseCode::Success => Self::body(broker_addr, &response, "TopicConfig").map(Some),
            ResponseCode::TopicNotExist => Ok(None),
            _ => Err(ClientError::from_response(broker_addr, &request, &response)),
        }
    }

    /// The consumer groups that consume a topic (online, or with committed offsets), over
    /// the brokers of the topic (QUERY_TOPIC_CONSUME_BY_WHO).
    pub async fn topic_consumer_groups(&self, topic: &str) -> Result<BTreeSet<String>> {
        let header = TopicRequestHeader {
            topic: topic.to_owned(),
        };
        let mut groups = BTreeSet::new();
        for addr in self.topic_masters(topic).await? {
            let request = command_with_header(RequestCode::QueryTopicConsumeByWho, &header)?;
            let response = self.broker_call(&addr, request).await?;
            groups.extend(Self::body::<GroupList>(&addr, &response, "GroupList")?.group_list);
        }
        Ok(groups)
    }

    /// Finds out why the NameServer has no route for `topic`: no broker registered, the
    /// topic missing from every broker (and whether they would auto-create it), or a
    /// broker that has the topic but has not registered it.
    pub async fn diagnose_no_route(&self, topic: &str) -> Result<NoRouteCause> {
        let info = self.cluster_info().await?;
        let brokers: Vec<(String, String)> = info
            .broker_addr_table
            .values()
            .filter_map(|bd| {
                bd.select_broker_addr()
                    .map(|addr| (bd.broker_name.clone(), addr.to_owned()))
            })
            .collect();
        if brokers.is_empty() {
            return Ok(NoRouteCause::NoBrokerRegistered);
        }
        let mut with_topic = Vec::new();
        let (mut auto_create_on, mut auto_create_off, mut unreachable) =
            (Vec::new(), Vec::new(), Vec::new());
        for (name, addr) in brokers {
            match self.topic_config(&addr, topic).await {
                Ok(Some(_)) => with_topic.push(name),
                Ok(None) => match self.auto_create_topic_enable(&addr).await {
                    Ok(true) => auto_create_on.push(name),
                    Ok(false) => auto_create_off.push(name),
                    Err(_) => unreachable.push(name),
                },
                Err(_) => unreachable.push(name),
            }
        }
        if !with_topic.is_empty() {
            return Ok(NoRouteCause::NotRegistered {
                brokers: with_topic,
            });
        }
        Ok(NoRouteCause::TopicMissing {
            auto_create_on,
            auto_create_off,
            unreachable,
        })
    }

    /// A broker's `autoCreateTopicEnable` (RocketMQ's default, true, when the broker does
    /// not report it).
    async fn auto_create_topic_enable(&self, broker_addr: &str) -> Result<bool> {
        let text = self.broker_config(broker_addr).await?;
        Ok(karman_protocol::java_properties::parse(&text)
            .into_iter()
            .find(|(key, _)| key == "autoCreateTopicEnable")
            .is_none_or(|(_, value)| value.trim().eq_ignore_ascii_case("true")))
    }

    // ---------------------------------------------------------------------------------
    // Groups

    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP on one broker.
    pub async fn create_subscription_group(
        &self,
        broker_addr: &str,
        config: &SubscriptionGroupConfig,
    ) -> Result<()> {
        let request = client_command(RequestCode::UpdateAndCreateSubscriptiongroup)
            .with_body(fastjson::to_vec(config));
        self.broker_call(broker_addr, request).await?;
        Ok(())
    }

    pub async fn delete_subscription_group(
        &self,
        broker_addr: &str,
        group: &str,
        clean_offset: bool,
    ) -> Result<()> {
        let header = DeleteSubscriptionGroupRequestHeader {
            group_name: group.to_owned(),
            clean_offset,
        };
        self.broker_call(
            broker_addr,
            command_with_header(RequestCode::DeleteSubscriptiongroup, &header)?,
        )
        .await?;
        Ok(())
    }

    /// Live clients of a consumer group, asked of a broker that serves its retry topic.
    pub async fn consumer_connection(&self, group: &str) -> Result<ConsumerConnection> {
        let header = GetConsumerConnectionListRequestHeader {
            consumer_group: group.to_owned(),
        };
        let mut last = None;
        for addr in self.topic_masters(&retry_topic(group)).await? {
            let request = command_with_header(RequestCode::GetConsumerConnectionList, &header)?;
            match self.broker_call(&addr, request).await {
                Ok(response) => return Self::body(&addr, &response, "ConsumerConnection"),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::NoRoute {
            topic: retry_topic(group),
            reason: "no broker serves the group".into(),
        }))
    }

    /// Live clients of a consumer group as one broker sees them.
    pub async fn consumer_connection_at(
        &self,
        broker_addr: &str,
        group: &str,
    ) -> Result<ConsumerConnection> {
        let header = GetConsumerConnectionListRequestHeader {
            consumer_group: group.to_owned(),
        };
        let request = command_with_header(RequestCode::GetConsumerConnectionList, &header)?;
        let response = self.broker_call(broker_addr, request).await?;
        Self::body(broker_addr, &response, "ConsumerConnection")
    }

    /// What one consumer client reports about itself (queues it holds, offsets, rates),
    /// relayed by a broker of the group's retry topic (GET_CONSUMER_RUNNING_INFO).
    pub async fn consumer_running_info(
        &self,
        group: &str,
        client_id: &str,
    ) -> Result<ConsumerRunningInfo> {
        let header = karman_protocol::header::GetConsumerRunningInfoRequestHeader {
            consumer_group: group.to_owned(),
            client_id: client_id.to_owned(),
            jstack_enable: false,
        };
        let mut last = None;
        for addr in self.topic_masters(&retry_topic(group)).await? {
            let request = command_with_header(RequestCode::GetConsumerRunningInfo, &header)?;
            match self.broker_call(&addr, request).await {
                Ok(response) => return Self::body(&addr, &response, "ConsumerRunningInfo"),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::NoRoute {
            topic: retry_topic(group),
            reason: "no broker serves the group".into(),
        }))
    }

    /// Live clients of a producer group, asked of the brokers of `topic`.
    pub async fn producer_connection(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<ProducerConnection> {
        let header = GetProducerConnectionListRequestHeader {
            producer_group: group.to_owned(),
        };
        // A broker answers an error when none of the group's producers is connected to
        // it; that is only a failure when no broker knows the group.
        let mut merged = ProducerConnection::default();
        let mut last = None;
        for addr in self.topic_masters(topic).await? {
            let request = command_with_header(RequestCode::GetProducerConnectionList, &header)?;
            match self.broker_call(&addr, request).await {
                Ok(response) => {
                    let part: ProducerConnection =
                        Self::body(&addr, &response, "ProducerConnection")?;
                    merged.connection_set.extend(part.connection_set);
                }
                Err(error) => last = Some(error),
            }
        }
        match last {
            Some(error) if merged.connection_set.is_empty() => Err(error),
            _ => Ok(merged),
        }
    }

    /// Consumption progress of a group (per queue: broker offset, consumer offset), merged
    /// over the brokers of its retry topic, or of `topic` when given.
    pub async fn consume_stats(&self, group: &str, topic: Option<&str>) -> Result<ConsumeStats> {
        let route_topic = topic.map_or_else(|| retry_topic(group), str::to_owned);
        let header = GetConsumeStatsRequestHeader {
            consumer_group: group.to_owned(),
            topic: topic.map(str::to_owned),
            topic_list: None,
        };
        let mut merged = ConsumeStats::default();
        for addr in self.topic_masters(&route_topic).await? {
            let response = self
                .broker_call(
                    &addr,
                    command_with_header(RequestCode::GetConsumeStats, &header)?,
                )
                .await?;
            let part: ConsumeStats = Self::body(&addr, &response, "ConsumeStats")?;
            merged.offset_table.extend(part.offset_table);
            merged.consume_tps += part.consume_tps;
        }
        Ok(merged)
    }

    /// Moves a group's offsets of a topic to the first message stored at or after
    /// `timestamp_ms` (−1: the max offset) on every broker of the topic
    /// (mqadmin `resetOffsetByTime`).
    pub async fn reset_offset_by_timestamp(
        &self,
        group: &str,
        topic: &str,
        timestamp_ms: i64,
        force: bool,
    ) -> Result<BTreeMap<MessageQueue, i64>> {
        let reset = OffsetReset {
            group,
            topic,
            queue_id: None,
            target: ResetTarget::Timestamp(timestamp_ms),
        };
        let masters = self.topic_masters(topic).await?;
        self.reset_offset(&masters, &reset, force).await
    }

    /// Moves a group's offsets on the given brokers (mqadmin `resetOffsetByTime -b -q -o`);
    /// returns the new offset of every queue that moved. 5.x semantics: the broker keeps
    /// the reset and the group's clients pick it up on their next pull.
    pub async fn reset_offset(
        &self,
        broker_addrs: &[String],
        reset: &OffsetReset<'_>,
        force: bool,
    ) -> Result<BTreeMap<MessageQueue, i64>> {
        let (offset, timestamp) = match reset.target {
            ResetTarget::Offset(offset) => (Some(offset), 0),
            ResetTarget::Timestamp(timestamp_ms) => (None, timestamp_ms),
        };
        let header = InvokeBrokerToResetOffsetRequestHeader {
            group: reset.group.to_owned(),
            topic: reset.topic.to_owned(),
            queue_id: reset.queue_id,
            offset,
            timestamp,
            is_force: force,
        };
        let mut offsets = BTreeMap::new();
        for addr in broker_addrs {
            let addr = addr.as_str();
            let response = self
                .broker_call(
                    addr,
                    command_with_header(RequestCode::InvokeBrokerToResetOffset, &header)?,
                )
                .await?;
            if !response.body.is_empty() {
                let body: ResetOffsetBody = Self::body(addr, &response, "ResetOffsetBody")?;
                offsets.extend(
                    body.offset_table
                        .into_iter()
                        .map(|(ObjectKey(mq), o)| (mq, o)),
                );
            }
        }
        Ok(offsets)
    }

    // ---------------------------------------------------------------------------------
    // Offsets

    async fn ensure_route(&self, mq: &MessageQueue) -> Result<()> {
        if self.instance.master_or_any_addr(&mq.broker_name).is_none() {
            self.instance.update_route(&mq.topic, None).await?;
        }
        Ok(())
    }

    pub async fn max_offset(&self, mq: &MessageQueue) -> Result<i64> {
        self.ensure_route(mq).await?;
        pull_offsets::max_offset(&self.instance, mq).await
    }

    pub async fn min_offset(&self, mq: &MessageQueue) -> Result<i64> {
        self.ensure_route(mq).await?;
        pull_offsets::min_offset(&self.instance, mq).await
    }

    pub async fn search_offset(&self, mq: &MessageQueue, timestamp_ms: i64) -> Result<i64> {
        self.ensure_route(mq).await?;
        pull_offsets::search_offset(&self.instance, mq, timestamp_ms).await
    }

    /// One pull of up to `max_nums` messages from `offset`, answered at once and committing
    /// nothing: what mqadmin's `queryMsgByOffset`, `consumeMessage` and `printMsg` do.
    /// `group` is the group to pull as ([`TOOLS_CONSUMER_GROUP`] unless the caller has a
    /// reason), `expression` a tag expression (`*`, `TagA || TagB`).
    pub async fn pull(
        &self,
        group: &str,
        mq: &MessageQueue,
        expression: &str,
        offset: i64,
        max_nums: i32,
    ) -> Result<PullResult> {
        self.ensure_route(mq).await?;
        let subscription = SubscriptionData::from_tag_expression(&mq.topic, expression, 0);
        let args = PullArgs {
            group,
            mq,
            offset,
            max_msg_nums: max_nums,
            commit_offset: None,
            post_subscription: true,
            lite: false,
            suspend: Duration::ZERO,
            rpc_timeout: self.instance.config.api_timeout,
            subscription: &subscription,
        };
        self.pull_api.pull(&self.instance, args).await
    }

    // ---------------------------------------------------------------------------------
    // Messages

    /// Fetches a message by its offsetMsgId from the broker encoded in it.
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let (addr, offset) =
            parse_offset_msg_id(offset_msg_id).map_err(|source| ClientError::Decode {
                addr: String::new(),
                what: "offsetMsgId",
                source,
            })?;
        let addr = addr.to_string();
        let header = ViewMessageRequestHeader {
            topic: None,
            offset,
        };
        let response = self
            .broker_call(
                &addr,
                command_with_header(RequestCode::ViewMessageById, &header)?,
            )
            .await?;
        MessageExt::decode(&response.body.to_bytes())
            .map_err(|source| ClientError::decode(&addr, "VIEW_MESSAGE_BY_ID body", source))
    }

    /// Index lookup by business key (KEYS) on every broker of the topic, re-filtered by
    /// exact key.
    pub async fn query_message_by_key(
        &self,
        topic: &str,
        key: &str,
        max_num: i32,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<MessageExt>> {
        let found = self
            .query(topic, key, max_num, begin_ms, end_ms, false)
            .await?;
        Ok(found
            .into_iter()
            .filter(|m| m.keys().any(|k| k == key))
            .collect())
    }

    /// Index lookup by client message id (UNIQ_KEY).
    pub async fn query_message_by_unique_key(
        &self,
        topic: &str,
        msg_id: &str,
    ) -> Result<Vec<MessageExt>> {
        let found = self.query(topic, msg_id, 32, 0, i64::MAX, true).await?;
        Ok(found
            .into_iter()
            .filter(|m| m.properties.uniq_key() == Some(msg_id))
            .collect())
    }

    async fn query(
        &self,
        topic: &str,
        key: &str,
        max_num: i32,
        begin_ms: i64,
        end_ms: i64,
        unique: bool,
    ) -> Result<Vec<MessageExt>> {
        let header = QueryMessageRequestHeader {
            topic: topic.to_owned(),
            key: key.to_owned(),
            max_num,
            begin_timestamp: begin_ms,
            end_timestamp: end_ms,
            unique_key_query: unique.then_some(true),
        };
        let mut found = Vec::new();
        for addr in self.topic_masters(topic).await? {
            let request = command_with_header(RequestCode::QueryMessage, &header)?;
            let response = self.instance.invoke_broker(&addr, request.clone()).await?;
            match response.response_code() {
                ResponseCode::Success => {
                    let body: Bytes = response.body.to_bytes();
                    found.extend(MessageExt::decode_all(&body).map_err(|source| {
                        ClientError::decode(&addr, "QUERY_MESSAGE body", source)
                    })?);
                }
                ResponseCode::QueryNotFound => {}
                _ => return Err(ClientError::from_response(&addr, &request, &response)),
            }
        }
        Ok(found)
    }

    // ---------------------------------------------------------------------------------
    // Brokers

    /// Runtime counters of one broker (GET_BROKER_RUNTIME_INFO).
    pub async fn broker_runtime_info(&self, broker_addr: &str) -> Result<BTreeMap<String, String>> {
        let response = self
            .broker_call(
                broker_addr,
                client_command(RequestCode::GetBrokerRuntimeInfo),
            )
            .await?;
        Ok(Self::body::<KVTable>(broker_addr, &response, "KVTable")?.table)
    }

    /// A broker's configuration as Java properties text.
    pub async fn broker_config(&self, broker_addr: &str) -> Result<String> {
        let response = self
            .broker_call(broker_addr, client_command(RequestCode::GetBrokerConfig))
            .await?;
        Ok(String::from_utf8_lossy(&response.body.to_bytes()).into_owned())
    }

    /// Changes broker settings at runtime (`key=value` lines).
    pub async fn update_broker_config(
        &self,
        broker_addr: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<()> {
        let text: String = properties
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        let request = client_command(RequestCode::UpdateBrokerConfig).with_body(text);
        self.broker_call(broker_addr, request).await?;
        Ok(())
    }
}
