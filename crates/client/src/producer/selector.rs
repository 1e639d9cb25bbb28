//! Queue selectors for ordered sends (spec semantics.md §4, ordered send): the caller
//! picks the queue, so messages with the same sharding key land in the same queue and are
//! consumed in order.

use karman_protocol::body::MessageQueue;
use karman_protocol::message::{Message, java_string_hash};

/// Picks the queue for one message. `queues` is the topic's writable queue list in Java's
/// order; `arg` is whatever the caller passed to the send.
pub trait MessageQueueSelector<A: ?Sized>: Send + Sync {
    fn select(&self, queues: &[MessageQueue], message: &Message, arg: &A) -> Option<MessageQueue>;
}

impl<A: ?Sized, F> MessageQueueSelector<A> for F
where
    F: Fn(&[MessageQueue], &Message, &A) -> Option<MessageQueue> + Send + Sync,
{
    fn select(&self, queues: &[MessageQueue], message: &Message, arg: &A) -> Option<MessageQueue> {
        self(queues, message, arg)
    }
}

/// Java's `SelectMessageQueueByHash`: `abs(arg.hashCode() % n)`, with Java's
/// `String.hashCode`, so Rust and Java producers put a key in the same queue.
///
/// ```
/// use karman_client::producer::{MessageQueueSelector, SelectMessageQueueByHash};
/// use karman_protocol::body::MessageQueue;
/// use karman_protocol::message::Message;
///
/// let queues: Vec<_> = (0..4).map(|id| MessageQueue::new("T", "broker-a", id)).collect();
/// let msg = Message::new("T", "x");
/// let a = SelectMessageQueueByHash.select(&queues, &msg, "order-42").unwrap();
/// let b = SelectMessageQueueByHash.select(&queues, &msg, "order-42").unwrap();
/// assert_eq!(a, b);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SelectMessageQueueByHash;

impl MessageQueueSelector<str> for SelectMessageQueueByHash {
    fn select(
        &self,
        queues: &[MessageQueue],
        _message: &Message,
        arg: &str,
    ) -> Option<MessageQueue> {
        let n = i32::try_from(queues.len()).ok().filter(|n| *n > 0)?;
        let at = (java_string_hash(arg) % n).unsigned_abs();
        queues.get(usize::try_from(at).ok()?).cloned()
    }
}

impl MessageQueueSelector<i64> for SelectMessageQueueByHash {
    /// `Long.hashCode()` is `(int)(v ^ (v >>> 32))`.
    fn select(
        &self,
        queues: &[MessageQueue],
        _message: &Message,
        arg: &i64,
    ) -> Option<MessageQueue> {
        let n = i32::try_from(queues.len()).ok().filter(|n| *n > 0)?;
        let bits = *arg as u64;
        let hash = (bits ^ (bits >> 32)) as u32 as i32;
        let at = (hash % n).unsigned_abs();
        queues.get(usize::try_from(at).ok()?).cloned()
    }
}

/// Java's `SelectMessageQueueByRandom`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelectMessageQueueByRandom;

impl<A: ?Sized> MessageQueueSelector<A> for SelectMessageQueueByRandom {
    fn select(
        &self,
        queues: &[MessageQueue],
        _message: &Message,
        _arg: &A,
    ) -> Option<MessageQueue> {
        if queues.is_empty() {
            return None;
        }
        queues.get(fastrand::usize(..queues.len())).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n).map(|id| MessageQueue::new("T", "b", id)).collect()
    }

    #[test]
    fn hash_selector_matches_java_string_hash_modulo() {
        let msg = Message::new("T", "x");
        // "TagA".hashCode() = 2598919; 2598919 % 8 = 7.
        assert_eq!(
            SelectMessageQueueByHash
                .select(&queues(8), &msg, "TagA")
                .unwrap()
                .queue_id,
            7
        );
        // "polygenelubricants".hashCode() = Integer.MIN_VALUE; MIN % 3 = -2 → abs 2.
        assert_eq!(
            SelectMessageQueueByHash
                .select(&queues(3), &msg, "polygenelubricants")
                .unwrap()
                .queue_id,
            2
        );
        assert!(SelectMessageQueueByHash.select(&[], &msg, "a").is_none());
    }

    #[test]
    fn long_keys_hash_like_java_long() {
        let msg = Message::new("T", "x");
        // Long.hashCode(5) = 5; Long.hashCode(-1) = 0.
        assert_eq!(
            SelectMessageQueueByHash
                .select(&queues(4), &msg, &5i64)
                .unwrap()
                .queue_id,
            1
        );
        assert_eq!(
            SelectMessageQueueByHash
                .select(&queues(4), &msg, &-1i64)
                .unwrap()
                .queue_id,
            0
        );
    }

    #[test]
    fn closures_are_selectors() {
        let msg = Message::new("T", "x");
        let last = |qs: &[MessageQueue], _: &Message, _: &()| qs.last().cloned();
        assert_eq!(last.select(&queues(3), &msg, &()).unwrap().queue_id, 2);
        assert!(
            SelectMessageQueueByRandom
                .select(&queues(3), &msg, &())
                .is_some()
        );
    }
}
