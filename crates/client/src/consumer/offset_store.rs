//! Consumer offsets (spec semantics.md §7.1, remoting.md §3.3, §7.7): on the broker for
//! clustering consumers, in a local file for broadcasting ones. Offsets are kept in memory,
//! move forward only (unless a reset says otherwise) and are persisted periodically.
//!
//! The local file is Java's `offsets.json`
//! (`{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:42}}`) under
//! `<dir>/<clientId>/<group>/`, written to a temporary file and renamed into place, with
//! the previous version kept as `offsets.json.bak`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use karman_protocol::body::MessageQueue;
use karman_protocol::body::fastjson::{self, ObjectKey};
use karman_protocol::header::{
    OffsetResponseHeader, QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use karman_protocol::{RequestCode, ResponseCode};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, command_with_header};

/// Where `read` looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOffsetType {
    ReadFromMemory,
    ReadFromStore,
    MemoryFirstThenStore,
}

/// The in-memory table every store keeps.
#[derive(Debug, Default)]
pub struct OffsetTable {
    offsets: Mutex<HashMap<MessageQueue, i64>>,
}

impl OffsetTable {
    /// Sets the offset of `mq`; with `increase_only`, never moves it backwards.
    pub fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) {
        let mut offsets = self.offsets.lock();
        let entry = offsets.entry(mq.clone()).or_insert(offset);
        if !increase_only || offset > *entry {
            *entry = offset;
        }
    }

    pub fn get(&self, mq: &MessageQueue) -> Option<i64> {
        self.offsets.lock().get(mq).copied()
    }

    pub fn remove(&self, mq: &MessageQueue) {
        self.offsets.lock().remove(mq);
    }

    pub fn snapshot(&self) -> BTreeMap<MessageQueue, i64> {
        self.offsets
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    fn retain(&self, keep: impl Fn(&MessageQueue) -> bool) {
        self.offsets.lock().retain(|mq, _| keep(mq));
    }
}

/// The offset file layout (Java `OffsetSerializeWrapper`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OffsetSerializeWrapper {
    offset_table: BTreeMap<ObjectKey<MessageQueue>, i64>,
}

/// A consumer's offset store.
#[derive(Debug)]
pub(crate) enum OffsetStore {
    Remote {
        instance: Arc<ClientInstance>,
        group: String,
        table: OffsetTable,
    },
    Local {
        path: PathBuf,
        table: OffsetTable,
    },
}

impl OffsetStore {
    pub(crate) fn remote(instance: Arc<ClientInstance>, group: &str) -> Self {
        Self::Remote {
            instance,
            group: group.to_owned(),
            table: OffsetTable::default(),
        }
    }

    /// `<dir>/<clientId>/<group>/offsets.json`, loaded now.
    pub(crate) fn local(dir: &Path, client_id: &str, group: &str) -> Result<Self> {
        // ':' in an IPv6 client id is not portable in a path.
        let client_dir = client_id.replace(':', "_");
        let path = dir.join(client_dir).join(group).join("offsets.json");
        let table = OffsetTable::default();
        if let Some(wrapper) = read_offset_file(&path)? {
            for (mq, offset) in wrapper.offset_table {
                table.update(&mq.0, offset, false);
            }
        }
        Ok(Self::Local { path, table })
    }

    pub(crate) fn table(&self) -> &OffsetTable {
        match self {
            Self::Remote { table, .. } | Self::Local { table, .. } => table,
        }
    }

    pub(crate) fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) {
        self.table().update(mq, offset, increase_only);
    }

    /// The offset of `mq`: ≥ 0 a real offset, −1 none stored, −2 the store could not be read.
    pub(crate) async fn read(&self, mq: &MessageQueue, kind: ReadOffsetType) -> i64 {
        if kind != ReadOffsetType::ReadFromStore
            && let Some(offset) = self.table().get(mq)
        {
            return offset;
        }
        if kind == ReadOffsetType::ReadFromMemory {
            return -1;
        }
        match self {
            Self::Remote {
                instance,
                group,
                table,
            } => match fetch_from_broker(instance, group, mq).await {
                Ok(Some(offset)) => {
                    table.update(mq, offset, false);
                    offset
                }
                Ok(None) => -1,
                Err(error) => {
                    warn!(%mq, %error, "cannot read the consumer offset from the broker");
                    -2
                }
            },
            Self::Local { path, table } => match read_offset_file(path) {
                Ok(Some(wrapper)) => match wrapper.offset_table.get(&ObjectKey(mq.clone())) {
                    Some(offset) => {
                        table.update(mq, *offset, false);
                        *offset
                    }
                    None => -1,
                },
                Ok(None) => -1,
                Err(error) => {
                    warn!(%error, "cannot read the local offset file");
                    -2
                }
            },
        }
    }

    /// Persists the offsets of `mqs`; queues not in `mqs` are forgotten.
    pub(crate) async fn persist_all(&self, mqs: &HashSet<MessageQueue>) {
        match self {
            Self::Remote {
                instance,
                group,
                table,
            } => {
                for (mq, offset) in table.snapshot() {
                    if mqs.contains(&mq)
                        && let Err(error) =
                            update_on_broker(instance, group, &mq, offset, true).await
                    {
                        debug!(%mq, %error, "offset persist failed");
                    }
                }
                table.retain(|mq| mqs.contains(mq));
            }
            Self::Local { path, table } => {
                let wrapper = OffsetSerializeWrapper {
                    offset_table: table
                        .snapshot()
                        .into_iter()
                        .filter(|(mq, _)| mqs.contains(mq))
                        .map(|(mq, offset)| (ObjectKey(mq), offset))
                        .collect(),
                };
                if let Err(error) = write_offset_file(path, &wrapper) {
                    warn!(%error, "cannot write the local offset file");
                }
            }
        }
    }

    /// Persists one queue's offset now (queue dropped by rebalance, shutdown).
    pub(crate) async fn persist(&self, mq: &MessageQueue) {
        match self {
            Self::Remote {
                instance,
                group,
                table,
            } => {
                if let Some(offset) = table.get(mq)
                    && let Err(error) = update_on_broker(instance, group, mq, offset, true).await
                {
                    debug!(%mq, %error, "offset persist failed");
                }
            }
            Self::Local { .. } => {
                let all: HashSet<_> = self.table().snapshot().into_keys().collect();
                self.persist_all(&all).await;
            }
        }
    }

    /// Writes one offset to the broker and waits for the answer (lite pull `commit_sync`,
    /// admin-style resets); the local store just persists.
    pub(crate) async fn update_and_persist_sync(
        &self,
        mq: &MessageQueue,
        offset: i64,
    ) -> Result<()> {
        self.update(mq, offset, false);
        match self {
            Self::Remote {
                instance, group, ..
            } => update_on_broker(instance, group, mq, offset, false).await,
            Self::Local { .. } => {
                self.persist(mq).await;
                Ok(())
            }
        }
    }

    pub(crate) fn remove(&self, mq: &MessageQueue) {
        self.table().remove(mq);
    }
}

async fn offset_addr(instance: &ClientInstance, mq: &MessageQueue) -> Result<String> {
    if let Some(addr) = instance.master_or_any_addr(&mq.broker_name) {
        return Ok(addr);
    }
    let _ = instance.update_route(&mq.topic, None).await;
    instance
        .master_or_any_addr(&mq.broker_name)
        .ok_or_else(|| ClientError::BrokerNotFound {
            broker_name: mq.broker_name.clone(),
        })
}

/// QUERY_CONSUMER_OFFSET: `Ok(None)` when the broker has none (22).
pub(crate) async fn fetch_from_broker(
    instance: &ClientInstance,
    group: &str,
    mq: &MessageQueue,
) -> Result<Option<i64>> {
    let addr = offset_addr(instance, mq).await?;
    let header = QueryConsumerOffsetRequestHeader {
        consumer_group: group.to_owned(),
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        set_zero_if_not_found: None,
        bname: Some(mq.broker_name.clone()),
    };
    let request = command_with_header(RequestCode::QueryConsumerOffset, &header)?;
    let response = instance.invoke_broker(&addr, request.clone()).await?;
    match response.response_code() {
        ResponseCode::Success => {
            let header: OffsetResponseHeader = response.decode_header().map_err(|source| {
                ClientError::decode(&addr, "QUERY_CONSUMER_OFFSET response", source)
            })?;
            Ok(Some(header.offset))
        }
        ResponseCode::QueryNotFound => Ok(None),
        _ => Err(ClientError::from_response(&addr, &request, &response)),
    }
}

/// UPDATE_CONSUMER_OFFSET, oneway (the periodic persister) or waiting for the answer.
pub(crate) async fn update_on_broker(
    instance: &ClientInstance,
    group: &str,
    mq: &MessageQueue,
    offset: i64,
    oneway: bool,
) -> Result<()> {
    let addr = offset_addr(instance, mq).await?;
    let header = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.to_owned(),
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        commit_offset: offset,
        bname: Some(mq.broker_name.clone()),
    };
    let request = command_with_header(RequestCode::UpdateConsumerOffset, &header)?;
    if oneway {
        return instance.invoke_broker_oneway(&addr, request).await;
    }
    let response = instance.invoke_broker(&addr, request.clone()).await?;
    match response.response_code() {
        ResponseCode::Success => Ok(()),
        _ => Err(ClientError::from_response(&addr, &request, &response)),
    }
}

fn read_offset_file(path: &Path) -> Result<Option<OffsetSerializeWrapper>> {
    for candidate in [path.to_path_buf(), path.with_extension("json.bak")] {
        match std::fs::read(&candidate) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(bytes) => match fastjson::from_slice(&bytes, "offsets.json") {
                Ok(wrapper) => return Ok(Some(wrapper)),
                Err(source) => {
                    warn!(path = %candidate.display(), %source, "offset file unreadable; trying the backup");
                    if candidate == path {
                        continue;
                    }
                    return Err(ClientError::OffsetFile {
                        path: candidate,
                        source,
                    });
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ClientError::Io {
                    path: candidate,
                    source,
                });
            }
        }
    }
    Ok(None)
}

/// Writes the file atomically: temporary file, fsync, keep the old one as `.bak`, rename.
fn write_offset_file(path: &Path, wrapper: &OffsetSerializeWrapper) -> Result<()> {
    use std::io::Write;
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&fastjson::to_vec(wrapper)).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    if path.exists() {
        let _ = std::fs::copy(path, path.with_extension("json.bak"));
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_only_move_forward_unless_told() {
        let table = OffsetTable::default();
        let mq = MessageQueue::new("T", "b", 0);
        table.update(&mq, 10, true);
        table.update(&mq, 5, true);
        assert_eq!(table.get(&mq), Some(10));
        table.update(&mq, 5, false);
        assert_eq!(table.get(&mq), Some(5));
    }

    #[tokio::test]
    async fn local_file_round_trips_in_javas_format() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::local(dir.path(), "127.0.0.1@1#2", "g").unwrap();
        let (a, b) = (
            MessageQueue::new("T", "b", 0),
            MessageQueue::new("T", "b", 1),
        );
        store.update(&a, 42, true);
        store.update(&b, 7, true);
        store
            .persist_all(&[a.clone(), b.clone()].into_iter().collect())
            .await;
        let path = dir
            .path()
            .join("127.0.0.1@1#2")
            .join("g")
            .join("offsets.json");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:42,{"brokerName":"b","queueId":1,"topic":"T"}:7}}"#
        );
        let reopened = OffsetStore::local(dir.path(), "127.0.0.1@1#2", "g").unwrap();
        assert_eq!(reopened.read(&a, ReadOffsetType::ReadFromStore).await, 42);
        assert_eq!(
            reopened
                .read(
                    &MessageQueue::new("T", "b", 9),
                    ReadOffsetType::ReadFromStore
                )
                .await,
            -1
        );
    }

    #[tokio::test]
    async fn a_torn_offset_file_falls_back_to_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::local(dir.path(), "c", "g").unwrap();
        let a = MessageQueue::new("T", "b", 0);
        store.update(&a, 1, true);
        store.persist(&a).await;
        store.update(&a, 2, true);
        store.persist(&a).await;
        let path = dir.path().join("c").join("g").join("offsets.json");
        std::fs::write(&path, b"{\"offsetTable\":{{\"bro").unwrap();
        let reopened = OffsetStore::local(dir.path(), "c", "g").unwrap();
        assert_eq!(reopened.read(&a, ReadOffsetType::ReadFromMemory).await, 1);
    }
}
