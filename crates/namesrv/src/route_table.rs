//! The route registry (spec semantics.md §3, remoting.md §7.10): which brokers are alive,
//! which topics they serve with how many queues, grouped by cluster.
//!
//! Pure state: every call that depends on time takes `now`, so expiry is tested without
//! waiting. The processor owns the lock and the clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use karman_protocol::body::{
    BrokerData, ClusterInfo, DataVersion, QueueData, TopicConfig, TopicConfigSerializeWrapper,
    TopicRouteData,
};
use karman_protocol::message::sysflag::{perm, topic as topic_flag};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The master's broker id.
pub const MASTER_ID: i64 = 0;

/// Identifies a registered broker process: its cluster and address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerAddrInfo {
    pub cluster: String,
    pub addr: String,
}

#[derive(Debug, Clone)]
struct BrokerLiveInfo {
    last_update: Instant,
    timeout: Duration,
    data_version: DataVersion,
    channel_id: Option<u64>,
    ha_server_addr: String,
}

/// Everything one REGISTER_BROKER carries.
#[derive(Debug, Clone)]
pub struct BrokerRegistration {
    pub cluster: String,
    pub addr: String,
    pub name: String,
    pub id: i64,
    pub ha_server_addr: String,
    pub zone_name: Option<String>,
    pub timeout: Duration,
    pub enable_acting_master: Option<bool>,
    pub topic_config: TopicConfigSerializeWrapper,
    pub filter_servers: Vec<String>,
    pub channel_id: Option<u64>,
}

/// What a registering slave learns about its master.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterResult {
    pub ha_server_addr: Option<String>,
    pub master_addr: Option<String>,
}

/// Which queue datas the unit topic lists select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitFilter {
    /// GET_UNIT_TOPIC_LIST: unit topics.
    Unit,
    /// GET_HAS_UNIT_SUB_TOPIC_LIST: topics with a unit subscription.
    HasUnitSub,
    /// GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST: non-unit topics with a unit subscription.
    HasUnitSubNotUnit,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    topic_queue_table: BTreeMap<String, BTreeMap<String, QueueData>>,
    broker_addr_table: BTreeMap<String, BrokerData>,
    cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
    broker_live_table: HashMap<BrokerAddrInfo, BrokerLiveInfo>,
    filter_server_table: HashMap<BrokerAddrInfo, Vec<String>>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// REGISTER_BROKER: records the broker, refreshes its liveness and, for a master (or
    /// the lowest-id slave when no master is registered), takes its topic configs.
    pub fn register_broker(
        &mut self,
        reg: BrokerRegistration,
        now: Instant,
    ) -> Option<RegisterResult> {
        self.cluster_addr_table
            .entry(reg.cluster.clone())
            .or_default()
            .insert(reg.name.clone());
        let mut register_first = !self.broker_addr_table.contains_key(&reg.name);
        let broker_data = self
            .broker_addr_table
            .entry(reg.name.clone())
            .or_insert_with(|| BrokerData {
                broker_addrs: BTreeMap::new(),
                broker_name: reg.name.clone(),
                cluster: reg.cluster.clone(),
                enable_acting_master: false,
                zone_name: None,
            });
        if let Some(acting) = reg.enable_acting_master {
            broker_data.enable_acting_master = acting;
        }
        if reg.zone_name.is_some() {
            broker_data.zone_name = reg.zone_name.clone();
        }
        // One address keeps one id: a slave promoted to master re-registers as id 0.
        broker_data
            .broker_addrs
            .retain(|id, addr| *addr != reg.addr || *id == reg.id);

        // A stale registration (older state version) at another address must not evict
        // the current holder of this broker id.
        if let Some(old_addr) = broker_data
            .broker_addrs
            .get(&reg.id)
            .filter(|a| **a != reg.addr)
        {
            let old_key = BrokerAddrInfo {
                cluster: reg.cluster.clone(),
                addr: old_addr.clone(),
            };
            if let Some(old) = self.broker_live_table.get(&old_key)
                && old.data_version.state_version > reg.topic_config.data_version.state_version
            {
                warn!(broker = %reg.name, id = reg.id, addr = %reg.addr, holder = %old_addr,
                    "ignoring registration with an older state version than the current holder");
                self.broker_live_table.remove(&BrokerAddrInfo {
                    cluster: reg.cluster.clone(),
                    addr: reg.addr.clone(),
                });
                return None;
            }
        }

        let previous = broker_data.broker_addrs.insert(reg.id, reg.addr.clone());
        register_first |= previous.is_none();
        let is_master = reg.id == MASTER_ID;
        let is_prime_slave = !is_master && broker_data.broker_addrs.keys().next() == Some(&reg.id);
        let acting_master = broker_data.enable_acting_master;

        let addr_key = BrokerAddrInfo {
            cluster: reg.cluster.clone(),
            addr: reg.addr.clone(),
        };
        if is_master || is_prime_slave {
            let version_changed =
                self.is_broker_topic_config_changed(&addr_key, &reg.topic_config.data_version);
            for config in reg.topic_config.topic_config_table.values() {
                let changed = register_first
                    || version_changed
                    || self.lacks_queue_data(&config.topic_name, &reg.name);
                if !changed {
                    continue;
                }
                let mut config = config.clone();
                if is_prime_slave && acting_master {
                    config.perm &= !perm::WRITE;
                }
                self.create_and_update_queue_data(&reg.name, &config);
            }
        }

        self.broker_live_table.insert(
            addr_key.clone(),
            BrokerLiveInfo {
                last_update: now,
                timeout: reg.timeout,
                data_version: reg.topic_config.data_version.clone(),
                channel_id: reg.channel_id,
                ha_server_addr: reg.ha_server_addr.clone(),
            },
        );
        if reg.filter_servers.is_empty() {
            self.filter_server_table.remove(&addr_key);
        } else {
            self.filter_server_table
                .insert(addr_key, reg.filter_servers.clone());
        }
        if register_first {
            info!(cluster = %reg.cluster, broker = %reg.name, id = reg.id, addr = %reg.addr, "broker registered");
        }

        let mut result = RegisterResult::default();
        if !is_master
            && let Some(master_addr) = self
                .broker_addr_table
                .get(&reg.name)
                .and_then(|b| b.broker_addrs.get(&MASTER_ID))
            && let Some(master) = self.broker_live_table.get(&BrokerAddrInfo {
                cluster: reg.cluster.clone(),
                addr: master_addr.clone(),
            })
        {
            result.ha_server_addr = Some(master.ha_server_addr.clone());
            result.master_addr = Some(master_addr.clone());
        }
        Some(result)
    }

    fn is_broker_topic_config_changed(&self, key: &BrokerAddrInfo, version: &DataVersion) -> bool {
        self.broker_live_table
            .get(key)
            .is_none_or(|live| live.data_version != *version)
    }

    fn lacks_queue_data(&self, topic: &str, broker_name: &str) -> bool {
        self.topic_queue_table
            .get(topic)
            .is_none_or(|by_broker| !by_broker.contains_key(broker_name))
    }

    fn create_and_update_queue_data(&mut self, broker_name: &str, config: &TopicConfig) {
        let queue_data = QueueData {
            broker_name: broker_name.to_owned(),
            perm: config.perm,
            read_queue_nums: config.read_queue_nums,
            topic_sys_flag: config.topic_sys_flag,
            write_queue_nums: config.write_queue_nums,
        };
        let by_broker = self
            .topic_queue_table
            .entry(config.topic_name.clone())
            .or_default();
        if by_broker.get(broker_name) != Some(&queue_data) {
            info!(topic = %config.topic_name, broker = broker_name, read = config.read_queue_nums,
                write = config.write_queue_nums, perm = config.perm, "topic queue data updated");
            by_broker.insert(broker_name.to_owned(), queue_data);
        }
    }

    /// UNREGISTER_BROKER.
    pub fn unregister_broker(&mut self, cluster: &str, addr: &str, name: &str, id: i64) {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: addr.to_owned(),
        };
        self.broker_live_table.remove(&key);
        self.filter_server_table.remove(&key);
        let mut remove_name = false;
        if let Some(broker_data) = self.broker_addr_table.get_mut(name) {
            broker_data.broker_addrs.retain(|_, a| a != addr);
            remove_name = broker_data.broker_addrs.is_empty();
        }
        info!(cluster, broker = name, id, addr, "broker unregistered");
        if remove_name {
            self.remove_broker_name(cluster, name);
        }
    }

    fn remove_broker_name(&mut self, cluster: &str, name: &str) {
        self.broker_addr_table.remove(name);
        if let Some(names) = self.cluster_addr_table.get_mut(cluster) {
            names.remove(name);
            if names.is_empty() {
                self.cluster_addr_table.remove(cluster);
            }
        }
        self.topic_queue_table.retain(|topic, by_broker| {
            if by_broker.remove(name).is_some() {
                debug!(topic = %topic, broker = name, "topic queue data removed with its broker");
            }
            !by_broker.is_empty()
        });
    }

    /// Forgets a broker process entirely (expiry, closed connection): every id it held.
    fn remove_broker_addr(&mut self, key: &BrokerAddrInfo) {
        self.broker_live_table.remove(key);
        self.filter_server_table.remove(key);
        let emptied: Vec<String> = self
            .broker_addr_table
            .iter_mut()
            .filter(|(_, data)| data.cluster == key.cluster)
            .filter_map(|(name, data)| {
                let before = data.broker_addrs.len();
                data.broker_addrs.retain(|_, a| *a != key.addr);
                (data.broker_addrs.len() != before && data.broker_addrs.is_empty())
                    .then(|| name.clone())
            })
            .collect();
        for name in emptied {
            self.remove_broker_name(&key.cluster, &name);
        }
    }

    /// Removes brokers silent for longer than their timeout; returns the channels of the
    /// removed brokers so the caller can close them.
    pub fn scan_not_active_brokers(&mut self, now: Instant) -> Vec<(BrokerAddrInfo, Option<u64>)> {
        let expired: Vec<(BrokerAddrInfo, Option<u64>)> = self
            .broker_live_table
            .iter()
            .filter(|(_, live)| now.saturating_duration_since(live.last_update) > live.timeout)
            .map(|(key, live)| (key.clone(), live.channel_id))
            .collect();
        for (key, _) in &expired {
            warn!(cluster = %key.cluster, addr = %key.addr, "broker expired: no registration within its timeout");
            self.remove_broker_addr(key);
        }
        expired
    }

    /// A connection closed: forget every broker that registered over it.
    pub fn on_channel_closed(&mut self, channel_id: u64) -> usize {
        let gone: Vec<BrokerAddrInfo> = self
            .broker_live_table
            .iter()
            .filter(|(_, live)| live.channel_id == Some(channel_id))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &gone {
            info!(cluster = %key.cluster, addr = %key.addr, "broker connection closed; removing it");
            self.remove_broker_addr(key);
        }
        gone.len()
    }

    /// Refreshes a broker's liveness (BROKER_HEARTBEAT, QUERY_DATA_VERSION).
    pub fn touch(
        &mut self,
        cluster: &str,
        addr: &str,
        timeout: Option<Duration>,
        now: Instant,
    ) -> bool {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: addr.to_owned(),
        };
        match self.broker_live_table.get_mut(&key) {
            Some(live) => {
                live.last_update = now;
                if let Some(timeout) = timeout {
                    live.timeout = timeout;
                }
                true
            }
            None => false,
        }
    }

    /// QUERY_DATA_VERSION: whether `version` differs from the broker's last registration,
    /// and that stored version.
    pub fn query_data_version(
        &mut self,
        cluster: &str,
        addr: &str,
        version: &DataVersion,
        now: Instant,
    ) -> (bool, Option<DataVersion>) {
        let key = BrokerAddrInfo {
            cluster: cluster.to_owned(),
            addr: addr.to_owned(),
        };
        let changed = self.is_broker_topic_config_changed(&key, version);
        self.touch(cluster, addr, None, now);
        (
            changed,
            self.broker_live_table
                .get(&key)
                .map(|l| l.data_version.clone()),
        )
    }

    /// GET_ROUTEINFO_BY_TOPIC: queue data plus the broker data of every broker serving the
    /// topic; `None` when the topic has no queue data or none of its brokers is known.
    pub fn topic_route(&self, topic: &str) -> Option<TopicRouteData> {
        let by_broker = self.topic_queue_table.get(topic)?;
        let mut route = TopicRouteData::default();
        for (name, queue_data) in by_broker {
            route.queue_datas.push(queue_data.clone());
            if let Some(broker_data) = self.broker_addr_table.get(name) {
                route.broker_datas.push(broker_data.clone());
                for addr in broker_data.broker_addrs.values() {
                    let key = BrokerAddrInfo {
                        cluster: broker_data.cluster.clone(),
                        addr: addr.clone(),
                    };
                    if let Some(servers) = self.filter_server_table.get(&key) {
                        route
                            .filter_server_table
                            .insert(addr.clone(), servers.clone());
                    }
                }
            }
        }
        (!route.queue_datas.is_empty() && !route.broker_datas.is_empty()).then_some(route)
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.broker_addr_table.clone(),
            cluster_addr_table: self.cluster_addr_table.clone(),
        }
    }

    pub fn all_topics(&self) -> BTreeSet<String> {
        self.topic_queue_table.keys().cloned().collect()
    }

    pub fn topics_by_cluster(&self, cluster: &str) -> BTreeSet<String> {
        let Some(names) = self.cluster_addr_table.get(cluster) else {
            return BTreeSet::new();
        };
        self.topic_queue_table
            .iter()
            .filter(|(_, by_broker)| by_broker.keys().any(|name| names.contains(name)))
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: cluster and broker names, which are topics of their
    /// own, and a master address to query them on.
    pub fn system_topics(&self) -> (BTreeSet<String>, Option<String>) {
        let mut topics = BTreeSet::new();
        let mut broker_addr = None;
        for (cluster, names) in &self.cluster_addr_table {
            topics.insert(cluster.clone());
            for name in names {
                topics.insert(name.clone());
                if let Some(addr) = self
                    .broker_addr_table
                    .get(name)
                    .and_then(|b| b.broker_addrs.get(&MASTER_ID))
                {
                    broker_addr = Some(addr.clone());
                }
            }
        }
        (topics, broker_addr)
    }

    pub fn unit_topics(&self, filter: UnitFilter) -> BTreeSet<String> {
        self.topic_queue_table
            .iter()
            .filter(|(_, by_broker)| {
                by_broker.values().next().is_some_and(|q| {
                    let unit = q.topic_sys_flag & topic_flag::UNIT != 0;
                    let unit_sub = q.topic_sys_flag & topic_flag::UNIT_SUB != 0;
                    match filter {
                        UnitFilter::Unit => unit,
                        UnitFilter::HasUnitSub => unit_sub,
                        UnitFilter::HasUnitSubNotUnit => unit_sub && !unit,
                    }
                })
            })
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`wipe = true`) or ADD_WRITE_PERM_OF_BROKER: returns how
    /// many topics changed.
    pub fn set_write_perm(&mut self, broker_name: &str, wipe: bool) -> i32 {
        let mut count = 0;
        for by_broker in self.topic_queue_table.values_mut() {
            if let Some(queue_data) = by_broker.get_mut(broker_name) {
                queue_data.perm = if wipe {
                    queue_data.perm & !perm::WRITE
                } else {
                    perm::READ | perm::WRITE
                };
                count += 1;
            }
        }
        count
    }

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only its queues on one cluster's
    /// brokers.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster.and_then(|c| self.cluster_addr_table.get(c)) {
            Some(names) => {
                if let Some(by_broker) = self.topic_queue_table.get_mut(topic) {
                    by_broker.retain(|name, _| !names.contains(name));
                    if by_broker.is_empty() {
                        self.topic_queue_table.remove(topic);
                    }
                }
            }
            None if cluster.is_none() => {
                self.topic_queue_table.remove(topic);
            }
            None => {}
        }
    }

    /// REGISTER_TOPIC_IN_NAMESRV: queue datas of known brokers only.
    pub fn register_topic(&mut self, topic: &str, queue_datas: Vec<QueueData>) {
        for queue_data in queue_datas {
            if !self.broker_addr_table.contains_key(&queue_data.broker_name) {
                warn!(topic, broker = %queue_data.broker_name, "not registering queue data of an unknown broker");
                continue;
            }
            self.topic_queue_table
                .entry(topic.to_owned())
                .or_default()
                .insert(queue_data.broker_name.clone(), queue_data);
        }
    }

    /// GET_BROKER_MEMBER_GROUP: the addresses of one broker group.
    pub fn broker_member_group(&self, broker_name: &str) -> BTreeMap<i64, String> {
        self.broker_addr_table
            .get(broker_name)
            .map(|b| b.broker_addrs.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(
        name: &str,
        addr: &str,
        id: i64,
        topics: &[(&str, i32)],
        counter: i64,
    ) -> BrokerRegistration {
        let mut topic_config = TopicConfigSerializeWrapper::default();
        topic_config.data_version.counter = counter;
        for (topic, queues) in topics {
            topic_config.topic_config_table.insert(
                (*topic).into(),
                TopicConfig::new(*topic, *queues, *queues, 6),
            );
        }
        BrokerRegistration {
            cluster: "DefaultCluster".into(),
            addr: addr.into(),
            name: name.into(),
            id,
            ha_server_addr: format!("{addr}-ha"),
            zone_name: None,
            timeout: Duration::from_secs(120),
            enable_acting_master: None,
            topic_config,
            filter_servers: Vec::new(),
            channel_id: Some(7),
        }
    }

    #[test]
    fn route_lists_every_broker_serving_the_topic() {
        let now = Instant::now();
        let mut table = RouteTable::new();
        table.register_broker(
            registration("broker-a", "10.0.0.1:10911", 0, &[("T", 4)], 1),
            now,
        );
        table.register_broker(
            registration("broker-b", "10.0.0.2:10911", 0, &[("T", 8)], 1),
            now,
        );
        let route = table.topic_route("T").unwrap();
        assert_eq!(route.queue_datas.len(), 2);
        assert_eq!(route.broker_datas.len(), 2);
        assert!(table.topic_route("missing").is_none());
    }

    #[test]
    fn slave_topic_configs_are_ignored_and_slave_learns_its_master() {
        let now = Instant::now();
        let mut table = RouteTable::new();
        table.register_broker(
            registration("broker-a", "10.0.0.1:10911", 0, &[("T", 4)], 1),
            now,
        );
        let result = table
            .register_broker(
                registration("broker-a", "10.0.0.3:10911", 1, &[("T", 99), ("S", 1)], 1),
                now,
            )
            .unwrap();
        assert_eq!(result.master_addr.as_deref(), Some("10.0.0.1:10911"));
        assert_eq!(result.ha_server_addr.as_deref(), Some("10.0.0.1:10911-ha"));
        assert_eq!(
            table.topic_route("T").unwrap().queue_datas[0].write_queue_nums,
            4
        );
        assert!(table.topic_route("S").is_none());
        assert_eq!(
            table.topic_route("T").unwrap().broker_datas[0]
                .broker_addrs
                .len(),
            2
        );
    }

    #[test]
    fn expired_broker_and_its_queues_disappear() {
        let start = Instant::now();
        let mut table = RouteTable::new();
        let mut a = registration("broker-a", "10.0.0.1:10911", 0, &[("T", 4)], 1);
        a.timeout = Duration::from_secs(10);
        table.register_broker(a, start);
        table.register_broker(
            registration(
                "broker-b",
                "10.0.0.2:10911",
                0,
                &[("T", 4), ("OnlyB", 1)],
                1,
            ),
            start,
        );
        assert!(
            table
                .scan_not_active_brokers(start + Duration::from_secs(10))
                .is_empty()
        );
        let expired = table.scan_not_active_brokers(start + Duration::from_secs(11));
        assert_eq!(expired.len(), 1);
        let route = table.topic_route("T").unwrap();
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "broker-b");
        assert!(
            !table
                .cluster_info()
                .broker_addr_table
                .contains_key("broker-a")
        );
        assert!(table.topic_route("OnlyB").is_some());
    }

    #[test]
    fn closed_channel_removes_its_broker() {
        let now = Instant::now();
        let mut table = RouteTable::new();
        table.register_broker(
            registration("broker-a", "10.0.0.1:10911", 0, &[("T", 4)], 1),
            now,
        );
        assert_eq!(table.on_channel_closed(7), 1);
        assert!(table.topic_route("T").is_none());
        assert!(table.cluster_info().cluster_addr_table.is_empty());
    }

    #[test]
    fn promoted_slave_keeps_one_id_per_address() {
        let now = Instant::now();
        let mut table = RouteTable::new();
        table.register_broker(registration("broker-a", "10.0.0.3:10911", 1, &[], 1), now);
        table.register_broker(
            registration("broker-a", "10.0.0.3:10911", 0, &[("T", 4)], 2),
            now,
        );
        let addrs = &table.cluster_info().broker_addr_table["broker-a"].broker_addrs;
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs.get(&0).map(String::as_str), Some("10.0.0.3:10911"));
    }

    #[test]
    fn write_perm_wipe_and_add_count_topics() {
        let now = Instant::now();
        let mut table = RouteTable::new();
        table.register_broker(
            registration("broker-a", "10.0.0.1:10911", 0, &[("T", 4), ("U", 4)], 1),
            now,
        );
        assert_eq!(table.set_write_perm("broker-a", true), 2);
        assert_eq!(
            table.topic_route("T").unwrap().queue_datas[0].perm,
            perm::READ
        );
        assert_eq!(table.set_write_perm("broker-a", false), 2);
        assert_eq!(
            table.topic_route("T").unwrap().queue_datas[0].perm,
            perm::READ_WRITE
        );
        assert_eq!(table.set_write_perm("nobody", true), 0);
    }

    #[test]
    fn unchanged_data_version_keeps_namesrv_side_edits() {
        let now = Instant::now();
        let mut table = RouteTable::new();
        table.register_broker(
            registration("broker-a", "10.0.0.1:10911", 0, &[("T", 4)], 1),
            now,
        );
        table.set_write_perm("broker-a", true);
        // the periodic re-registration with the same version does not undo the wipe
        table.register_broker(
            registration("broker-a", "10.0.0.1:10911", 0, &[("T", 4)], 1),
            now,
        );
        assert_eq!(
            table.topic_route("T").unwrap().queue_datas[0].perm,
            perm::READ
        );
        // a new version does
        table.register_broker(
            registration("broker-a", "10.0.0.1:10911", 0, &[("T", 4)], 2),
            now,
        );
        assert_eq!(
            table.topic_route("T").unwrap().queue_datas[0].perm,
            perm::READ_WRITE
        );
    }

    #[test]
    fn delete_topic_per_cluster_or_everywhere() {
        let now = Instant::now();
        let mut table = RouteTable::new();
        table.register_broker(
            registration("broker-a", "10.0.0.1:10911", 0, &[("T", 4)], 1),
            now,
        );
        table.delete_topic("T", Some("OtherCluster"));
        assert!(table.topic_route("T").is_some());
        table.delete_topic("T", Some("DefaultCluster"));
        assert!(table.topic_route("T").is_none());
    }
}
