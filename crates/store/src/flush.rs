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
use std::time::Duration;

use crate::config::FlushDiskType;
use crate::store::Shared;

const PAGE_BYTES: i64 = 4096;

/// fsyncs `[flushed, written)` and publishes the new flushed offset. An fsync error turns
/// the store read-only: after a failed fsync the kernel may have dropped the dirty pages,
/// so retrying and reporting success would lie.
pub(crate) fn flush_once(shared: &Shared) -> bool {
    let log = &shared.commit_log;
    let (flushed, written) = (log.flushed_offset(), log.written_offset());
    if written <= flushed {
        return true;
    }
    match log.sync_range(flushed, written) {
        Ok(()) => {
            log.set_flushed(written);
            shared.flushed_tx.send_replace(written);
            true
        }
        Err(error) => {
            tracing::error!(%error, "commit-log fsync failed; the store is now read-only");
            shared.flags.set_write_failed();
            false
        }
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
                flush_once(shared);
            }
            FlushDiskType::AsyncFlush => {
                shared.flush_wakeup.wait(Duration::from_millis(
                    config.flush_interval_commit_log_ms.max(1),
                ));
                let log = &shared.commit_log;
                let dirty_pages = (log.written_offset() - log.flushed_offset()) / PAGE_BYTES;
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
