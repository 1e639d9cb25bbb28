//! The broker's JSON tables on disk (`config/topics.json`, `subscriptionGroup.json`,
//! `consumerOffset.json`, `delayOffset.json`, `timercheck`): written to a temporary file,
//! the previous version kept as `.bak`, then renamed into place, so a crash never leaves a
//! half-written table; a load that finds the file missing falls back to the `.bak`.

use std::path::{Path, PathBuf};

use karman_protocol::body::fastjson;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BrokerError;

fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

/// Loads a table; `None` when neither the file nor its backup exists.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, BrokerError> {
    for candidate in [path.to_owned(), backup_path(path)] {
        match std::fs::read(&candidate) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(bytes) => {
                return fastjson::from_slice(&bytes, "broker table")
                    .map(Some)
                    .map_err(|source| BrokerError::TableJson {
                        path: candidate,
                        source,
                    });
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(BrokerError::TableIo {
                    action: "read",
                    path: candidate,
                    source,
                });
            }
        }
    }
    Ok(None)
}

/// Writes a table in the fastjson dialect RocketMQ's own files use.
pub fn save<T: Serialize>(path: &Path, table: &T) -> Result<(), BrokerError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| BrokerError::TableIo {
            action,
            path,
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create the directory of", path))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, fastjson::to_vec(table)).map_err(io("write", &tmp))?;
    if path.exists() {
        std::fs::copy(path, backup_path(path)).map_err(io("back up", path))?;
    }
    std::fs::rename(&tmp, path).map_err(io("replace", path))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn save_keeps_a_backup_and_load_falls_back_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/topics.json");
        let first: BTreeMap<i32, i64> = [(0, 1)].into();
        let second: BTreeMap<i32, i64> = [(0, 2)].into();
        save(&path, &first).unwrap();
        save(&path, &second).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{0:2}");
        assert_eq!(load::<BTreeMap<i32, i64>>(&path).unwrap(), Some(second));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(load::<BTreeMap<i32, i64>>(&path).unwrap(), Some(first));
        assert!(
            load::<BTreeMap<i32, i64>>(&dir.path().join("none.json"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn corrupt_table_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consumerOffset.json");
        std::fs::write(&path, "{broken").unwrap();
        let error = load::<BTreeMap<String, i64>>(&path).unwrap_err();
        assert!(error.to_string().contains("consumerOffset.json"), "{error}");
    }
}
