//! Subscription group configs (`config/subscriptionGroup.json`), auto-created on first use
//! when `autoCreateSubscriptionGroup` is on (spec remoting.md §7.2, §4.6).

use std::collections::BTreeMap;
use std::path::PathBuf;

use karman_protocol::body::{DataVersion, SubscriptionGroupConfig, SubscriptionGroupWrapper};
use karman_store::Clock as _;
use parking_lot::RwLock;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::json_file;

/// Longest consumer group name: retry and DLQ topics are built from it.
pub const GROUP_NAME_BYTES_MAX: usize = 120;

pub fn validate_group_name(group: &str) -> Result<(), String> {
    if group.is_empty() {
        return Err("the consumer group name is empty".to_owned());
    }
    if group.len() > GROUP_NAME_BYTES_MAX {
        return Err(format!(
            "the group name is {} characters, longer than {GROUP_NAME_BYTES_MAX}",
            group.len()
        ));
    }
    if let Some(bad) = group
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(format!(
            "the group name [{group}] contains {bad:?}; allowed are letters, digits, %, |, _ and -"
        ));
    }
    Ok(())
}

#[derive(Debug)]
pub struct GroupTable {
    path: PathBuf,
    auto_create: bool,
    inner: RwLock<SubscriptionGroupWrapper>,
}

fn now_ms() -> i64 {
    karman_store::SystemClock.now_ms()
}

impl GroupTable {
    pub fn load(config: &BrokerConfig) -> Result<Self, BrokerError> {
        let path = config.config_dir().join("subscriptionGroup.json");
        let mut wrapper: SubscriptionGroupWrapper =
            json_file::load(&path)?.unwrap_or_else(|| SubscriptionGroupWrapper {
                data_version: DataVersion::new(now_ms()),
                ..SubscriptionGroupWrapper::default()
            });
        // Groups RocketMQ's own tools and services use.
        for group in [
            "TOOLS_CONSUMER",
            "SELF_TEST_C_GROUP",
            "CID_RMQ_SYS_TRANS",
            "CID_SYS_RMQ_TRANS",
        ] {
            wrapper
                .subscription_group_table
                .entry(group.to_owned())
                .or_insert_with(|| SubscriptionGroupConfig::new(group));
        }
        Ok(Self {
            path,
            auto_create: config.auto_create_subscription_group,
            inner: RwLock::new(wrapper),
        })
    }

    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.inner
            .read()
            .subscription_group_table
            .get(group)
            .cloned()
    }

    /// The group's config, created with defaults when unknown and auto-create is on.
    pub fn find_or_create(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        if let Some(existing) = self.get(group) {
            return Some(existing);
        }
        if !self.auto_create || validate_group_name(group).is_err() {
            return None;
        }
        let config = SubscriptionGroupConfig::new(group);
        {
            let mut inner = self.inner.write();
            if let Some(existing) = inner.subscription_group_table.get(group) {
                return Some(existing.clone());
            }
            inner
                .subscription_group_table
                .insert(group.to_owned(), config.clone());
            inner.data_version.next_version(now_ms());
        }
        info!(group, "subscription group auto-created");
        self.persist();
        Some(config)
    }

    pub fn upsert(&self, config: SubscriptionGroupConfig) {
        {
            let mut inner = self.inner.write();
            info!(group = %config.group_name, "subscription group created or updated");
            inner
                .subscription_group_table
                .insert(config.group_name.clone(), config);
            inner.data_version.next_version(now_ms());
        }
        self.persist();
    }

    pub fn delete(&self, group: &str) -> bool {
        let removed = {
            let mut inner = self.inner.write();
            let removed = inner.subscription_group_table.remove(group).is_some();
            if removed {
                inner.data_version.next_version(now_ms());
            }
            removed
        };
        if removed {
            info!(group, "subscription group deleted");
            self.persist();
        }
        removed
    }

    pub fn snapshot(&self) -> SubscriptionGroupWrapper {
        self.inner.read().clone()
    }

    pub fn names(&self) -> Vec<String> {
        self.inner
            .read()
            .subscription_group_table
            .keys()
            .cloned()
            .collect()
    }

    pub fn all(&self) -> BTreeMap<String, SubscriptionGroupConfig> {
        self.inner.read().subscription_group_table.clone()
    }

    fn persist(&self) {
        let snapshot = self.snapshot();
        if let Err(error) = json_file::save(&self.path, &snapshot) {
            warn!(%error, "subscription group table not persisted");
        }
    }
}
