//! Committed consumer offsets (`config/consumerOffset.json`): `topic@group -> queue ->
//! next offset to consume`, written every `flushConsumerOffsetInterval` and at shutdown
//! (spec semantics.md §7.1). Also the server-side offset resets an admin asked for, which
//! the next pull of each queue answers with PULL_OFFSET_MOVED (spec §7.7).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use karman_protocol::body::ConsumerOffsetSerializeWrapper;
use parking_lot::RwLock;
use tracing::warn;

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::json_file;

fn key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

#[derive(Debug)]
pub struct OffsetTable {
    path: PathBuf,
    offsets: RwLock<BTreeMap<String, BTreeMap<i32, i64>>>,
    /// Pending admin resets, taken by the next pull of the queue.
    resets: RwLock<HashMap<String, BTreeMap<i32, i64>>>,
    dirty: AtomicBool,
}

impl OffsetTable {
    pub fn load(config: &BrokerConfig) -> Result<Self, BrokerError> {
        let path = config.config_dir().join("consumerOffset.json");
        let stored: Option<ConsumerOffsetSerializeWrapper> = json_file::load(&path)?;
        Ok(Self {
            path,
            offsets: RwLock::new(stored.map(|w| w.offset_table).unwrap_or_default()),
            resets: RwLock::new(HashMap::new()),
            dirty: AtomicBool::new(false),
        })
    }

    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.offsets
            .read()
            .get(&key(topic, group))?
            .get(&queue_id)
            .copied()
    }

    /// Commits an offset; ignored while an admin reset is pending for the queue.
    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let key = key(topic, group);
        if self
            .resets
            .read()
            .get(&key)
            .is_some_and(|r| r.contains_key(&queue_id))
        {
            return;
        }
        self.offsets
            .write()
            .entry(key)
            .or_default()
            .insert(queue_id, offset);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Every queue's offset of one group on one topic.
    pub fn queue_offsets(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        self.offsets
            .read()
            .get(&key(topic, group))
            .cloned()
            .unwrap_or_default()
    }

    /// Topics a group has committed offsets for.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        let suffix = format!("@{group}");
        self.offsets
            .read()
            .keys()
            .filter_map(|k| k.strip_suffix(&suffix).map(str::to_owned))
            .collect()
    }

    /// Groups with committed offsets on a topic.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let prefix = format!("{topic}@");
        self.offsets
            .read()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    pub fn remove_group(&self, group: &str) {
        let suffix = format!("@{group}");
        self.offsets.write().retain(|k, _| !k.ends_with(&suffix));
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub fn remove_topic(&self, topic: &str) {
        let prefix = format!("{topic}@");
        self.offsets.write().retain(|k, _| !k.starts_with(&prefix));
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Records an admin reset and applies it to the committed offsets.
    pub fn reset(&self, group: &str, topic: &str, offsets: &BTreeMap<i32, i64>) {
        let key = key(topic, group);
        {
            let mut committed = self.offsets.write();
            let entry = committed.entry(key.clone()).or_default();
            for (queue_id, offset) in offsets {
                entry.insert(*queue_id, *offset);
            }
        }
        self.resets
            .write()
            .entry(key)
            .or_default()
            .extend(offsets.iter().map(|(q, o)| (*q, *o)));
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Takes the pending reset of one queue, if any.
    pub fn take_reset(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        let key = key(topic, group);
        let mut resets = self.resets.write();
        let pending = resets.get_mut(&key)?;
        let offset = pending.remove(&queue_id);
        if pending.is_empty() {
            resets.remove(&key);
        }
        offset
    }

    pub fn snapshot(&self) -> ConsumerOffsetSerializeWrapper {
        ConsumerOffsetSerializeWrapper {
            offset_table: self.offsets.read().clone(),
            ..ConsumerOffsetSerializeWrapper::default()
        }
    }

    /// Writes the file when something changed since the last write.
    pub fn persist_if_dirty(&self) {
        if self.dirty.swap(false, Ordering::Relaxed)
            && let Err(error) = json_file::save(&self.path, &self.snapshot())
        {
            self.dirty.store(true, Ordering::Relaxed);
            warn!(%error, "consumer offsets not persisted; retrying at the next interval");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &tempfile::TempDir) -> BrokerConfig {
        let mut config = BrokerConfig::default();
        config.store.store_path_root_dir = dir.path().to_owned();
        config
    }

    #[test]
    fn offsets_survive_a_reload_in_rocketmq_format() {
        let dir = tempfile::tempdir().unwrap();
        let table = OffsetTable::load(&config(&dir)).unwrap();
        table.commit("g", "T", 0, 12);
        table.commit("g", "T", 1, 7);
        table.persist_if_dirty();
        let text = std::fs::read_to_string(dir.path().join("config/consumerOffset.json")).unwrap();
        assert!(
            text.contains(r#""offsetTable":{"T@g":{0:12,1:7}}"#),
            "{text}"
        );
        let reloaded = OffsetTable::load(&config(&dir)).unwrap();
        assert_eq!(reloaded.query("g", "T", 1), Some(7));
        assert_eq!(reloaded.query("g", "T", 2), None);
    }

    #[test]
    fn a_pending_reset_wins_over_commits_until_taken() {
        let dir = tempfile::tempdir().unwrap();
        let table = OffsetTable::load(&config(&dir)).unwrap();
        table.commit("g", "T", 0, 100);
        table.reset("g", "T", &[(0, 5)].into());
        table.commit("g", "T", 0, 101);
        assert_eq!(table.query("g", "T", 0), Some(5));
        assert_eq!(table.take_reset("g", "T", 0), Some(5));
        assert_eq!(table.take_reset("g", "T", 0), None);
        table.commit("g", "T", 0, 6);
        assert_eq!(table.query("g", "T", 0), Some(6));
    }
}
