//! Held pulls (long polling, spec remoting.md §3.2, §7.6): a pull that finds nothing waits
//! here, keyed by (topic, queue), until the dispatcher reports a message it would return
//! or the hold ends. The pull processor owns the waiting; this table only wakes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use karman_store::{Arrival, ArrivalListener};
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};

use crate::filter::SubscriptionFilter;
use crate::topic_table::name::TIMER_TOPIC;

struct Held {
    id: u64,
    /// The offset the pull asked for: a message at or past it wakes the pull.
    offset: i64,
    filter: Arc<SubscriptionFilter>,
    wake: oneshot::Sender<()>,
}

type QueueHolds = HashMap<i32, Vec<Held>>;

/// Every held pull of the broker, bounded by `capacity`.
pub struct PullHolds {
    by_topic: Mutex<HashMap<String, QueueHolds>>,
    count: AtomicUsize,
    capacity: usize,
    next_id: AtomicU64,
}

impl std::fmt::Debug for PullHolds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullHolds")
            .field("held", &self.count.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// A registered hold; dropping it (answered, timed out, connection gone) removes it.
pub struct HoldGuard<'a> {
    holds: &'a PullHolds,
    topic: String,
    queue_id: i32,
    id: u64,
    pub woken: oneshot::Receiver<()>,
}

impl std::fmt::Debug for HoldGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoldGuard")
            .field("topic", &self.topic)
            .field("queue_id", &self.queue_id)
            .finish()
    }
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        let mut by_topic = self.holds.by_topic.lock();
        let Some(queues) = by_topic.get_mut(&self.topic) else {
            return;
        };
        if let Some(held) = queues.get_mut(&self.queue_id) {
            let before = held.len();
            held.retain(|h| h.id != self.id);
            self.holds
                .count
                .fetch_sub(before - held.len(), Ordering::Relaxed);
            if held.is_empty() {
                queues.remove(&self.queue_id);
            }
        }
        if queues.is_empty() {
            by_topic.remove(&self.topic);
        }
    }
}

impl PullHolds {
    pub fn new(capacity: usize) -> Self {
        Self {
            by_topic: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            capacity,
            next_id: AtomicU64::new(1),
        }
    }

    pub fn held_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Holds a pull; `None` when the table is full (the pull then answers at once).
    pub fn hold(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        filter: Arc<SubscriptionFilter>,
    ) -> Option<HoldGuard<'_>> {
        if self.count.load(Ordering::Relaxed) >= self.capacity {
            return None;
        }
        let (wake, woken) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.by_topic
            .lock()
            .entry(topic.to_owned())
            .or_default()
            .entry(queue_id)
            .or_default()
            .push(Held {
                id,
                offset,
                filter,
                wake,
            });
        self.count.fetch_add(1, Ordering::Relaxed);
        Some(HoldGuard {
            holds: self,
            topic: topic.to_owned(),
            queue_id,
            id,
            woken,
        })
    }

    /// Wakes every pull of the queue that the new message satisfies.
    pub fn notify(&self, arrival: &Arrival<'_>) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut by_topic = self.by_topic.lock();
        let Some(held) = by_topic
            .get_mut(arrival.topic)
            .and_then(|q| q.get_mut(&arrival.queue_id))
        else {
            return;
        };
        let before = held.len();
        let mut kept = Vec::with_capacity(held.len());
        for pull in held.drain(..) {
            if pull.offset <= arrival.queue_offset.0
                && pull.filter.matches(arrival.tag_code, arrival.record)
            {
                let _ = pull.wake.send(());
            } else {
                kept.push(pull);
            }
        }
        *held = kept;
        self.count.fetch_sub(before - held.len(), Ordering::Relaxed);
    }
}

/// The store's dispatcher calls this for every message it indexes: it wakes held pulls,
/// and the timer service when a timer message arrives.
#[derive(Debug)]
pub struct ArrivalNotifier {
    pub holds: Arc<PullHolds>,
    pub timer_wake: Arc<Notify>,
}

impl ArrivalListener for ArrivalNotifier {
    fn on_arrival(&self, arrival: &Arrival<'_>) {
        self.holds.notify(arrival);
        if arrival.topic == TIMER_TOPIC {
            self.timer_wake.notify_one();
        }
    }
}
