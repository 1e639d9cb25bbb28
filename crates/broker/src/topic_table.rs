//! Topic configs (`config/topics.json`): the system topics a broker creates at start,
//! auto-creation from TBW102 on first send, retry and dead-letter topics on demand
//! (spec remoting.md §7.1, semantics.md §0).

use std::collections::BTreeMap;
use std::path::PathBuf;

use karman_protocol::body::{DataVersion, TopicConfig, TopicConfigSerializeWrapper};
use karman_protocol::message::sysflag::perm;
use karman_store::Clock as _;
use parking_lot::RwLock;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::json_file;

/// RocketMQ's well-known topic names.
pub mod name {
    /// The auto-create template ("topic by whom? 102").
    pub const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";
    pub const SCHEDULE_TOPIC: &str = karman_store::SCHEDULE_TOPIC;
    pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
    pub const TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
    pub const TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
    pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
    pub const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
    pub const BENCHMARK_TOPIC: &str = "BenchmarkTest";
    pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
    pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
    pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";

    pub fn retry_topic(group: &str) -> String {
        format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
    }

    pub fn dlq_topic(group: &str) -> String {
        format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
    }

    pub fn is_retry_topic(topic: &str) -> bool {
        topic.starts_with(RETRY_GROUP_TOPIC_PREFIX)
    }

    pub fn is_dlq_topic(topic: &str) -> bool {
        topic.starts_with(DLQ_GROUP_TOPIC_PREFIX)
    }

    /// Topics clients may not send to (spec §3.1 step 4).
    pub fn is_send_forbidden(topic: &str) -> bool {
        matches!(
            topic,
            SCHEDULE_TOPIC
                | TRANS_HALF_TOPIC
                | TRANS_OP_HALF_TOPIC
                | TRANS_CHECK_MAX_TIME_TOPIC
                | SELF_TEST_TOPIC
                | OFFSET_MOVED_EVENT
                | TIMER_TOPIC
        )
    }

    /// Topics that are the broker's own business, not the users'.
    pub fn is_system_topic(topic: &str) -> bool {
        is_send_forbidden(topic) || topic == AUTO_CREATE_TOPIC_KEY || topic.starts_with("rmq_sys_")
    }
}

/// Longest topic name (255 for retry and DLQ topics).
pub const TOPIC_NAME_BYTES_MAX: usize = 127;
pub const RETRY_TOPIC_NAME_BYTES_MAX: usize = 255;

/// Checks a topic name the way RocketMQ's broker does: `[%|a-zA-Z0-9_-]`, 1..=127 bytes
/// (255 for retry and DLQ topics).
pub fn validate_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the topic name is empty".to_owned());
    }
    let max = if name::is_retry_topic(topic) || name::is_dlq_topic(topic) {
        RETRY_TOPIC_NAME_BYTES_MAX
    } else {
        TOPIC_NAME_BYTES_MAX
    };
    if topic.len() > max {
        return Err(format!(
            "the topic name is {} characters, longer than {max}",
            topic.len()
        ));
    }
    if let Some(bad) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(format!(
            "the topic name [{topic}] contains {bad:?}; allowed are letters, digits, %, |, _ and -"
        ));
    }
    Ok(())
}

#[derive(Debug)]
struct Inner {
    table: BTreeMap<String, TopicConfig>,
    data_version: DataVersion,
}

#[derive(Debug)]
pub struct TopicTable {
    path: PathBuf,
    inner: RwLock<Inner>,
    /// Signalled on every change so the broker re-registers with the NameServers at once.
    pub changed: Notify,
}

fn now_ms() -> i64 {
    karman_store::SystemClock.now_ms()
}

impl TopicTable {
    /// Loads `topics.json` and adds the system topics a RocketMQ broker always has.
    pub fn load(config: &BrokerConfig) -> Result<Self, BrokerError> {
        let path = config.config_dir().join("topics.json");
        let stored: Option<TopicConfigSerializeWrapper> = json_file::load(&path)?;
        let (table, data_version) = match stored {
            Some(wrapper) => (wrapper.topic_config_table, wrapper.data_version),
            None => (BTreeMap::new(), DataVersion::new(now_ms())),
        };
        let topics = Self {
            path,
            inner: RwLock::new(Inner {
                table,
                data_version,
            }),
            changed: Notify::new(),
        };
        for system in system_topics(config) {
            topics
                .inner
                .write()
                .table
                .entry(system.topic_name.clone())
                .or_insert(system);
        }
        if !config.auto_create_topic_enable {
            // A leftover template must not keep creating topics once auto-create is off.
            if let Some(template) = topics
                .inner
                .write()
                .table
                .get_mut(name::AUTO_CREATE_TOPIC_KEY)
            {
                template.perm = perm::READ_WRITE;
            }
        }
        topics.persist();
        Ok(topics)
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.inner.read().table.get(topic).cloned()
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.inner.read().table.contains_key(topic)
    }

    pub fn names(&self) -> Vec<String> {
        self.inner.read().table.keys().cloned().collect()
    }

    pub fn all(&self) -> BTreeMap<String, TopicConfig> {
        self.inner.read().table.clone()
    }

    pub fn data_version(&self) -> DataVersion {
        self.inner.read().data_version.clone()
    }

    /// The table as registered with NameServers: perms ANDed with the broker's own.
    pub fn registration_wrapper(&self, broker_permission: i32) -> TopicConfigSerializeWrapper {
        let inner = self.inner.read();
        let mut table = inner.table.clone();
        if broker_permission & perm::READ_WRITE != perm::READ_WRITE {
            for config in table.values_mut() {
                config.perm &= broker_permission | perm::INHERIT;
            }
        }
        TopicConfigSerializeWrapper {
            data_version: inner.data_version.clone(),
            mapping_data_version: Some(DataVersion::default()),
            topic_config_table: table,
            topic_queue_mapping_detail_map: Some(BTreeMap::new()),
            topic_queue_mapping_info_map: Some(BTreeMap::new()),
        }
    }

    /// Creates or replaces a topic (UPDATE_AND_CREATE_TOPIC).
    pub fn upsert(&self, config: TopicConfig) {
        {
            let mut inner = self.inner.write();
            info!(topic = %config.topic_name, read = config.read_queue_nums, write = config.write_queue_nums, perm = config.perm, "topic created or updated");
            inner.table.insert(config.topic_name.clone(), config);
            inner.data_version.next_version(now_ms());
        }
        self.after_change();
    }

    pub fn delete(&self, topic: &str) -> bool {
        let removed = {
            let mut inner = self.inner.write();
            let removed = inner.table.remove(topic).is_some();
            if removed {
                inner.data_version.next_version(now_ms());
            }
            removed
        };
        if removed {
            info!(topic, "topic deleted");
            self.after_change();
        }
        removed
    }

    /// The topic of a send, created from `default_topic` when unknown and the template
    /// allows it (spec §7.1). `None` when the topic does not exist and cannot be created.
    pub fn find_or_create_on_send(
        &self,
        topic: &str,
        default_topic: &str,
        client_queue_nums: i32,
        topic_sys_flag: i32,
        auto_create_topic_enable: bool,
    ) -> Option<TopicConfig> {
        if let Some(existing) = self.get(topic) {
            return Some(existing);
        }
        // The live setting, not the template's perm alone: `autoCreateTopicEnable` is
        // reloadable, and turning it off at runtime must stop creation at once (Java checks
        // it on every send too).
        if !auto_create_topic_enable {
            return None;
        }
        let template = self.get(default_topic)?;
        if default_topic != name::AUTO_CREATE_TOPIC_KEY || !perm::is_inherited(template.perm) {
            return None;
        }
        let queues = client_queue_nums.min(template.write_queue_nums).max(1);
        let mut created = TopicConfig::new(topic, queues, queues, template.perm & !perm::INHERIT);
        created.topic_sys_flag = topic_sys_flag;
        created.topic_filter_type = template.topic_filter_type;
        Some(self.insert_if_absent(created))
    }

    /// Creates a broker-managed topic (retry, DLQ) unless it exists; returns the one in
    /// the table either way.
    pub fn find_or_create_system(
        &self,
        topic: &str,
        queue_nums: i32,
        topic_perm: i32,
    ) -> TopicConfig {
        if let Some(existing) = self.get(topic) {
            return existing;
        }
        self.insert_if_absent(TopicConfig::new(topic, queue_nums, queue_nums, topic_perm))
    }

    fn insert_if_absent(&self, config: TopicConfig) -> TopicConfig {
        let (result, created) = {
            let mut inner = self.inner.write();
            match inner.table.get(&config.topic_name) {
                Some(existing) => (existing.clone(), false),
                None => {
                    info!(topic = %config.topic_name, queues = config.write_queue_nums, "topic auto-created");
                    inner
                        .table
                        .insert(config.topic_name.clone(), config.clone());
                    inner.data_version.next_version(now_ms());
                    (config, true)
                }
            }
        };
        if created {
            self.after_change();
        }
        result
    }

    fn after_change(&self) {
        self.persist();
        self.changed.notify_one();
    }

    /// Writes topics.json; a failure is logged, the table stays in memory, and the next
    /// change tries again.
    pub fn persist(&self) {
        let wrapper = {
            let inner = self.inner.read();
            TopicConfigSerializeWrapper {
                data_version: inner.data_version.clone(),
                topic_config_table: inner.table.clone(),
                ..TopicConfigSerializeWrapper::default()
            }
        };
        if let Err(error) = json_file::save(&self.path, &wrapper) {
            warn!(%error, "topic table not persisted");
        }
    }
}

/// The topics every RocketMQ broker has (spec remoting.md §7.1).
fn system_topics(config: &BrokerConfig) -> Vec<TopicConfig> {
    let mut topics = vec![
        TopicConfig::new(name::SELF_TEST_TOPIC, 1, 1, perm::READ_WRITE),
        TopicConfig::new(name::BENCHMARK_TOPIC, 1024, 1024, perm::READ_WRITE),
        TopicConfig::new(name::OFFSET_MOVED_EVENT, 1, 1, perm::READ_WRITE),
        TopicConfig::new(name::SCHEDULE_TOPIC, 18, 18, perm::READ_WRITE),
        TopicConfig::new(name::TRANS_HALF_TOPIC, 1, 1, perm::READ_WRITE),
        TopicConfig::new(name::TRANS_OP_HALF_TOPIC, 1, 1, perm::READ_WRITE),
        TopicConfig::new(
            format!("{}_REPLY_TOPIC", config.broker_cluster_name),
            1,
            1,
            perm::READ_WRITE,
        ),
    ];
    if config.auto_create_topic_enable {
        let queues = config.default_topic_queue_nums;
        topics.push(TopicConfig::new(
            name::AUTO_CREATE_TOPIC_KEY,
            queues,
            queues,
            perm::READ_WRITE | perm::INHERIT,
        ));
    }
    let cluster_perm = perm::INHERIT
        | if config.cluster_topic_enable {
            perm::READ_WRITE
        } else {
            0
        };
    topics.push(TopicConfig::new(
        config.broker_cluster_name.clone(),
        16,
        16,
        cluster_perm,
    ));
    let broker_perm = perm::INHERIT
        | if config.broker_topic_enable {
            perm::READ_WRITE
        } else {
            0
        };
    topics.push(TopicConfig::new(
        config.broker_name.clone(),
        1,
        1,
        broker_perm,
    ));
    if config.trace_topic_enable {
        topics.push(TopicConfig::new(
            config.msg_trace_topic_name.clone(),
            1,
            1,
            perm::READ_WRITE,
        ));
    }
    if config.timer_wheel_enable {
        topics.push(TopicConfig::new(name::TIMER_TOPIC, 1, 1, perm::READ_WRITE));
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &tempfile::TempDir) -> BrokerConfig {
        let mut config = BrokerConfig::default();
        config.store.store_path_root_dir = dir.path().to_owned();
        config.broker_name = "broker-a".into();
        config
    }

    #[test]
    fn system_topics_exist_and_the_table_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let table = TopicTable::load(&config(&dir)).unwrap();
        for topic in [
            "TBW102",
            "SCHEDULE_TOPIC_XXXX",
            "RMQ_SYS_TRANS_HALF_TOPIC",
            "DefaultCluster",
            "broker-a",
        ] {
            assert!(table.contains(topic), "{topic}");
        }
        table.upsert(TopicConfig::new("Orders", 8, 8, 6));
        let reloaded = TopicTable::load(&config(&dir)).unwrap();
        assert_eq!(reloaded.get("Orders").unwrap().write_queue_nums, 8);
    }

    #[test]
    fn auto_create_clamps_queues_and_drops_inherit() {
        let dir = tempfile::tempdir().unwrap();
        let table = TopicTable::load(&config(&dir)).unwrap();
        let created = table
            .find_or_create_on_send("New", "TBW102", 4, 0, true)
            .unwrap();
        assert_eq!(
            (
                created.read_queue_nums,
                created.write_queue_nums,
                created.perm
            ),
            (4, 4, 6)
        );
        let wide = table
            .find_or_create_on_send("Wide", "TBW102", 64, 0, true)
            .unwrap();
        assert_eq!(wide.write_queue_nums, 8, "clamped to the template's 8");
    }

    #[test]
    fn auto_create_off_refuses_unknown_topics() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&dir);
        config.auto_create_topic_enable = false;
        let table = TopicTable::load(&config).unwrap();
        assert!(
            table
                .find_or_create_on_send("New", "TBW102", 4, 0, true)
                .is_none()
        );
    }

    #[test]
    fn auto_create_turned_off_at_runtime_refuses_unknown_topics() {
        let dir = tempfile::tempdir().unwrap();
        let table = TopicTable::load(&config(&dir)).unwrap();
        assert!(
            table
                .find_or_create_on_send("New", "TBW102", 4, 0, false)
                .is_none()
        );
        assert!(!table.contains("New"));
        assert!(
            table
                .find_or_create_on_send("New", "TBW102", 4, 0, true)
                .is_some()
        );
    }

    #[test]
    fn topic_names_follow_rocketmq_rules() {
        assert!(validate_topic_name("Orders_2024-v1|x%y").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("bad topic").is_err());
        assert!(validate_topic_name(&"t".repeat(128)).is_err());
        assert!(validate_topic_name(&format!("%RETRY%{}", "g".repeat(200))).is_ok());
    }
}
