//! The commit-log flusher (spec semantics §1.8).
//!
//! SYNC_FLUSH (RocketMQ's GroupCommitService): the writer wakes the flusher after every
//! batch; the flusher takes the published end, fdatasyncs up to it, and publishes the new
//! flushed offset on a `watch` channel. Every append waiting for an offset at or below it
//! completes at once, so one fsync acknowledges every append queued behind it, and the
//! writer keeps writing the next batch while the fsync runs.
//!
//! ASYNC_FLUSH (FlushRealTimeService): every `flushIntervalCommitLog` the flusher syncs if
//! at least `flushCommitLogLeastPages` pages are dirty, or whatever is dirty once
//! `flushCommitLogThoroughInterval` has passed.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::FlushDiskType;
use crate::store::Shared;

use crate::mapped_file::PAGE_BYTES;

/// fsyncs `[flushed, written)` and publishes the new flushed offset. An fsync error turns
/// the store read-only: after a failed fsync the kernel may have dropped the dirty pages,
/// so retrying and reporting success would lie.
pub(crate) fn flush_once(shared: &Shared) -> bool {
    let log = &shared.commit_log;
    let (flushed, written) = (log.flushed_offset(), log.written_offset());
    if written <= flushed {
        return true;
    }
    // Appends waiting now all ended at or below `written`: this fsync releases them.
    let waiting = shared.flushed_tx.receiver_count();
    let started = Instant::now();
    match log.sync_range(flushed, written) {
        Ok(()) => {
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            shared.stats.flush_us.fetch_add(us, Ordering::Relaxed);
            log.set_flushed(written);
            shared
                .stats
                .flush_count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            shared.flushed_tx.send_replace(written);
            shared
                .released_by_last_flush
                .store(waiting, Ordering::Release);
            true
        }
        Err(error) => {
            tracing::error!(%error, "commit-log fsync failed; the store is now read-only");
            shared.flags.set_write_failed();
            false
        }
    }
}

/// Longest a group commit waits for its group to gather.
const GATHER_MAX: Duration = Duration::from_micros(500);

/// Lets the group gather before the next fsync, so that one fsync covers every append in
/// flight instead of whoever happened to be first. Without it, 64 appenders split into two
/// half-groups that alternate, and each fsync covers about 32.
///
/// The group is complete when as many appends wait for the flush as are in flight (queued
/// or written with WAIT), and at least as many as the last fsync released (those are on
/// their way back with their next append). The wait is bounded by [`GATHER_MAX`]; a
/// lone appender never waits. (Real time, not the store's clock: this paces a thread and
/// decides nothing.)
fn gather(shared: &Shared) {
    let released = shared.released_by_last_flush.load(Ordering::Acquire);
    let deadline = Instant::now() + GATHER_MAX;
    loop {
        let in_flight = shared.sync_appends_in_flight.load(Ordering::Acquire);
        let group = released.max(in_flight);
        if group <= 1 || shared.flushed_tx.receiver_count() >= group || Instant::now() >= deadline {
            return;
        }
        std::thread::yield_now();
    }
}

/// The flusher thread; returns once stopping and everything written is flushed.
pub(crate) fn run(shared: &Shared) {
    let config = &shared.config;
    let mut last_thorough_ms = shared.clock.now_ms();
    loop {
        let stopping = shared.flush_stop.load(Ordering::Acquire);
        if stopping {
            flush_once(shared);
            return;
        }
        match config.flush_disk_type {
            FlushDiskType::SyncFlush => {
                shared.flush_wakeup.wait(Duration::from_millis(10));
                gather(shared);
                flush_once(shared);
            }
            FlushDiskType::AsyncFlush => {
                shared.flush_wakeup.wait(Duration::from_millis(
                    config.flush_interval_commit_log_ms.max(1),
                ));
                let log = &shared.commit_log;
                let dirty_pages = (log.written_offset() - log.flushed_offset()) / PAGE_BYTES as i64;
                let now = shared.clock.now_ms();
                let least =
                    i64::try_from(config.flush_commit_log_least_pages_count).unwrap_or(i64::MAX);
                let thorough_due = now - last_thorough_ms
                    >= i64::try_from(config.flush_commit_log_thorough_interval_ms)
                        .unwrap_or(i64::MAX);
                if dirty_pages >= least || thorough_due {
                    if thorough_due {
                        last_thorough_ms = now;
                    }
                    flush_once(shared);
                }
            }
        }
    }
}
