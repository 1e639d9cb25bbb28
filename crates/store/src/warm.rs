//! Warming the next commit-log segment ahead of the roll (RocketMQ's
//! AllocateMappedFileService with `warmMapedFileEnable`).
//!
//! Why: a new segment is sparse, so the first write into each of its blocks allocates the
//! block, and the fdatasync that covers it must commit that allocation too (on ext4 a
//! journal commit besides the data write). Rewriting blocks that already hold zeros
//! changes no metadata that fdatasync has to persist, so each fsync writes data only. On
//! the benchmark disk this halves the fsync of a 64-message group (docs/BENCHMARKS.md).
//!
//! ```text
//! karman-warm:  <start>.warming: set_len, zeros to every page, fdatasync ─┐ ready
//! writer roll:  take it if ready ── rename to <start>, fsync the directory ◄┘
//!               not ready: create a sparse segment as before (appends never wait)
//!               then ask for the segment after the new one
//! ```
//!
//! A `.warming` file holds only zeros and was never part of the log: it gets its segment
//! name (by an atomic rename, after its zeros are synced) before the first record is
//! written into it. [`crate::commit_log::CommitLog::open`] deletes leftovers, and nothing
//! else (recovery, retention, replication) lists them, since segment names are 20 digits.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::commit_log::file_name;
use crate::error::{Result, StoreError};

/// Ends the name of a segment being warmed.
pub(crate) const WARMING_SUFFIX: &str = ".warming";

/// Zeros written per `pwrite`.
const CHUNK_BYTES: usize = 1 << 20;

/// Zeros written between two fdatasyncs of the warming file: bounds its dirty pages, so
/// that writeback never has a whole segment of zeros queued ahead of a group commit.
const SYNC_EVERY_BYTES: u64 = 32 << 20;

/// A zero-written, synced segment file under its `.warming` name.
#[derive(Debug)]
pub(crate) struct WarmedFile {
    pub start: i64,
    pub path: PathBuf,
    pub file: File,
}

#[derive(Debug, Default)]
struct State {
    /// Start of the segment the writer will roll to next.
    wanted: Option<i64>,
    ready: Option<WarmedFile>,
    /// A start whose warming failed: not retried until another start is wanted.
    failed: Option<i64>,
    stop: bool,
    /// Stopped as a crash would stop it: files stay where they are, for the next open.
    as_crash: bool,
}

/// The warming thread's inbox and outbox, shared with the writer.
#[derive(Debug)]
pub(crate) struct Warmer {
    enabled: bool,
    state: Mutex<State>,
    bell: Condvar,
    /// Lets the zeroing loop see a new wish or a stop without taking the lock per chunk.
    changed: AtomicBool,
    warmed: AtomicU64,
    cold_rolls: AtomicU64,
}

impl Warmer {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            state: Mutex::new(State::default()),
            bell: Condvar::new(),
            changed: AtomicBool::new(false),
            warmed: AtomicU64::new(0),
            cold_rolls: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Asks for the segment starting at `start` to be warmed, replacing any earlier wish.
    pub fn request(&self, start: i64) {
        if !self.enabled {
            return;
        }
        let mut state = self.state.lock();
        if state.wanted != Some(start) {
            state.wanted = Some(start);
            self.changed.store(true, Ordering::Release);
            self.bell.notify_one();
        }
    }

    /// The warmed file for the segment starting at `start`, if it is ready. Never waits:
    /// a roll that finds nothing ready creates a sparse segment instead.
    pub fn take(&self, start: i64) -> Option<WarmedFile> {
        if !self.enabled {
            return None;
        }
        let mut state = self.state.lock();
        if state.ready.as_ref().is_some_and(|r| r.start == start) {
            // Until the writer names the next start there is nothing to warm.
            state.wanted = None;
            return state.ready.take();
        }
        self.cold_rolls.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The next segment the writer will roll to is warmed and waiting.
    pub fn next_ready(&self) -> bool {
        let state = self.state.lock();
        state
            .ready
            .as_ref()
            .is_some_and(|r| Some(r.start) == state.wanted)
    }

    /// Segments warmed since open.
    pub fn warmed_count(&self) -> u64 {
        self.warmed.load(Ordering::Relaxed)
    }

    /// Rolls that found no warmed segment and created a sparse one.
    pub fn cold_roll_count(&self) -> u64 {
        self.cold_rolls.load(Ordering::Relaxed)
    }

    /// Stops the thread; `as_crash` leaves its files behind, as a crash would.
    pub fn stop(&self, as_crash: bool) {
        let mut state = self.state.lock();
        state.stop = true;
        state.as_crash = as_crash;
        self.changed.store(true, Ordering::Release);
        self.bell.notify_one();
    }

    /// The `karman-warm` thread: warms whatever start is wanted until stopped. A warming
    /// file left behind by a stop is deleted here or, after a crash, by the next open.
    pub fn run(&self, dir: &Path, segment_bytes: i64) {
        loop {
            let (start, stale) = {
                let mut state = self.state.lock();
                loop {
                    if state.stop {
                        let ready = state.ready.take();
                        break (None, ready.filter(|_| !state.as_crash));
                    }
                    let ready_start = state.ready.as_ref().map(|r| r.start);
                    match state.wanted {
                        Some(wanted)
                            if ready_start != Some(wanted) && state.failed != Some(wanted) =>
                        {
                            self.changed.store(false, Ordering::Release);
                            break (Some(wanted), state.ready.take());
                        }
                        _ => self.bell.wait(&mut state),
                    }
                }
            };
            if let Some(stale) = stale {
                remove_quietly(&stale.path);
            }
            let Some(start) = start else {
                return;
            };
            match self.warm(dir, start, segment_bytes) {
                Ok(Some(warmed)) => {
                    let mut state = self.state.lock();
                    if state.wanted == Some(start) && !state.stop {
                        state.ready = Some(warmed);
                        self.warmed.fetch_add(1, Ordering::Relaxed);
                    } else if !state.as_crash {
                        drop(state);
                        remove_quietly(&warmed.path);
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not warm the next commit-log segment; the roll will create a sparse one (slower group commits until the next segment)");
                    self.state.lock().failed = Some(start);
                }
            }
        }
    }

    /// Writes the whole file; `None` when the wish changed or a stop came meanwhile.
    fn warm(&self, dir: &Path, start: i64, segment_bytes: i64) -> Result<Option<WarmedFile>> {
        let path = dir.join(format!("{}{WARMING_SUFFIX}", file_name(start)));
        let outcome = self.zero_fill(&path, segment_bytes);
        match outcome {
            Ok(Some(file)) => Ok(Some(WarmedFile { start, path, file })),
            other => {
                if !self.state.lock().as_crash {
                    remove_quietly(&path);
                }
                other.map(|_| None)
            }
        }
    }

    fn zero_fill(&self, path: &Path, segment_bytes: i64) -> Result<Option<File>> {
        use std::os::unix::fs::FileExt;
        let size = u64::try_from(segment_bytes).unwrap_or(0);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| StoreError::io("create warming segment", path, e))?;
        file.set_len(size)
            .map_err(|e| StoreError::io("set_len", path, e))?;
        let zeros = vec![0u8; CHUNK_BYTES];
        let mut at = 0u64;
        while at < size {
            if self.changed.load(Ordering::Acquire) {
                return Ok(None);
            }
            let n = usize::try_from(size - at).map_or(CHUNK_BYTES, |left| left.min(CHUNK_BYTES));
            file.write_all_at(zeros.get(..n).unwrap_or_default(), at)
                .map_err(|e| StoreError::io("zero-write warming segment", path, e))?;
            at += n as u64;
            if at.is_multiple_of(SYNC_EVERY_BYTES) {
                file.sync_data()
                    .map_err(|e| StoreError::io("fdatasync warming segment", path, e))?;
            }
        }
        // Size and blocks both durable: after the rename nothing but data is left to sync.
        file.sync_all()
            .map_err(|e| StoreError::io("fsync warming segment", path, e))?;
        Ok(Some(file))
    }
}

fn remove_quietly(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), %error, "could not delete an unused warming segment; the next open deletes it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_ready(warmer: &Warmer) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !warmer.next_ready() {
            assert!(std::time::Instant::now() < deadline, "segment not warmed");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn warms_the_wanted_start_and_hands_it_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let warmer = std::sync::Arc::new(Warmer::new(true));
        let thread = {
            let (warmer, path) = (warmer.clone(), dir.path().to_owned());
            std::thread::spawn(move || warmer.run(&path, 3 * 65536))
        };
        warmer.request(0);
        wait_ready(&warmer);
        assert!(warmer.take(65536 * 3).is_none(), "only the wanted start");
        let warmed = warmer.take(0).unwrap();
        let bytes = std::fs::read(&warmed.path).unwrap();
        assert_eq!(bytes.len(), 3 * 65536);
        assert!(bytes.iter().all(|b| *b == 0));
        assert!(warmer.take(0).is_none(), "handed over once");
        assert_eq!(warmer.cold_roll_count(), 2);

        // A new wish replaces a stale ready file, which is deleted.
        warmer.request(196_608);
        wait_ready(&warmer);
        warmer.request(393_216);
        wait_ready(&warmer);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.contains(&format!("{}{WARMING_SUFFIX}", file_name(393_216))));
        assert!(!names.contains(&format!("{}{WARMING_SUFFIX}", file_name(196_608))));
        warmer.stop(false);
        thread.join().unwrap();
        assert!(
            !dir.path()
                .join(format!("{}{WARMING_SUFFIX}", file_name(393_216)))
                .exists()
        );
        assert_eq!(warmer.warmed_count(), 3);
    }

    #[test]
    fn disabled_warmer_never_hands_anything_over() {
        let warmer = Warmer::new(false);
        warmer.request(0);
        assert!(warmer.take(0).is_none());
        assert!(!warmer.next_ready());
        assert_eq!(warmer.cold_roll_count(), 0);
    }
}
