//! Producers: sync, async and oneway sends, batches, ordered sends through a queue
//! selector, delay and timer messages (spec semantics.md §4, remoting.md §3.1).
//!
//! ```no_run
//! use karman_client::producer::Producer;
//! use karman_client::Message;
//!
//! # async fn run() -> Result<(), karman_client::ClientError> {
//! let producer = Producer::builder().namesrv_addr("127.0.0.1:9876").group("pg").build().await?;
//! let result = producer.send(Message::new("TopicTest", "hello").with_tags("TagA")).await?;
//! println!("{} stored at {} offset {}", result.msg_id, result.queue, result.queue_offset);
//! producer.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Semantics, as in Java: a sync send has a total budget of `send_timeout` (3 s) over up
//! to `1 + retry_times_when_send_failed` attempts, retried only on transport errors and the
//! retryable broker codes, each retry on another broker when one exists. Async sends run
//! in the background with their own retries; oneway sends make one attempt and get no
//! answer. Bodies of 4 KiB and more are zlib-compressed; batches never are.

mod fault;
mod prepare;
mod selector;
pub mod transaction;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::body::MessageQueue;
use karman_protocol::header::{SendMessageRequestHeaderV2, SendMessageResponseHeader};
use karman_protocol::message::Message;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use parking_lot::RwLock;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

pub use fault::LatencyFaultTolerance;
pub(crate) use prepare::PreparedMessage;
pub use selector::{MessageQueueSelector, SelectMessageQueueByHash, SelectMessageQueueByRandom};
pub use transaction::{
    LocalTransactionState, TransactionListener, TransactionProducer, TransactionSendResult,
};

use crate::config::{ClientConfig, check_group};
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, ProducerHooks, command_with_header, wall_clock_ms};
use crate::route::{AUTO_CREATE_TOPIC_KEY, TopicPublishInfo};
use prepare::Compression;

/// Producer settings; the defaults are Java's.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub group: String,
    /// Total budget of one sync send, retries included (`sendMsgTimeout`).
    pub send_timeout: Duration,
    /// Extra attempts of a sync send (`retryTimesWhenSendFailed`).
    pub retry_times_when_send_failed: u32,
    /// Extra attempts of an async send (`retryTimesWhenSendAsyncFailed`).
    pub retry_times_when_send_async_failed: u32,
    /// Retry when the broker stored the message but answered other than SEND_OK.
    pub retry_another_broker_when_not_store_ok: bool,
    /// Bodies of this size and more are compressed (`compressMsgBodyOverHowmuch`).
    pub compress_body_over_bytes: usize,
    /// zlib level (`rocketmq.message.compressLevel`).
    pub compress_level: u32,
    /// Largest body accepted (`maxMessageSize`).
    pub max_message_bytes: usize,
    /// `send_batch` splits into requests of at most this many encoded bytes.
    pub batch_bytes_max: usize,
    /// Queue count asked for when the broker auto-creates a topic.
    pub default_topic_queue_nums: i32,
    /// Latency fault tolerance (`sendLatencyFaultEnable`, off by default).
    pub send_latency_fault_enable: bool,
    /// Async sends in flight at once; `send_async` waits for a slot past it.
    pub async_sends_in_flight_max: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            group: "DEFAULT_PRODUCER".into(),
            send_timeout: Duration::from_millis(3000),
            retry_times_when_send_failed: 2,
            retry_times_when_send_async_failed: 2,
            retry_another_broker_when_not_store_ok: false,
            compress_body_over_bytes: 4096,
            compress_level: 5,
            max_message_bytes: 4 * 1024 * 1024,
            batch_bytes_max: 4 * 1024 * 1024,
            default_topic_queue_nums: 4,
            send_latency_fault_enable: false,
            async_sends_in_flight_max: 1024,
        }
    }
}

/// How the broker stored a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendStatus {
    SendOk,
    FlushDiskTimeout,
    FlushSlaveTimeout,
    SlaveNotAvailable,
}

/// The answer to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub status: SendStatus,
    /// The client message id (UNIQ_KEY); comma-joined for a batch.
    pub msg_id: String,
    /// Where the broker stored it: store host and commit-log offset; comma-joined for a batch.
    pub offset_msg_id: String,
    pub queue: MessageQueue,
    /// Consume-queue offset (of the first message, for a batch).
    pub queue_offset: i64,
    pub transaction_id: Option<String>,
    pub region_id: Option<String>,
}

/// A background send (`send_async`): await it for the result. Dropping it does not cancel
/// the send.
#[derive(Debug)]
pub struct SendHandle {
    join: tokio::task::JoinHandle<Result<SendResult>>,
}

impl Future for SendHandle {
    type Output = Result<SendResult>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.join).poll(cx).map(|joined| {
            joined.unwrap_or(Err(ClientError::Shutdown {
                what: "the producer's async send task",
            }))
        })
    }
}

/// Builds a [`Producer`].
#[derive(Debug, Clone, Default)]
pub struct ProducerBuilder {
    client: ClientConfig,
    producer: ProducerConfig,
}

impl ProducerBuilder {
    /// NameServer addresses, `;`-separated. Default: `NAMESRV_ADDR` or `127.0.0.1:9876`.
    pub fn namesrv_addr(mut self, addr: impl Into<String>) -> Self {
        self.client.namesrv_addr = addr.into();
        self
    }

    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.producer.group = group.into();
        self
    }

    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.client.instance_name = name.into();
        self
    }

    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.producer.send_timeout = timeout;
        self
    }

    pub fn retry_times_when_send_failed(mut self, retries: u32) -> Self {
        self.producer.retry_times_when_send_failed = retries;
        self
    }

    pub fn retry_times_when_send_async_failed(mut self, retries: u32) -> Self {
        self.producer.retry_times_when_send_async_failed = retries;
        self
    }

    pub fn compress_body_over_bytes(mut self, bytes: usize) -> Self {
        self.producer.compress_body_over_bytes = bytes;
        self
    }

    pub fn batch_bytes_max(mut self, bytes: usize) -> Self {
        self.producer.batch_bytes_max = bytes;
        self
    }

    pub fn send_latency_fault_enable(mut self, enable: bool) -> Self {
        self.producer.send_latency_fault_enable = enable;
        self
    }

    /// Replaces every client-instance setting at once.
    pub fn client_config(mut self, config: ClientConfig) -> Self {
        self.client = config;
        self
    }

    /// Replaces every producer setting at once.
    pub fn producer_config(mut self, config: ProducerConfig) -> Self {
        self.producer = config;
        self
    }

    /// Validates the settings, joins (or starts) the client instance and registers the
    /// producer group.
    pub async fn build(self) -> Result<Producer> {
        let core = ProducerCore::start(self.client, self.producer)?;
        let hooks: Arc<dyn ProducerHooks> = Arc::new(PlainHooks { core: core.clone() });
        core.instance.register_producer(&core.config.group, hooks)?;
        core.learn_brokers().await;
        core.instance.send_heartbeat_to_all_brokers().await;
        Ok(Producer { core })
    }
}

struct PlainHooks {
    core: Arc<ProducerCore>,
}

#[async_trait]
impl ProducerHooks for PlainHooks {
    fn published_topics(&self) -> Vec<String> {
        self.core.published_topics()
    }
}

/// A message producer; cheap to clone, all clones share one producer.
#[derive(Debug, Clone)]
pub struct Producer {
    core: Arc<ProducerCore>,
}

impl Producer {
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }

    pub fn group(&self) -> &str {
        &self.core.config.group
    }

    /// Sync send: waits for the broker's answer, retrying on another broker within the
    /// send timeout.
    pub async fn send(&self, message: Message) -> Result<SendResult> {
        self.core.send_sync(message).await
    }

    /// Async send: returns once the send is under way; await the handle for the result.
    /// Waits only when `async_sends_in_flight_max` sends are already in flight.
    pub async fn send_async(&self, message: Message) -> Result<SendHandle> {
        self.core.send_async(message).await
    }

    /// Oneway send: one attempt, no answer, no retry.
    pub async fn send_oneway(&self, message: Message) -> Result<()> {
        self.core.send_oneway(message).await
    }

    /// Sends to a queue the selector picks (ordered messages); one attempt, never moved to
    /// another queue.
    pub async fn send_with_selector<A: ?Sized>(
        &self,
        message: Message,
        selector: &impl MessageQueueSelector<A>,
        arg: &A,
    ) -> Result<SendResult> {
        let info = self.core.publish_info(&message.topic).await?;
        let queue = selector
            .select(&info.queues, &message, arg)
            .ok_or_else(|| ClientError::NoRoute {
                topic: message.topic.clone(),
                reason: "the selector chose no queue".into(),
            })?;
        self.core.send_to_queue(message, queue).await
    }

    /// Ordered send: messages with the same sharding key go to the same queue
    /// ([`SelectMessageQueueByHash`]).
    pub async fn send_ordered(&self, message: Message, sharding_key: &str) -> Result<SendResult> {
        self.send_with_selector(message, &SelectMessageQueueByHash, sharding_key)
            .await
    }

    /// Sends to one given queue; one attempt.
    pub async fn send_to_queue(&self, message: Message, queue: MessageQueue) -> Result<SendResult> {
        self.core.send_to_queue(message, queue).await
    }

    /// Sends a batch of messages for one topic, split into requests of at most
    /// `batch_bytes_max` encoded bytes; one result per request.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<Vec<SendResult>> {
        self.core.send_batch(messages).await
    }

    /// The writable queues of a topic.
    pub async fn fetch_publish_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        Ok(self.core.publish_info(topic).await?.queues.clone())
    }

    /// Stops taking sends, waits for in-flight async sends (at most one send timeout),
    /// unregisters from the brokers and stops the client instance if nothing else uses it.
    pub async fn shutdown(&self) {
        self.core.shutdown().await;
    }
}

/// The sending machinery shared by plain and transactional producers.
#[derive(Debug)]
pub(crate) struct ProducerCore {
    pub(crate) instance: Arc<ClientInstance>,
    pub(crate) config: ProducerConfig,
    fault: LatencyFaultTolerance,
    topics: RwLock<HashSet<String>>,
    in_flight: Arc<Semaphore>,
    tasks: TaskTracker,
}

impl ProducerCore {
    pub(crate) fn start(client: ClientConfig, config: ProducerConfig) -> Result<Arc<Self>> {
        check_group("group", &config.group)?;
        if config.send_timeout.is_zero() {
            return Err(ClientError::InvalidConfig {
                field: "send_timeout",
                reason: "must be longer than zero".into(),
            });
        }
        let instance = ClientInstance::get_or_create(&client)?;
        let core = Self::with_instance(instance, config);
        // As Java's producer start: TBW102 is a topic in use from the beginning, so the
        // route refresh learns every broker that can auto-create topics, and the heartbeat
        // reaches them before the first send. A transaction producer that never sends (a
        // new member answering the check-backs of one that exited) must be known to the
        // brokers to be asked.
        core.topics.write().insert(AUTO_CREATE_TOPIC_KEY.to_owned());
        Ok(core)
    }

    /// Fetches TBW102's route so the first heartbeat reaches its brokers; a cluster without
    /// auto-create has none, which is not an error (the brokers are learnt at the first send).
    pub(crate) async fn learn_brokers(&self) {
        if let Err(error) = self
            .instance
            .update_route(AUTO_CREATE_TOPIC_KEY, None)
            .await
        {
            debug!(%error, "no route for {AUTO_CREATE_TOPIC_KEY} yet");
        }
    }

    /// A sender on an existing instance, not registered as a producer group (the consumer's
    /// internal `CLIENT_INNER_PRODUCER` re-sends).
    pub(crate) fn with_instance(
        instance: Arc<ClientInstance>,
        config: ProducerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            fault: LatencyFaultTolerance::new(config.send_latency_fault_enable),
            in_flight: Arc::new(Semaphore::new(config.async_sends_in_flight_max.max(1))),
            instance,
            config,
            topics: RwLock::default(),
            tasks: TaskTracker::new(),
        })
    }

    fn published_topics(&self) -> Vec<String> {
        self.topics.read().iter().cloned().collect()
    }

    fn check_open(&self) -> Result<()> {
        if self.in_flight.is_closed() || self.instance.is_stopped() {
            return Err(ClientError::Shutdown {
                what: "the producer",
            });
        }
        Ok(())
    }

    pub(crate) async fn publish_info(&self, topic: &str) -> Result<Arc<TopicPublishInfo>> {
        self.check_open()?;
        if !self.topics.read().contains(topic) {
            self.topics.write().insert(topic.to_owned());
        }
        self.instance
            .publish_info(topic, self.config.default_topic_queue_nums)
            .await
    }

    fn compression(&self) -> Compression {
        Compression {
            over_bytes: self.config.compress_body_over_bytes,
            level: self.config.compress_level,
        }
    }

    pub(crate) fn prepare(&self, message: Message) -> Result<PreparedMessage> {
        prepare::check_message(&message, self.config.max_message_bytes)?;
        let instance = &self.instance;
        Ok(prepare::prepare_single(
            message,
            || instance.uniq_ids.next_id(wall_clock_ms()),
            self.compression(),
        ))
    }

    pub(crate) async fn send_sync(&self, message: Message) -> Result<SendResult> {
        let prepared = self.prepare(message)?;
        self.send_with_retries(&prepared, 1 + self.config.retry_times_when_send_failed)
            .await
    }

    async fn send_async(self: &Arc<Self>, message: Message) -> Result<SendHandle> {
        self.check_open()?;
        let prepared = self.prepare(message)?;
        let permit =
            self.in_flight
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ClientError::Shutdown {
                    what: "the producer",
                })?;
        let core = self.clone();
        let join = self.tasks.spawn(async move {
            let _permit = permit;
            core.send_with_retries(
                &prepared,
                1 + core.config.retry_times_when_send_async_failed,
            )
            .await
        });
        Ok(SendHandle { join })
    }

    async fn send_oneway(&self, message: Message) -> Result<()> {
        let prepared = self.prepare(message)?;
        let info = self.publish_info(&prepared.topic).await?;
        let queue = self.select_queue(&info, None)?;
        let addr = self
            .instance
            .master_addr_refreshing(&queue.topic, &queue.broker_name)
            .await?;
        let request = self.send_request(&prepared, &queue)?;
        self.instance.invoke_broker_oneway(&addr, request).await
    }

    pub(crate) async fn send_to_queue(
        &self,
        message: Message,
        queue: MessageQueue,
    ) -> Result<SendResult> {
        let prepared = self.prepare(message)?;
        self.publish_info(&prepared.topic).await?;
        self.send_once(&prepared, &queue, self.config.send_timeout)
            .await
    }

    async fn send_batch(&self, messages: Vec<Message>) -> Result<Vec<SendResult>> {
        prepare::check_batch(&messages, self.config.max_message_bytes)?;
        let instance = &self.instance;
        let chunks = prepare::split_batch(messages, self.config.batch_bytes_max, || {
            instance.uniq_ids.next_id(wall_clock_ms())
        });
        let mut results = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let prepared =
                prepare::prepare_batch(&chunk, instance.uniq_ids.next_id(wall_clock_ms()))?;
            results.push(
                self.send_with_retries(&prepared, 1 + self.config.retry_times_when_send_failed)
                    .await?,
            );
        }
        Ok(results)
    }

    /// Picks a queue: with fault tolerance on, available brokers other than the last one
    /// first, then reachable ones, then any (5.x `MQFaultStrategy`); otherwise round robin
    /// avoiding the last broker.
    fn select_queue(
        &self,
        info: &TopicPublishInfo,
        last_broker: Option<&str>,
    ) -> Result<MessageQueue> {
        let other_broker =
            |mq: &MessageQueue| last_broker.is_none_or(|last| mq.broker_name != last);
        let picked = if self.fault.enabled() {
            let now = Instant::now();
            info.select_where(|mq| {
                other_broker(mq) && self.fault.is_available(&mq.broker_name, now)
            })
            .or_else(|| {
                info.select_where(|mq| other_broker(mq) && self.fault.is_reachable(&mq.broker_name))
            })
            .or_else(|| info.select_one())
        } else {
            info.select_avoiding(last_broker)
        };
        picked.ok_or_else(|| ClientError::NoRoute {
            topic: info
                .queues
                .first()
                .map(|q| q.topic.clone())
                .unwrap_or_default(),
            reason: "the topic has no writable queue".into(),
        })
    }

    /// The retry loop of sync and async sends (Java `sendDefaultImpl`).
    pub(crate) async fn send_with_retries(
        &self,
        prepared: &PreparedMessage,
        attempts_max: u32,
    ) -> Result<SendResult> {
        let budget = self.config.send_timeout;
        let started = Instant::now();
        let info = self.publish_info(&prepared.topic).await?;
        let mut last_broker: Option<String> = None;
        let mut last_error: Option<ClientError> = None;
        let mut not_stored_ok: Option<SendResult> = None;
        let mut attempts = 0;
        while attempts < attempts_max {
            let elapsed = started.elapsed();
            if elapsed >= budget {
                return Err(ClientError::SendTimeout {
                    topic: prepared.topic.clone(),
                    budget,
                    attempts,
                });
            }
            let queue = self.select_queue(&info, last_broker.as_deref())?;
            attempts += 1;
            let attempt_started = Instant::now();
            let outcome = self.send_once(prepared, &queue, budget - elapsed).await;
            let finished = Instant::now();
            let latency = finished - attempt_started;
            match outcome {
                Ok(result) => {
                    self.fault
                        .record(&queue.broker_name, latency, false, finished);
                    if result.status != SendStatus::SendOk
                        && self.config.retry_another_broker_when_not_store_ok
                    {
                        last_broker = Some(queue.broker_name.clone());
                        not_stored_ok = Some(result);
                        continue;
                    }
                    return Ok(result);
                }
                Err(error) => {
                    let isolate = error.isolates_broker();
                    self.fault
                        .record(&queue.broker_name, latency, isolate, finished);
                    if !error.is_retryable_send() {
                        return Err(error);
                    }
                    debug!(topic = %prepared.topic, broker = %queue.broker_name, attempt = attempts, %error, "send attempt failed");
                    last_broker = Some(queue.broker_name.clone());
                    last_error = Some(error);
                }
            }
        }
        if let Some(result) = not_stored_ok {
            return Ok(result);
        }
        Err(match last_error {
            Some(last) => ClientError::SendFailed {
                topic: prepared.topic.clone(),
                attempts,
                last: Box::new(last),
            },
            None => ClientError::SendTimeout {
                topic: prepared.topic.clone(),
                budget,
                attempts,
            },
        })
    }

    fn send_request(
        &self,
        prepared: &PreparedMessage,
        queue: &MessageQueue,
    ) -> Result<RemotingCommand> {
        let header = SendMessageRequestHeaderV2 {
            producer_group: self.config.group.clone(),
            topic: prepared.topic.clone(),
            default_topic: AUTO_CREATE_TOPIC_KEY.to_owned(),
            default_topic_queue_nums: self.config.default_topic_queue_nums,
            queue_id: queue.queue_id,
            sys_flag: prepared.sys_flag,
            born_timestamp: wall_clock_ms(),
            flag: prepared.flag,
            properties: Some(prepared.properties.clone()),
            reconsume_times: Some(prepared.reconsume_times),
            unit_mode: false,
            max_reconsume_times: prepared.max_reconsume_times,
            batch: prepared.batch,
            broker_name: Some(queue.broker_name.clone()),
        };
        let code = if prepared.batch {
            RequestCode::SendBatchMessage
        } else {
            RequestCode::SendMessageV2
        };
        Ok(command_with_header(code, &header)?.with_body(prepared.body.clone()))
    }

    /// One attempt to one queue (Java `sendKernelImpl`).
    pub(crate) async fn send_once(
        &self,
        prepared: &PreparedMessage,
        queue: &MessageQueue,
        timeout: Duration,
    ) -> Result<SendResult> {
        let started = Instant::now();
        let addr = self
            .instance
            .master_addr_refreshing(&queue.topic, &queue.broker_name)
            .await?;
        let request = self.send_request(prepared, queue)?;
        let request_code = request.request_code();
        let remaining = timeout.saturating_sub(started.elapsed());
        let response = self
            .instance
            .invoke_broker_timeout(&addr, request, remaining)
            .await?;
        let status = match response.response_code() {
            ResponseCode::Success => SendStatus::SendOk,
            ResponseCode::FlushDiskTimeout => SendStatus::FlushDiskTimeout,
            ResponseCode::FlushSlaveTimeout => SendStatus::FlushSlaveTimeout,
            ResponseCode::SlaveNotAvailable => SendStatus::SlaveNotAvailable,
            _ => {
                return Err(ClientError::from_response_to(
                    &addr,
                    request_code,
                    &response,
                ));
            }
        };
        let header: SendMessageResponseHeader = response
            .decode_header()
            .map_err(|source| ClientError::decode(&addr, "SEND_MESSAGE response header", source))?;
        if status != SendStatus::SendOk {
            warn!(topic = %prepared.topic, broker = %queue.broker_name, ?status, "message stored but not SEND_OK");
        }
        let mut stored_queue = queue.clone();
        stored_queue.queue_id = header.queue_id;
        Ok(SendResult {
            status,
            msg_id: prepared.msg_id.clone(),
            offset_msg_id: header.msg_id,
            queue: stored_queue,
            queue_offset: header.queue_offset,
            transaction_id: header.transaction_id,
            region_id: header.msg_region,
        })
    }

    pub(crate) async fn shutdown(&self) {
        if self.in_flight.is_closed() {
            return;
        }
        self.in_flight.close();
        self.tasks.close();
        let grace = self.config.send_timeout + Duration::from_secs(1);
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(group = %self.config.group, ?grace, "async sends still running at shutdown");
        }
        self.instance.unregister_producer(&self.config.group).await;
    }
}
