//! Orderly-consumption queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ, spec remoting.md
//! §3.8): one client per (group, queue); a lock lapses 60 s after its last renewal.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use karman_protocol::body::MessageQueue;
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::info;

/// `rocketmq.broker.rebalance.lockMaxLiveTime`.
pub const LOCK_MAX_LIVE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Lock {
    client_id: String,
    renewed: Instant,
}

#[derive(Debug)]
pub struct LockTable {
    max_live: Duration,
    locks: Mutex<HashMap<String, HashMap<MessageQueue, Lock>>>,
}

impl Default for LockTable {
    fn default() -> Self {
        Self::new(LOCK_MAX_LIVE)
    }
}

impl LockTable {
    pub fn new(max_live: Duration) -> Self {
        Self {
            max_live,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Locks every queue that is free, expired or already this client's; returns the
    /// queues the client now holds.
    pub fn try_lock(
        &self,
        group: &str,
        client_id: &str,
        queues: &BTreeSet<MessageQueue>,
        now: Instant,
    ) -> BTreeSet<MessageQueue> {
        let mut all = self.locks.lock();
        let group_locks = all.entry(group.to_owned()).or_default();
        let mut granted = BTreeSet::new();
        for queue in queues {
            let free = match group_locks.get(queue) {
                None => true,
                Some(lock) => {
                    lock.client_id == client_id
                        || now.saturating_duration_since(lock.renewed) > self.max_live
                }
            };
            if free {
                let previous = group_locks.insert(
                    queue.clone(),
                    Lock {
                        client_id: client_id.to_owned(),
                        renewed: now,
                    },
                );
                if previous.is_none_or(|p| p.client_id != client_id) {
                    info!(group, client = client_id, %queue, "queue locked");
                }
                granted.insert(queue.clone());
            }
        }
        granted
    }

    /// Releases the queues this client holds; others' locks stay.
    pub fn unlock(&self, group: &str, client_id: &str, queues: &BTreeSet<MessageQueue>) {
        let mut all = self.locks.lock();
        if let Some(group_locks) = all.get_mut(group) {
            for queue in queues {
                if group_locks
                    .get(queue)
                    .is_some_and(|l| l.client_id == client_id)
                {
                    group_locks.remove(queue);
                    info!(group, client = client_id, %queue, "queue unlocked");
                }
            }
        }
    }

    /// Whether the group holds any unexpired lock (a retry send from such a group goes to
    /// the DLQ, spec §3.1 step 8).
    pub fn group_holds_locks(&self, group: &str, now: Instant) -> bool {
        self.locks.lock().get(group).is_some_and(|locks| {
            locks
                .values()
                .any(|l| now.saturating_duration_since(l.renewed) <= self.max_live)
        })
    }

    /// Who holds a queue, if anyone (consumer running info, tests).
    pub fn holder(&self, group: &str, queue: &MessageQueue, now: Instant) -> Option<String> {
        let all = self.locks.lock();
        let lock = all.get(group)?.get(queue)?;
        (now.saturating_duration_since(lock.renewed) <= self.max_live)
            .then(|| lock.client_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(ids: &[i32]) -> BTreeSet<MessageQueue> {
        ids.iter()
            .map(|i| MessageQueue::new("T", "b", *i))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_has_one_holder_until_its_lock_lapses() {
        let table = LockTable::default();
        let now = Instant::now();
        assert_eq!(table.try_lock("g", "c1", &queues(&[0, 1]), now).len(), 2);
        assert_eq!(
            table.try_lock("g", "c2", &queues(&[1, 2]), now),
            queues(&[2])
        );
        // renewal by the holder keeps it
        assert_eq!(
            table
                .try_lock("g", "c1", &queues(&[1]), now + Duration::from_secs(50))
                .len(),
            1
        );
        assert!(
            table
                .try_lock("g", "c2", &queues(&[1]), now + Duration::from_secs(100))
                .is_empty()
        );
        // 61 s after the last renewal it is free
        assert_eq!(
            table
                .try_lock("g", "c2", &queues(&[1]), now + Duration::from_secs(111))
                .len(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unlock_releases_only_own_locks() {
        let table = LockTable::default();
        let now = Instant::now();
        table.try_lock("g", "c1", &queues(&[0]), now);
        table.unlock("g", "c2", &queues(&[0]));
        assert_eq!(
            table
                .holder("g", &MessageQueue::new("T", "b", 0), now)
                .as_deref(),
            Some("c1")
        );
        table.unlock("g", "c1", &queues(&[0]));
        assert!(
            table
                .holder("g", &MessageQueue::new("T", "b", 0), now)
                .is_none()
        );
        assert!(!table.group_holds_locks("g", now));
    }
}
