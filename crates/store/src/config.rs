//! [`StoreConfig`]: every store setting in one plain struct, with RocketMQ's defaults.
//!
//! Each field names its `broker.conf` key. The broker crate owns the key table and parses
//! `broker.conf`; this crate never reads a properties file. Fields carry their unit in the
//! name (`_ms`, `_bytes`, `_count`, `_percent`, `_hours`).

use std::path::PathBuf;

use crate::error::{Result, StoreError};

/// When an acknowledged append is durable (`flushDiskType`, spec semantics §1.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskType {
    /// Ack after the write reaches the page cache; a background flush runs every
    /// `flush_interval_commit_log_ms`.
    AsyncFlush,
    /// Ack after fsync; one fsync covers every append queued behind it (group commit).
    SyncFlush,
}

/// RocketMQ's `messageDelayLevel` default.
pub const MESSAGE_DELAY_LEVEL_DEFAULT: &str =
    "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// Size of one consume-queue unit: commit-log offset i64, size i32, tag code i64.
pub const CQ_UNIT_BYTES: u64 = 20;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `storePathRootDir`. Holds `commitlog/`, `consumequeue/`, `index/`, `checkpoint`,
    /// `abort` and `lock`. Default `./store` (RocketMQ: `${user.home}/store`).
    pub store_path_root_dir: PathBuf,
    /// `storePathCommitLog`. Default `<root>/commitlog`. One path only (RocketMQ allows a
    /// `,`-separated list; Karman does not yet).
    pub store_path_commit_log: Option<PathBuf>,
    /// `mappedFileSizeCommitLog`: bytes per commit-log segment. Default 1 GiB.
    pub mapped_file_size_commit_log_bytes: u64,
    /// `mappedFileSizeConsumeQueue`: bytes per consume-queue file, a multiple of 20.
    /// Default 300,000 units = 6,000,000 bytes.
    pub mapped_file_size_consume_queue_bytes: u64,
    /// `flushDiskType`. Default ASYNC_FLUSH.
    pub flush_disk_type: FlushDiskType,
    /// `warmMapedFileEnable` (RocketMQ's spelling): a background thread zero-writes and
    /// syncs the next commit-log segment before the roll, so that an fsync writes data
    /// only, with no block allocation to commit. Costs a second write of every segment and
    /// one segment of disk space. `None` (the default) warms under SYNC_FLUSH, which
    /// fsyncs every group commit, and not under ASYNC_FLUSH (RocketMQ's default, false);
    /// see [`StoreConfig::warms_commit_log`].
    pub warm_mapped_file_enable: Option<bool>,
    /// `flushIntervalCommitLog`: ASYNC_FLUSH flush period. Default 500 ms.
    pub flush_interval_commit_log_ms: u64,
    /// `flushCommitLogLeastPages`: ASYNC_FLUSH flushes only when this many 4 KiB pages are
    /// dirty, unless the thorough interval has passed. Default 4.
    pub flush_commit_log_least_pages_count: u64,
    /// `flushCommitLogThoroughInterval`: flush whatever is dirty at least this often.
    /// Default 10,000 ms.
    pub flush_commit_log_thorough_interval_ms: u64,
    /// `syncFlushTimeout`: SYNC_FLUSH appends not durable by then answer
    /// FLUSH_DISK_TIMEOUT. Default 5,000 ms.
    pub sync_flush_timeout_ms: u64,
    /// `flushIntervalConsumeQueue`: consume queues and index are flushed and the checkpoint
    /// written this often. Default 1,000 ms.
    pub flush_interval_consume_queue_ms: u64,
    /// `flushConsumeQueueLeastPages`: between thorough rounds a consume-queue file is
    /// flushed only once this many 4 KiB pages of it are dirty. Default 2.
    pub flush_consume_queue_least_pages: u64,
    /// `flushConsumeQueueThoroughInterval`: every consume queue and the index are flushed
    /// whatever their dirty pages, and the checkpoint moves, at least this often. Crash
    /// recovery re-dispatches the log written since. Default 60,000 ms.
    pub flush_consume_queue_thorough_interval_ms: u64,
    /// `maxMessageSize`: largest body accepted. Default 4 MiB.
    pub max_message_size_bytes: u64,
    /// `fileReservedTime`: commit-log segments older than this are deleted. Default 72 h.
    pub file_reserved_time_hours: u64,
    /// `deleteWhen`: hours of the day (`;`-separated, in the machine's time zone, as in
    /// RocketMQ) when expired segments are deleted. Default "04".
    pub delete_when: String,
    /// `diskMaxUsedSpaceRatio`: above this usage expired segments are deleted at once,
    /// without waiting for `deleteWhen`. Default 75 %.
    pub disk_max_used_space_ratio_percent: u64,
    /// `diskSpaceCleanForciblyRatio`: above this usage segments are deleted even if not
    /// expired (never the active one). Default 0.85, clamped to [0.30, 0.85].
    pub disk_space_clean_forcibly_ratio: f64,
    /// `diskSpaceWarningLevelRatio`: above this usage the disk is full and appends answer
    /// SERVICE_NOT_AVAILABLE until usage drops back. Default 0.90, clamped to [0.35, 0.90].
    pub disk_space_warning_level_ratio: f64,
    /// `cleanResourceInterval`: period of the retention check. Default 10,000 ms.
    pub clean_resource_interval_ms: u64,
    /// `deleteFileBatchMax`: segments deleted per retention round at most. Default 10.
    pub delete_file_batch_max_count: u64,
    /// `messageIndexEnable`: build the key index. Default true.
    pub message_index_enable: bool,
    /// `maxHashSlotNum`: hash slots per index file. Default 5,000,000.
    pub max_hash_slot_count: u64,
    /// `maxIndexNum`: entries per index file. Default 20,000,000.
    pub max_index_count: u64,
    /// `maxMsgsNumBatch`: cap on messages returned by one index query. Default 64.
    pub max_msgs_num_batch_count: u64,
    /// `messageDelayLevel`: delay of each level (s/m/h/d units).
    pub message_delay_level: String,
    /// `checkCRCOnRecover`: verify body CRCs while recovering. Default true.
    pub check_crc_on_recover: bool,
    /// `maxTransferCountOnMessageInMemory`: messages per pull from hot data. Default 32.
    pub max_transfer_count_on_message_in_memory: u64,
    /// `maxTransferCountOnMessageInDisk`: messages per pull from cold data. Default 8.
    pub max_transfer_count_on_message_in_disk: u64,
    /// `maxTransferBytesOnMessageInMemory`: bytes per pull from hot data. Default 256 KiB.
    pub max_transfer_bytes_on_message_in_memory: u64,
    /// `maxTransferBytesOnMessageInDisk`: bytes per pull from cold data. Default 64 KiB.
    pub max_transfer_bytes_on_message_in_disk: u64,
    /// `accessMessageInMemoryMaxRatio`: data within this share of RAM from the commit-log
    /// end counts as hot. Default 40 %.
    pub access_message_in_memory_max_ratio_percent: u64,
    /// `pageCacheHotWindow` (Karman): the newest this many commit-log bytes stay in the
    /// page cache; the pages of older, flushed data are handed back to the kernel, and
    /// reads of them go to the disk. `0` keeps everything and leaves it to the kernel, as
    /// RocketMQ does. Default 4 GiB.
    ///
    /// Why: a virtual machine that returns free memory to its host (free page reporting,
    /// balloons) pays a host fault the first time it touches a page again: 386 MB/s
    /// against 21 GB/s for a page in use, on the 2-vCPU VM of docs/BENCHMARKS.md. With
    /// free RAM the kernel keeps taking such pages for every new page-cache page, so
    /// appends are capped near that rate (the writer thread spent 78 % of its time there).
    /// Handing back pages far behind the tail lets new writes reuse them at once.
    pub page_cache_hot_window_bytes: u64,
    /// `maxFilterMessageSize`: consume-queue bytes a filtered pull scans at least.
    /// Default 16,000.
    pub max_filter_message_size_bytes: u64,
    /// RAM size used for the hot/cold decision; `None` reads `/proc/meminfo`.
    pub memory_total_bytes: Option<u64>,
    /// Append requests that may wait for the writer (Karman; RocketMQ's nearest key is
    /// `sendThreadPoolQueueCapacity`). A full queue answers OS_PAGE_CACHE_BUSY at once.
    /// Default 10,000.
    pub append_queue_capacity_count: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::new("store")
    }
}

impl StoreConfig {
    /// Defaults, rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            store_path_root_dir: root.into(),
            store_path_commit_log: None,
            mapped_file_size_commit_log_bytes: 1 << 30,
            mapped_file_size_consume_queue_bytes: 300_000 * CQ_UNIT_BYTES,
            flush_disk_type: FlushDiskType::AsyncFlush,
            warm_mapped_file_enable: None,
            flush_interval_commit_log_ms: 500,
            flush_commit_log_least_pages_count: 4,
            flush_commit_log_thorough_interval_ms: 10_000,
            sync_flush_timeout_ms: 5_000,
            flush_interval_consume_queue_ms: 1_000,
            flush_consume_queue_least_pages: 2,
            flush_consume_queue_thorough_interval_ms: 60_000,
            max_message_size_bytes: 4 << 20,
            file_reserved_time_hours: 72,
            delete_when: "04".to_owned(),
            disk_max_used_space_ratio_percent: 75,
            disk_space_clean_forcibly_ratio: 0.85,
            disk_space_warning_level_ratio: 0.90,
            clean_resource_interval_ms: 10_000,
            delete_file_batch_max_count: 10,
            message_index_enable: true,
            max_hash_slot_count: 5_000_000,
            max_index_count: 20_000_000,
            max_msgs_num_batch_count: 64,
            message_delay_level: MESSAGE_DELAY_LEVEL_DEFAULT.to_owned(),
            check_crc_on_recover: true,
            max_transfer_count_on_message_in_memory: 32,
            max_transfer_count_on_message_in_disk: 8,
            max_transfer_bytes_on_message_in_memory: 256 * 1024,
            max_transfer_bytes_on_message_in_disk: 64 * 1024,
            access_message_in_memory_max_ratio_percent: 40,
            page_cache_hot_window_bytes: 4 << 30,
            max_filter_message_size_bytes: 16_000,
            memory_total_bytes: None,
            append_queue_capacity_count: 10_000,
        }
    }

    /// Whether commit-log segments are warmed ahead of the roll: as
    /// `warm_mapped_file_enable` says, else under SYNC_FLUSH only (there a group commit's
    /// fsync costs about half as much without block allocation to commit; under
    /// ASYNC_FLUSH the second write of every segment would cost more bandwidth than the
    /// rare fsync saves).
    pub fn warms_commit_log(&self) -> bool {
        self.warm_mapped_file_enable
            .unwrap_or(self.flush_disk_type == FlushDiskType::SyncFlush)
    }

    pub fn commit_log_dir(&self) -> PathBuf {
        self.store_path_commit_log
            .clone()
            .unwrap_or_else(|| self.store_path_root_dir.join("commitlog"))
    }

    pub fn consume_queue_dir(&self) -> PathBuf {
        self.store_path_root_dir.join("consumequeue")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.store_path_root_dir.join("index")
    }

    /// Checks the settings and resolves the ones given as text.
    pub(crate) fn validate(&self) -> Result<ResolvedConfig> {
        let invalid = |field, reason: String| StoreError::ConfigInvalid { field, reason };
        let segment = self.mapped_file_size_commit_log_bytes;
        if !(4096..=(1 << 40)).contains(&segment) {
            return Err(invalid(
                "mapped_file_size_commit_log_bytes",
                format!("{segment} is outside [4096, 2^40]"),
            ));
        }
        let cq = self.mapped_file_size_consume_queue_bytes;
        if cq < CQ_UNIT_BYTES || !cq.is_multiple_of(CQ_UNIT_BYTES) || cq > (1 << 32) {
            return Err(invalid(
                "mapped_file_size_consume_queue_bytes",
                format!("{cq} is not a positive multiple of 20 up to 2^32"),
            ));
        }
        if self.message_index_enable && (self.max_hash_slot_count == 0 || self.max_index_count < 2)
        {
            return Err(invalid(
                "max_index_count",
                "index needs at least one slot and two entries".to_owned(),
            ));
        }
        if self.max_hash_slot_count > (1 << 28) || self.max_index_count > (1 << 28) {
            return Err(invalid(
                "max_hash_slot_count",
                "index slots and entries must stay below 2^28".to_owned(),
            ));
        }
        Ok(ResolvedConfig {
            delay_level_ms: parse_delay_levels(&self.message_delay_level)?,
            delete_when_hours: parse_delete_when(&self.delete_when)?,
            clean_forcibly_ratio: self.disk_space_clean_forcibly_ratio.clamp(0.30, 0.85),
            warning_level_ratio: self.disk_space_warning_level_ratio.clamp(0.35, 0.90),
        })
    }
}

/// The settings given as text, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedConfig {
    pub delay_level_ms: Vec<i64>,
    pub delete_when_hours: Vec<u32>,
    pub clean_forcibly_ratio: f64,
    pub warning_level_ratio: f64,
}

/// Parses `messageDelayLevel`: space-separated durations with unit s, m, h or d.
pub fn parse_delay_levels(text: &str) -> Result<Vec<i64>> {
    text.split_whitespace()
        .map(|level| {
            let bad = || StoreError::ConfigInvalid {
                field: "message_delay_level",
                reason: format!("{level:?} is not a number followed by s, m, h or d"),
            };
            let unit_at = level.len().checked_sub(1).ok_or_else(bad)?;
            let (number, unit) = (level.get(..unit_at).ok_or_else(bad)?, level.get(unit_at..));
            let unit_ms = match unit {
                Some("s") => 1_000,
                Some("m") => 60_000,
                Some("h") => 3_600_000,
                Some("d") => 86_400_000,
                _ => return Err(bad()),
            };
            let count: i64 = number.parse().map_err(|_| bad())?;
            count
                .checked_mul(unit_ms)
                .filter(|ms| *ms >= 0)
                .ok_or_else(bad)
        })
        .collect()
}

/// Parses `deleteWhen`: hours separated by `;`.
pub fn parse_delete_when(text: &str) -> Result<Vec<u32>> {
    text.split(';')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|hour| {
            hour.parse::<u32>()
                .ok()
                .filter(|h| *h < 24)
                .ok_or_else(|| StoreError::ConfigInvalid {
                    field: "delete_when",
                    reason: format!("{hour:?} is not an hour 0..23"),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_delay_levels_parse_to_eighteen() {
        let levels = parse_delay_levels(MESSAGE_DELAY_LEVEL_DEFAULT).unwrap();
        assert_eq!(levels.len(), 18);
        assert_eq!(levels[0], 1_000);
        assert_eq!(levels[4], 60_000);
        assert_eq!(levels[17], 7_200_000);
        assert!(parse_delay_levels("1x").is_err());
        assert!(parse_delay_levels("s").is_err());
    }

    #[test]
    fn delete_when_lists_hours() {
        assert_eq!(parse_delete_when("04").unwrap(), vec![4]);
        assert_eq!(parse_delete_when("01;23").unwrap(), vec![1, 23]);
        assert!(parse_delete_when("24").is_err());
    }

    #[test]
    fn validate_rejects_unaligned_consume_queue_files() {
        let mut config = StoreConfig::new("/tmp/x");
        config.mapped_file_size_consume_queue_bytes = 21;
        assert!(config.validate().is_err());
        assert!(StoreConfig::new("/tmp/x").validate().is_ok());
    }
}
