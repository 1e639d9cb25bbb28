//! The local cache of one message queue (Java `ProcessQueue`): messages pulled and not yet
//! consumed, the numbers flow control looks at, and the offset that is safe to commit.
//!
//! The committed offset is the smallest offset still in the cache, or one past the largest
//! ever cached when the cache is empty, so an offset never moves past an unconsumed
//! message (spec semantics.md §7.1).
//!
//! ```
//! use karman_client::consumer::ProcessQueue;
//! use karman_client::MessageExt;
//! # use bytes::Bytes;
//! # use karman_protocol::message::StoredRecord;
//! # fn msg(offset: i64) -> MessageExt {
//! #     let record = StoredRecord {
//! #         topic: "T", queue_id: 0, flag: 0, queue_offset: offset, physical_offset: 0,
//! #         sys_flag: 0, born_timestamp_ms: 0, born_host: "127.0.0.1:1".parse().unwrap(),
//! #         store_timestamp_ms: 0, store_host: "127.0.0.1:2".parse().unwrap(),
//! #         reconsume_times: 0, prepared_transaction_offset: 0, body: b"x", properties: b"",
//! #     };
//! #     let mut out = Vec::new();
//! #     record.encode(&mut out).unwrap();
//! #     MessageExt::decode(&Bytes::from(out)).unwrap()
//! # }
//! let pq = ProcessQueue::new(tokio::time::Instant::now());
//! pq.put_messages(vec![msg(10), msg(11), msg(12)]);
//! assert_eq!(pq.remove_messages(&[11]), 10); // 10 is still in flight
//! assert_eq!(pq.remove_messages(&[10, 12]), 13); // empty: one past the largest
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use karman_protocol::message::MessageExt;
use parking_lot::Mutex;
use tokio::time::Instant;

/// A queue with no pull for this long is dropped by rebalance (`pullMaxIdleTime`).
pub const PULL_MAX_IDLE: Duration = Duration::from_secs(120);
/// An orderly consumer stops consuming a queue whose lock it has not renewed for this long
/// (`rocketmq.client.rebalance.lockMaxLiveTime`).
pub const LOCK_MAX_LIVE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Cache {
    /// Offset → message, waiting or (concurrently) being consumed.
    messages: BTreeMap<i64, MessageExt>,
    /// Orderly only: taken out of `messages` by the consumer, not yet committed.
    consuming: BTreeMap<i64, MessageExt>,
    bytes: usize,
    /// Concurrent mode: when the listener got each message still cached.
    consume_started: BTreeMap<i64, Instant>,
    max_offset_seen: i64,
    last_pull: Option<Instant>,
    last_lock: Option<Instant>,
    last_consume: Option<Instant>,
}

/// See the module docs.
#[derive(Debug)]
pub struct ProcessQueue {
    cache: Mutex<Cache>,
    dropped: AtomicBool,
    locked: AtomicBool,
    /// Orderly: whether a consume task is scheduled or running for this queue.
    consuming: AtomicBool,
    try_unlock_times: AtomicU32,
    /// Orderly: held by the task that consumes this queue; rebalance takes it before it
    /// unlocks the queue on the broker.
    pub(crate) consume_lock: tokio::sync::Mutex<()>,
}

impl ProcessQueue {
    pub fn new(now: Instant) -> Self {
        Self {
            cache: Mutex::new(Cache {
                max_offset_seen: -1,
                last_pull: Some(now),
                last_consume: Some(now),
                ..Cache::default()
            }),
            dropped: AtomicBool::new(false),
            locked: AtomicBool::new(false),
            consuming: AtomicBool::new(false),
            try_unlock_times: AtomicU32::new(0),
            consume_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Adds pulled messages; returns whether an orderly consume task must be scheduled
    /// (there are messages and none is scheduled yet).
    pub fn put_messages(&self, messages: Vec<MessageExt>) -> bool {
        let mut cache = self.cache.lock();
        for message in messages {
            cache.max_offset_seen = cache.max_offset_seen.max(message.queue_offset);
            let size = message.body.len();
            if cache
                .messages
                .insert(message.queue_offset, message)
                .is_none()
            {
                cache.bytes += size;
            }
        }
        let has_work = !cache.messages.is_empty();
        has_work && !self.consuming.swap(true, Ordering::AcqRel)
    }

    /// Removes consumed messages (concurrent mode) and returns the offset to commit, or −1
    /// when the cache never held anything.
    pub fn remove_messages(&self, offsets: &[i64]) -> i64 {
        let mut cache = self.cache.lock();
        if cache.max_offset_seen < 0 {
            return -1;
        }
        for offset in offsets {
            if let Some(message) = cache.messages.remove(offset) {
                cache.bytes = cache.bytes.saturating_sub(message.body.len());
            }
            cache.consume_started.remove(offset);
        }
        cache.last_consume = None;
        match cache.messages.keys().next() {
            Some(first) => *first,
            None => cache.max_offset_seen + 1,
        }
    }

    /// Concurrent mode: the listener got these messages at `now`.
    pub fn note_consume_started(&self, offsets: &[i64], now: Instant) {
        let mut cache = self.cache.lock();
        for offset in offsets {
            if cache.messages.contains_key(offset) {
                cache.consume_started.insert(*offset, now);
            }
        }
    }

    /// Concurrent mode: the oldest cached messages, at most `max`, whose consumption
    /// started more than `timeout` ago (`consumeTimeout`); stops at the first that did not.
    pub fn expired_head(&self, now: Instant, timeout: Duration, max: usize) -> Vec<MessageExt> {
        let cache = self.cache.lock();
        cache
            .messages
            .iter()
            .take(max)
            .map_while(|(offset, message)| {
                let started = cache.consume_started.get(offset)?;
                (now.saturating_duration_since(*started) > timeout).then(|| message.clone())
            })
            .collect()
    }

    pub fn message_count(&self) -> usize {
        let cache = self.cache.lock();
        cache.messages.len() + cache.consuming.len()
    }

    pub fn message_bytes(&self) -> usize {
        self.cache.lock().bytes
    }

    /// Largest minus smallest cached offset (the concurrent-mode span check).
    pub fn max_span(&self) -> i64 {
        let cache = self.cache.lock();
        match (
            cache.messages.keys().next(),
            cache.messages.keys().next_back(),
        ) {
            (Some(first), Some(last)) => last - first,
            _ => 0,
        }
    }

    /// Smallest and largest cached offsets, for running info.
    pub fn offset_range(&self) -> Option<(i64, i64)> {
        let cache = self.cache.lock();
        Some((
            *cache.messages.keys().next()?,
            *cache.messages.keys().next_back()?,
        ))
    }

    /// Orderly: moves up to `n` messages, in offset order, into the consuming set.
    pub fn take_messages(&self, n: usize) -> Vec<MessageExt> {
        let mut cache = self.cache.lock();
        let mut taken = Vec::with_capacity(n.min(cache.messages.len()));
        while taken.len() < n {
            let Some((offset, message)) = cache.messages.pop_first() else {
                break;
            };
            cache.consuming.insert(offset, message.clone());
            taken.push(message);
        }
        if taken.is_empty() {
            self.consuming.store(false, Ordering::Release);
        }
        taken
    }

    /// Orderly: the consuming set succeeded; returns the offset to commit (one past the
    /// largest consumed), or −1 if nothing was consuming.
    pub fn commit(&self) -> i64 {
        let mut cache = self.cache.lock();
        let Some(last) = cache.consuming.keys().next_back().copied() else {
            return -1;
        };
        let consumed = std::mem::take(&mut cache.consuming);
        let freed: usize = consumed.values().map(|m| m.body.len()).sum();
        cache.bytes = cache.bytes.saturating_sub(freed);
        last + 1
    }

    /// Orderly: puts a failed batch back to be consumed again, its reconsume count raised.
    pub fn make_messages_consume_again(&self, messages: &[MessageExt]) {
        let mut cache = self.cache.lock();
        for message in messages {
            if let Some(mut back) = cache.consuming.remove(&message.queue_offset) {
                back.reconsume_times += 1;
                cache.messages.insert(back.queue_offset, back);
            }
        }
    }

    /// Orderly: gives up the "task scheduled" flag; returns whether messages arrived that
    /// need a new task.
    pub fn finish_consuming(&self) -> bool {
        // `take_messages` already cleared the flag when it found the cache empty; if a
        // pull put messages in since and scheduled a task, that task owns them.
        let cache = self.cache.lock();
        !cache.messages.is_empty() && !self.consuming.swap(true, Ordering::AcqRel)
    }

    /// Drops everything cached (seek, reset).
    pub fn clear(&self) {
        let mut cache = self.cache.lock();
        cache.messages.clear();
        cache.consuming.clear();
        cache.consume_started.clear();
        cache.bytes = 0;
        cache.max_offset_seen = -1;
    }

    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    pub fn set_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
    }

    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    pub fn set_locked(&self, locked: bool, now: Instant) {
        self.locked.store(locked, Ordering::Release);
        if locked {
            self.cache.lock().last_lock = Some(now);
        }
    }

    /// Whether the lock is missing or unrenewed for [`LOCK_MAX_LIVE`].
    pub fn is_lock_expired(&self, now: Instant) -> bool {
        let last = self.cache.lock().last_lock;
        !self.is_locked() || last.is_none_or(|at| now.saturating_duration_since(at) > LOCK_MAX_LIVE)
    }

    pub fn note_pull(&self, now: Instant) {
        self.cache.lock().last_pull = Some(now);
    }

    pub fn note_consume(&self, now: Instant) {
        self.cache.lock().last_consume = Some(now);
    }

    /// Whether no pull happened for [`PULL_MAX_IDLE`].
    pub fn is_pull_expired(&self, now: Instant) -> bool {
        self.cache
            .lock()
            .last_pull
            .is_none_or(|at| now.saturating_duration_since(at) > PULL_MAX_IDLE)
    }

    pub fn inc_try_unlock_times(&self) -> u32 {
        self.try_unlock_times.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn try_unlock_times(&self) -> u32 {
        self.try_unlock_times.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use karman_protocol::message::StoredRecord;

    pub(crate) fn message(
        topic: &str,
        queue_id: i32,
        offset: i64,
        body: &[u8],
        properties: &str,
    ) -> MessageExt {
        let record = StoredRecord {
            topic,
            queue_id,
            flag: 0,
            queue_offset: offset,
            physical_offset: offset * 100,
            sys_flag: 0,
            born_timestamp_ms: 1,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp_ms: 2,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body,
            properties: properties.as_bytes(),
        };
        let mut out = Vec::new();
        record.encode(&mut out).unwrap();
        MessageExt::decode(&Bytes::from(out)).unwrap()
    }

    fn msgs(offsets: &[i64]) -> Vec<MessageExt> {
        offsets
            .iter()
            .map(|o| message("T", 0, *o, b"12345", ""))
            .collect()
    }

    #[test]
    fn commit_offset_never_passes_an_unconsumed_message() {
        let pq = ProcessQueue::new(Instant::now());
        assert_eq!(pq.remove_messages(&[]), -1);
        pq.put_messages(msgs(&[5, 6, 7, 8]));
        assert_eq!(pq.message_count(), 4);
        assert_eq!(pq.message_bytes(), 20);
        assert_eq!(pq.max_span(), 3);
        assert_eq!(pq.remove_messages(&[6, 8]), 5);
        assert_eq!(pq.remove_messages(&[5]), 7);
        assert_eq!(pq.remove_messages(&[7]), 9);
        assert_eq!(pq.message_bytes(), 0);
        // a duplicate pull of an offset already consumed does not move the offset back
        pq.put_messages(msgs(&[9]));
        assert_eq!(pq.remove_messages(&[9]), 10);
    }

    #[test]
    fn orderly_take_commit_and_retry() {
        let pq = ProcessQueue::new(Instant::now());
        assert!(pq.put_messages(msgs(&[1, 2, 3])));
        assert!(!pq.put_messages(msgs(&[4])), "a task is already scheduled");
        let batch = pq.take_messages(2);
        assert_eq!(
            batch.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
            [1, 2]
        );
        pq.make_messages_consume_again(&batch);
        let again = pq.take_messages(2);
        assert_eq!(
            again
                .iter()
                .map(|m| (m.queue_offset, m.reconsume_times))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 1)]
        );
        assert_eq!(pq.commit(), 3);
        assert_eq!(pq.take_messages(10).len(), 2);
        assert_eq!(pq.commit(), 5);
        assert!(pq.take_messages(1).is_empty());
        assert!(
            pq.put_messages(msgs(&[6])),
            "the flag was released when the cache ran dry"
        );
    }

    #[test]
    fn consume_timeout_picks_the_stuck_head_only() {
        let start = Instant::now();
        let pq = ProcessQueue::new(start);
        pq.put_messages(msgs(&[1, 2, 3]));
        pq.note_consume_started(&[1, 2], start);
        pq.note_consume_started(&[3], start + Duration::from_secs(10));
        let later = start + Duration::from_secs(16);
        let expired: Vec<i64> = pq
            .expired_head(later, Duration::from_secs(15), 16)
            .iter()
            .map(|m| m.queue_offset)
            .collect();
        assert_eq!(expired, [1, 2]);
        assert!(
            pq.expired_head(start + Duration::from_secs(5), Duration::from_secs(15), 16)
                .is_empty()
        );
        pq.remove_messages(&[1]);
        assert_eq!(pq.expired_head(later, Duration::from_secs(15), 1).len(), 1);
    }

    #[test]
    fn lock_and_pull_expiry_follow_the_clock() {
        let start = Instant::now();
        let pq = ProcessQueue::new(start);
        assert!(pq.is_lock_expired(start));
        pq.set_locked(true, start);
        assert!(!pq.is_lock_expired(start + Duration::from_secs(30)));
        assert!(pq.is_lock_expired(start + Duration::from_secs(31)));
        assert!(!pq.is_pull_expired(start + Duration::from_secs(120)));
        assert!(pq.is_pull_expired(start + Duration::from_secs(121)));
    }
}
