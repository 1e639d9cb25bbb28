//! The commit log: fixed-size segment files named by their 20-digit start offset, holding
//! every record of every topic back to back (spec semantics §1.2, remoting §5.1).
//!
//! ```text
//! commitlog/00000000000000000000   [rec][rec][rec]...[rec][size=rest | BLANK_MAGIC]
//! commitlog/00000000001073741824   [rec][rec]...                       ^ 8-byte tail
//! ```
//!
//! A record never straddles two segments: when `record + 8` does not fit, the writer puts
//! the 8-byte blank tail (`remaining`, `BLANK_MAGIC`) and rolls to the next segment.
//!
//! Concurrency: one writer (the append thread) extends the log and publishes the end with
//! `written_offset`; readers slice only below it. `flushed_offset` is what fsync covered.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use karman_protocol::message::stored::BLANK_MAGIC;
use parking_lot::RwLock;

use crate::error::{Result, StoreError};
use crate::mapped_file::{be_i32, map_shared_bytes, open_rw};
use crate::warm::{WARMING_SUFFIX, WarmedFile};

/// Bytes of the end-of-segment blank tail: size and BLANK_MAGIC.
pub const BLANK_TAIL_BYTES: i64 = 8;

/// One segment file and its mapping.
#[derive(Debug)]
pub(crate) struct Segment {
    pub start: i64,
    pub size_bytes: i64,
    pub path: PathBuf,
    pub file: File,
    /// The whole mapping; reads are slices of it.
    pub data: Bytes,
}

impl Segment {
    pub fn end(&self) -> i64 {
        self.start + self.size_bytes
    }

    /// Bytes `[offset, offset + len)` of the log, if they lie in this segment.
    pub fn slice(&self, offset: i64, len: i64) -> Option<Bytes> {
        let from = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        let to = from.checked_add(usize::try_from(len).ok()?)?;
        (to <= self.data.len()).then(|| self.data.slice(from..to))
    }

    /// The i32 at a log offset in this segment.
    pub fn i32_at(&self, offset: i64) -> Option<i32> {
        be_i32(
            &self.data,
            usize::try_from(offset.checked_sub(self.start)?).ok()?,
        )
    }
}

/// 20-digit zero-padded decimal: the name of a segment or consume-queue file.
pub fn file_name(offset: i64) -> String {
    format!("{offset:020}")
}

/// Parses a 20-digit file name.
pub(crate) fn parse_file_name(path: &Path) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

/// Lists the 20-digit files of a directory, sorted by offset. Other names are skipped.
pub(crate) fn list_numbered_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(StoreError::io("read_dir", dir, e)),
    };
    for entry in entries {
        let path = entry
            .map_err(|e| StoreError::io("read_dir", dir, e))?
            .path();
        if let Some(offset) = parse_file_name(&path) {
            files.push((offset, path));
        }
    }
    files.sort_unstable_by_key(|(offset, _)| *offset);
    Ok(files)
}

/// fsyncs a directory so that a file created or removed in it survives power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

#[derive(Debug)]
pub(crate) struct CommitLog {
    dir: PathBuf,
    segment_bytes: i64,
    segments: RwLock<Vec<Arc<Segment>>>,
    written: AtomicI64,
    flushed: AtomicI64,
}

impl CommitLog {
    /// Opens every segment of `dir`. Segments must be contiguous and full-sized; a last
    /// segment shorter than the configured size (a crash while creating it) is extended.
    pub fn open(dir: &Path, segment_bytes: i64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create_dir", dir, e))?;
        delete_warming_leftovers(dir)?;
        let files = list_numbered_files(dir)?;
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(files.len());
        let last_index = files.len().saturating_sub(1);
        for (i, (start, path)) in files.into_iter().enumerate() {
            if let Some(prev) = segments.last()
                && prev.end() != start
            {
                return Err(StoreError::SegmentGap {
                    path,
                    expected_offset: prev.end(),
                    found_offset: start,
                });
            }
            if start % segment_bytes != 0 {
                return Err(StoreError::FileNameInvalid { path });
            }
            segments.push(Arc::new(open_segment(
                &path,
                start,
                segment_bytes,
                i == last_index,
            )?));
        }
        let start = segments.first().map_or(0, |s| s.start);
        Ok(Self {
            dir: dir.to_owned(),
            segment_bytes,
            segments: RwLock::new(segments),
            written: AtomicI64::new(start),
            flushed: AtomicI64::new(start),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_bytes(&self) -> i64 {
        self.segment_bytes
    }

    /// End of the published data: readers see `[min_offset, written_offset)`.
    pub fn written_offset(&self) -> i64 {
        self.written.load(Ordering::Acquire)
    }

    pub(crate) fn publish_written(&self, offset: i64) {
        self.written.store(offset, Ordering::Release);
    }

    /// End of the data an fsync has covered.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed.load(Ordering::Acquire)
    }

    pub(crate) fn set_flushed(&self, offset: i64) {
        self.flushed.store(offset, Ordering::Release);
    }

    /// Start of the oldest segment (0 for an empty log).
    pub fn min_offset(&self) -> i64 {
        self.segments
            .read()
            .first()
            .map_or_else(|| self.written_offset(), |s| s.start)
    }

    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.segments.read().clone()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// The segment holding `offset`.
    pub fn segment_for(&self, offset: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read();
        let first = segments.first()?.start;
        let index = usize::try_from(offset.checked_sub(first)? / self.segment_bytes).ok()?;
        segments.get(index).cloned()
    }

    /// Published bytes `[offset, offset + len)`, if they lie in one live segment.
    pub fn read(&self, offset: i64, len: i64) -> Option<Bytes> {
        let end = offset.checked_add(len)?;
        if len <= 0 || end > self.written_offset() {
            return None;
        }
        self.segment_for(offset)?.slice(offset, len)
    }

    /// The record starting at `offset`: its TOTALSIZE bytes, without checking the fields.
    /// `None` for an offset that holds no published record (or a blank tail).
    pub fn read_record(&self, offset: i64) -> Option<Bytes> {
        let segment = self.segment_for(offset)?;
        let size = segment.i32_at(offset)?;
        let magic = segment.i32_at(offset.checked_add(4)?)?;
        if size <= 0 || magic == BLANK_MAGIC {
            return None;
        }
        let end = offset.checked_add(i64::from(size))?;
        if end > self.written_offset() {
            return None;
        }
        segment.slice(offset, i64::from(size))
    }

    /// Published whole records from `offset` (a record boundary), up to `max_bytes` but at
    /// least one record, never past the segment's end: what a replica streams (a blank
    /// tail is included as the segment's last "record").
    pub fn read_raw(&self, offset: i64, max_bytes: i64) -> Option<Bytes> {
        let segment = self.segment_for(offset)?;
        let limit = segment.end().min(self.written_offset());
        let mut end = offset;
        while end < limit {
            let size = i64::from(segment.i32_at(end).filter(|s| *s > 0)?);
            if end + size > limit || (end > offset && end + size - offset > max_bytes) {
                break;
            }
            end += size;
        }
        (end > offset)
            .then(|| segment.slice(offset, end - offset))
            .flatten()
    }

    /// Start of the segment the next roll creates.
    pub fn next_segment_start(&self) -> i64 {
        self.segments.read().last().map_or_else(
            || {
                let written = self.written_offset();
                written - written.rem_euclid(self.segment_bytes)
            },
            |s| s.end(),
        )
    }

    /// Creates the segment that starts at `start` (the writer's roll): from `warmed` when
    /// it is that segment's warmed file (see [`crate::warm`]), sparse otherwise.
    pub fn create_segment(&self, start: i64, warmed: Option<WarmedFile>) -> Result<Arc<Segment>> {
        let path = self.dir.join(file_name(start));
        let file = match warmed {
            Some(warmed) if warmed.start == start => {
                std::fs::rename(&warmed.path, &path)
                    .map_err(|e| StoreError::io("rename warmed segment", &warmed.path, e))?;
                warmed.file
            }
            other => {
                if let Some(stale) = other {
                    let _ = std::fs::remove_file(&stale.path);
                }
                let file = open_rw(&path, true, "create segment")?;
                file.set_len(u64::try_from(self.segment_bytes).unwrap_or(0))
                    .map_err(|e| StoreError::io("set_len", &path, e))?;
                file.sync_all()
                    .map_err(|e| StoreError::io("fsync", &path, e))?;
                file
            }
        };
        // The name must be durable before any record in the file is acknowledged.
        sync_dir(&self.dir)?;
        let data = map_shared_bytes(&file, &path)?;
        let segment = Arc::new(Segment {
            start,
            size_bytes: self.segment_bytes,
            path,
            file,
            data,
        });
        self.segments.write().push(Arc::clone(&segment));
        Ok(segment)
    }

    /// Writes `bytes` at a log offset inside `segment` (writer thread only).
    pub fn write_at(segment: &Segment, offset: i64, bytes: &[u8]) -> Result<()> {
        let at = offset
            .checked_sub(segment.start)
            .and_then(|at| u64::try_from(at).ok())
            .filter(|at| at + bytes.len() as u64 <= segment.size_bytes as u64);
        let Some(at) = at else {
            return Err(StoreError::OffsetOutOfRange {
                offset,
                min_offset: segment.start,
                max_offset: segment.end(),
            });
        };
        segment
            .file
            .write_all_at(bytes, at)
            .map_err(|e| StoreError::io("pwrite", &segment.path, e))
    }

    fn overlapping(&self, from: i64, to: i64) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .iter()
            .filter(|s| s.start < to && s.end() > from)
            .cloned()
            .collect()
    }

    /// fdatasyncs every segment overlapping `[from, to)`.
    pub fn sync_range(&self, from: i64, to: i64) -> Result<()> {
        for segment in self.overlapping(from, to) {
            segment
                .file
                .sync_data()
                .map_err(|e| StoreError::io("fdatasync", &segment.path, e))?;
        }
        Ok(())
    }

    /// Hands the page-cache pages of `[from, to)`, which must be flushed, back to the
    /// kernel (see `StoreConfig::page_cache_hot_window_bytes`).
    pub fn release_cached(&self, from: i64, to: i64) -> Result<()> {
        for segment in self.overlapping(from, to) {
            let within = |offset: i64| {
                usize::try_from(offset.clamp(segment.start, segment.end()) - segment.start)
                    .unwrap_or(0)
            };
            crate::mapped_file::release_pages(
                &segment.file,
                &segment.data,
                within(from),
                within(to),
                &segment.path,
            )?;
        }
        Ok(())
    }

    /// Removes the oldest segment from the log and unlinks its file. Live slices keep its
    /// pages readable until they are dropped.
    pub fn delete_first_segment(&self) -> Result<Option<Arc<Segment>>> {
        let removed = {
            let mut segments = self.segments.write();
            if segments.len() <= 1 {
                return Ok(None);
            }
            segments.remove(0)
        };
        std::fs::remove_file(&removed.path)
            .map_err(|e| StoreError::io("delete segment", &removed.path, e))?;
        Ok(Some(removed))
    }

    /// Removes every segment starting at or after `start` (recovery, past the valid end).
    pub fn delete_segments_from(&self, start: i64) -> Result<()> {
        let removed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write();
            let keep = segments.iter().take_while(|s| s.start < start).count();
            segments.drain(keep..).collect()
        };
        for segment in &removed {
            std::fs::remove_file(&segment.path)
                .map_err(|e| StoreError::io("delete segment", &segment.path, e))?;
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Deletes segments a crash left half-warmed (or warmed and never used): they hold only
/// zeros and were never part of the log.
fn delete_warming_leftovers(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io("read_dir", dir, e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| StoreError::io("read_dir", dir, e))?
            .path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(WARMING_SUFFIX))
        {
            tracing::info!(file = %path.display(), "deleting an unused warming segment");
            std::fs::remove_file(&path)
                .map_err(|e| StoreError::io("delete warming segment", &path, e))?;
        }
    }
    Ok(())
}

fn open_segment(path: &Path, start: i64, segment_bytes: i64, is_last: bool) -> Result<Segment> {
    let file = open_rw(path, false, "open segment")?;
    let actual = file
        .metadata()
        .map_err(|e| StoreError::io("stat", path, e))?
        .len();
    let expected = u64::try_from(segment_bytes).unwrap_or(0);
    if actual != expected {
        if !(is_last && actual < expected) {
            return Err(StoreError::FileSizeMismatch {
                path: path.to_owned(),
                expected_bytes: expected,
                actual_bytes: actual,
            });
        }
        // A crash between creating the file and sizing it: the missing part reads as zeros.
        tracing::warn!(file = %path.display(), actual, expected, "extending short last segment");
        file.set_len(expected)
            .map_err(|e| StoreError::io("set_len", path, e))?;
    }
    let data = map_shared_bytes(&file, path)?;
    Ok(Segment {
        start,
        size_bytes: segment_bytes,
        path: path.to_owned(),
        file,
        data,
    })
}
