//! Consume each message once (spec semantics.md §7.5, idempotence): RocketMQ delivers at
//! least once, so duplicates come from producer retries, rebalances and crashes. This
//! helper wraps a concurrent listener and records, per dedup key, whether a message is
//! being consumed or was consumed:
//!
//! | record for the key | what happens |
//! |---|---|
//! | none | claim it as "consuming" (with a lease), run the listener |
//! | consumed | skip the message and acknowledge it |
//! | consuming, lease running | another delivery is in progress: retry later |
//! | consuming, lease expired | the other attempt died: claim it again |
//!
//! Success marks the keys consumed (kept for `consumed_ttl`); failure removes the claims so
//! the retry runs. The key is the message's UNIQ_KEY by default, or a business key. The
//! store is in memory by default (bounded, per process); implement [`IdempotenceStore`]
//! over a database or cache to dedupe across processes.
//!
//! ```
//! use karman_client::consumer::{concurrently, ConsumeConcurrentlyStatus};
//! use karman_client::idempotent::{DedupKey, IdempotentListener, MemoryIdempotenceStore};
//!
//! let listener = IdempotentListener::new(
//!     concurrently(|_messages| async { ConsumeConcurrentlyStatus::ConsumeSuccess }),
//!     MemoryIdempotenceStore::new(100_000),
//!     DedupKey::business(|m| m.keys().next().map(str::to_owned)),
//! );
//! # let _ = listener;
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::message::MessageExt;
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::consumer::{
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, MessageListenerConcurrently,
};

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody had it (or the previous lease expired): consume it now.
    Claimed,
    /// Consumed before: skip.
    AlreadyConsumed,
    /// Being consumed elsewhere right now: retry later.
    InProgress,
}

/// A store failure; the batch is retried later.
#[derive(Debug, thiserror::Error)]
#[error("idempotence store failed on key {key:?}: {source}")]
pub struct IdempotenceStoreError {
    pub key: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where dedup records live. `now` is passed in so a store can be tested with a paused
/// clock; a remote store may use its own clock instead.
#[async_trait]
pub trait IdempotenceStore: Send + Sync + 'static {
    async fn try_claim(
        &self,
        key: &str,
        lease: Duration,
        now: Instant,
    ) -> Result<Claim, IdempotenceStoreError>;
    async fn mark_consumed(
        &self,
        key: &str,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), IdempotenceStoreError>;
    async fn release(&self, key: &str) -> Result<(), IdempotenceStoreError>;
}

#[derive(Debug, Clone, Copy)]
enum Record {
    Consuming { until: Instant },
    Consumed { until: Instant },
}

/// A bounded in-memory store: past `capacity` keys the oldest record is forgotten.
#[derive(Debug)]
pub struct MemoryIdempotenceStore {
    capacity: usize,
    state: Mutex<(HashMap<String, Record>, VecDeque<String>)>,
}

impl MemoryIdempotenceStore {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub fn len(&self) -> usize {
        self.state.lock().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(&self, key: &str, record: Record) {
        let mut guard = self.state.lock();
        let (records, order) = &mut *guard;
        if records.insert(key.to_owned(), record).is_none() {
            order.push_back(key.to_owned());
        }
        while records.len() > self.capacity {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            records.remove(&oldest);
        }
    }
}

#[async_trait]
impl IdempotenceStore for MemoryIdempotenceStore {
    async fn try_claim(
        &self,
        key: &str,
        lease: Duration,
        now: Instant,
    ) -> Result<Claim, IdempotenceStoreError> {
        let existing = self.state.lock().0.get(key).copied();
        let claim = match existing {
            Some(Record::Consumed { until }) if now < until => Claim::AlreadyConsumed,
            Some(Record::Consuming { until }) if now < until => Claim::InProgress,
            _ => Claim::Claimed,
        };
        if claim == Claim::Claimed {
            self.put(key, Record::Consuming { until: now + lease });
        }
        Ok(claim)
    }

    async fn mark_consumed(
        &self,
        key: &str,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), IdempotenceStoreError> {
        self.put(key, Record::Consumed { until: now + ttl });
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), IdempotenceStoreError> {
        let mut guard = self.state.lock();
        let (records, order) = &mut *guard;
        if records.remove(key).is_some() {
            order.retain(|k| k != key);
        }
        Ok(())
    }
}

type KeyFn = dyn Fn(&MessageExt) -> Option<String> + Send + Sync;

/// What identifies a message for deduplication.
#[derive(Clone)]
pub enum DedupKey {
    /// The client message id (UNIQ_KEY), falling back to the offsetMsgId.
    UniqKey,
    /// A business key; `None` means "do not dedupe this message".
    Business(Arc<KeyFn>),
}

impl std::fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UniqKey => f.write_str("UniqKey"),
            Self::Business(_) => f.write_str("Business(..)"),
        }
    }
}

impl DedupKey {
    pub fn business(key: impl Fn(&MessageExt) -> Option<String> + Send + Sync + 'static) -> Self {
        Self::Business(Arc::new(key))
    }

    fn of(&self, message: &MessageExt) -> Option<String> {
        match self {
            Self::UniqKey => Some(message.msg_id()),
            Self::Business(key) => key(message),
        }
    }
}

/// Wraps a concurrent listener so each key is consumed once; see the module docs.
pub struct IdempotentListener<L> {
    inner: L,
    store: Arc<dyn IdempotenceStore>,
    key: DedupKey,
    /// How long a "consuming" claim holds off other deliveries (default 60 s).
    pub consuming_lease: Duration,
    /// How long a "consumed" record is kept (default 1 day).
    pub consumed_ttl: Duration,
}

impl<L> std::fmt::Debug for IdempotentListener<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentListener")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<L: MessageListenerConcurrently> IdempotentListener<L> {
    pub fn new(inner: L, store: impl IdempotenceStore, key: DedupKey) -> Self {
        Self {
            inner,
            store: Arc::new(store),
            key,
            consuming_lease: Duration::from_secs(60),
            consumed_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// Shares one store between listeners (several consumers of one process).
    pub fn with_shared_store(inner: L, store: Arc<dyn IdempotenceStore>, key: DedupKey) -> Self {
        Self {
            inner,
            store,
            key,
            consuming_lease: Duration::from_secs(60),
            consumed_ttl: Duration::from_secs(24 * 3600),
        }
    }

    async fn release_all(&self, keys: &[String]) {
        for key in keys {
            if let Err(error) = self.store.release(key).await {
                warn!(%error, "cannot release a dedup claim; it expires with its lease");
            }
        }
    }
}

#[async_trait]
impl<L: MessageListenerConcurrently> MessageListenerConcurrently for IdempotentListener<L> {
    async fn consume_message(
        &self,
        messages: &[MessageExt],
        context: &mut ConsumeConcurrentlyContext,
    ) -> ConsumeConcurrentlyStatus {
        let now = Instant::now();
        let mut claimed = Vec::new();
        let mut todo = Vec::new();
        for message in messages {
            let Some(key) = self.key.of(message) else {
                todo.push(message.clone());
                continue;
            };
            match self.store.try_claim(&key, self.consuming_lease, now).await {
                Ok(Claim::Claimed) => {
                    claimed.push(key);
                    todo.push(message.clone());
                }
                Ok(Claim::AlreadyConsumed) => debug!(key, "duplicate skipped"),
                Ok(Claim::InProgress) | Err(_) => {
                    self.release_all(&claimed).await;
                    return ConsumeConcurrentlyStatus::ReconsumeLater;
                }
            }
        }
        if todo.is_empty() {
            return ConsumeConcurrentlyStatus::ConsumeSuccess;
        }
        // The inner listener sees only the new messages, so a partial ack index would not
        // line up with the caller's batch: any failure retries the whole batch.
        let status = self.inner.consume_message(&todo, context).await;
        let all_ok = status == ConsumeConcurrentlyStatus::ConsumeSuccess
            && usize::try_from(context.ack_index).is_ok_and(|i| i >= todo.len().saturating_sub(1));
        context.ack_index = i32::MAX;
        if !all_ok {
            self.release_all(&claimed).await;
            return ConsumeConcurrentlyStatus::ReconsumeLater;
        }
        for key in &claimed {
            if let Err(error) = self
                .store
                .mark_consumed(key, self.consumed_ttl, Instant::now())
                .await
            {
                warn!(%error, "cannot record a consumed key; a duplicate may be consumed again");
            }
        }
        ConsumeConcurrentlyStatus::ConsumeSuccess
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::concurrently;
    use crate::consumer::process_queue::tests::message;
    use karman_protocol::body::MessageQueue;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ctx() -> ConsumeConcurrentlyContext {
        ConsumeConcurrentlyContext::new(MessageQueue::new("T", "b", 0))
    }

    fn counting(
        status: ConsumeConcurrentlyStatus,
    ) -> (Arc<AtomicUsize>, impl MessageListenerConcurrently) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        (
            calls,
            concurrently(move |m| {
                c.fetch_add(m.len(), Ordering::SeqCst);
                async move { status }
            }),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_by_uniq_key_are_consumed_once() {
        let (calls, inner) = counting(ConsumeConcurrentlyStatus::ConsumeSuccess);
        let listener =
            IdempotentListener::new(inner, MemoryIdempotenceStore::new(10), DedupKey::UniqKey);
        let a = message("T", 0, 0, b"a", "UNIQ_KEY\u{1}A\u{2}");
        let a_again = message("T", 0, 5, b"a", "UNIQ_KEY\u{1}A\u{2}");
        let b = message("T", 0, 1, b"b", "UNIQ_KEY\u{1}B\u{2}");
        assert_eq!(
            listener.consume_message(&[a, b], &mut ctx()).await,
            ConsumeConcurrentlyStatus::ConsumeSuccess
        );
        assert_eq!(
            listener.consume_message(&[a_again], &mut ctx()).await,
            ConsumeConcurrentlyStatus::ConsumeSuccess
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_releases_the_claim_so_the_retry_runs() {
        let (calls, inner) = counting(ConsumeConcurrentlyStatus::ReconsumeLater);
        let store = Arc::new(MemoryIdempotenceStore::new(10));
        let listener =
            IdempotentListener::with_shared_store(inner, store.clone(), DedupKey::UniqKey);
        let a = message("T", 0, 0, b"a", "UNIQ_KEY\u{1}A\u{2}");
        assert_eq!(
            listener
                .consume_message(std::slice::from_ref(&a), &mut ctx())
                .await,
            ConsumeConcurrentlyStatus::ReconsumeLater
        );
        assert_eq!(
            listener.consume_message(&[a], &mut ctx()).await,
            ConsumeConcurrentlyStatus::ReconsumeLater
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_in_progress_claim_defers_until_its_lease_expires() {
        let store = MemoryIdempotenceStore::new(10);
        let now = Instant::now();
        assert_eq!(
            store
                .try_claim("k", Duration::from_secs(60), now)
                .await
                .unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            store
                .try_claim("k", Duration::from_secs(60), now + Duration::from_secs(59))
                .await
                .unwrap(),
            Claim::InProgress
        );
        assert_eq!(
            store
                .try_claim("k", Duration::from_secs(60), now + Duration::from_secs(61))
                .await
                .unwrap(),
            Claim::Claimed
        );
        store
            .mark_consumed("k", Duration::from_secs(10), now)
            .await
            .unwrap();
        assert_eq!(
            store
                .try_claim("k", Duration::from_secs(60), now + Duration::from_secs(9))
                .await
                .unwrap(),
            Claim::AlreadyConsumed
        );
        assert_eq!(
            store
                .try_claim("k", Duration::from_secs(60), now + Duration::from_secs(11))
                .await
                .unwrap(),
            Claim::Claimed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn business_keys_and_the_capacity_bound() {
        let (calls, inner) = counting(ConsumeConcurrentlyStatus::ConsumeSuccess);
        let store = Arc::new(MemoryIdempotenceStore::new(2));
        let key = DedupKey::business(|m| m.keys().next().map(str::to_owned));
        let listener = IdempotentListener::with_shared_store(inner, store.clone(), key);
        let order = |offset, k: &str| message("T", 0, offset, b"x", &format!("KEYS\u{1}{k}\u{2}"));
        let keyless = message("T", 0, 9, b"x", "");
        for (offset, k) in [(0, "o1"), (1, "o1"), (2, "o2"), (3, "o3")] {
            listener
                .consume_message(&[order(offset, k)], &mut ctx())
                .await;
        }
        listener
            .consume_message(std::slice::from_ref(&keyless), &mut ctx())
            .await;
        listener.consume_message(&[keyless], &mut ctx()).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            5,
            "o1 once, o2, o3, and both keyless"
        );
        assert_eq!(store.len(), 2, "bounded");
        listener
            .consume_message(&[order(4, "o1")], &mut ctx())
            .await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            6,
            "o1 was evicted by the bound"
        );
    }
}
