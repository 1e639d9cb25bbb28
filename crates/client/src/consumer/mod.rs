//! Consumers: the push consumer (pulls with long polling and calls a listener) and the
//! lite pull consumer (the application polls), plus the pieces they share: allocation
//! strategies, process queues, offset stores (spec semantics.md §7, §8).

mod allocate;
mod consume;
mod lite_pull;
mod offset_store;
pub(crate) mod process_queue;
mod pull;
mod push;
mod rebalance;

/// Per-queue offset queries, shared with the admin API.
pub(crate) mod pull_offsets {
    pub(crate) use super::pull::{PullApi, PullArgs, max_offset, min_offset, search_offset};
}

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::body::MessageQueue;
use karman_protocol::message::MessageExt;

pub use allocate::{
    AllocateMessageQueueAveragely, AllocateMessageQueueAveragelyByCircle,
    AllocateMessageQueueByConfig, AllocateMessageQueueConsistentHash, AllocateMessageQueueStrategy,
};
pub use karman_protocol::body::{ConsumeFromWhere, MessageModel};
pub use lite_pull::{LitePullConsumer, LitePullConsumerBuilder, LitePullConsumerConfig};
pub use offset_store::{OffsetTable, ReadOffsetType};
pub use process_queue::{LOCK_MAX_LIVE, PULL_MAX_IDLE, ProcessQueue};
pub use pull::{PullResult, PullStatus};
pub use push::{PushConsumer, PushConsumerBuilder, PushConsumerConfig};

/// What a concurrent listener says about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumeConcurrentlyStatus {
    ConsumeSuccess,
    /// Redeliver later: sent back to the group's retry topic (clustering) or dropped with a
    /// log line (broadcasting).
    ReconsumeLater,
}

/// Per-call settings a concurrent listener may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeConcurrentlyContext {
    pub queue: MessageQueue,
    /// Delay level for the retry: 0 lets the broker choose (3 + reconsume times), −1 sends
    /// straight to the dead-letter queue.
    pub delay_level_when_next_consume: i32,
    /// With `ConsumeSuccess`, the index of the last message that succeeded; the rest are
    /// retried. Defaults to "all".
    pub ack_index: i32,
}

impl ConsumeConcurrentlyContext {
    pub fn new(queue: MessageQueue) -> Self {
        Self {
            queue,
            delay_level_when_next_consume: 0,
            ack_index: i32::MAX,
        }
    }
}

/// A listener whose batches may run in parallel, in any order.
#[async_trait]
pub trait MessageListenerConcurrently: Send + Sync + 'static {
    async fn consume_message(
        &self,
        messages: &[MessageExt],
        context: &mut ConsumeConcurrentlyContext,
    ) -> ConsumeConcurrentlyStatus;
}

/// What an orderly listener says about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumeOrderlyStatus {
    Success,
    /// Hold the queue and consume the same messages again after a pause.
    SuspendCurrentQueueAMoment,
}

/// Per-call settings an orderly listener may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeOrderlyContext {
    pub queue: MessageQueue,
    /// Pause before a suspended queue is consumed again; `None` uses the consumer setting.
    pub suspend_current_queue_time: Option<Duration>,
}

/// A listener that sees each queue's messages one batch at a time, in queue order, while
/// this client holds the queue's broker lock.
#[async_trait]
pub trait MessageListenerOrderly: Send + Sync + 'static {
    async fn consume_message(
        &self,
        messages: &[MessageExt],
        context: &mut ConsumeOrderlyContext,
    ) -> ConsumeOrderlyStatus;
}

/// A concurrent listener from an async closure over owned messages.
///
/// ```
/// use karman_client::consumer::{concurrently, ConsumeConcurrentlyStatus};
/// let listener = concurrently(|messages| async move {
///     for m in &messages {
///         println!("{}", m.msg_id());
///     }
///     ConsumeConcurrentlyStatus::ConsumeSuccess
/// });
/// # let _ = listener;
/// ```
pub fn concurrently<F, Fut>(f: F) -> impl MessageListenerConcurrently
where
    F: Fn(Vec<MessageExt>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsumeConcurrentlyStatus> + Send + 'static,
{
    FnConcurrently(f)
}

/// An orderly listener from an async closure over owned messages.
pub fn orderly<F, Fut>(f: F) -> impl MessageListenerOrderly
where
    F: Fn(Vec<MessageExt>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsumeOrderlyStatus> + Send + 'static,
{
    FnOrderly(f)
}

struct FnConcurrently<F>(F);

#[async_trait]
impl<F, Fut> MessageListenerConcurrently for FnConcurrently<F>
where
    F: Fn(Vec<MessageExt>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsumeConcurrentlyStatus> + Send + 'static,
{
    async fn consume_message(
        &self,
        messages: &[MessageExt],
        _context: &mut ConsumeConcurrentlyContext,
    ) -> ConsumeConcurrentlyStatus {
        (self.0)(messages.to_vec()).await
    }
}

struct FnOrderly<F>(F);

#[async_trait]
impl<F, Fut> MessageListenerOrderly for FnOrderly<F>
where
    F: Fn(Vec<MessageExt>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsumeOrderlyStatus> + Send + 'static,
{
    async fn consume_message(
        &self,
        messages: &[MessageExt],
        _context: &mut ConsumeOrderlyContext,
    ) -> ConsumeOrderlyStatus {
        (self.0)(messages.to_vec()).await
    }
}
