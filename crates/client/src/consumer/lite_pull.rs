//! The lite pull consumer (Java `DefaultLitePullConsumer`, spec remoting.md §8.3): the
//! application calls [`LitePullConsumer::poll`]. Queues come from a subscription (with
//! rebalance) or from [`LitePullConsumer::assign`]; background tasks pull ahead into a
//! bounded buffer; offsets are committed automatically every 5 s or by `commit_sync`.
//!
//! ```no_run
//! use std::time::Duration;
//! use karman_client::consumer::LitePullConsumer;
//!
//! # async fn run() -> Result<(), karman_client::ClientError> {
//! let consumer = LitePullConsumer::builder().namesrv_addr("127.0.0.1:9876").group("lite").build().await?;
//! consumer.subscribe("TopicTest", "*").await?;
//! loop {
//!     for message in consumer.poll(Duration::from_secs(1)).await {
//!         println!("{}", message.msg_id());
//!     }
//! #   break;
//! }
//! consumer.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::body::fastjson::ObjectKey;
use karman_protocol::body::{
    ConsumeFromWhere, ConsumeMessageDirectlyResult, ConsumeType, ConsumerData, ConsumerRunningInfo,
    MessageModel, MessageQueue, ProcessQueueInfo, SubscriptionData, SubscriptionDataOrd,
};
use karman_protocol::message::MessageExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::allocate::{AllocateMessageQueueAveragely, AllocateMessageQueueStrategy};
use super::offset_store::{OffsetStore, ReadOffsetType};
use super::process_queue::ProcessQueue;
use super::pull::{self, PullApi, PullArgs, PullStatus};
use super::rebalance::{self, QueueOwner, RebalanceCore};
use crate::config::{ClientConfig, check_group, check_topic};
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, ConsumerHooks, wall_clock_ms};

/// Lite pull settings; defaults are Java's.
#[derive(Debug, Clone)]
pub struct LitePullConsumerConfig {
    pub group: String,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
    pub consume_timestamp_ms: i64,
    /// Messages per pull (`pullBatchSize`, 10).
    pub pull_batch_size: i32,
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
    /// Cached messages per queue before its pulls pause.
    pub pull_threshold_for_queue: usize,
    /// Pulled batches waiting for `poll`; pull tasks wait past it.
    pub consume_request_queue_max: usize,
    pub broker_suspend_max_time: Duration,
    pub consumer_timeout_when_suspend: Duration,
    pub pull_time_delay_when_exception: Duration,
    pub offset_store_dir: PathBuf,
}

impl Default for LitePullConsumerConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self {
            group: String::new(),
            message_model: MessageModel::Clustering,
            consume_from_where: ConsumeFromWhere::ConsumeFromLastOffset,
            consume_timestamp_ms: wall_clock_ms() - 30 * 60 * 1000,
            pull_batch_size: 10,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            pull_threshold_for_queue: 1000,
            consume_request_queue_max: 1024,
            broker_suspend_max_time: Duration::from_secs(20),
            consumer_timeout_when_suspend: Duration::from_secs(30),
            pull_time_delay_when_exception: Duration::from_millis(1000),
            offset_store_dir: home.join(".rocketmq_offsets"),
        }
    }
}

/// Builds a [`LitePullConsumer`].
pub struct LitePullConsumerBuilder {
    client: ClientConfig,
    config: LitePullConsumerConfig,
    strategy: Arc<dyn AllocateMessageQueueStrategy>,
}

impl std::fmt::Debug for LitePullConsumerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LitePullConsumerBuilder")
            .field("client", &self.client)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LitePullConsumerBuilder {
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

    pub fn message_model(mut self, model: MessageModel) -> Self {
        self.config.message_model = model;
        self
    }

    pub fn consume_from(mut self, from: ConsumeFromWhere) -> Self {
        self.config.consume_from_where = from;
        self
    }

    pub fn auto_commit(mut self, auto_commit: bool) -> Self {
        self.config.auto_commit = auto_commit;
        self
    }

    pub fn pull_batch_size(mut self, size: i32) -> Self {
        self.config.pull_batch_size = size;
        self
    }

    pub fn allocate_strategy(mut self, strategy: impl AllocateMessageQueueStrategy) -> Self {
        self.strategy = Arc::new(strategy);
        self
    }

    pub fn client_config(mut self, config: ClientConfig) -> Self {
        self.client = config;
        self
    }

    pub fn consumer_config(mut self, mut config: LitePullConsumerConfig) -> Self {
        if config.group.is_empty() {
            config.group = std::mem::take(&mut self.config.group);
        }
        self.config = config;
        self
    }

    pub async fn build(self) -> Result<LitePullConsumer> {
        check_group("group", &self.config.group)?;
        if !(1..=1024).contains(&self.config.pull_batch_size) {
            return Err(ClientError::InvalidConfig {
                field: "pull_batch_size",
                reason: "must be 1 to 1024".into(),
            });
        }
        let instance = ClientInstance::get_or_create(&self.client)?;
        let config = self.config;
        let offset_store = match config.message_model {
            MessageModel::Clustering => OffsetStore::remote(instance.clone(), &config.group),
            MessageModel::Broadcasting => OffsetStore::local(
                &config.offset_store_dir,
                instance.client_id(),
                &config.group,
            )?,
        };
        let (requests, requests_rx) = mpsc::channel(config.consume_request_queue_max.max(1));
        let inner = Arc::new_cyclic(|this| LiteInner {
            this: this.clone(),
            rebalance: RebalanceCore::new(
                instance.clone(),
                &config.group,
                config.message_model,
                self.strategy,
            ),
            instance: instance.clone(),
            offset_store,
            pull_api: PullApi::default(),
            assigned: Mutex::new(None),
            consumed: Mutex::default(),
            requests,
            requests_rx: tokio::sync::Mutex::new(requests_rx),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            config,
        });
        instance.register_consumer(&inner.config.group, inner.clone())?;
        if inner.config.auto_commit {
            inner.spawn_auto_commit();
        }
        Ok(LitePullConsumer { inner })
    }
}

/// A lite pull consumer; see the module docs.
#[derive(Debug, Clone)]
pub struct LitePullConsumer {
    inner: Arc<LiteInner>,
}

impl LitePullConsumer {
    pub fn builder() -> LitePullConsumerBuilder {
        LitePullConsumerBuilder {
            client: ClientConfig::default(),
            config: LitePullConsumerConfig::default(),
            strategy: Arc::new(AllocateMessageQueueAveragely),
        }
    }

    /// Subscribes to a topic; rebalance decides which of its queues this member polls.
    pub async fn subscribe(&self, topic: &str, tag_expression: &str) -> Result<()> {
        check_topic(topic)?;
        if self.inner.assigned.lock().is_some() {
            return Err(ClientError::InvalidConfig {
                field: "subscribe",
                reason: "this consumer already uses assign()".into(),
            });
        }
        let sub = SubscriptionData::from_tag_expression(topic, tag_expression, wall_clock_ms());
        self.inner
            .rebalance
            .subscriptions
            .write()
            .insert(topic.to_owned(), sub);
        self.inner.instance.update_route(topic, None).await?;
        self.inner.instance.send_heartbeat_to_all_brokers().await;
        rebalance::rebalance(self.inner.as_ref()).await;
        Ok(())
    }

    /// Polls exactly these queues, without rebalance.
    pub async fn assign(&self, queues: Vec<MessageQueue>) -> Result<()> {
        if !self.inner.rebalance.subscriptions.read().is_empty() {
            return Err(ClientError::InvalidConfig {
                field: "assign",
                reason: "this consumer already uses subscribe()".into(),
            });
        }
        let wanted: BTreeSet<MessageQueue> = queues.into_iter().collect();
        *self.inner.assigned.lock() = Some(wanted.clone());
        for mq in &wanted {
            if self
                .inner
                .instance
                .master_or_any_addr(&mq.broker_name)
                .is_none()
            {
                self.inner.instance.update_route(&mq.topic, None).await?;
            }
        }
        let current = self.inner.rebalance.queues();
        for mq in current.iter().filter(|mq| !wanted.contains(*mq)) {
            if let Some(pq) = self.inner.rebalance.process_queue(mq) {
                pq.set_dropped();
                self.inner.remove_queue(mq, &pq).await;
                self.inner.rebalance.process_queues.lock().remove(mq);
            }
        }
        for mq in wanted.iter().filter(|mq| !current.contains(*mq)) {
            if !self.inner.add_queue(mq).await {
                warn!(%mq, "assigned queue could not start; retry assign() later");
            }
        }
        Ok(())
    }

    /// The readable queues of a topic.
    pub async fn fetch_message_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        self.inner.instance.update_route(topic, None).await?;
        self.inner.instance.subscribe_queues(topic).await
    }

    /// The queues this consumer polls now.
    pub fn assignment(&self) -> Vec<MessageQueue> {
        let mut queues: Vec<_> = self.inner.rebalance.queues().into_iter().collect();
        queues.sort();
        queues
    }

    /// Waits up to `timeout` for the next pulled batch; empty when none came.
    pub async fn poll(&self, timeout: Duration) -> Vec<MessageExt> {
        self.inner.poll(timeout).await
    }

    /// Moves a queue to `offset` (between its min and max offsets).
    pub async fn seek(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        let (min, max) = (
            pull::min_offset(&self.inner.instance, mq).await?,
            pull::max_offset(&self.inner.instance, mq).await?,
        );
        if offset < min || offset > max {
            return Err(ClientError::InvalidConfig {
                field: "offset",
                reason: format!("{offset} is outside [{min}, {max}] of {mq}"),
            });
        }
        self.inner.restart_queue(mq, offset)
    }

    pub async fn seek_to_begin(&self, mq: &MessageQueue) -> Result<()> {
        let min = pull::min_offset(&self.inner.instance, mq).await?;
        self.inner.restart_queue(mq, min)
    }

    pub async fn seek_to_end(&self, mq: &MessageQueue) -> Result<()> {
        let max = pull::max_offset(&self.inner.instance, mq).await?;
        self.inner.restart_queue(mq, max)
    }

    /// The committed offset of a queue in the offset store (broker or file), −1 if none.
    pub async fn committed(&self, mq: &MessageQueue) -> i64 {
        self.inner
            .offset_store
            .read(mq, ReadOffsetType::ReadFromStore)
            .await
    }

    /// Commits what `poll` has returned so far and waits for the broker.
    pub async fn commit_sync(&self) -> Result<()> {
        self.inner.commit(true).await
    }

    /// Commits the given offsets ("next message to consume") and waits for the broker.
    pub async fn commit(&self, offsets: BTreeMap<MessageQueue, i64>) -> Result<()> {
        for (mq, offset) in offsets {
            self.inner
                .offset_store
                .update_and_persist_sync(&mq, offset)
                .await?;
        }
        Ok(())
    }

    /// Stops pulling, commits (with auto-commit on) and unregisters.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

struct ConsumeRequest {
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    messages: Vec<MessageExt>,
}

pub(crate) struct LiteInner {
    this: Weak<LiteInner>,
    instance: Arc<ClientInstance>,
    config: LitePullConsumerConfig,
    rebalance: RebalanceCore,
    offset_store: OffsetStore,
    pull_api: PullApi,
    /// `Some` in assign mode.
    assigned: Mutex<Option<BTreeSet<MessageQueue>>>,
    /// Next offset to consume per queue, as far as `poll` has returned.
    consumed: Mutex<HashMap<MessageQueue, i64>>,
    requests: mpsc::Sender<ConsumeRequest>,
    requests_rx: tokio::sync::Mutex<mpsc::Receiver<ConsumeRequest>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for LiteInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiteInner")
            .field("group", &self.config.group)
            .finish_non_exhaustive()
    }
}

impl LiteInner {
    async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }

    fn subscription(&self, topic: &str) -> SubscriptionData {
        self.rebalance
            .subscriptions
            .read()
            .get(topic)
            .cloned()
            .unwrap_or_else(|| SubscriptionData::from_tag_expression(topic, "*", 0))
    }

    async fn poll(&self, timeout: Duration) -> Vec<MessageExt> {
        let deadline = Instant::now() + timeout;
        let mut rx = match tokio::time::timeout_at(deadline, self.requests_rx.lock()).await {
            Ok(rx) => rx,
            Err(_) => return Vec::new(),
        };
        loop {
            let request = tokio::select! {
                _ = self.stop.cancelled() => return Vec::new(),
                request = tokio::time::timeout_at(deadline, rx.recv()) => match request {
                    Ok(Some(request)) => request,
                    _ => return Vec::new(),
                },
            };
            if request.pq.is_dropped() {
                continue;
            }
            let offsets: Vec<i64> = request.messages.iter().map(|m| m.queue_offset).collect();
            let next = request.pq.remove_messages(&offsets);
            if next >= 0 {
                self.consumed.lock().insert(request.mq.clone(), next);
            }
            return request.messages;
        }
    }

    /// Replaces a queue's pull task with one starting at `offset`.
    fn restart_queue(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        let Some(old) = self.rebalance.process_queue(mq) else {
            return Err(ClientError::InvalidConfig {
                field: "seek",
                reason: format!("{mq} is not assigned to this consumer"),
            });
        };
        old.set_dropped();
        let pq = Arc::new(ProcessQueue::new(Instant::now()));
        self.rebalance
            .process_queues
            .lock()
            .insert(mq.clone(), pq.clone());
        self.consumed.lock().insert(mq.clone(), offset);
        if let Some(this) = self.this.upgrade() {
            self.tasks.spawn(this.pull_loop(mq.clone(), pq, offset));
        }
        Ok(())
    }

    async fn pull_loop(self: Arc<Self>, mq: MessageQueue, pq: Arc<ProcessQueue>, mut offset: i64) {
        while !pq.is_dropped() && !self.stop.is_cancelled() {
            pq.note_pull(Instant::now());
            if pq.message_count() > self.config.pull_threshold_for_queue {
                if !self.pause(Duration::from_millis(50)).await {
                    return;
                }
                continue;
            }
            let subscription = self.subscription(&mq.topic);
            let args = PullArgs {
                group: &self.config.group,
                mq: &mq,
                offset,
                max_msg_nums: self.config.pull_batch_size,
                commit_offset: None,
                post_subscription: true,
                lite: true,
                suspend: self.config.broker_suspend_max_time,
                rpc_timeout: self.config.consumer_timeout_when_suspend,
                subscription: &subscription,
            };
            let pulled = tokio::select! {
                _ = self.stop.cancelled() => return,
                pulled = self.pull_api.pull(&self.instance, args) => pulled,
            };
            match pulled {
                Ok(result) => {
                    if result.status == PullStatus::OffsetIllegal {
                        warn!(%mq, offset, next = result.next_begin_offset, "offset out of range; moving on");
                    }
                    offset = result.next_begin_offset;
                    if result.messages.is_empty() || pq.is_dropped() {
                        continue;
                    }
                    pq.put_messages(result.messages.clone());
                    let request = ConsumeRequest {
                        mq: mq.clone(),
                        pq: pq.clone(),
                        messages: result.messages,
                    };
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        sent = self.requests.send(request) => if sent.is_err() { return },
                    }
                }
                Err(error) => {
                    debug!(%mq, %error, "lite pull failed");
                    if !self.pause(self.config.pull_time_delay_when_exception).await {
                        return;
                    }
                }
            }
        }
    }

    /// Writes the consumed offsets into the store and persists them.
    async fn commit(&self, sync: bool) -> Result<()> {
        let consumed: Vec<(MessageQueue, i64)> = self
            .consumed
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let owned = self.rebalance.queues();
        for (mq, offset) in &consumed {
            if sync {
                self.offset_store
                    .update_and_persist_sync(mq, *offset)
                    .await?;
            } else {
                self.offset_store.update(mq, *offset, false);
            }
        }
        if !sync {
            let queues: HashSet<MessageQueue> = consumed
                .into_iter()
                .map(|(mq, _)| mq)
                .filter(|mq| owned.contains(mq))
                .collect();
            self.offset_store.persist_all(&queues).await;
        }
        Ok(())
    }

    fn spawn_auto_commit(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        let (stop, period) = (self.stop.clone(), self.config.auto_commit_interval);
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                let Some(this) = this.upgrade() else { return };
                let _ = this.commit(false).await;
            }
        });
    }

    async fn shutdown(&self) {
        if self.stop.is_cancelled() {
            return;
        }
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if self.config.auto_commit {
            let _ = self.commit(false).await;
        }
        for pq in self.rebalance.process_queues.lock().values() {
            pq.set_dropped();
        }
        self.instance.unregister_consumer(&self.config.group).await;
        info!(group = %self.config.group, "lite pull consumer stopped");
    }
}

#[async_trait]
impl QueueOwner for LiteInner {
    fn rebalance_core(&self) -> &RebalanceCore {
        &self.rebalance
    }

    async fn add_queue(&self, mq: &MessageQueue) -> bool {
        if self.stop.is_cancelled() {
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
                warn!(%mq, %error, "cannot decide where to start");
                return false;
            }
        };
        let pq = Arc::new(ProcessQueue::new(Instant::now()));
        self.rebalance
            .process_queues
            .lock()
            .insert(mq.clone(), pq.clone());
        self.consumed.lock().insert(mq.clone(), offset);
        let Some(this) = self.this.upgrade() else {
            return false;
        };
        self.tasks.spawn(this.pull_loop(mq.clone(), pq, offset));
        true
    }

    async fn remove_queue(&self, mq: &MessageQueue, _pq: &Arc<ProcessQueue>) -> bool {
        let consumed = self.consumed.lock().remove(mq);
        if let Some(offset) = consumed.filter(|_| self.config.auto_commit) {
            self.offset_store.update(mq, offset, false);
        }
        self.offset_store.persist(mq).await;
        self.offset_store.remove(mq);
        self.pull_api.forget(mq);
        true
    }
}

#[async_trait]
impl ConsumerHooks for LiteInner {
    fn consumer_data(&self) -> ConsumerData {
        ConsumerData {
            consume_from_where: self.config.consume_from_where,
            consume_type: ConsumeType::ConsumeActively,
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
        let mut topics: Vec<String> = self
            .rebalance
            .subscriptions
            .read()
            .keys()
            .cloned()
            .collect();
        if let Some(assigned) = self.assigned.lock().as_ref() {
            topics.extend(assigned.iter().map(|mq| mq.topic.clone()));
        }
        topics.sort();
        topics.dedup();
        topics
    }

    async fn rebalance(&self) {
        let subscribe_mode = self.assigned.lock().is_none();
        if subscribe_mode && !self.stop.is_cancelled() {
            rebalance::rebalance(self).await;
        }
    }

    async fn persist_offsets(&self) {
        let queues = self.rebalance.queues();
        self.offset_store.persist_all(&queues).await;
    }

    async fn reset_offsets(&self, _topic: &str, offsets: BTreeMap<MessageQueue, i64>) {
        for (mq, offset) in offsets {
            self.offset_store.update(&mq, offset, false);
            if self.rebalance.process_queue(&mq).is_some() {
                let _ = self.restart_queue(&mq, offset);
            }
        }
    }

    fn running_info(&self) -> ConsumerRunningInfo {
        let mut info = ConsumerRunningInfo::default();
        info.properties
            .insert("consumeType".into(), "CONSUME_ACTIVELY".into());
        info.properties
            .insert("consumerGroup".into(), self.config.group.clone());
        for sub in self.rebalance.subscriptions.read().values() {
            info.subscription_set
                .insert(SubscriptionDataOrd(sub.clone()));
        }
        // The queues this member holds, as Java's lite pull reports them: admin tools
        // (consumerProgress -s) show which client owns each queue from this table.
        let offsets = self.offset_store.table();
        for (mq, pq) in self.rebalance.process_queues.lock().iter() {
            let (min, max) = pq.offset_range().unwrap_or((0, 0));
            info.mq_table.insert(
                ObjectKey(mq.clone()),
                ProcessQueueInfo {
                    cached_msg_count: i32::try_from(pq.message_count()).unwrap_or(i32::MAX),
                    cached_msg_min_offset: min,
                    cached_msg_max_offset: max,
                    commit_offset: offsets.get(mq).unwrap_or(-1),
                    droped: pq.is_dropped(),
                    ..ProcessQueueInfo::default()
                },
            );
        }
        info
    }

    async fn consume_directly(
        &self,
        _message: MessageExt,
        _broker_name: Option<String>,
    ) -> ConsumeMessageDirectlyResult {
        ConsumeMessageDirectlyResult {
            consume_result: Some("CR_THROW_EXCEPTION".into()),
            remark: Some("a lite pull consumer has no listener to run".into()),
            ..ConsumeMessageDirectlyResult::default()
        }
    }
}
