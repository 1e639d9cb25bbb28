//! The key index: `topic#UNIQ_KEY` and `topic#<each KEYS token>` → commit-log offsets,
//! in RocketMQ's index-file layout (spec semantics §1.4).
//!
//! ```text
//! index/yyyyMMddHHmmssSSS
//! header 40 B : beginTimestamp i64 | endTimestamp i64 | beginPhyOffset i64 |
//!               endPhyOffset i64 | hashSlotCount i32 | indexCount i32
//! slots       : maxHashSlotNum × i32   newest entry number of the bucket (0 = empty)
//! entries     : maxIndexNum × 20 B     keyHash i32 | phyOffset i64 | timeDiff i32 (s) |
//!                                      prevIndex i32 (older entry of the same bucket)
//! ```
//!
//! Entry 0 is never used, so 0 means "none". The index only narrows the search: a query
//! re-reads each candidate record and keeps it only if its topic and key really match, so
//! hash collisions, duplicate entries written again by crash recovery, and entries that
//! point at deleted or torn data are all harmless.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::MmapMut;
use parking_lot::Mutex;

use karman_protocol::message::java_string_hash_from;

use crate::clock::format_file_timestamp;
use crate::error::{Result, StoreError};
use crate::mapped_file::{be_i32, be_i64, map_mut, open_rw, put_at};

const HEADER_BYTES: usize = 40;
const SLOT_BYTES: usize = 4;
const ENTRY_BYTES: usize = 20;

/// RocketMQ's `indexKeyHashMethod`: |hash|, with `i32::MIN` mapped to 0.
fn key_hash(topic: &str, key: &str) -> i32 {
    [topic, "#", key]
        .iter()
        .fold(0, |hash, part| java_string_hash_from(hash, part))
        .checked_abs()
        .unwrap_or(0)
}

/// The header of one index file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexHeader {
    pub begin_timestamp_ms: i64,
    pub end_timestamp_ms: i64,
    pub begin_phy_offset: i64,
    pub end_phy_offset: i64,
    pub hash_slot_count: i32,
    pub index_count: i32,
}

impl IndexHeader {
    fn read(buf: &[u8]) -> Option<Self> {
        Some(Self {
            begin_timestamp_ms: be_i64(buf, 0)?,
            end_timestamp_ms: be_i64(buf, 8)?,
            begin_phy_offset: be_i64(buf, 16)?,
            end_phy_offset: be_i64(buf, 24)?,
            hash_slot_count: be_i32(buf, 32)?,
            index_count: be_i32(buf, 36)?,
        })
    }

    fn write(&self, buf: &mut [u8]) {
        let mut out = [0u8; HEADER_BYTES];
        let fields = [
            self.begin_timestamp_ms,
            self.end_timestamp_ms,
            self.begin_phy_offset,
            self.end_phy_offset,
        ];
        for (chunk, value) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&value.to_be_bytes());
        }
        put_at(&mut out, 32, &self.hash_slot_count.to_be_bytes());
        put_at(&mut out, 36, &self.index_count.to_be_bytes());
        put_at(buf, 0, &out);
    }
}

#[derive(Debug)]
struct IndexFile {
    path: PathBuf,
    map: MmapMut,
    header: IndexHeader,
    slot_count: usize,
    entry_max: usize,
    /// The same file, for `fdatasync` outside the index lock (see the consume queue's).
    file: Arc<File>,
    dirty: bool,
}

impl IndexFile {
    fn open(path: &Path, slot_count: usize, entry_max: usize, create: bool) -> Result<Self> {
        let bytes = HEADER_BYTES + slot_count * SLOT_BYTES + entry_max * ENTRY_BYTES;
        let file = open_rw(path, create, "open index")?;
        let actual = file
            .metadata()
            .map_err(|e| StoreError::io("stat", path, e))?
            .len();
        let expected = bytes as u64;
        if actual < expected && (create || actual == 0) {
            file.set_len(expected)
                .map_err(|e| StoreError::io("set_len", path, e))?;
        } else if actual != expected {
            return Err(StoreError::FileSizeMismatch {
                path: path.to_owned(),
                expected_bytes: expected,
                actual_bytes: actual,
            });
        }
        let map = map_mut(&file, path)?;
        let mut header = IndexHeader::read(&map).unwrap_or_default();
        if header.index_count < 1 {
            header.index_count = 1;
        }
        Ok(Self {
            path: path.to_owned(),
            map,
            header,
            slot_count,
            entry_max,
            file: Arc::new(file),
            dirty: create,
        })
    }

    fn is_full(&self) -> bool {
        usize::try_from(self.header.index_count).unwrap_or(usize::MAX) >= self.entry_max
    }

    fn slot_at(&self, hash: i32) -> usize {
        let slot = usize::try_from(hash).unwrap_or(0) % self.slot_count;
        HEADER_BYTES + slot * SLOT_BYTES
    }

    fn entry_at(&self, index: i32) -> Option<usize> {
        let index = usize::try_from(index).ok()?;
        Some(HEADER_BYTES + self.slot_count * SLOT_BYTES + index * ENTRY_BYTES)
    }

    fn put(&mut self, hash: i32, phy_offset: i64, store_timestamp_ms: i64) -> bool {
        if self.is_full() {
            return false;
        }
        let slot_at = self.slot_at(hash);
        let count = self.header.index_count;
        let prev = be_i32(&self.map, slot_at)
            .filter(|p| *p > 0 && *p < count)
            .unwrap_or(0);
        if count <= 1 {
            self.header.begin_timestamp_ms = store_timestamp_ms;
            self.header.begin_phy_offset = phy_offset;
        }
        let diff_secs = (store_timestamp_ms - self.header.begin_timestamp_ms).max(0) / 1000;
        let mut entry = [0u8; ENTRY_BYTES];
        put_at(&mut entry, 0, &hash.to_be_bytes());
        put_at(&mut entry, 4, &phy_offset.to_be_bytes());
        put_at(
            &mut entry,
            12,
            &i32::try_from(diff_secs).unwrap_or(i32::MAX).to_be_bytes(),
        );
        put_at(&mut entry, 16, &prev.to_be_bytes());
        let Some(entry_at) = self.entry_at(count) else {
            return false;
        };
        if !put_at(&mut self.map, entry_at, &entry)
            || !put_at(&mut self.map, slot_at, &count.to_be_bytes())
        {
            return false;
        }
        if prev == 0 {
            self.header.hash_slot_count = self.header.hash_slot_count.saturating_add(1);
        }
        self.header.index_count = count + 1;
        self.header.end_phy_offset = phy_offset;
        self.header.end_timestamp_ms = store_timestamp_ms;
        self.header.write(&mut self.map);
        self.dirty = true;
        true
    }

    fn overlaps(&self, begin_ms: i64, end_ms: i64) -> bool {
        self.header.index_count > 1
            && self.header.begin_timestamp_ms <= end_ms
            && self.header.end_timestamp_ms >= begin_ms
    }

    /// Walks the bucket of `hash`, newest first, collecting offsets stored in the window.
    fn collect(&self, hash: i32, begin_ms: i64, end_ms: i64, max: usize, out: &mut Vec<i64>) {
        let count = self.header.index_count;
        let mut next = be_i32(&self.map, self.slot_at(hash)).unwrap_or(0);
        // Each step goes to a strictly smaller entry number, so the walk ends.
        while next > 0 && next < count && out.len() < max {
            let Some(at) = self.entry_at(next) else { break };
            let (Some(entry_hash), Some(phy), Some(diff), Some(prev)) = (
                be_i32(&self.map, at),
                be_i64(&self.map, at + 4),
                be_i32(&self.map, at + 12),
                be_i32(&self.map, at + 16),
            ) else {
                break;
            };
            let stored_ms = self.header.begin_timestamp_ms + i64::from(diff) * 1000;
            if entry_hash == hash
                && stored_ms >= begin_ms
                && stored_ms <= end_ms
                && !out.contains(&phy)
            {
                out.push(phy);
            }
            if stored_ms < begin_ms || prev >= next {
                break;
            }
            next = prev;
        }
    }
}

/// Every index file, oldest first; the last one takes new entries.
#[derive(Debug)]
pub(crate) struct IndexService {
    dir: PathBuf,
    slot_count: usize,
    entry_max: usize,
    files: Mutex<Vec<IndexFile>>,
}

impl IndexService {
    pub fn open(dir: &Path, slot_count: u64, entry_max: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create_dir", dir, e))?;
        let slot_count = usize::try_from(slot_count).unwrap_or(1).max(1);
        let entry_max = usize::try_from(entry_max).unwrap_or(2).max(2);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| StoreError::io("read_dir", dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.len() == 17 && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        paths.sort();
        let files = paths
            .iter()
            .map(|p| IndexFile::open(p, slot_count, entry_max, false))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            dir: dir.to_owned(),
            slot_count,
            entry_max,
            files: Mutex::new(files),
        })
    }

    /// Indexes `topic#key` → `phy_offset`; `clock` names a new file when one is needed.
    pub fn put(
        &self,
        topic: &str,
        key: &str,
        phy_offset: i64,
        store_timestamp_ms: i64,
        clock: &dyn crate::clock::Clock,
    ) -> Result<()> {
        let hash = key_hash(topic, key);
        let mut files = self.files.lock();
        if let Some(last) = files.last_mut()
            && last.put(hash, phy_offset, store_timestamp_ms)
        {
            return Ok(());
        }
        let mut name_ms = clock.now_ms();
        let mut path = self.dir.join(format_file_timestamp(name_ms));
        while path.exists() || files.last().is_some_and(|f| f.path >= path) {
            name_ms += 1;
            path = self.dir.join(format_file_timestamp(name_ms));
        }
        let mut file = IndexFile::open(&path, self.slot_count, self.entry_max, true)?;
        if let Some(last) = files.last_mut() {
            last.map
                .flush()
                .map_err(|e| StoreError::io("msync", &last.path, e))?;
        }
        file.put(hash, phy_offset, store_timestamp_ms);
        files.push(file);
        Ok(())
    }

    /// Commit-log offsets whose `topic#key` hashes match, stored in `[begin_ms, end_ms]`,
    /// newest file first, at most `max_count`, without duplicates.
    pub fn query(
        &self,
        topic: &str,
        key: &str,
        max_count: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Vec<i64> {
        let hash = key_hash(topic, key);
        let files = self.files.lock();
        let mut out = Vec::new();
        for file in files.iter().rev().filter(|f| f.overlaps(begin_ms, end_ms)) {
            file.collect(hash, begin_ms, end_ms, max_count, &mut out);
            if out.len() >= max_count {
                break;
            }
        }
        out
    }

    /// (end timestamp, end commit-log offset) of the newest entry.
    pub fn last_update(&self) -> (i64, i64) {
        self.files
            .lock()
            .iter()
            .rev()
            .find(|f| f.header.index_count > 1)
            .map_or((0, 0), |f| {
                (f.header.end_timestamp_ms, f.header.end_phy_offset)
            })
    }

    pub fn flush(&self) -> Result<()> {
        let due: Vec<(Arc<File>, PathBuf)> = self
            .files
            .lock()
            .iter_mut()
            .filter_map(|f| {
                std::mem::take(&mut f.dirty).then(|| (Arc::clone(&f.file), f.path.clone()))
            })
            .collect();
        for (file, path) in &due {
            if let Err(e) = file.sync_data() {
                if let Some(f) = self.files.lock().iter_mut().find(|f| f.path == *path) {
                    f.dirty = true;
                }
                return Err(StoreError::io("fdatasync", path, e));
            }
        }
        Ok(())
    }

    /// Deletes files whose newest entry points below `log_min_offset`; never the last.
    pub fn delete_expired(&self, log_min_offset: i64) -> Result<usize> {
        let mut files = self.files.lock();
        let mut deleted = 0;
        while files.len() > 1
            && files
                .first()
                .is_some_and(|f| f.header.end_phy_offset < log_min_offset)
        {
            let file = files.remove(0);
            std::fs::remove_file(&file.path)
                .map_err(|e| StoreError::io("delete index", &file.path, e))?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Deletes every index file (the commit log they point into is gone).
    pub fn destroy_all(&self) -> Result<()> {
        let mut files = self.files.lock();
        for file in files.drain(..) {
            std::fs::remove_file(&file.path)
                .map_err(|e| StoreError::io("delete index", &file.path, e))?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn file_count(&self) -> usize {
        self.files.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_the_java_hash_of_topic_hash_key() {
        use karman_protocol::message::java_string_hash;
        assert_eq!(key_hash("T", "k1"), java_string_hash("T#k1").abs());
        assert_eq!(key_hash("主题", "键"), java_string_hash("主题#键").abs());
    }

    #[test]
    fn query_finds_entries_in_window_across_files_and_reopen() {
        let clock = crate::clock::ManualClock::new(5);
        let dir = tempfile::tempdir().unwrap();
        let index = IndexService::open(dir.path(), 16, 4).unwrap();
        for i in 0..7 {
            index
                .put(
                    "T",
                    if i % 2 == 0 { "even" } else { "odd" },
                    i * 100,
                    1_000_000 + i * 1000,
                    &clock,
                )
                .unwrap();
        }
        assert!(
            index.file_count() >= 2,
            "4 entries per file (entry 0 unused) forces a roll"
        );
        let mut found = index.query("T", "even", 10, 0, i64::MAX);
        found.sort_unstable();
        assert_eq!(found, vec![0, 200, 400, 600]);
        assert_eq!(index.query("T", "even", 2, 0, i64::MAX).len(), 2);
        assert_eq!(
            index.query("T", "even", 10, 1_003_000, 1_005_000),
            vec![400]
        );
        index.flush().unwrap();
        drop(index);
        let index = IndexService::open(dir.path(), 16, 4).unwrap();
        assert_eq!(index.query("T", "odd", 10, 0, i64::MAX).len(), 3);
        assert_eq!(index.last_update(), (1_006_000, 600));
    }

    #[test]
    fn delete_expired_keeps_the_active_file() {
        let clock = crate::clock::ManualClock::new(5);
        let dir = tempfile::tempdir().unwrap();
        let index = IndexService::open(dir.path(), 16, 3).unwrap();
        for i in 0..6 {
            index.put("T", "k", i * 100, 1000 + i, &clock).unwrap();
        }
        let files = index.file_count();
        assert_eq!(index.delete_expired(i64::MAX).unwrap(), files - 1);
        assert_eq!(index.file_count(), 1);
    }
}
