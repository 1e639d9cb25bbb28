//! [`MessageStore`]: opens (and recovers) a store, runs its threads, and is the one type
//! the broker calls.
//!
//! Threads, each owning one job:
//!
//! | thread             | owns                                                     |
//! |--------------------|----------------------------------------------------------|
//! | `karman-writer`    | the commit-log tail, queue-offset assignment, segment roll, the group commit under SYNC_FLUSH |
//! | `karman-flusher`   | background fsync of the commit log                       |
//! | `karman-reput`     | consume queues and index, arrival notifications          |
//! | `karman-maint`     | consume-queue/index flush, checkpoint, retention, disk-full flag |
//! | `karman-warm`      | zero-writing the next commit-log segment (when warming is on) |

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::append::{
    self, AppendMessage, AppendResult, AppendStatus, IllegalReason, QueueOffsets, Unavailable,
    WriteRequest, Writer,
};
use crate::checkpoint::{self, Checkpoint, CheckpointState};
use crate::clock::{Clock, DiskUsageProbe, StatvfsProbe, SystemClock};
use crate::commit_log::{CommitLog, sync_dir};
use crate::config::{FlushDiskType, ResolvedConfig, StoreConfig};
use crate::consume_queue::ConsumeQueueTable;
use crate::dispatch::{self, ArrivalListener};
use crate::error::{Result, StoreError};
use crate::flush::SyncWaiters;
use crate::index_file::IndexService;
use crate::recovery::{self, RecoveryReport, TailCase};
use crate::retention::{self, RetentionOutcome};
use crate::warm::Warmer;

/// A sleeping thread's doorbell.
#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    rung: Mutex<bool>,
    bell: Condvar,
}

impl Wakeup {
    pub fn notify(&self) {
        *self.rung.lock() = true;
        self.bell.notify_one();
    }

    /// Sleeps until rung or `timeout`.
    pub fn wait(&self, timeout: Duration) {
        let mut rung = self.rung.lock();
        if !*rung {
            self.bell.wait_for(&mut rung, timeout);
        }
        *rung = false;
    }
}

const DISK_FULL: u8 = 1;
const WRITE_FAILED: u8 = 2;
const SHUT_DOWN: u8 = 4;
const READ_ONLY: u8 = 8;

/// Why appends are refused, checked on every append with one atomic load.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    bits: AtomicU8,
    disk_full: Mutex<Option<Unavailable>>,
}

impl Flags {
    pub fn unavailable(&self) -> Option<Unavailable> {
        let bits = self.bits.load(Ordering::Acquire);
        if bits == 0 {
            None
        } else if bits & SHUT_DOWN != 0 {
            Some(Unavailable::ShutDown)
        } else if bits & WRITE_FAILED != 0 {
            Some(Unavailable::WriteFailed)
        } else if bits & READ_ONLY != 0 {
            Some(Unavailable::ReadOnly)
        } else {
            self.disk_full.lock().clone()
        }
    }

    pub fn set_write_failed(&self) {
        self.bits.fetch_or(WRITE_FAILED, Ordering::AcqRel);
    }

    fn set_read_only(&self, read_only: bool) {
        if read_only {
            self.bits.fetch_or(READ_ONLY, Ordering::AcqRel);
        } else {
            self.bits.fetch_and(!READ_ONLY, Ordering::AcqRel);
        }
    }

    fn set_shut_down(&self) {
        self.bits.fetch_or(SHUT_DOWN, Ordering::AcqRel);
    }

    pub fn set_disk_full(&self, why: Option<Unavailable>) {
        let full = why.is_some();
        *self.disk_full.lock() = why;
        if full {
            self.bits.fetch_or(DISK_FULL, Ordering::AcqRel);
        } else {
            self.bits.fetch_and(!DISK_FULL, Ordering::AcqRel);
        }
    }
}

/// Cumulative counters; the broker samples them for TPS figures.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    put_message_count: AtomicU64,
    put_message_bytes: AtomicU64,
    disk_used_ratio_ppm: AtomicU64,
    pub flush_count: AtomicU64,
    pub flush_us: AtomicU64,
    pub page_cache_released_below: AtomicI64,
}

impl Stats {
    pub fn record_put(&self, count: usize, bytes: i64) {
        self.put_message_count
            .fetch_add(count as u64, Ordering::Relaxed);
        self.put_message_bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(0), Ordering::Relaxed);
    }

    pub fn set_disk_used_ratio(&self, ratio: f64) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ppm = (ratio.clamp(0.0, 1.0) * 1e6) as u64;
        self.disk_used_ratio_ppm.store(ppm, Ordering::Relaxed);
    }
}

/// A snapshot for GET_BROKER_RUNTIME_INFO.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    pub commit_log_min_offset: i64,
    pub commit_log_max_offset: i64,
    pub commit_log_flushed_offset: i64,
    pub dispatched_offset: i64,
    /// Bytes written but not yet in consume queues.
    pub dispatch_lag_bytes: i64,
    /// Usage seen at open or by the last retention round since.
    pub disk_used_ratio: f64,
    /// Messages appended since open (sample twice for TPS).
    pub put_message_count: u64,
    pub put_message_bytes: u64,
    pub commit_log_segment_count: usize,
    /// Commit-log fsyncs since open (under SYNC_FLUSH: group commits).
    pub flush_count: u64,
    /// Time spent in those fsyncs.
    pub flush_us: u64,
    /// The segment the next roll creates is warmed and waiting (see `warmMapedFileEnable`).
    pub next_segment_warmed: bool,
    /// Segments warmed since open.
    pub segments_warmed: u64,
    /// Rolls that found no warmed segment ready (warming on) and created a sparse one.
    pub cold_rolls: u64,
    /// Commit-log offset below which the page cache was handed back to the kernel (see
    /// `pageCacheHotWindow`).
    pub page_cache_released_below: i64,
}

/// What is shared between the store handle and its threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: StoreConfig,
    pub resolved: ResolvedConfig,
    pub clock: Arc<dyn Clock>,
    pub disk_probe: Arc<dyn DiskUsageProbe>,
    pub listener: Option<Arc<dyn ArrivalListener>>,
    pub commit_log: CommitLog,
    pub warmer: Warmer,
    pub cqs: ConsumeQueueTable,
    pub index: Option<IndexService>,
    pub flags: Flags,
    pub stats: Stats,
    /// Commit-log offset up to which consume queues and index are built.
    pub dispatched: AtomicI64,
    /// Held by whoever is dispatching: the writer right after a batch, or the dispatcher
    /// thread when the writer found it busy.
    pub dispatch_lock: Mutex<()>,
    pub last_dispatched_timestamp_ms: AtomicI64,
    /// Held while fsyncing the commit log: the writer's group commit and the flusher.
    pub flush_lock: Mutex<()>,
    pub sync_waiters: SyncWaiters,
    pub flush_wakeup: Wakeup,
    pub dispatch_wakeup: Wakeup,
    pub maintenance_wakeup: Wakeup,
    pub flush_stop: AtomicBool,
    pub dispatch_stop: AtomicBool,
    pub maintenance_stop: AtomicBool,
    pub memory_total_bytes: u64,
}

impl Shared {
    /// Between checkpoints: writes back the consume-queue files with at least
    /// `flushConsumeQueueLeastPages` dirty pages, so a thorough round has little left.
    /// Flushing every dirty file every second instead cost a 1,024-queue topic 1,024
    /// fdatasyncs a second. Returns how many files were flushed.
    pub fn flush_consume_queues(&self) -> Result<usize> {
        let least = self.config.flush_consume_queue_least_pages.max(1);
        let mut flushed = 0;
        for (_, _, queue) in self.cqs.all() {
            flushed += queue.flush(least)?;
        }
        Ok(flushed)
    }

    /// Flushes consume queues and index, then records how far they and the log are durable.
    pub fn write_checkpoint(&self) -> Result<()> {
        let dispatched = self.dispatched.load(Ordering::Acquire);
        let timestamp = self.last_dispatched_timestamp_ms.load(Ordering::Acquire);
        for (_, _, queue) in self.cqs.all() {
            queue.flush(0)?;
        }
        if let Some(index) = &self.index {
            index.flush()?;
        }
        let confirm = self.commit_log.flushed_offset();
        checkpoint::store(
            &self.config.store_path_root_dir,
            &Checkpoint {
                physic_msg_timestamp_ms: timestamp,
                logics_msg_timestamp_ms: timestamp,
                index_msg_timestamp_ms: timestamp,
                confirm_phy_offset: confirm,
                dispatched_phy_offset: dispatched.min(confirm),
            },
        )
    }
}

/// Clock, disk probe and arrival listener: the store's inputs besides its config.
#[derive(Debug, Clone)]
pub struct StoreEnv {
    pub clock: Arc<dyn Clock>,
    pub disk_probe: Arc<dyn DiskUsageProbe>,
    /// Called after each record enters its consume queue (see [`ArrivalListener`]).
    pub arrival_listener: Option<Arc<dyn ArrivalListener>>,
}

impl Default for StoreEnv {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            disk_probe: Arc::new(StatvfsProbe),
            arrival_listener: None,
        }
    }
}

/// The message store.
#[derive(Debug)]
pub struct MessageStore {
    pub(crate) shared: Arc<Shared>,
    tx: SyncSender<WriteRequest>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    report: RecoveryReport,
    closed: AtomicBool,
    _lock: File,
}

fn memory_total_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        })
        .unwrap_or(8 << 30)
}

impl MessageStore {
    /// Opens the store under `config.store_path_root_dir` with the system clock and disk.
    pub fn open(config: StoreConfig) -> Result<Self> {
        Self::open_with(config, StoreEnv::default())
    }

    /// Opens the store: takes the lock, recovers (see [`crate::recovery`]), marks the run
    /// with the `abort` file, and starts the threads.
    pub fn open_with(config: StoreConfig, env: StoreEnv) -> Result<Self> {
        let resolved = config.validate()?;
        let root = config.store_path_root_dir.clone();
        std::fs::create_dir_all(&root).map_err(|e| StoreError::io("create_dir", &root, e))?;
        let lock = lock_store(&root)?;
        let abnormal = abort_path(&root).exists();
        let checkpoint = checkpoint::load(&root)?;
        let segment_bytes =
            i64::try_from(config.mapped_file_size_commit_log_bytes).unwrap_or(1 << 30);
        let cq_bytes =
            i64::try_from(config.mapped_file_size_consume_queue_bytes).unwrap_or(6_000_000);
        let commit_log = CommitLog::open(&config.commit_log_dir(), segment_bytes)?;
        let cqs = ConsumeQueueTable::open(&config.consume_queue_dir(), cq_bytes)?;
        let index = if config.message_index_enable {
            Some(IndexService::open(
                &config.index_dir(),
                config.max_hash_slot_count,
                config.max_index_count,
            )?)
        } else {
            None
        };
        let memory_total_bytes = config.memory_total_bytes.unwrap_or_else(memory_total_bytes);
        let warmer = Warmer::new(config.warms_commit_log());
        let shared = Arc::new(Shared {
            config,
            resolved,
            clock: env.clock,
            disk_probe: env.disk_probe,
            listener: env.arrival_listener,
            commit_log,
            warmer,
            cqs,
            index,
            flags: Flags::default(),
            stats: Stats::default(),
            dispatched: AtomicI64::new(0),
            dispatch_lock: Mutex::new(()),
            last_dispatched_timestamp_ms: AtomicI64::new(match checkpoint {
                CheckpointState::Valid(cp) => cp.logics_msg_timestamp_ms,
                _ => 0,
            }),
            flush_lock: Mutex::new(()),
            sync_waiters: SyncWaiters::default(),
            flush_wakeup: Wakeup::default(),
            dispatch_wakeup: Wakeup::default(),
            maintenance_wakeup: Wakeup::default(),
            flush_stop: AtomicBool::new(false),
            dispatch_stop: AtomicBool::new(false),
            maintenance_stop: AtomicBool::new(false),
            memory_total_bytes,
        });
        let report = recover(&shared, abnormal, checkpoint)?;
        tracing::info!(?report, "store recovered");
        // The first retention round runs a minute after start (as in RocketMQ); until then
        // the disk usage in the stats (clusterList's SPACE) would read 0 and a full disk
        // would take appends.
        if let Err(error) =
            crate::retention::check_disk(&shared, &crate::retention::policy(&shared))
        {
            tracing::warn!(%error, "could not read the disk usage at open");
        }
        write_abort_file(&root)?;
        let (tx, threads) = start_threads(&shared)?;
        Ok(Self {
            shared,
            tx,
            threads: Mutex::new(threads),
            report,
            closed: AtomicBool::new(false),
            _lock: lock,
        })
    }

    /// What recovery found at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Appends one message.
    pub async fn append(&self, message: AppendMessage) -> AppendResult {
        if let Some(why) = self.shared.flags.unavailable() {
            return AppendResult::refused(AppendStatus::ServiceNotAvailable(why));
        }
        let record = match append::encode(&message, self.shared.config.max_message_size_bytes) {
            Ok(record) => record,
            Err(status) => return AppendResult::refused(status),
        };
        let wait = self.waits_for_fsync(&message);
        let AppendMessage {
            topic,
            queue_id,
            store_host,
            ..
        } = message;
        self.submit(wait, topic, queue_id, vec![record], store_host)
            .await
    }

    /// Appends messages of one topic-queue as one unit: consecutive queue offsets, one
    /// contiguous write in one segment, one status for all. The WAIT flag of the first
    /// message decides whether a SYNC_FLUSH append waits for fsync.
    pub async fn append_batch(&self, messages: Vec<AppendMessage>) -> AppendResult {
        let Some(first) = messages.first() else {
            return AppendResult::refused(AppendStatus::MessageIllegal(IllegalReason::BatchEmpty));
        };
        if let Some(why) = self.shared.flags.unavailable() {
            return AppendResult::refused(AppendStatus::ServiceNotAvailable(why));
        }
        let (topic, queue_id, store_host) = (first.topic.clone(), first.queue_id, first.store_host);
        let wait = self.waits_for_fsync(first);
        if messages
            .iter()
            .any(|m| m.topic != topic || m.queue_id != queue_id)
        {
            return AppendResult::refused(AppendStatus::MessageIllegal(
                IllegalReason::BatchMixesQueues,
            ));
        }
        let max_body = self.shared.config.max_message_size_bytes;
        let records = match messages
            .iter()
            .map(|m| append::encode(m, max_body))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(records) => records,
            Err(status) => return AppendResult::refused(status),
        };
        self.submit(wait, topic, queue_id, records, store_host)
            .await
    }

    /// Under SYNC_FLUSH an append with WAIT (the default) is answered once durable.
    fn waits_for_fsync(&self, message: &AppendMessage) -> bool {
        message.wait_store_msg_ok && self.shared.config.flush_disk_type == FlushDiskType::SyncFlush
    }

    /// Queues encoded records for the writer and waits for the answer.
    async fn submit(
        &self,
        wait: bool,
        topic: String,
        queue_id: i32,
        records: Vec<append::EncodedRecord>,
        store_host: SocketAddr,
    ) -> AppendResult {
        let in_flight = wait.then(|| self.shared.sync_waiters.enter());
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest::Append {
            wait,
            topic,
            queue_id,
            records,
            store_host,
            reply,
            runtime: tokio::runtime::Handle::try_current().ok(),
        };
        match self.tx.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return AppendResult::refused(AppendStatus::OsPageCacheBusy);
            }
            Err(TrySendError::Disconnected(_)) => {
                return AppendResult::refused(AppendStatus::ServiceNotAvailable(
                    Unavailable::ShutDown,
                ));
            }
        }
        // Past syncFlushTimeout the flusher answers FLUSH_DISK_TIMEOUT (crate::flush).
        let answered = answer.await;
        drop(in_flight);
        answered.unwrap_or_else(|_| {
            AppendResult::refused(AppendStatus::ServiceNotAvailable(Unavailable::ShutDown))
        })
    }

    /// A replica's append: raw commit-log bytes that must continue the log at `offset`.
    /// They are checked (whole records, CRCs, positions), written, and dispatched like any
    /// other. Returns the new end of the log.
    pub async fn append_raw(&self, offset: i64, bytes: Bytes) -> Result<i64> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(WriteRequest::Raw {
                offset,
                bytes,
                reply,
            })
            .map_err(|_| StoreError::ShutDown)?;
        answer.await.map_err(|_| StoreError::ShutDown)?
    }

    /// Refuses (or accepts again) ordinary appends, with SERVICE_NOT_AVAILABLE /
    /// `Unavailable::ReadOnly`: a slave takes only [`Self::append_raw`].
    pub fn set_read_only(&self, read_only: bool) {
        self.shared.flags.set_read_only(read_only);
    }

    /// Published commit-log bytes from `offset`, at most `max_bytes`, within one segment:
    /// what a replica streams. `None` at the end of the log.
    pub fn read_commit_log(&self, offset: i64, max_bytes: usize) -> Option<Bytes> {
        self.shared
            .commit_log
            .read_raw(offset, i64::try_from(max_bytes).unwrap_or(i64::MAX))
    }

    /// One whole record by commit-log offset (VIEW_MESSAGE_BY_ID), as a slice of the map.
    pub fn read_message(&self, offset: crate::CommitLogOffset) -> Option<Bytes> {
        let record = self.shared.commit_log.read_record(offset.0)?;
        karman_protocol::message::MessageView::parse(&record).ok()?;
        Some(record)
    }

    pub fn max_physical_offset(&self) -> i64 {
        self.shared.commit_log.written_offset()
    }

    pub fn min_physical_offset(&self) -> i64 {
        self.shared.commit_log.min_offset()
    }

    pub fn flushed_physical_offset(&self) -> i64 {
        self.shared.commit_log.flushed_offset()
    }

    pub fn dispatched_physical_offset(&self) -> i64 {
        self.shared.dispatched.load(Ordering::Acquire)
    }

    /// Blocks until consume queues cover everything written (or `timeout`); true if so.
    pub fn wait_for_dispatch(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.dispatched_physical_offset() >= self.max_physical_offset() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Deletes a topic's consume queues and forgets its queue offsets.
    pub fn delete_topic(&self, topic: &str) -> Result<bool> {
        let _ = self.tx.send(WriteRequest::ForgetTopic {
            topic: topic.to_owned(),
        });
        self.shared.cqs.delete_topic(topic)
    }

    /// One retention round now (tests, and the admin's `deleteExpiredCommitLog` with
    /// `manual = true`). Also refreshes the disk-full flag.
    pub fn run_retention_now(&self, manual: bool) -> Result<RetentionOutcome> {
        retention::run_round(&self.shared, self.shared.clock.now_ms(), manual)
    }

    /// Flushes consume queues and index and writes the checkpoint now.
    pub fn checkpoint_now(&self) -> Result<()> {
        self.shared.write_checkpoint()
    }

    pub fn runtime_stats(&self) -> StoreStats {
        let shared = &self.shared;
        let max = shared.commit_log.written_offset();
        let dispatched = shared.dispatched.load(Ordering::Acquire);
        #[allow(clippy::cast_precision_loss)]
        let disk_used_ratio = shared.stats.disk_used_ratio_ppm.load(Ordering::Relaxed) as f64 / 1e6;
        StoreStats {
            commit_log_min_offset: shared.commit_log.min_offset(),
            commit_log_max_offset: max,
            commit_log_flushed_offset: shared.commit_log.flushed_offset(),
            dispatched_offset: dispatched,
            dispatch_lag_bytes: max - dispatched,
            disk_used_ratio,
            put_message_count: shared.stats.put_message_count.load(Ordering::Relaxed),
            put_message_bytes: shared.stats.put_message_bytes.load(Ordering::Relaxed),
            commit_log_segment_count: shared.commit_log.segment_count(),
            flush_count: shared.stats.flush_count.load(Ordering::Relaxed),
            flush_us: shared.stats.flush_us.load(Ordering::Relaxed),
            next_segment_warmed: shared.warmer.next_ready(),
            segments_warmed: shared.warmer.warmed_count(),
            cold_rolls: shared.warmer.cold_roll_count(),
            page_cache_released_below: shared
                .stats
                .page_cache_released_below
                .load(Ordering::Relaxed),
        }
    }

    /// Clean shutdown: stop taking appends, write and flush everything queued, finish
    /// dispatch, flush consume queues and index, write the checkpoint, remove `abort`.
    pub fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_threads(false);
        self.shared.write_checkpoint()?;
        let root = &self.shared.config.store_path_root_dir;
        let abort = abort_path(root);
        std::fs::remove_file(&abort).map_err(|e| StoreError::io("remove abort", &abort, e))?;
        sync_dir(root)
    }

    /// Stops every thread as a crash would: no final flush, no checkpoint, `abort` stays.
    /// What was written stays in the page cache, as after kill -9. For recovery tests.
    #[doc(hidden)]
    pub fn halt_without_cleanup(self) {
        self.closed.store(true, Ordering::Release);
        self.stop_threads(true);
    }

    fn stop_threads(&self, crash: bool) {
        let shared = &self.shared;
        shared.flags.set_shut_down();
        let _ = self.tx.send(WriteRequest::Stop);
        let mut threads = std::mem::take(&mut *self.threads.lock());
        let mut join = |name: &str| {
            if let Some(at) = threads.iter().position(|t| t.thread().name() == Some(name)) {
                let _ = threads.swap_remove(at).join();
            }
        };
        join("karman-writer");
        if crash {
            shared.dispatch_stop.store(true, Ordering::Release);
            shared.maintenance_stop.store(true, Ordering::Release);
        }
        shared.flush_stop.store(true, Ordering::Release);
        shared.flush_wakeup.notify();
        if !crash {
            join("karman-flusher");
        }
        shared.dispatch_stop.store(true, Ordering::Release);
        shared.dispatch_wakeup.notify();
        join("karman-reput");
        shared.maintenance_stop.store(true, Ordering::Release);
        shared.maintenance_wakeup.notify();
        shared.warmer.stop(crash);
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::error!(%error, "store shutdown failed");
        }
    }
}

fn abort_path(root: &std::path::Path) -> PathBuf {
    root.join("abort")
}

fn lock_store(root: &std::path::Path) -> Result<File> {
    let path = root.join("lock");
    let file = crate::mapped_file::open_rw(&path, true, "open lock")?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path,
            source: std::io::Error::from(std::io::ErrorKind::WouldBlock),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Locked { path, source }),
    }
}

fn write_abort_file(root: &std::path::Path) -> Result<()> {
    let path = abort_path(root);
    let mut file = File::create(&path).map_err(|e| StoreError::io("create abort", &path, e))?;
    write!(file, "{}", std::process::id())
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("write abort", &path, e))?;
    sync_dir(root)
}

/// Runs the case table of [`crate::recovery`] and rebuilds consume queues past the start.
fn recover(shared: &Shared, abnormal: bool, checkpoint: CheckpointState) -> Result<RecoveryReport> {
    let log = &shared.commit_log;
    if log.segment_count() == 0 {
        shared.cqs.destroy_all()?;
        if let Some(index) = &shared.index {
            index.destroy_all()?;
        }
        shared.write_checkpoint()?;
        return Ok(RecoveryReport {
            abnormal,
            checkpoint,
            scan_from_offset: 0,
            log_end_offset: 0,
            tail: TailCase::Empty,
            records_scanned: 0,
            bytes_zeroed: 0,
            segments_deleted: 0,
        });
    }
    let (from, confirmed) = recovery::scan_start(log, &checkpoint)?;
    let min = log.min_offset();
    for (_, _, queue) in shared.cqs.all() {
        queue.truncate_from_log_offset(from)?;
        // Retention may have deleted segments these units point into.
        queue.delete_expired(min)?;
    }
    // Without a checkpoint everything is re-dispatched; trust the index up to its last
    // entry rather than index every record a second time.
    let index_from = match (&checkpoint, &shared.index) {
        (CheckpointState::Valid(_), _) | (_, None) => i64::MIN,
        (_, Some(index)) => index.last_update().1 + 1,
    };
    let mut redispatch = |view: &karman_protocol::message::MessageView<'_>, position| {
        dispatch::dispatch_record(shared, view, position, index_from)
    };
    let (end, tail, records_scanned) = recovery::scan(
        log,
        from,
        shared.config.check_crc_on_recover,
        &mut redispatch,
    )?;
    recovery::check_not_below_confirmed(log, end, &tail, confirmed)?;
    let (bytes_zeroed, segments_deleted) =
        if abnormal || !matches!(tail, TailCase::Zeros | TailCase::SegmentClosed) {
            recovery::cut_tail(log, end)?
        } else {
            (0, 0)
        };
    log.sync_range(from, end)?;
    log.publish_written(end);
    log.set_flushed(end);
    let reached = end;
    shared.dispatched.store(reached, Ordering::Release);
    shared.write_checkpoint()?;
    Ok(RecoveryReport {
        abnormal,
        checkpoint,
        scan_from_offset: from,
        log_end_offset: end,
        tail,
        records_scanned,
        bytes_zeroed,
        segments_deleted,
    })
}

type Started = (SyncSender<WriteRequest>, Vec<JoinHandle<()>>);

fn start_threads(shared: &Arc<Shared>) -> Result<Started> {
    let queue_offsets: QueueOffsets = shared.cqs.all().into_iter().fold(
        QueueOffsets::default(),
        |mut table, (topic, queue_id, queue)| {
            table
                .entry(topic)
                .or_default()
                .insert(queue_id, queue.max_offset().0);
            table
        },
    );
    let (tx, rx) = sync_channel(shared.config.append_queue_capacity_count.max(1));
    let mut writer = Writer::new(Arc::clone(shared), queue_offsets);
    writer.set_last_store_timestamp(shared.last_dispatched_timestamp_ms.load(Ordering::Acquire));
    let spawn = |name: &'static str, body: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(body)
            .map_err(|source| StoreError::Thread { name, source })
    };
    let mut threads = Vec::with_capacity(5);
    threads.push(spawn("karman-writer", Box::new(move || writer.run(&rx)))?);
    let s = Arc::clone(shared);
    threads.push(spawn(
        "karman-flusher",
        Box::new(move || crate::flush::run(&s)),
    )?);
    let s = Arc::clone(shared);
    threads.push(spawn("karman-reput", Box::new(move || dispatch::run(&s)))?);
    let s = Arc::clone(shared);
    threads.push(spawn("karman-maint", Box::new(move || retention::run(&s)))?);
    if shared.warmer.enabled() {
        shared
            .warmer
            .request(shared.commit_log.next_segment_start());
        let s = Arc::clone(shared);
        threads.push(spawn(
            "karman-warm",
            Box::new(move || {
                s.warmer
                    .run(s.commit_log.dir(), s.commit_log.segment_bytes());
            }),
        )?);
    }
    Ok((tx, threads))
}
