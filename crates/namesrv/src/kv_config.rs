//! KV config: namespace -> key -> value, persisted to `kvConfig.json` in Java's format
//! (`{"configTable":{namespace:{key:value}}}`). The only NameServer state that survives a
//! restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::NamesrvError;

/// The namespace whose entries become `orderTopicConf` ("brokerA:4;brokerB:4").
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct KvConfigFile {
    config_table: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug)]
pub struct KvConfig {
    path: PathBuf,
    table: BTreeMap<String, BTreeMap<String, String>>,
}

impl KvConfig {
    /// Loads the file, falling back to its `.bak` copy; a missing file is an empty table.
    /// An empty file counts as missing: a crash right after the rename can leave one (the
    /// data was not yet written back), and RocketMQ starts with an empty table on it too.
    pub fn load(path: &Path) -> Result<Self, NamesrvError> {
        let mut table = BTreeMap::new();
        for candidate in [path.to_owned(), backup_path(path)] {
            match std::fs::read(&candidate) {
                Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(bytes) => {
                    let file: KvConfigFile =
                        karman_protocol::body::fastjson::from_slice(&bytes, "kvConfig.json")
                            .map_err(|source| NamesrvError::KvConfigJson {
                                path: candidate.clone(),
                                source,
                            })?;
                    table = file.config_table;
                    break;
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(NamesrvError::KvConfigIo {
                        action: "read",
                        path: candidate,
                        source,
                    });
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            table,
        })
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    pub fn namespace(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.table
            .get(namespace)
            .filter(|entries| !entries.is_empty())
    }

    pub fn put(&mut self, namespace: &str, key: &str, value: &str) -> Result<(), NamesrvError> {
        self.table
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        self.persist()
    }

    pub fn delete(&mut self, namespace: &str, key: &str) -> Result<(), NamesrvError> {
        let removed = self
            .table
            .get_mut(namespace)
            .is_some_and(|entries| entries.remove(key).is_some());
        if removed {
            self.table.retain(|_, entries| !entries.is_empty());
            self.persist()?;
        }
        Ok(())
    }

    /// Writes a temporary file, keeps the previous file as `.bak`, then renames into place,
    /// so a crash never leaves a half-written config.
    fn persist(&self) -> Result<(), NamesrvError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| NamesrvError::KvConfigIo {
                action,
                path,
                source,
            }
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create the directory of", &self.path))?;
        }
        let json = karman_protocol::body::fastjson::to_standard_vec(&KvConfigFile {
            config_table: self.table.clone(),
        });
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io("write", &tmp))?;
        if self.path.exists() {
            std::fs::copy(&self.path, backup_path(&self.path))
                .map_err(io("back up", &self.path))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io("replace", &self.path))
    }
}

fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reload_in_java_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("namesrv/kvConfig.json");
        let mut kv = KvConfig::load(&path).unwrap();
        kv.put(NAMESPACE_ORDER_TOPIC_CONFIG, "T", "broker-a:4")
            .unwrap();
        kv.put("ns", "k", "v").unwrap();
        kv.delete("ns", "k").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            r#"{"configTable":{"ORDER_TOPIC_CONFIG":{"T":"broker-a:4"}}}"#
        );
        let reloaded = KvConfig::load(&path).unwrap();
        assert_eq!(
            reloaded.get(NAMESPACE_ORDER_TOPIC_CONFIG, "T"),
            Some("broker-a:4")
        );
        assert!(reloaded.namespace("ns").is_none());
    }

    #[test]
    fn falls_back_to_the_backup_when_the_file_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvConfig.json");
        let mut kv = KvConfig::load(&path).unwrap();
        kv.put("ns", "a", "1").unwrap();
        kv.put("ns", "b", "2").unwrap();
        std::fs::remove_file(&path).unwrap();
        let reloaded = KvConfig::load(&path).unwrap();
        assert_eq!(reloaded.get("ns", "a"), Some("1"));
    }

    #[test]
    fn an_empty_file_falls_back_to_the_backup_or_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvConfig.json");
        let mut kv = KvConfig::load(&path).unwrap();
        kv.put("ns", "a", "1").unwrap();
        kv.put("ns", "b", "2").unwrap();
        std::fs::write(&path, "").unwrap();
        let reloaded = KvConfig::load(&path).unwrap();
        assert_eq!(reloaded.get("ns", "a"), Some("1"));
        assert_eq!(
            reloaded.get("ns", "b"),
            None,
            "the backup predates the last put"
        );
        std::fs::remove_file(backup_path(&path)).unwrap();
        assert!(KvConfig::load(&path).unwrap().namespace("ns").is_none());
    }

    #[test]
    fn corrupt_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvConfig.json");
        std::fs::write(&path, "{not json").unwrap();
        let error = KvConfig::load(&path).unwrap_err();
        assert!(error.to_string().contains("kvConfig.json"), "{error}");
    }
}
