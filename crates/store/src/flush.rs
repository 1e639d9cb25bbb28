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
    let started = Instant::now();
    match log.sync_range(flushed, written) {
        Ok(()) => {
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            shared.stats.flush_us.fetch_add(us, Ordering::Relaxed);
            log.set_flushed(written);
            shared.stats.flush_count.fetch_add(1, Ordering::Relaxed);
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

/// Longest a group commit waits for its group to gather.
const GATHER_MAX: Duration = Duration::from_micros(500);

/// What the flusher remembers of the last group commit.
#[derive(Debug, Default)]
struct Group {
    /// `sync_written_total` that the last fsync covered.
    covered: u64,
    /// Appends with WAIT that the last fsync released.
    released: usize,
}

/// Lets the group gather before the next fsync, so that one fsync covers every append in
/// flight instead of whoever happened to be first. Without it, 64 appenders split into two
/// half-groups that alternate, and each fsync covers about 32.
///
/// The group is complete once the writer has written as many appends with WAIT since the
/// last fsync as are in flight (queued, or written and waiting), and at least as many as
/// the last fsync released (those are on their way back with their next append). The
/// flusher sleeps until the writer's next batch rather than spinning: on two cores a
/// spinning flusher takes the CPU the group needs to arrive. The wait is bounded by
/// [`GATHER_MAX`]; a lone appender never waits. (Real time, not the store's clock: this
/// paces a thread and decides nothing.)
fn gather(shared: &Shared, last: &Group) {
    let deadline = Instant::now() + GATHER_MAX;
    loop {
        let in_flight = shared.sync_appends_in_flight.load(Ordering::Acquire);
        let group = last.released.max(in_flight);
        let written = shared.sync_written_total.load(Ordering::Acquire) - last.covered;
        let written = usize::try_from(written).unwrap_or(usize::MAX);
        let now = Instant::now();
        if group <= 1 || written >= group || now >= deadline {
            return;
        }
        shared.flush_wakeup.wait(deadline - now);
    }
}

/// The flusher thread; returns once stopping and everything written is flushed.
pub(crate) fn run(shared: &Shared) {
    let config = &shared.config;
    let mut last_thorough_ms = shared.clock.now_ms();
    let mut group = Group::default();
    loop {
        let stopping = shared.flush_stop.load(Ordering::Acquire);
        if stopping {
            flush_once(shared);
            return;
        }
        match config.flush_disk_type {
            FlushDiskType::SyncFlush => {
                shared.flush_wakeup.wait(Duration::from_millis(10));
                gather(shared, &group);
                // Read before the fsync reads the written offset, so that every append
                // counted here is covered by it.
                let covered = shared.sync_written_total.load(Ordering::Acquire);
                if flush_once(shared) && covered > group.covered {
                    group.released = usize::try_from(covered - group.covered).unwrap_or(usize::MAX);
                    group.covered = covered;
                }
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
