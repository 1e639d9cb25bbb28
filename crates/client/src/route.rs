//! What a client makes of a topic route (spec remoting.md §4.2, §7.8): the queues a
//! producer writes to, the queues a consumer reads from, and the `TBW102` fallback for
//! topics the broker will create on first send. Pure functions over [`TopicRouteData`].

use std::sync::atomic::{AtomicUsize, Ordering};

use karman_protocol::body::{MessageQueue, TopicRouteData};
use karman_protocol::message::sysflag::perm;

/// The broker id of a master (`MixAll.MASTER_ID`).
pub const MASTER_ID: i64 = 0;

/// The template topic of broker-side auto-creation.
pub const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";

/// The writable queues of one topic, in Java's order, plus the round-robin cursor.
#[derive(Debug)]
pub struct TopicPublishInfo {
    /// True when the NameServer fixed the queue list with `orderTopicConf`.
    pub order_topic: bool,
    pub queues: Vec<MessageQueue>,
    cursor: AtomicUsize,
}

impl TopicPublishInfo {
    /// Builds the queue list: from `orderTopicConf` (`"brokerA:4;brokerB:4"`) when present;
    /// otherwise queue ids `0..writeQueueNums` of every writable QueueData whose broker has a
    /// master, brokers sorted by name. `start` seeds the round-robin cursor.
    pub fn from_route(topic: &str, route: &TopicRouteData, start: usize) -> Self {
        let mut queues = Vec::new();
        let order_conf = route.order_topic_conf.as_deref().filter(|c| !c.is_empty());
        if let Some(conf) = order_conf {
            for (broker, count) in conf.split(';').filter_map(|item| item.split_once(':')) {
                let count: i32 = count.trim().parse().unwrap_or(0);
                queues.extend((0..count).map(|id| MessageQueue::new(topic, broker.trim(), id)));
            }
        } else {
            let mut datas: Vec<_> = route.queue_datas.iter().collect();
            datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
            for data in datas.into_iter().filter(|qd| perm::is_writeable(qd.perm)) {
                let has_master = route.broker_datas.iter().any(|bd| {
                    bd.broker_name == data.broker_name && bd.broker_addrs.contains_key(&MASTER_ID)
                });
                if has_master {
                    queues.extend(
                        (0..data.write_queue_nums)
                            .map(|id| MessageQueue::new(topic, data.broker_name.as_str(), id)),
                    );
                }
            }
        }
        Self {
            order_topic: order_conf.is_some(),
            queues,
            cursor: AtomicUsize::new(start),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    fn next(&self) -> Option<&MessageQueue> {
        if self.queues.is_empty() {
            return None;
        }
        let at = self.cursor.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        self.queues.get(at)
    }

    /// Round robin over every queue.
    pub fn select_one(&self) -> Option<MessageQueue> {
        self.next().cloned()
    }

    /// Round robin over the queues `accept` takes, trying each queue at most once; `None`
    /// when no queue passes.
    pub fn select_where(&self, accept: impl Fn(&MessageQueue) -> bool) -> Option<MessageQueue> {
        (0..self.queues.len())
            .filter_map(|_| self.next())
            .find(|mq| accept(mq))
            .cloned()
    }

    /// Round robin that avoids `last_broker` (the broker of a failed attempt) when another
    /// broker has queues (spec semantics.md §4, queue selection).
    pub fn select_avoiding(&self, last_broker: Option<&str>) -> Option<MessageQueue> {
        match last_broker {
            None => self.select_one(),
            Some(last) => self
                .select_where(|mq| mq.broker_name != last)
                .or_else(|| self.select_one()),
        }
    }
}

/// The readable queues of a topic: ids `0..readQueueNums` of each readable QueueData,
/// sorted like Java's `MessageQueue.compareTo`.
pub fn subscribe_queues(topic: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    let mut queues: Vec<MessageQueue> = route
        .queue_datas
        .iter()
        .filter(|qd| perm::is_readable(qd.perm))
        .flat_map(|qd| {
            (0..qd.read_queue_nums).map(|id| MessageQueue::new(topic, qd.broker_name.as_str(), id))
        })
        .collect();
    queues.sort();
    queues
}

/// The `TBW102` route a producer uses for a topic the NameServer does not know yet: every
/// queue count clamped to the producer's `defaultTopicQueueNums` (spec remoting.md §7.1).
pub fn clamp_default_route(
    mut route: TopicRouteData,
    default_topic_queue_nums: i32,
) -> TopicRouteData {
    for data in &mut route.queue_datas {
        let nums = default_topic_queue_nums.min(data.read_queue_nums);
        data.read_queue_nums = nums;
        data.write_queue_nums = nums;
    }
    route
}

/// Whether a topic is a consumer group's retry topic.
pub fn is_retry_topic(topic: &str) -> bool {
    topic.starts_with(RETRY_GROUP_TOPIC_PREFIX)
}

pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";

/// `%RETRY%<group>`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use karman_protocol::body::{BrokerData, QueueData};

    fn route(brokers: &[(&str, i32, i32, bool)]) -> TopicRouteData {
        let mut route = TopicRouteData::default();
        for (name, queues, perm, has_master) in brokers {
            route.queue_datas.push(QueueData {
                broker_name: (*name).into(),
                perm: *perm,
                read_queue_nums: *queues,
                write_queue_nums: *queues,
                topic_sys_flag: 0,
            });
            let mut data = BrokerData {
                broker_name: (*name).into(),
                cluster: "c".into(),
                ..BrokerData::default()
            };
            let id = if *has_master { 0 } else { 1 };
            data.broker_addrs.insert(id, format!("{name}:10911"));
            route.broker_datas.push(data);
        }
        route
    }

    #[test]
    fn publish_queues_sorted_by_broker_skip_readonly_and_masterless() {
        let r = route(&[
            ("b", 2, 6, true),
            ("a", 2, 6, true),
            ("c", 2, 4, true),
            ("d", 2, 6, false),
        ]);
        let info = TopicPublishInfo::from_route("T", &r, 0);
        let names: Vec<_> = info
            .queues
            .iter()
            .map(|q| format!("{}{}", q.broker_name, q.queue_id))
            .collect();
        assert_eq!(names, ["a0", "a1", "b0", "b1"]);
        assert!(!info.order_topic);
    }

    #[test]
    fn order_topic_conf_fixes_the_queue_list() {
        let mut r = route(&[("a", 8, 6, true)]);
        r.order_topic_conf = Some("b:2;a:1".into());
        let info = TopicPublishInfo::from_route("T", &r, 0);
        let names: Vec<_> = info
            .queues
            .iter()
            .map(|q| format!("{}{}", q.broker_name, q.queue_id))
            .collect();
        assert_eq!(names, ["b0", "b1", "a0"]);
        assert!(info.order_topic);
    }

    #[test]
    fn round_robin_avoids_the_last_broker() {
        let info =
            TopicPublishInfo::from_route("T", &route(&[("a", 2, 6, true), ("b", 2, 6, true)]), 0);
        for _ in 0..8 {
            assert_eq!(info.select_avoiding(Some("a")).unwrap().broker_name, "b");
        }
        let only_a = TopicPublishInfo::from_route("T", &route(&[("a", 2, 6, true)]), 0);
        assert_eq!(only_a.select_avoiding(Some("a")).unwrap().broker_name, "a");
        let picks: Vec<_> = (0..4)
            .map(|_| info.select_one().unwrap().queue_id)
            .collect();
        assert_eq!(picks.len(), 4);
    }

    #[test]
    fn subscribe_queues_are_readable_ones_sorted() {
        let r = route(&[("b", 1, 6, true), ("a", 2, 4, true), ("c", 1, 2, true)]);
        let names: Vec<_> = subscribe_queues("T", &r)
            .iter()
            .map(|q| format!("{}{}", q.broker_name, q.queue_id))
            .collect();
        assert_eq!(names, ["a0", "a1", "b0"]);
    }

    #[test]
    fn default_route_is_clamped_to_the_producer_queue_count() {
        let r = clamp_default_route(route(&[("a", 8, 7, true)]), 4);
        assert_eq!(r.queue_datas[0].write_queue_nums, 4);
        assert_eq!(r.queue_datas[0].read_queue_nums, 4);
    }
}
