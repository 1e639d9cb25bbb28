//! The commit-log flush (spec semantics §1.8).
//!
//! SYNC_FLUSH (RocketMQ's GroupCommitService) is a group commit run by the writer thread
//! itself: it writes a batch, parks each append with WAIT in [`SyncWaiters`], and once the
//! group is complete ([`GroupCommit`]) fdatasyncs and answers every parked append the fsync
//! covers. Doing the fsync on the writer instead of handing it to a flusher thread saves
//! two thread hand-offs per group (writer → flusher, flusher's wake-up → the appenders'
//! tasks), which on two cores cost about as much as the fsync itself. The appenders are
//! waiting for the fsync anyway, so nothing is lost by not writing during it; appends that
//! arrive meanwhile queue and form the next, larger group.
//!
//! The flusher thread still runs under SYNC_FLUSH, every 10 ms, for what was written
//! without WAIT, and answers FLUSH_DISK_TIMEOUT to appends parked past their
//! `syncFlushTimeout`. Under ASYNC_FLUSH (FlushRealTimeService) it syncs every
//! `flushIntervalCommitLog` if at least `flushCommitLogLeastPages` pages are dirty, or
//! whatever is dirty once `flushCommitLogThoroughInterval` has passed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::answer::{Answer, deliver};
use crate::append::AppendStatus;
use crate::config::FlushDiskType;
use crate::mapped_file::PAGE_BYTES;
use crate::store::Shared;

/// fsyncs `[flushed, written)` and publishes the new flushed offset. An fsync error turns
/// the store read-only: after a failed fsync the kernel may have dropped the dirty pages,
/// so retrying and reporting success would lie. Serialized, so that the flushed offset only
/// moves forward when the writer and the flusher both sync.
pub(crate) fn flush_once(shared: &Shared) -> bool {
    let _syncing = shared.flush_lock.lock();
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
            true
        }
        Err(error) => {
            tracing::error!(%error, "commit-log fsync failed; the store is now read-only");
            shared.flags.set_write_failed();
            false
        }
    }
}

/// A written SYNC_FLUSH append with WAIT, parked until an fsync covers it or its
/// `syncFlushTimeout` passes.
#[derive(Debug)]
pub(crate) struct SyncWaiter {
    /// Commit-log offset just past the append's records.
    pub end: i64,
    pub answer: Answer,
}

/// A parked append and when it stops waiting.
#[derive(Debug)]
struct Parked {
    waiter: SyncWaiter,
    deadline: Instant,
}

/// The parked appends. Shared rather than owned by the writer so that the flusher can
/// answer those whose `syncFlushTimeout` passed (with their offsets) while the writer is
/// still inside a slow fsync. As in RocketMQ, the timeout runs from the write; the
/// appenders themselves set no timer (a timer per append cost as much CPU as its encode).
#[derive(Debug, Default)]
pub(crate) struct SyncWaiters {
    parked: Mutex<Vec<Parked>>,
    /// Appends with WAIT between enqueue and answer (see [`GroupCommit`]).
    in_flight: AtomicUsize,
}

impl SyncWaiters {
    /// Registers an append that will wait; the guard counts it in flight until dropped.
    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(&self.in_flight)
    }

    /// Parks written appends until an fsync covers them or `timeout` passes.
    pub fn park(&self, waiters: &mut Vec<SyncWaiter>, timeout: Duration) {
        if !waiters.is_empty() {
            let deadline = Instant::now() + timeout;
            let waiters = waiters.drain(..).map(|waiter| Parked { waiter, deadline });
            self.parked.lock().extend(waiters);
        }
    }

    /// Answers every parked append at or below `flushed` (or all of them with
    /// FLUSH_DISK_TIMEOUT when the fsync failed). Returns how many were answered.
    pub fn release(&self, flushed: Option<i64>) -> usize {
        let answered: Vec<Parked> = {
            let mut parked = self.parked.lock();
            match flushed {
                Some(flushed) => parked.extract_if(.., |p| p.waiter.end <= flushed).collect(),
                None => std::mem::take(&mut *parked),
            }
        };
        answer_all(answered, flushed.is_none())
    }

    /// Answers FLUSH_DISK_TIMEOUT to every parked append whose deadline passed by `now`.
    pub fn expire(&self, now: Instant) -> usize {
        let expired: Vec<Parked> = self
            .parked
            .lock()
            .extract_if(.., |p| p.deadline <= now)
            .collect();
        answer_all(expired, true)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

fn answer_all(parked: Vec<Parked>, timed_out: bool) -> usize {
    let count = parked.len();
    let answers = parked.into_iter().map(|p| {
        let mut answer = p.waiter.answer;
        if timed_out {
            answer.result.status = AppendStatus::FlushDiskTimeout;
        }
        answer
    });
    deliver(answers.collect());
    count
}

/// Counts an append in flight for as long as it lives.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Longest a group commit waits for its group to gather.
const GATHER_MAX: Duration = Duration::from_micros(500);

/// The writer's group-commit state under SYNC_FLUSH.
///
/// A group is complete once the writer has written as many appends with WAIT since the
/// last fsync as are in flight (queued, or written and parked), and at least as many as
/// the last fsync released: those are on their way back with their next append. Without
/// waiting for them, 64 appenders split into two half-groups that alternate and each fsync
/// covers about 32. The wait is bounded by [`GATHER_MAX`]; a lone appender never waits.
/// (Real time, not the store's clock: this paces a thread and decides nothing.)
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    /// Appends with WAIT written since the last fsync.
    written: usize,
    /// Appends the last fsync released.
    released: usize,
    /// When the first of `written` was written.
    started: Option<Instant>,
}

impl GroupCommit {
    pub fn written(&mut self, appends: usize) {
        if appends > 0 && self.written == 0 {
            self.started = Some(Instant::now());
        }
        self.written += appends;
    }

    /// How long the writer may wait for more of the group; `None` when nothing waits.
    pub fn wait_for_more(&self, shared: &Shared) -> Option<Duration> {
        let started = self.started.filter(|_| self.written > 0)?;
        let group = self.released.max(shared.sync_waiters.in_flight());
        if group <= 1 || self.written >= group {
            return Some(Duration::ZERO);
        }
        Some(GATHER_MAX.saturating_sub(started.elapsed()))
    }

    /// fsyncs and answers the parked appends.
    pub fn commit(&mut self, shared: &Shared) {
        let flushed = flush_once(shared).then(|| shared.commit_log.flushed_offset());
        let released = shared.sync_waiters.release(flushed);
        if released > 0 {
            self.released = released;
        }
        self.written = 0;
        self.started = None;
    }
}

/// How often the flusher syncs what was written without WAIT under SYNC_FLUSH.
const SYNC_FLUSH_SWEEP: Duration = Duration::from_millis(10);

/// The flusher thread; returns once stopping and everything written is flushed.
pub(crate) fn run(shared: &Shared) {
    let config = &shared.config;
    let mut last_thorough_ms = shared.clock.now_ms();
    loop {
        if shared.flush_stop.load(Ordering::Acquire) {
            flush_once(shared);
            return;
        }
        match config.flush_disk_type {
            FlushDiskType::SyncFlush => {
                shared.flush_wakeup.wait(SYNC_FLUSH_SWEEP);
                // Before flushing: a sweep waits for the writer's fsync, which is what
                // may be slow.
                shared.sync_waiters.expire(Instant::now());
                // With appends waiting, the writer's next group commit covers everything
                // written so far; a sweep now would only delay it.
                if shared.sync_waiters.in_flight() == 0 {
                    flush_once(shared);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::AppendResult;
    use crate::{CommitLogOffset, QueueOffset};
    use tokio::sync::oneshot;

    fn parked(
        waiters: &SyncWaiters,
        end: i64,
        timeout: Duration,
    ) -> oneshot::Receiver<AppendResult> {
        let (reply, answer) = oneshot::channel();
        let mut result = AppendResult::refused(AppendStatus::PutOk);
        result.physical_offset = CommitLogOffset(end - 100);
        result.queue_offset = QueueOffset(end / 100);
        result.record_bytes = 100;
        let answer_to = Answer {
            reply,
            result,
            runtime: None,
        };
        waiters.park(
            &mut vec![SyncWaiter {
                end,
                answer: answer_to,
            }],
            timeout,
        );
        answer
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn an_fsync_answers_exactly_the_appends_it_covers() {
        let waiters = SyncWaiters::default();
        let mut first = parked(&waiters, 100, MINUTE);
        let mut second = parked(&waiters, 200, MINUTE);
        assert_eq!(waiters.release(Some(150)), 1);
        assert_eq!(first.try_recv().unwrap().status, AppendStatus::PutOk);
        assert!(second.try_recv().is_err());
        assert_eq!(waiters.release(Some(200)), 1);
        assert_eq!(second.try_recv().unwrap().status, AppendStatus::PutOk);
    }

    #[test]
    fn a_failed_fsync_answers_every_parked_append_with_flush_disk_timeout() {
        let waiters = SyncWaiters::default();
        let mut answer = parked(&waiters, 100, MINUTE);
        assert_eq!(waiters.release(None), 1);
        let result = answer.try_recv().unwrap();
        assert_eq!(result.status, AppendStatus::FlushDiskTimeout);
        assert_eq!(result.physical_offset, CommitLogOffset(0));
    }

    #[test]
    fn an_append_past_its_deadline_times_out_with_its_offsets_and_is_answered_once() {
        let waiters = SyncWaiters::default();
        let mut overdue = parked(&waiters, 300, Duration::ZERO);
        let mut waiting = parked(&waiters, 400, MINUTE);
        assert_eq!(waiters.expire(Instant::now()), 1);
        let timed_out = overdue.try_recv().unwrap();
        assert_eq!(timed_out.status, AppendStatus::FlushDiskTimeout);
        assert_eq!(
            (timed_out.physical_offset, timed_out.record_bytes),
            (CommitLogOffset(200), 100)
        );
        assert!(waiting.try_recv().is_err());
        assert_eq!(waiters.release(Some(400)), 1);
        assert_eq!(waiting.try_recv().unwrap().status, AppendStatus::PutOk);
        assert_eq!(waiters.expire(Instant::now() + 2 * MINUTE), 0);
    }
}
