//! Consume queues: one logical queue per (topic, queueId), a dense array of 20-byte units
//! indexed by queue offset (spec semantics §1.3).
//!
//! ```text
//! consumequeue/{topic}/{queueId}/00000000000000000000   unit 0, unit 1, ...
//! consumequeue/{topic}/{queueId}/00000000000006000000   unit 300000, ...
//! unit = commit-log offset i64 | record size i32 | tag code i64      (big-endian)
//! ```
//!
//! A unit is written at `queue_offset * 20`, the position the record itself names, so
//! writing the same record twice (re-dispatch after a crash) is harmless. A unit with size
//! 0 is a hole: padding before the first unit of a queue that started late, never data.
//! Files are mapped writable and touched only under the queue's lock; readers copy units
//! out, then slice the commit log.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use foldhash::HashMap;
use memmap2::MmapMut;
use parking_lot::{Mutex, RwLock};

use crate::commit_log::{file_name, list_numbered_files};
use crate::error::{Result, StoreError};
use crate::mapped_file::{PAGE_BYTES, be_i32, be_i64, map_mut, open_rw, put_at};
use crate::{CommitLogOffset, QueueOffset};

const UNIT: i64 = 20;

/// One consume-queue unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqUnit {
    pub commit_log_offset: CommitLogOffset,
    pub size_bytes: i32,
    pub tag_code: i64,
}

impl CqUnit {
    fn encode(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        let (offset, rest) = out.split_at_mut(8);
        let (size, tag) = rest.split_at_mut(4);
        offset.copy_from_slice(&self.commit_log_offset.0.to_be_bytes());
        size.copy_from_slice(&self.size_bytes.to_be_bytes());
        tag.copy_from_slice(&self.tag_code.to_be_bytes());
        out
    }

    fn decode(buf: &[u8], at: usize) -> Option<Self> {
        Some(Self {
            commit_log_offset: CommitLogOffset(be_i64(buf, at)?),
            size_bytes: be_i32(buf, at.checked_add(8)?)?,
            tag_code: be_i64(buf, at.checked_add(12)?)?,
        })
    }

    pub(crate) fn is_hole(&self) -> bool {
        self.size_bytes <= 0
    }
}

#[derive(Debug)]
struct CqFile {
    /// Byte position of the file's first unit in the logical queue.
    start_byte: i64,
    path: PathBuf,
    map: MmapMut,
    /// The same file, for `fdatasync` outside the queue's lock: it writes back the pages
    /// dirtied through the shared map too, so dispatch never waits on a flush's I/O.
    file: Arc<File>,
    /// Bytes written through the map since the last flush, as a range within the file.
    dirty: Option<Range<usize>>,
}

impl CqFile {
    fn mark_dirty(&mut self, written: Range<usize>) {
        self.dirty = Some(match self.dirty.take() {
            Some(d) => d.start.min(written.start)..d.end.max(written.end),
            None => written,
        });
    }

    /// RocketMQ's rule: flush once the writes since the last flush span `least_pages`
    /// page boundaries; with 0, whenever anything is dirty.
    fn is_due(&self, least_pages: u64) -> bool {
        self.dirty.as_ref().is_some_and(|d| {
            least_pages == 0
                || u64::try_from(d.end / PAGE_BYTES - d.start / PAGE_BYTES).unwrap_or(u64::MAX)
                    >= least_pages
        })
    }

    fn unit(&self, byte: i64) -> Option<CqUnit> {
        CqUnit::decode(&self.map, usize::try_from(byte - self.start_byte).ok()?)
    }
}

#[derive(Debug)]
struct Inner {
    files: Vec<CqFile>,
    /// First queue offset with data.
    min_offset: i64,
    /// Queue offset of the next unit to write.
    max_offset: i64,
}

/// One (topic, queueId) queue.
#[derive(Debug)]
pub struct ConsumeQueue {
    dir: PathBuf,
    file_bytes: i64,
    inner: RwLock<Inner>,
}

impl ConsumeQueue {
    fn open(dir: PathBuf, file_bytes: i64) -> Result<Self> {
        let mut files = Vec::new();
        for (start_byte, path) in list_numbered_files(&dir)? {
            if start_byte % file_bytes != 0 {
                return Err(StoreError::FileNameInvalid { path });
            }
            files.push(open_cq_file(&path, start_byte, file_bytes, false)?);
        }
        let (min_offset, max_offset) = scan_bounds(&files);
        Ok(Self {
            dir,
            file_bytes,
            inner: RwLock::new(Inner {
                files,
                min_offset,
                max_offset,
            }),
        })
    }

    /// First queue offset with data.
    pub fn min_offset(&self) -> QueueOffset {
        QueueOffset(self.inner.read().min_offset)
    }

    /// Queue offset of the next unit to be written (= number of units ever written).
    pub fn max_offset(&self) -> QueueOffset {
        QueueOffset(self.inner.read().max_offset)
    }

    /// Writes the unit of `queue_offset`.
    pub(crate) fn put(&self, queue_offset: i64, unit: CqUnit) -> Result<()> {
        let byte = queue_offset
            .checked_mul(UNIT)
            .ok_or(StoreError::OffsetOutOfRange {
                offset: queue_offset,
                min_offset: 0,
                max_offset: i64::MAX / UNIT,
            })?;
        let mut inner = self.inner.write();
        let index = self.file_index_for_write(&mut inner, byte)?;
        let file = inner
            .files
            .get_mut(index)
            .ok_or(StoreError::OffsetOutOfRange {
                offset: queue_offset,
                min_offset: 0,
                max_offset: 0,
            })?;
        let at = usize::try_from(byte - file.start_byte).unwrap_or(usize::MAX);
        let encoded = unit.encode();
        if !put_at(&mut file.map, at, &encoded) {
            return Err(StoreError::OffsetOutOfRange {
                offset: queue_offset,
                min_offset: file.start_byte / UNIT,
                max_offset: (file.start_byte + self.file_bytes) / UNIT,
            });
        }
        file.mark_dirty(at..at + encoded.len());
        if inner.max_offset <= inner.min_offset {
            // The queue was empty: its first unit may come after holes.
            inner.min_offset = queue_offset;
        }
        inner.max_offset = inner.max_offset.max(queue_offset + 1);
        Ok(())
    }

    /// Index of the file holding `byte`, creating files as needed.
    fn file_index_for_write(&self, inner: &mut Inner, byte: i64) -> Result<usize> {
        let wanted_start = byte - byte.rem_euclid(self.file_bytes);
        if let Some(first) = inner.files.first() {
            if wanted_start < first.start_byte {
                return Err(StoreError::OffsetOutOfRange {
                    offset: byte / UNIT,
                    min_offset: first.start_byte / UNIT,
                    max_offset: inner.max_offset,
                });
            }
            let index = usize::try_from((wanted_start - first.start_byte) / self.file_bytes)
                .unwrap_or(usize::MAX);
            if index < inner.files.len() {
                return Ok(index);
            }
        } else {
            // A fresh queue: everything before the first unit is empty.
            inner.min_offset = byte / UNIT;
            inner.max_offset = byte / UNIT;
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| StoreError::io("create_dir", &self.dir, e))?;
        let mut next = inner
            .files
            .last()
            .map_or(wanted_start, |f| f.start_byte + self.file_bytes);
        while next <= wanted_start {
            let path = self.dir.join(file_name(next));
            inner
                .files
                .push(open_cq_file(&path, next, self.file_bytes, true)?);
            next += self.file_bytes;
        }
        Ok(inner.files.len() - 1)
    }

    /// The unit at `queue_offset`, if present.
    pub fn unit(&self, queue_offset: i64) -> Option<CqUnit> {
        let inner = self.inner.read();
        if queue_offset < inner.min_offset || queue_offset >= inner.max_offset {
            return None;
        }
        let byte = queue_offset.checked_mul(UNIT)?;
        let file = find_file(&inner.files, byte, self.file_bytes)?;
        file.unit(byte).filter(|u| !u.is_hole())
    }

    /// Up to `max_count` units from `queue_offset`, all from the file holding it. `Err`
    /// gives the queue offset where the next file starts when that file is gone.
    pub(crate) fn units_from(
        &self,
        queue_offset: i64,
        max_count: usize,
    ) -> Result<Vec<CqUnit>, i64> {
        let inner = self.inner.read();
        let byte = queue_offset.saturating_mul(UNIT);
        let next_file = (byte - byte.rem_euclid(self.file_bytes) + self.file_bytes) / UNIT;
        let Some(file) = find_file(&inner.files, byte, self.file_bytes) else {
            return Err(next_file);
        };
        let end = inner.max_offset.min(next_file);
        let count = usize::try_from(end.saturating_sub(queue_offset))
            .unwrap_or(0)
            .min(max_count);
        Ok((0..count)
            .filter_map(|i| file.unit(byte + i64::try_from(i).ok()? * UNIT))
            .collect())
    }

    /// Drops every unit whose commit-log offset is at or past `log_offset` (recovery),
    /// zeroing them so they cannot come back, and deletes files left empty.
    pub(crate) fn truncate_from_log_offset(&self, log_offset: i64) -> Result<()> {
        let mut inner = self.inner.write();
        let mut keep = inner.max_offset;
        while keep > inner.min_offset {
            let byte = (keep - 1) * UNIT;
            match find_file(&inner.files, byte, self.file_bytes).and_then(|f| f.unit(byte)) {
                Some(unit) if !unit.is_hole() && unit.commit_log_offset.0 < log_offset => break,
                _ => keep -= 1,
            }
        }
        if keep == inner.max_offset {
            return Ok(());
        }
        tracing::info!(dir = %self.dir.display(), from = keep, to = inner.max_offset, "truncating consume queue");
        self.cut_at(&mut inner, keep)
    }

    fn cut_at(&self, inner: &mut Inner, keep: i64) -> Result<()> {
        let cut_byte = keep * UNIT;
        while let Some(last) = inner.files.last() {
            if last.start_byte < cut_byte || (inner.files.len() == 1 && last.start_byte <= cut_byte)
            {
                break;
            }
            if let Some(file) = inner.files.pop() {
                std::fs::remove_file(&file.path)
                    .map_err(|e| StoreError::io("delete", &file.path, e))?;
            }
        }
        if let Some(last) = inner.files.last_mut() {
            let from = usize::try_from(cut_byte - last.start_byte).unwrap_or(0);
            if let Some(tail) = last.map.get_mut(from..) {
                tail.fill(0);
            }
            last.map
                .flush()
                .map_err(|e| StoreError::io("msync", &last.path, e))?;
        }
        inner.max_offset = keep;
        inner.min_offset = inner.min_offset.min(keep);
        Ok(())
    }

    /// Deletes leading files whose units all point below `log_min_offset` (retention) and
    /// moves the min offset to the first unit still backed by the commit log.
    pub(crate) fn delete_expired(&self, log_min_offset: i64) -> Result<usize> {
        let mut inner = self.inner.write();
        let mut deleted = 0;
        while inner.files.len() > 1 {
            let Some(first) = inner.files.first() else {
                break;
            };
            let last_byte = first.start_byte + self.file_bytes - UNIT;
            match first.unit(last_byte) {
                Some(unit) if !unit.is_hole() && unit.commit_log_offset.0 < log_min_offset => {
                    let file = inner.files.remove(0);
                    std::fs::remove_file(&file.path)
                        .map_err(|e| StoreError::io("delete", &file.path, e))?;
                    deleted += 1;
                }
                _ => break,
            }
        }
        let mut min = inner
            .min_offset
            .max(inner.files.first().map_or(0, |f| f.start_byte / UNIT));
        while min < inner.max_offset {
            let byte = min * UNIT;
            match find_file(&inner.files, byte, self.file_bytes).and_then(|f| f.unit(byte)) {
                Some(unit) if !unit.is_hole() && unit.commit_log_offset.0 >= log_min_offset => {
                    break;
                }
                _ => min += 1,
            }
        }
        inner.min_offset = min;
        Ok(deleted)
    }

    /// msyncs files written since the last flush.
    /// Writes back the files with at least `least_pages` dirty pages (all dirty files with
    /// 0). Returns how many files were flushed.
    pub(crate) fn flush(&self, least_pages: u64) -> Result<usize> {
        let due: Vec<(Arc<File>, PathBuf, Range<usize>)> = {
            let mut inner = self.inner.write();
            inner
                .files
                .iter_mut()
                .filter(|f| f.is_due(least_pages))
                .filter_map(|f| {
                    let range = f.dirty.take()?;
                    Some((Arc::clone(&f.file), f.path.clone(), range))
                })
                .collect()
        };
        for (file, path, range) in &due {
            if let Err(e) = file.sync_data() {
                // Keep the range dirty so that the next round retries it.
                let mut inner = self.inner.write();
                if let Some(f) = inner.files.iter_mut().find(|f| f.path == *path) {
                    f.mark_dirty(range.clone());
                }
                return Err(StoreError::io("fdatasync", path, e));
            }
        }
        Ok(due.len())
    }
}

fn find_file(files: &[CqFile], byte: i64, file_bytes: i64) -> Option<&CqFile> {
    let first = files.first()?;
    let index = usize::try_from(byte.checked_sub(first.start_byte)? / file_bytes).ok()?;
    files.get(index)
}

/// (min, max) queue offsets from the units present: min is the first non-hole unit, max
/// one past the last non-hole unit.
fn scan_bounds(files: &[CqFile]) -> (i64, i64) {
    let first_byte = files.first().map_or(0, |f| f.start_byte);
    let last_unit = files.iter().rev().find_map(|f| {
        let count = i64::try_from(f.map.len()).unwrap_or(0) / UNIT;
        (0..count)
            .rev()
            .map(|i| f.start_byte + i * UNIT)
            .find(|byte| f.unit(*byte).is_some_and(|u| !u.is_hole()))
    });
    let Some(last_unit) = last_unit else {
        return (first_byte / UNIT, first_byte / UNIT);
    };
    let first_unit = files
        .iter()
        .find_map(|f| {
            let count = i64::try_from(f.map.len()).unwrap_or(0) / UNIT;
            (0..count)
                .map(|i| f.start_byte + i * UNIT)
                .find(|byte| f.unit(*byte).is_some_and(|u| !u.is_hole()))
        })
        .unwrap_or(last_unit);
    (first_unit / UNIT, last_unit / UNIT + 1)
}

fn open_cq_file(path: &Path, start_byte: i64, file_bytes: i64, create: bool) -> Result<CqFile> {
    let file = open_rw(path, create, "open consume queue")?;
    let expected = u64::try_from(file_bytes).unwrap_or(0);
    let actual = file
        .metadata()
        .map_err(|e| StoreError::io("stat", path, e))?
        .len();
    if actual < expected {
        // New, or created by a crash before it was sized: the rest reads as holes.
        file.set_len(expected)
            .map_err(|e| StoreError::io("set_len", path, e))?;
    } else if actual > expected {
        return Err(StoreError::FileSizeMismatch {
            path: path.to_owned(),
            expected_bytes: expected,
            actual_bytes: actual,
        });
    }
    let map = map_mut(&file, path)?;
    Ok(CqFile {
        start_byte,
        path: path.to_owned(),
        map,
        file: Arc::new(file),
        // A new file's size is metadata the next flush must make durable.
        dirty: create.then_some(0..0),
    })
}

/// Every consume queue of the store, by topic and queue id.
#[derive(Debug)]
pub(crate) struct ConsumeQueueTable {
    root: PathBuf,
    file_bytes: i64,
    /// foldhash: dispatch looks a queue up for every record.
    queues: RwLock<HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>>,
    /// Serialises queue creation so two creators do not map the same file twice.
    create_lock: Mutex<()>,
}

impl ConsumeQueueTable {
    /// Loads every queue under `root/{topic}/{queueId}/`.
    pub fn open(root: &Path, file_bytes: i64) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| StoreError::io("create_dir", root, e))?;
        let mut queues: HashMap<String, HashMap<i32, Arc<ConsumeQueue>>> = HashMap::default();
        for topic_dir in read_dirs(root)? {
            let Some(topic) = topic_dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
            else {
                continue;
            };
            for queue_dir in read_dirs(&topic_dir)? {
                let Some(queue_id) = queue_dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                let queue = ConsumeQueue::open(queue_dir, file_bytes)?;
                queues
                    .entry(topic.clone())
                    .or_default()
                    .insert(queue_id, Arc::new(queue));
            }
        }
        Ok(Self {
            root: root.to_owned(),
            file_bytes,
            queues: RwLock::new(queues),
            create_lock: Mutex::new(()),
        })
    }

    pub fn get(&self, topic: &str, queue_id: i32) -> Option<Arc<ConsumeQueue>> {
        self.queues.read().get(topic)?.get(&queue_id).cloned()
    }

    pub fn get_or_create(&self, topic: &str, queue_id: i32) -> Result<Arc<ConsumeQueue>> {
        if let Some(queue) = self.get(topic, queue_id) {
            return Ok(queue);
        }
        let _creating = self.create_lock.lock();
        if let Some(queue) = self.get(topic, queue_id) {
            return Ok(queue);
        }
        let dir = self.root.join(topic).join(queue_id.to_string());
        let queue = Arc::new(ConsumeQueue::open(dir, self.file_bytes)?);
        self.queues
            .write()
            .entry(topic.to_owned())
            .or_default()
            .insert(queue_id, Arc::clone(&queue));
        Ok(queue)
    }

    /// Every queue, as (topic, queue id, queue).
    pub fn all(&self) -> Vec<(String, i32, Arc<ConsumeQueue>)> {
        self.queues
            .read()
            .iter()
            .flat_map(|(topic, queues)| {
                queues
                    .iter()
                    .map(|(id, q)| (topic.clone(), *id, Arc::clone(q)))
            })
            .collect()
    }

    /// Removes a topic's queues and their files.
    pub fn delete_topic(&self, topic: &str) -> Result<bool> {
        let removed = self.queues.write().remove(topic).is_some();
        let dir = self.root.join(topic);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(removed),
            Err(e) => Err(StoreError::io("delete topic", dir, e)),
        }
    }

    /// Removes every queue (the commit log is empty: nothing they point at exists).
    pub fn destroy_all(&self) -> Result<()> {
        let topics: Vec<String> = self.queues.read().keys().cloned().collect();
        for topic in topics {
            self.delete_topic(&topic)?;
        }
        Ok(())
    }
}

fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("read_dir", dir, e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| StoreError::io("read_dir", dir, e))?
            .path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(offset: i64) -> CqUnit {
        CqUnit {
            commit_log_offset: CommitLogOffset(offset),
            size_bytes: 100,
            tag_code: 7,
        }
    }

    #[test]
    fn units_survive_reopen_and_span_files() {
        let dir = tempfile::tempdir().unwrap();
        let q = ConsumeQueue::open(dir.path().join("q"), 100).unwrap();
        for i in 0..12 {
            q.put(i, unit(i * 100)).unwrap();
        }
        assert_eq!(q.max_offset(), QueueOffset(12));
        assert_eq!(
            q.units_from(3, 100).unwrap().len(),
            2,
            "one file holds 5 units"
        );
        assert_eq!(q.flush(0).unwrap(), 3, "every file holding units");
        assert_eq!(q.flush(0).unwrap(), 0, "nothing dirty is left");
        drop(q);
        let q = ConsumeQueue::open(dir.path().join("q"), 100).unwrap();
        assert_eq!((q.min_offset().0, q.max_offset().0), (0, 12));
        assert_eq!(q.unit(11), Some(unit(1100)));
    }

    #[test]
    fn a_file_waits_for_its_least_pages_unless_the_round_is_thorough() {
        let dir = tempfile::tempdir().unwrap();
        let units_per_page = i64::try_from(PAGE_BYTES).unwrap() / UNIT;
        let q = ConsumeQueue::open(dir.path().join("q"), 100 * PAGE_BYTES as i64).unwrap();
        q.put(0, unit(0)).unwrap();
        assert_eq!(q.flush(2).unwrap(), 0, "one unit dirties one page");
        assert_eq!(q.flush(0).unwrap(), 1, "a thorough round takes it");
        for i in 1..units_per_page * 2 {
            q.put(i, unit(i * 100)).unwrap();
        }
        assert_eq!(q.flush(2).unwrap(), 0, "one page boundary crossed");
        for i in units_per_page * 2..units_per_page * 2 + 2 {
            q.put(i, unit(i * 100)).unwrap();
        }
        assert_eq!(q.flush(2).unwrap(), 1, "two page boundaries crossed");
        assert_eq!(q.flush(0).unwrap(), 0);
    }

    #[test]
    fn truncate_drops_units_past_the_log_end_and_zeroes_them() {
        let dir = tempfile::tempdir().unwrap();
        let q = ConsumeQueue::open(dir.path().join("q"), 100).unwrap();
        for i in 0..12 {
            q.put(i, unit(i * 100)).unwrap();
        }
        q.truncate_from_log_offset(450).unwrap();
        assert_eq!(q.max_offset(), QueueOffset(5));
        drop(q);
        let q = ConsumeQueue::open(dir.path().join("q"), 100).unwrap();
        assert_eq!(q.max_offset(), QueueOffset(5));
    }

    #[test]
    fn a_queue_starting_late_has_that_min_offset() {
        let dir = tempfile::tempdir().unwrap();
        let q = ConsumeQueue::open(dir.path().join("q"), 100).unwrap();
        q.put(7, unit(0)).unwrap();
        assert_eq!((q.min_offset().0, q.max_offset().0), (7, 8));
        let units = q.units_from(5, 10).unwrap();
        assert_eq!(
            units.len(),
            3,
            "holes 5 and 6 are returned for the reader to skip"
        );
        assert!(units[0].is_hole() && !units[2].is_hole());
        assert_eq!(
            q.units_from(0, 10),
            Err(5),
            "the file of offsets 0..5 does not exist"
        );
    }

    #[test]
    fn delete_expired_moves_min_offset() {
        let dir = tempfile::tempdir().unwrap();
        let q = ConsumeQueue::open(dir.path().join("q"), 100).unwrap();
        for i in 0..12 {
            q.put(i, unit(i * 100)).unwrap();
        }
        assert_eq!(q.delete_expired(600).unwrap(), 1);
        assert_eq!(q.min_offset(), QueueOffset(6));
    }
}
