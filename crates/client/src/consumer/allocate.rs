//! Queue allocation strategies for clustering rebalance (spec semantics.md §7.2). Every
//! member of a group runs the same strategy over the same sorted queue and client-id
//! lists, so the members agree without talking to each other, Java members included.
//!
//! ```
//! use karman_client::consumer::{AllocateMessageQueueAveragely, AllocateMessageQueueStrategy};
//! use karman_client::MessageQueue;
//!
//! let queues: Vec<_> = (0..8).map(|id| MessageQueue::new("T", "broker-a", id)).collect();
//! let cids = vec!["c1".to_string(), "c2".to_string(), "c3".to_string()];
//! let mine = AllocateMessageQueueAveragely.allocate("g", "c3", &queues, &cids);
//! assert_eq!(mine.iter().map(|q| q.queue_id).collect::<Vec<_>>(), [6, 7]);
//! ```

use std::collections::BTreeMap;

use karman_protocol::body::MessageQueue;
use md5::{Digest, Md5};

/// Splits the queues of one topic among the members of a group.
pub trait AllocateMessageQueueStrategy: Send + Sync + 'static {
    /// The Java name (`AVG`, `AVG_BY_CIRCLE`, `CONSISTENT_HASH`, `CONFIG`).
    fn name(&self) -> &str;

    /// The queues `current_cid` takes. `queues` and `cids` are sorted; a client id not in
    /// `cids` gets nothing.
    fn allocate(
        &self,
        group: &str,
        current_cid: &str,
        queues: &[MessageQueue],
        cids: &[String],
    ) -> Vec<MessageQueue>;
}

fn index_of(current_cid: &str, cids: &[String]) -> Option<usize> {
    cids.iter().position(|c| c == current_cid)
}

/// The default: consecutive blocks, the first `n % c` members one queue more.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocateMessageQueueAveragely;

impl AllocateMessageQueueStrategy for AllocateMessageQueueAveragely {
    fn name(&self) -> &str {
        "AVG"
    }

    fn allocate(
        &self,
        _group: &str,
        current_cid: &str,
        queues: &[MessageQueue],
        cids: &[String],
    ) -> Vec<MessageQueue> {
        let Some(index) = index_of(current_cid, cids) else {
            return Vec::new();
        };
        let (n, c) = (queues.len(), cids.len());
        let rem = n % c;
        let size = if n <= c {
            1
        } else if rem > 0 && index < rem {
            n / c + 1
        } else {
            n / c
        };
        let start = if rem > 0 && index < rem {
            index * size
        } else {
            index * size + rem
        };
        let range = size.min(n.saturating_sub(start));
        queues.iter().skip(start).take(range).cloned().collect()
    }
}

/// Queue `k` goes to member `k mod c`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocateMessageQueueAveragelyByCircle;

impl AllocateMessageQueueStrategy for AllocateMessageQueueAveragelyByCircle {
    fn name(&self) -> &str {
        "AVG_BY_CIRCLE"
    }

    fn allocate(
        &self,
        _group: &str,
        current_cid: &str,
        queues: &[MessageQueue],
        cids: &[String],
    ) -> Vec<MessageQueue> {
        let Some(index) = index_of(current_cid, cids) else {
            return Vec::new();
        };
        queues
            .iter()
            .enumerate()
            .filter(|(k, _)| k % cids.len() == index)
            .map(|(_, q)| q.clone())
            .collect()
    }
}

/// A hash ring with `virtual_nodes` points per member, MD5 as Java's default, keyed by
/// Java's `MessageQueue.toString()`. Members moving in or out disturb few queues.
#[derive(Debug, Clone, Copy)]
pub struct AllocateMessageQueueConsistentHash {
    pub virtual_nodes: usize,
}

impl Default for AllocateMessageQueueConsistentHash {
    fn default() -> Self {
        Self { virtual_nodes: 10 }
    }
}

/// Java `MD5Hash.hash`: the first four digest bytes, big-endian, unsigned.
fn md5_hash(key: &str) -> u64 {
    let digest = Md5::digest(key.as_bytes());
    digest
        .iter()
        .take(4)
        .fold(0u64, |h, b| (h << 8) | u64::from(*b))
}

fn java_queue_string(mq: &MessageQueue) -> String {
    format!(
        "MessageQueue [topic={}, brokerName={}, queueId={}]",
        mq.topic, mq.broker_name, mq.queue_id
    )
}

impl AllocateMessageQueueStrategy for AllocateMessageQueueConsistentHash {
    fn name(&self) -> &str {
        "CONSISTENT_HASH"
    }

    fn allocate(
        &self,
        _group: &str,
        current_cid: &str,
        queues: &[MessageQueue],
        cids: &[String],
    ) -> Vec<MessageQueue> {
        if index_of(current_cid, cids).is_none() {
            return Vec::new();
        }
        let mut ring: BTreeMap<u64, &str> = BTreeMap::new();
        for cid in cids {
            for replica in 0..self.virtual_nodes {
                ring.insert(md5_hash(&format!("{cid}-{replica}")), cid);
            }
        }
        queues
            .iter()
            .filter(|mq| {
                let hash = md5_hash(&java_queue_string(mq));
                let owner = ring.range(hash..).next().or_else(|| ring.iter().next());
                owner.is_some_and(|(_, cid)| *cid == current_cid)
            })
            .cloned()
            .collect()
    }
}

/// A fixed, user-chosen queue list (`CONFIG`).
#[derive(Debug, Clone, Default)]
pub struct AllocateMessageQueueByConfig {
    pub queues: Vec<MessageQueue>,
}

impl AllocateMessageQueueStrategy for AllocateMessageQueueByConfig {
    fn name(&self) -> &str {
        "CONFIG"
    }

    fn allocate(
        &self,
        _group: &str,
        _current_cid: &str,
        _queues: &[MessageQueue],
        _cids: &[String],
    ) -> Vec<MessageQueue> {
        self.queues.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n)
            .map(|id| MessageQueue::new("T", "broker-a", id))
            .collect()
    }

    fn cids(c: usize) -> Vec<String> {
        (0..c).map(|i| format!("c{i}")).collect()
    }

    fn ids(queues: &[MessageQueue]) -> Vec<i32> {
        queues.iter().map(|q| q.queue_id).collect()
    }

    #[test]
    fn averagely_matches_the_spec_example() {
        let (qs, cs) = (queues(8), cids(3));
        let got: Vec<_> = cs
            .iter()
            .map(|c| ids(&AllocateMessageQueueAveragely.allocate("g", c, &qs, &cs)))
            .collect();
        assert_eq!(got, [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
    }

    #[test]
    fn averagely_gives_extra_members_nothing() {
        let (qs, cs) = (queues(2), cids(3));
        let got: Vec<_> = cs
            .iter()
            .map(|c| ids(&AllocateMessageQueueAveragely.allocate("g", c, &qs, &cs)))
            .collect();
        assert_eq!(got, [vec![0], vec![1], vec![]]);
        assert!(
            AllocateMessageQueueAveragely
                .allocate("g", "stranger", &qs, &cs)
                .is_empty()
        );
    }

    #[test]
    fn by_circle_deals_round_robin() {
        let (qs, cs) = (queues(8), cids(3));
        let got: Vec<_> = cs
            .iter()
            .map(|c| ids(&AllocateMessageQueueAveragelyByCircle.allocate("g", c, &qs, &cs)))
            .collect();
        assert_eq!(got, [vec![0, 3, 6], vec![1, 4, 7], vec![2, 5]]);
    }

    #[test]
    fn md5_hash_is_javas_first_four_bytes() {
        // md5("") = d41d8cd9 8f00b204 e9800998 ecf8427e
        assert_eq!(md5_hash(""), 0xd41d_8cd9);
        assert_eq!(
            java_queue_string(&MessageQueue::new("T", "b", 3)),
            "MessageQueue [topic=T, brokerName=b, queueId=3]"
        );
    }

    /// Every strategy, for many sizes: each queue goes to exactly one member.
    #[test]
    fn every_strategy_partitions_the_queues() {
        let strategies: [&dyn AllocateMessageQueueStrategy; 3] = [
            &AllocateMessageQueueAveragely,
            &AllocateMessageQueueAveragelyByCircle,
            &AllocateMessageQueueConsistentHash::default(),
        ];
        for strategy in strategies {
            for n in 1..20 {
                for c in 1..7 {
                    let (qs, cs) = (queues(n), cids(c));
                    let mut seen = BTreeSet::new();
                    let mut total = 0;
                    for cid in &cs {
                        for q in strategy.allocate("g", cid, &qs, &cs) {
                            total += 1;
                            seen.insert(q.queue_id);
                        }
                    }
                    assert_eq!(
                        (total, seen.len()),
                        (qs.len(), qs.len()),
                        "{} n={n} c={c}",
                        strategy.name()
                    );
                }
            }
        }
    }

    #[test]
    fn consistent_hash_moves_few_queues_when_a_member_leaves() {
        let strategy = AllocateMessageQueueConsistentHash::default();
        let qs = queues(64);
        let before = cids(4);
        let after: Vec<String> = before.iter().take(3).cloned().collect();
        let mut moved = 0;
        for cid in &after {
            let was: BTreeSet<_> = ids(&strategy.allocate("g", cid, &qs, &before))
                .into_iter()
                .collect();
            let now: BTreeSet<_> = ids(&strategy.allocate("g", cid, &qs, &after))
                .into_iter()
                .collect();
            assert!(was.is_subset(&now), "a staying member lost queues");
            moved += now.len() - was.len();
        }
        let orphaned = strategy.allocate("g", "c3", &qs, &before).len();
        assert_eq!(moved, orphaned);
    }
}
