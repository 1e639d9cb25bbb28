//! The push consumer (spec semantics.md §7): rebalance assigns queues, one task per queue
//! pulls with long polling under flow control, and a bounded pool calls the listener.
//!
//! ```no_run
//! use karman_client::consumer::{concurrently, ConsumeConcurrentlyStatus, PushConsumer};
//!
//! # async fn run() -> Result<(), karman_client::ClientError> {
//! let consumer = PushConsumer::builder()
//!     .namesrv_addr("127.0.0.1:9876")
//!     .group("cg")
//!     .subscribe("TopicTest", "TagA || TagB")
//!     .listener_concurrently(concurrently(|messages| async move {
//!         for m in &messages {
//!             println!("{} {:?}", m.msg_id(), m.body);
//!         }
//!         ConsumeConcurrentlyStatus::ConsumeSuccess
//!     }))
//!     .start()
//!     .await?;
//! # consumer.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::body::{
    CheckClientRequestBody, ConsumeFromWhere, ConsumeMessageDirectlyResult, ConsumeType,
    ConsumerData, ConsumerRunningInfo, MessageModel, MessageQueue, ProcessQueueInfo,
    SubscriptionData, SubscriptionDataOrd,
    fastjson::{self, ObjectKey},
};
use karman_protocol::message::{MessageExt, property};
use karman_protocol::{RequestCode, ResponseCode};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::allocate::{AllocateMessageQueueAveragely, AllocateMessageQueueStrategy};
use super::offset_store::OffsetStore;
use super::process_queue::ProcessQueue;
use super::pull::{PullApi, PullArgs, PullStatus};
use super::rebalance::{self, QueueOwner, RebalanceCore};
use super::{MessageListenerConcurrently, MessageListenerOrderly};
use crate::config::{ClientConfig, check_group, check_topic};
use crate::error::{ClientError, Result};
use crate::instance::{
    CLIENT_INNER_PRODUCER_GROUP, ClientInstance, ConsumerHooks, client_command, wall_clock_ms,
};
use crate::producer::{ProducerConfig, ProducerCore};
use crate::route::retry_topic;

/// Push consumer settings; the defaults are Java's (spec semantics.md §7.4).
#[derive(Debug, Clone)]
pub struct PushConsumerConfig {
    pub group: String,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
    /// For `ConsumeFromTimestamp`: epoch ms; default 30 minutes before construction.
    pub consume_timestamp_ms: i64,
    /// Listener calls running at once (`consumeThreadMin`/`Max`).
    pub consume_thread_count: usize,
    /// Messages per listener call (`consumeMessageBatchMaxSize`).
    pub consume_message_batch_max_size: usize,
    /// Messages asked for per pull (`pullBatchSize`).
    pub pull_batch_size: i32,
    /// Pause between successful pulls of a queue (`pullInterval`).
    pub pull_interval: Duration,
    /// Cached messages per queue before its pulls pause (`pullThresholdForQueue`).
    pub pull_threshold_for_queue: usize,
    /// Cached body MiB per queue before its pulls pause (`pullThresholdSizeForQueue`).
    pub pull_threshold_size_for_queue_mib: usize,
    /// When set, caps cached messages over all queues of a topic: each queue gets this
    /// divided by the topic's queue count (`pullThresholdForTopic`, off by default).
    pub pull_threshold_for_topic: Option<usize>,
    /// The same for body MiB (`pullThresholdSizeForTopic`, off by default).
    pub pull_threshold_size_for_topic_mib: Option<usize>,
    /// Concurrent mode: largest offset span cached before pulls pause.
    pub consume_concurrently_max_span: i64,
    /// −1: 16 for concurrent listeners, unbounded for orderly ones.
    pub max_reconsume_times: i32,
    /// Orderly back-off after SUSPEND_CURRENT_QUEUE_A_MOMENT (clamped to 10 ms–30 s).
    pub suspend_current_queue_time: Duration,
    /// Pause after a failed pull (`pullTimeDelayMillsWhenException`).
    pub pull_time_delay_when_exception: Duration,
    /// How long the broker may hold a pull with nothing to return.
    pub broker_suspend_max_time: Duration,
    /// The pull RPC timeout; longer than the hold.
    pub consumer_timeout_when_suspend: Duration,
    /// Root of broadcasting offset files (`rocketmq.client.localOffsetStoreDir`).
    pub offset_store_dir: PathBuf,
    /// How long shutdown waits for listener calls in progress.
    pub await_termination_when_shutdown: Duration,
    /// Concurrent mode: a listener call older than this has its messages sent back and
    /// released (`consumeTimeout`, 15 min); also the period of that check.
    pub consume_timeout: Duration,
    /// Orderly: how often the broker locks of owned queues are renewed
    /// (`rocketmq.client.rebalance.lockInterval`, 20 s; the client gives a lock up after
    /// 30 s without renewal, the broker after 60 s).
    pub lock_renew_interval: Duration,
}

impl Default for PushConsumerConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self {
            group: String::new(),
            message_model: MessageModel::Clustering,
            consume_from_where: ConsumeFromWhere::ConsumeFromLastOffset,
            consume_timestamp_ms: wall_clock_ms() - 30 * 60 * 1000,
            consume_thread_count: 20,
            consume_message_batch_max_size: 1,
            pull_batch_size: 32,
            pull_interval: Duration::ZERO,
            pull_threshold_for_queue: 1000,
            pull_threshold_size_for_queue_mib: 100,
            pull_threshold_for_topic: None,
            pull_threshold_size_for_topic_mib: None,
            consume_concurrently_max_span: 2000,
            max_reconsume_times: -1,
            suspend_current_queue_time: Duration::from_millis(1000),
            pull_time_delay_when_exception: Duration::from_millis(1000),
            broker_suspend_max_time: Duration::from_secs(15),
            consumer_timeout_when_suspend: Duration::from_secs(30),
            offset_store_dir: std::env::var_os("rocketmq.client.localOffsetStoreDir")
                .map_or_else(|| home.join(".rocketmq_offsets"), PathBuf::from),
            await_termination_when_shutdown: Duration::from_secs(10),
            lock_renew_interval: Duration::from_secs(20),
            consume_timeout: Duration::from_secs(15 * 60),
        }
    }
}

/// Pause when a queue's cache is over a threshold.
const FLOW_CONTROL_PAUSE: Duration = Duration::from_millis(50);
/// Pause after a broker FLOW_CONTROL answer.
const BROKER_FLOW_CONTROL_PAUSE: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub(crate) enum Listener {
    Concurrently(Arc<dyn MessageListenerConcurrently>),
    Orderly(Arc<dyn MessageListenerOrderly>),
}

/// Builds and starts a [`PushConsumer`].
pub struct PushConsumerBuilder {
    client: ClientConfig,
    config: PushConsumerConfig,
    subscriptions: Vec<SubscriptionData>,
    listener: Option<Listener>,
    strategy: Arc<dyn AllocateMessageQueueStrategy>,
}

impl std::fmt::Debug for PushConsumerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConsumerBuilder")
            .field("client", &self.client)
            .field("config", &self.config)
            .field("subscriptions", &self.subscriptions)
            .finish_non_exhaustive()
    }
}

impl Default for PushConsumerBuilder {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            config: PushConsumerConfig::default(),
            subscriptions: Vec::new(),
            listener: None,
            strategy: Arc::new(AllocateMessageQueueAveragely),
        }
    }
}

impl PushConsumerBuilder {
    pub fn namesrv_addr(mut self, addr: impl Into<String>) -> Self {
        self.client.namesrv_addr = addr.into();
        self
    }

    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.config.group = group.into();
        self
    }

    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.client.instance_name = name.into();
        self
    }

    /// Subscribes to a topic with a tag expression: `*`, `TagA`, `TagA || TagB`.
    pub fn subscribe(mut self, topic: impl Into<String>, tag_expression: &str) -> Self {
        self.subscriptions
            .push(SubscriptionData::from_tag_expression(
                topic,
                tag_expression,
                wall_clock_ms(),
            ));
        self
    }

    /// Subscribes with an SQL92 filter over message properties (the broker must enable
    /// property filtering).
    pub fn subscribe_sql92(
        mut self,
        topic: impl Into<String>,
        expression: impl Into<String>,
    ) -> Self {
        self.subscriptions
            .push(SubscriptionData::sql92(topic, expression, wall_clock_ms()));
        self
    }

    pub fn message_model(mut self, model: MessageModel) -> Self {
        self.config.message_model = model;
        self
    }

    pub fn consume_from(mut self, from: ConsumeFromWhere) -> Self {
        self.config.consume_from_where = from;
        self
    }

    /// Start time for `ConsumeFromTimestamp`, epoch milliseconds.
    pub fn consume_timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.config.consume_timestamp_ms = timestamp_ms;
        self
    }

    pub fn allocate_strategy(mut self, strategy: impl AllocateMessageQueueStrategy) -> Self {
        self.strategy = Arc::new(strategy);
        self
    }

    pub fn consume_thread_count(mut self, threads: usize) -> Self {
        self.config.consume_thread_count = threads;
        self
    }

    pub fn consume_message_batch_max_size(mut self, size: usize) -> Self {
        self.config.consume_message_batch_max_size = size;
        self
    }

    pub fn pull_batch_size(mut self, size: i32) -> Self {
        self.config.pull_batch_size = size;
        self
    }

    pub fn max_reconsume_times(mut self, times: i32) -> Self {
        self.config.max_reconsume_times = times;
        self
    }

    pub fn offset_store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.offset_store_dir = dir.into();
        self
    }

    pub fn listener_concurrently(mut self, listener: impl MessageListenerConcurrently) -> Self {
        self.listener = Some(Listener::Concurrently(Arc::new(listener)));
        self
    }

    pub fn listener_orderly(mut self, listener: impl MessageListenerOrderly) -> Self {
        self.listener = Some(Listener::Orderly(Arc::new(listener)));
        self
    }

    pub fn client_config(mut self, config: ClientConfig) -> Self {
        self.client = config;
        self
    }

    /// Replaces every consumer setting except the group when the new one has none.
    pub fn consumer_config(mut self, mut config: PushConsumerConfig) -> Self {
        if config.group.is_empty() {
            config.group = std::mem::take(&mut self.config.group);
        }
        self.config = config;
        self
    }

    fn validate(&self) -> Result<()> {
        check_group("group", &self.config.group)?;
        if self.listener.is_none() {
            return Err(ClientError::InvalidConfig {
                field: "listener",
                reason: "a push consumer needs a concurrent or orderly listener".into(),
            });
        }
        if self.subscriptions.is_empty() {
            return Err(ClientError::InvalidConfig {
                field: "subscribe",
                reason: "subscribe to at least one topic".into(),
            });
        }
        for sub in &self.subscriptions {
            check_topic(&sub.topic)?;
        }
        let c = &self.config;
        for (field, ok) in [
            (
                "consume_thread_count",
                (1..=1000).contains(&c.consume_thread_count),
            ),
            (
                "consume_message_batch_max_size",
                (1..=1024).contains(&c.consume_message_batch_max_size),
            ),
            ("pull_batch_size", (1..=1024).contains(&c.pull_batch_size)),
            (
                "pull_threshold_for_queue",
                (1..=65535).contains(&c.pull_threshold_for_queue),
            ),
            (
                "pull_threshold_size_for_queue_mib",
                (1..=1024).contains(&c.pull_threshold_size_for_queue_mib),
            ),
            (
                "consume_concurrently_max_span",
                (1..=65535).contains(&c.consume_concurrently_max_span),
            ),
            (
                "consumer_timeout_when_suspend",
                c.consumer_timeout_when_suspend > c.broker_suspend_max_time,
            ),
        ] {
            if !ok {
                return Err(ClientError::InvalidConfig {
                    field,
                    reason: "out of range (see the Java client's limits)".into(),
                });
            }
        }
        Ok(())
    }

    /// Validates, registers the group, checks SQL92 subscriptions with the brokers, sends
    /// the first heartbeat and rebalances.
    pub async fn start(self) -> Result<PushConsumer> {
        self.validate()?;
        let Self {
            client,
            config,
            subscriptions,
            listener,
            strategy,
        } = self;
        let Some(listener) = listener else {
            return Err(ClientError::InvalidConfig {
                field: "listener",
                reason: "missing".into(),
            });
        };
        let instance = ClientInstance::get_or_create(&client)?;
        let offset_store = match config.message_model {
            MessageModel::Clustering => OffsetStore::remote(instance.clone(), &config.group),
            MessageModel::Broadcasting => OffsetStore::local(
                &config.offset_store_dir,
                instance.client_id(),
                &config.group,
            )?,
        };
        let rebalance = RebalanceCore::new(
            instance.clone(),
            &config.group,
            config.message_model,
            strategy,
        );
        {
            let mut subs = rebalance.subscriptions.write();
            for sub in subscriptions {
                subs.insert(sub.topic.clone(), sub);
            }
            if config.message_model == MessageModel::Clustering {
                let retry = retry_topic(&config.group);
                subs.insert(
                    retry.clone(),
                    SubscriptionData::from_tag_expression(retry, "*", wall_clock_ms()),
                );
            }
        }
        let send_back = ProducerCore::with_instance(
            instance.clone(),
            ProducerConfig {
                group: CLIENT_INNER_PRODUCER_GROUP.to_owned(),
                ..ProducerConfig::default()
            },
        );
        let inner = Arc::new_cyclic(|this| PushInner {
            this: this.clone(),
            consume_permits: Arc::new(Semaphore::new(config.consume_thread_count)),
            instance: instance.clone(),
            config,
            rebalance,
            offset_store,
            pull_api: PullApi::default(),
            listener,
            send_back,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        instance.register_consumer(&inner.config.group, inner.clone())?;
        if let Err(error) = inner.start_services().await {
            instance.unregister_consumer(&inner.config.group).await;
            return Err(error);
        }
        info!(group = %inner.config.group, client_id = %instance.client_id(), "push consumer started");
        Ok(PushConsumer { inner })
    }
}

/// A running push consumer; see the module docs.
#[derive(Debug, Clone)]
pub struct PushConsumer {
    inner: Arc<PushInner>,
}

impl PushConsumer {
    pub fn builder() -> PushConsumerBuilder {
        PushConsumerBuilder::default()
    }

    pub fn group(&self) -> &str {
        &self.inner.config.group
    }

    pub fn client_id(&self) -> &str {
        self.inner.instance.client_id()
    }

    /// The queues this consumer currently owns.
    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        let mut queues: Vec<_> = self.inner.rebalance.queues().into_iter().collect();
        queues.sort();
        queues
    }

    /// The in-memory offset of a queue (what the next persist writes), or −1.
    pub fn committed_offset(&self, mq: &MessageQueue) -> i64 {
        self.inner.offset_store.table().get(mq).unwrap_or(-1)
    }

    /// Runs a rebalance now instead of waiting for the next period.
    pub async fn rebalance_now(&self) {
        rebalance::rebalance(self.inner.as_ref()).await;
    }

    /// Stops pulling, lets running listener calls finish (bounded), persists offsets,
    /// unlocks orderly queues and unregisters from the brokers.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

/// The state of a push consumer, shared by its tasks.
pub(crate) struct PushInner {
    /// This consumer's own `Arc`, for the tasks it spawns.
    this: std::sync::Weak<PushInner>,
    pub instance: Arc<ClientInstance>,
    pub config: PushConsumerConfig,
    pub rebalance: RebalanceCore,
    pub offset_store: OffsetStore,
    pub pull_api: PullApi,
    pub listener: Listener,
    pub send_back: Arc<ProducerCore>,
    pub consume_permits: Arc<Semaphore>,
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
}

impl std::fmt::Debug for PushInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushInner")
            .field("group", &self.config.group)
            .field("client_id", &self.instance.client_id())
            .finish_non_exhaustive()
    }
}

impl PushInner {
    pub(crate) fn is_orderly(&self) -> bool {
        matches!(self.listener, Listener::Orderly(_))
    }

    pub(crate) fn is_clustering(&self) -> bool {
        self.config.message_model == MessageModel::Clustering
    }

    /// Effective `max_reconsume_times`.
    pub(crate) fn max_reconsume_times(&self) -> i32 {
        match (self.config.max_reconsume_times, self.is_orderly()) {
            (-1, false) => 16,
            (-1, true) => i32::MAX,
            (n, _) => n,
        }
    }

    async fn start_services(self: &Arc<Self>) -> Result<()> {
        let topics: Vec<String> = self
            .rebalance
            .subscriptions
            .read()
            .keys()
            .cloned()
            .collect();
        for topic in &topics {
            let _ = self.instance.update_route(topic, None).await;
        }
        self.check_client_in_brokers().await?;
        self.instance.send_heartbeat_to_all_brokers().await;
        if self.is_orderly() && self.is_clustering() {
            self.spawn_lock_renewal();
        }
        if !self.is_orderly() && self.is_clustering() {
            self.spawn_consume_timeout_cleaner();
        }
        self.instance.rebalance_immediately();
        Ok(())
    }

    /// CHECK_CLIENT_CONFIG for every SQL92 subscription, so a broker without property
    /// filtering fails the start instead of every pull.
    async fn check_client_in_brokers(&self) -> Result<()> {
        let subs: Vec<SubscriptionData> = self
            .rebalance
            .subscriptions
            .read()
            .values()
            .filter(|s| !s.is_tag_type())
            .cloned()
            .collect();
        for sub in subs {
            let body = CheckClientRequestBody {
                client_id: self.instance.client_id().to_owned(),
                group: self.config.group.clone(),
                namespace: None,
                subscription_data: sub.clone(),
            };
            let masters: Vec<String> = self
                .instance
                .all_broker_addrs()
                .into_iter()
                .filter(|(_, id, _)| *id == crate::route::MASTER_ID)
                .map(|(_, _, addr)| addr)
                .collect();
            for addr in masters {
                let request = client_command(RequestCode::CheckClientConfig)
                    .with_body(fastjson::to_vec(&body));
                let response = self.instance.invoke_broker(&addr, request.clone()).await?;
                if response.response_code() != ResponseCode::Success {
                    return Err(ClientError::from_response(&addr, &request, &response));
                }
            }
        }
        Ok(())
    }

    /// Sleeps unless the consumer stops first; `false` means stopped.
    pub(crate) async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }

    fn subscription(&self, topic: &str) -> Option<SubscriptionData> {
        self.rebalance.subscriptions.read().get(topic).cloned()
    }

    /// The per-queue cache limits (messages, bytes): the queue settings, or the topic
    /// settings divided over the topic's owned queues (spec semantics.md §7.4).
    fn queue_thresholds(&self, topic: &str) -> (usize, usize) {
        let c = &self.config;
        let mut count = c.pull_threshold_for_queue;
        let mut bytes = c.pull_threshold_size_for_queue_mib * 1024 * 1024;
        if c.pull_threshold_for_topic.is_some() || c.pull_threshold_size_for_topic_mib.is_some() {
            let queues = self
                .rebalance
                .process_queues
                .lock()
                .keys()
                .filter(|mq| mq.topic == topic)
                .count()
                .max(1);
            if let Some(topic_count) = c.pull_threshold_for_topic {
                count = (topic_count / queues).max(1);
            }
            if let Some(topic_mib) = c.pull_threshold_size_for_topic_mib {
                bytes = (topic_mib * 1024 * 1024 / queues).max(1);
            }
        }
        (count, bytes)
    }

    /// Flow control (spec semantics.md §7.4): whether this queue must wait before pulling.
    fn must_wait(&self, mq: &MessageQueue, pq: &ProcessQueue) -> bool {
        let (count_max, bytes_max) = self.queue_thresholds(&mq.topic);
        if pq.message_count() > count_max || pq.message_bytes() > bytes_max {
            return true;
        }
        !self.is_orderly() && pq.max_span() > self.config.consume_concurrently_max_span
    }

    /// Whether the queue may pull now: its subscription, or how long to wait (flow control,
    /// an orderly queue not locked yet, a topic no longer subscribed).
    fn pull_gate(
        &self,
        mq: &MessageQueue,
        pq: &ProcessQueue,
    ) -> Result<SubscriptionData, Duration> {
        if self.must_wait(mq, pq) {
            return Err(FLOW_CONTROL_PAUSE);
        }
        if self.is_orderly() && self.is_clustering() && !pq.is_locked() {
            return Err(self.config.pull_time_delay_when_exception);
        }
        self.subscription(&mq.topic)
            .ok_or(self.config.pull_time_delay_when_exception)
    }

    /// The per-queue pull loop.
    async fn pull_loop(self: Arc<Self>, mq: MessageQueue, pq: Arc<ProcessQueue>, mut offset: i64) {
        debug!(%mq, offset, "pull task started");
        while !pq.is_dropped() && !self.stop.is_cancelled() {
            pq.note_pull(Instant::now());
            let subscription = match self.pull_gate(&mq, &pq) {
                Ok(subscription) => subscription,
                Err(pause) => {
                    if !self.pause(pause).await {
                        return;
                    }
                    continue;
                }
            };
            let commit_offset = if self.is_clustering() {
                self.offset_store.table().get(&mq)
            } else {
                None
            };
            let args = PullArgs {
                group: &self.config.group,
                mq: &mq,
                offset,
                max_msg_nums: self.config.pull_batch_size,
                commit_offset,
                post_subscription: false,
                lite: false,
                suspend: self.config.broker_suspend_max_time,
                rpc_timeout: self.config.consumer_timeout_when_suspend,
                subscription: &subscription,
            };
            let pulled = tokio::select! {
                _ = self.stop.cancelled() => return,
                pulled = self.pull_api.pull(&self.instance, args) => pulled,
            };
            let delay = match pulled {
                Ok(result) => match result.status {
                    PullStatus::Found => {
                        offset = result.next_begin_offset;
                        self.dispatch(&mq, &pq, result.messages);
                        self.config.pull_interval
                    }
                    PullStatus::NoNewMsg | PullStatus::NoMatchedMsg => {
                        offset = result.next_begin_offset;
                        if pq.message_count() == 0 {
                            // Nothing in flight: the broker's next offset is safe to commit.
                            self.offset_store.update(&mq, offset, true);
                        }
                        Duration::ZERO
                    }
                    PullStatus::OffsetIllegal => {
                        self.offset_moved(&mq, &pq, result.next_begin_offset).await;
                        return;
                    }
                },
                Err(error) => {
                    let flow_controlled = error.response_code() == Some(ResponseCode::FlowControl);
                    debug!(%mq, %error, "pull failed");
                    if flow_controlled {
                        BROKER_FLOW_CONTROL_PAUSE
                    } else {
                        self.config.pull_time_delay_when_exception
                    }
                }
            };
            if !delay.is_zero() && !self.pause(delay).await {
                return;
            }
        }
        debug!(%mq, "pull task stopped");
    }

    /// PULL_OFFSET_MOVED: store the broker's offset, drop the queue, and let rebalance take
    /// it again from there.
    async fn offset_moved(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>, next_offset: i64) {
        warn!(%mq, next_offset, "pull offset out of range; moving to the broker's offset");
        pq.set_dropped();
        // Wait for the broker to store it: the rebalance about to re-take the queue reads
        // the offset back from there.
        if let Err(error) = self
            .offset_store
            .update_and_persist_sync(mq, next_offset)
            .await
        {
            warn!(%mq, %error, "cannot store the corrected offset; the next pull corrects it again");
        }
        self.rebalance.process_queues.lock().remove(mq);
        self.pull_api.forget(mq);
        self.instance.rebalance_immediately();
    }

    /// Puts pulled messages in the cache and hands them to the consume service.
    fn dispatch(
        self: &Arc<Self>,
        mq: &MessageQueue,
        pq: &Arc<ProcessQueue>,
        mut messages: Vec<MessageExt>,
    ) {
        if messages.is_empty() {
            return;
        }
        let retry = retry_topic(&self.config.group);
        for message in &mut messages {
            if message.topic == retry
                && let Some(original) = message.properties.get(property::RETRY_TOPIC)
            {
                message.topic = original.to_owned();
            }
        }
        let schedule_orderly = pq.put_messages(messages.clone());
        match &self.listener {
            Listener::Concurrently(listener) => {
                for batch in messages.chunks(self.config.consume_message_batch_max_size) {
                    self.submit_concurrently(
                        listener.clone(),
                        mq.clone(),
                        pq.clone(),
                        batch.to_vec(),
                        Duration::ZERO,
                    );
                }
            }
            Listener::Orderly(listener) => {
                if schedule_orderly {
                    self.submit_orderly(listener.clone(), mq.clone(), pq.clone(), Duration::ZERO);
                }
            }
        }
    }

    async fn shutdown(&self) {
        if self.stop.is_cancelled() {
            return;
        }
        self.stop.cancel();
        self.consume_permits.close();
        self.tasks.close();
        if tokio::time::timeout(
            self.config.await_termination_when_shutdown,
            self.tasks.wait(),
        )
        .await
        .is_err()
        {
            warn!(group = %self.config.group, "listener calls still running at shutdown");
        }
        let queues = self.rebalance.queues();
        self.offset_store.persist_all(&queues).await;
        if self.is_orderly() && self.is_clustering() {
            self.unlock_all().await;
        }
        for pq in self.rebalance.process_queues.lock().values() {
            pq.set_dropped();
        }
        self.rebalance.process_queues.lock().clear();
        self.instance.unregister_consumer(&self.config.group).await;
        info!(group = %self.config.group, "push consumer stopped");
    }
}

#[async_trait]
impl QueueOwner for PushInner {
    fn rebalance_core(&self) -> &RebalanceCore {
        &self.rebalance
    }

    async fn add_queue(&self, mq: &MessageQueue) -> bool {
        if self.stop.is_cancelled() {
            return false;
        }
        let orderly_lock = self.is_orderly() && self.is_clustering();
        if orderly_lock && !self.lock_one(mq).await {
            debug!(%mq, "queue is locked by another member; not taken this round");
            return false;
        }
        self.offset_store.remove(mq);
        let offset = match rebalance::compute_pull_from_where(
            &self.instance,
            &self.offset_store,
            mq,
            self.config.consume_from_where,
            self.config.consume_timestamp_ms,
        )
        .await
        {
            Ok(offset) => offset,
            Err(error) => {
                warn!(%mq, %error, "cannot decide where to start; retrying at the next rebalance");
                return false;
            }
        };
        let pq = Arc::new(ProcessQueue::new(Instant::now()));
        if orderly_lock {
            pq.set_locked(true, Instant::now());
        }
        self.rebalance
            .process_queues
            .lock()
            .insert(mq.clone(), pq.clone());
        let Some(this) = self.this.upgrade() else {
            return false;
        };
        info!(%mq, offset, "queue taken");
        self.tasks.spawn(this.pull_loop(mq.clone(), pq, offset));
        true
    }

    async fn remove_queue(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>) -> bool {
        self.offset_store.persist(mq).await;
        self.offset_store.remove(mq);
        self.pull_api.forget(mq);
        if self.is_orderly() && self.is_clustering() {
            return self.release_orderly_queue(mq, pq).await;
        }
        info!(%mq, "queue released");
        true
    }

    fn expires_idle_queues(&self) -> bool {
        true
    }

    async fn queues_changed(&self, _topic: &str) {
        self.instance.send_heartbeat_to_all_brokers().await;
    }
}

#[async_trait]
impl ConsumerHooks for PushInner {
    fn consumer_data(&self) -> ConsumerData {
        ConsumerData {
            consume_from_where: self.config.consume_from_where,
            consume_type: ConsumeType::ConsumePassively,
            group_name: self.config.group.clone(),
            message_model: self.config.message_model,
            subscription_data_set: self
                .rebalance
                .subscriptions
                .read()
                .values()
                .cloned()
                .collect(),
            unit_mode: false,
        }
    }

    fn subscribed_topics(&self) -> Vec<String> {
        self.rebalance
            .subscriptions
            .read()
            .keys()
            .cloned()
            .collect()
    }

    async fn rebalance(&self) {
        if !self.stop.is_cancelled() {
            rebalance::rebalance(self).await;
        }
    }

    async fn persist_offsets(&self) {
        let queues = self.rebalance.queues();
        self.offset_store.persist_all(&queues).await;
    }

    async fn reset_offsets(&self, topic: &str, offsets: BTreeMap<MessageQueue, i64>) {
        let dropped: Vec<_> = {
            let mut table = self.rebalance.process_queues.lock();
            let keys: Vec<_> = table
                .keys()
                .filter(|mq| mq.topic == topic)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|mq| table.remove(&mq))
                .collect()
        };
        for pq in &dropped {
            pq.set_dropped();
        }
        for (mq, offset) in &offsets {
            self.offset_store.update(mq, *offset, false);
            self.offset_store.persist(mq).await;
        }
        self.instance.rebalance_immediately();
    }

    fn running_info(&self) -> ConsumerRunningInfo {
        let mut info = ConsumerRunningInfo::default();
        let c = &self.config;
        for (key, value) in [
            ("consumerGroup", c.group.clone()),
            ("consumeType", "CONSUME_PASSIVELY".to_owned()),
            (
                "messageModel",
                format!("{:?}", c.message_model).to_uppercase(),
            ),
            ("consumeOrderly", self.is_orderly().to_string()),
            ("consumeThreadMin", c.consume_thread_count.to_string()),
            ("consumeThreadMax", c.consume_thread_count.to_string()),
            ("pullBatchSize", c.pull_batch_size.to_string()),
            (
                "consumeMessageBatchMaxSize",
                c.consume_message_batch_max_size.to_string(),
            ),
            ("PROP_CLIENT_VERSION", env!("CARGO_PKG_VERSION").to_owned()),
            ("PROP_CONSUMER_START_TIMESTAMP", wall_clock_ms().to_string()),
        ] {
            info.properties.insert(key.to_owned(), value);
        }
        for sub in self.rebalance.subscriptions.read().values() {
            info.subscription_set
                .insert(SubscriptionDataOrd(sub.clone()));
        }
        for (mq, pq) in self.rebalance.process_queues.lock().iter() {
            let (min, max) = pq.offset_range().unwrap_or((0, 0));
            info.mq_table.insert(
                ObjectKey(mq.clone()),
                ProcessQueueInfo {
                    cached_msg_count: i32::try_from(pq.message_count()).unwrap_or(i32::MAX),
                    cached_msg_min_offset: min,
                    cached_msg_max_offset: max,
                    cached_msg_size_in_mib: i32::try_from(pq.message_bytes() / (1024 * 1024))
                        .unwrap_or(i32::MAX),
                    commit_offset: self.offset_store.table().get(mq).unwrap_or(-1),
                    droped: pq.is_dropped(),
                    locked: pq.is_locked(),
                    try_unlock_times: i64::from(pq.try_unlock_times()),
                    ..ProcessQueueInfo::default()
                },
            );
        }
        info
    }

    async fn consume_directly(
        &self,
        message: MessageExt,
        broker_name: Option<String>,
    ) -> ConsumeMessageDirectlyResult {
        self.consume_one_directly(message, broker_name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_refuses_what_java_refuses() {
        let no_listener = PushConsumer::builder().group("g").subscribe("T", "*");
        assert!(matches!(
            no_listener.validate(),
            Err(ClientError::InvalidConfig {
                field: "listener",
                ..
            })
        ));
        let no_sub =
            PushConsumer::builder()
                .group("g")
                .listener_concurrently(super::super::concurrently(|_| async {
                    super::super::ConsumeConcurrentlyStatus::ConsumeSuccess
                }));
        assert!(matches!(
            no_sub.validate(),
            Err(ClientError::InvalidConfig {
                field: "subscribe",
                ..
            })
        ));
        let bad_batch = PushConsumer::builder()
            .group("g")
            .subscribe("T", "*")
            .consume_message_batch_max_size(0)
            .listener_concurrently(super::super::concurrently(|_| async {
                super::super::ConsumeConcurrentlyStatus::ConsumeSuccess
            }));
        assert!(matches!(
            bad_batch.validate(),
            Err(ClientError::InvalidConfig {
                field: "consume_message_batch_max_size",
                ..
            })
        ));
    }

    #[test]
    fn defaults_match_java() {
        let c = PushConsumerConfig::default();
        assert_eq!(
            (
                c.pull_batch_size,
                c.pull_threshold_for_queue,
                c.pull_threshold_size_for_queue_mib
            ),
            (32, 1000, 100)
        );
        assert_eq!(
            (
                c.consume_concurrently_max_span,
                c.consume_message_batch_max_size,
                c.consume_thread_count
            ),
            (2000, 1, 20)
        );
        assert_eq!(c.broker_suspend_max_time, Duration::from_secs(15));
        assert_eq!(c.consumer_timeout_when_suspend, Duration::from_secs(30));
        assert!((wall_clock_ms() - 30 * 60 * 1000 - c.consume_timestamp_ms).abs() < 5_000);
    }
}
