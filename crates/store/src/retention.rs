//! Retention and disk-full protection (spec semantics §1.9), plus the periodic
//! consume-queue flush and checkpoint, on one maintenance thread.
//!
//! A round reads the disk usage from the [`crate::DiskUsageProbe`], then:
//!
//! | usage                                        | effect |
//! |----------------------------------------------|--------|
//! | > `diskSpaceWarningLevelRatio` (0.90)        | disk full: appends answer SERVICE_NOT_AVAILABLE naming the ratio, until a round sees usage drop back |
//! | > `diskSpaceCleanForciblyRatio` (0.85)       | delete the oldest segments even if not expired |
//! | > `diskMaxUsedSpaceRatio` (75 %)             | delete expired segments now, not only at `deleteWhen` |
//! | otherwise                                    | delete expired segments only in a `deleteWhen` hour |
//!
//! A segment is expired when its mtime + `fileReservedTime` is past. At most
//! `deleteFileBatchMax` segments go per round, oldest first, never the active (last) one.
//! Then consume-queue files and index files that point only below the new minimum go too.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::append::Unavailable;
use crate::clock::local_hour;
use crate::error::{Result, StoreError};
use crate::store::Shared;

/// Why a round may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// Nothing may go this round.
    None,
    /// Expired segments may go.
    Expired,
    /// Segments go even if not expired.
    Forced,
}

/// The pure decision of one round.
pub fn delete_mode(
    used_ratio: f64,
    hour: u32,
    manual: bool,
    policy: &RetentionPolicy,
) -> DeleteMode {
    if used_ratio > policy.clean_forcibly_ratio {
        DeleteMode::Forced
    } else if manual
        || used_ratio > policy.max_used_ratio
        || policy.delete_when_hours.contains(&hour)
    {
        DeleteMode::Expired
    } else {
        DeleteMode::None
    }
}

/// The thresholds of [`delete_mode`], resolved from the config.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    pub max_used_ratio: f64,
    pub clean_forcibly_ratio: f64,
    pub warning_level_ratio: f64,
    pub delete_when_hours: Vec<u32>,
    pub reserved_ms: i64,
    pub batch_max_count: usize,
}

/// What a round saw and did.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionOutcome {
    pub used_ratio: f64,
    pub mode: DeleteMode,
    pub disk_full: bool,
    pub segments_deleted: usize,
    pub consume_queue_files_deleted: usize,
    pub index_files_deleted: usize,
}

pub(crate) fn policy(shared: &Shared) -> RetentionPolicy {
    let config = &shared.config;
    #[allow(clippy::cast_precision_loss)]
    let max_used_ratio = config.disk_max_used_space_ratio_percent.min(100) as f64 / 100.0;
    RetentionPolicy {
        max_used_ratio,
        clean_forcibly_ratio: shared.resolved.clean_forcibly_ratio,
        warning_level_ratio: shared.resolved.warning_level_ratio,
        delete_when_hours: shared.resolved.delete_when_hours.clone(),
        reserved_ms: i64::try_from(config.file_reserved_time_hours.saturating_mul(3_600_000))
            .unwrap_or(i64::MAX),
        batch_max_count: usize::try_from(config.delete_file_batch_max_count).unwrap_or(usize::MAX),
    }
}

fn mtime_ms(file: &std::fs::File, path: &std::path::Path) -> Result<i64> {
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|e| StoreError::io("stat", path, e))?;
    Ok(modified
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// Reads the disk usage into the stats and sets or clears the disk-full refusal; returns
/// the used ratio. Runs at open too, so that a store opened on a full disk refuses appends
/// at once rather than after the first retention round a minute later.
pub(crate) fn check_disk(shared: &Shared, policy: &RetentionPolicy) -> Result<f64> {
    let used_ratio = shared.disk_probe.used_ratio(shared.commit_log.dir())?;
    shared.stats.set_disk_used_ratio(used_ratio);
    if used_ratio > policy.warning_level_ratio {
        tracing::error!(
            used_ratio,
            threshold = policy.warning_level_ratio,
            "disk full: refusing appends"
        );
        shared.flags.set_disk_full(Some(Unavailable::DiskFull {
            used_ratio,
            threshold_ratio: policy.warning_level_ratio,
            threshold_key: "diskSpaceWarningLevelRatio",
        }));
    } else {
        shared.flags.set_disk_full(None);
    }
    Ok(used_ratio)
}

/// One retention round at `now_ms`; `manual` is the admin's "delete expired now".
pub(crate) fn run_round(shared: &Shared, now_ms: i64, manual: bool) -> Result<RetentionOutcome> {
    let policy = policy(shared);
    let used_ratio = check_disk(shared, &policy)?;
    let disk_full = used_ratio > policy.warning_level_ratio;
    let mode = delete_mode(used_ratio, local_hour(now_ms), manual, &policy);
    let mut segments_deleted = 0;
    if mode != DeleteMode::None {
        let segments = shared.commit_log.segments();
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            if segments_deleted >= policy.batch_max_count {
                break;
            }
            let expired = mtime_ms(&segment.file, &segment.path)?
                .saturating_add(policy.reserved_ms)
                <= now_ms;
            if !(expired || mode == DeleteMode::Forced) {
                break;
            }
            tracing::info!(file = %segment.path.display(), ?mode, "deleting commit-log segment");
            if shared.commit_log.delete_first_segment()?.is_none() {
                break;
            }
            segments_deleted += 1;
        }
    }
    let (mut consume_queue_files_deleted, mut index_files_deleted) = (0, 0);
    if segments_deleted > 0 {
        let min = shared.commit_log.min_offset();
        for (_, _, queue) in shared.cqs.all() {
            consume_queue_files_deleted += queue.delete_expired(min)?;
        }
        if let Some(index) = &shared.index {
            index_files_deleted = index.delete_expired(min)?;
        }
    }
    Ok(RetentionOutcome {
        used_ratio,
        mode,
        disk_full,
        segments_deleted,
        consume_queue_files_deleted,
        index_files_deleted,
    })
}

/// The maintenance thread: consume-queue flush every `flushIntervalConsumeQueue` (a
/// checkpoint every `flushConsumeQueueThoroughInterval`), retention every
/// `cleanResourceInterval`, all paced by the store's clock.
pub(crate) fn run(shared: &Shared) {
    let config = &shared.config;
    let flush_every_ms = i64::try_from(config.flush_interval_consume_queue_ms).unwrap_or(1000);
    let checkpoint_every_ms =
        i64::try_from(config.flush_consume_queue_thorough_interval_ms).unwrap_or(60_000);
    let clean_every_ms = i64::try_from(config.clean_resource_interval_ms).unwrap_or(10_000);
    // Often enough that pages handed back are reused by the next writes before the
    // kernel has a chance to report them free to a host.
    let tick = Duration::from_millis(config.flush_interval_consume_queue_ms.clamp(1, 100));
    let start = shared.clock.now_ms();
    let (mut last_flush_ms, mut last_checkpoint_ms, mut last_clean_ms) = (start, start, start);
    while !shared.maintenance_stop.load(Ordering::Acquire) {
        shared.maintenance_wakeup.wait(tick);
        release_cold_pages(shared);
        let now = shared.clock.now_ms();
        if now - last_checkpoint_ms >= checkpoint_every_ms {
            (last_checkpoint_ms, last_flush_ms) = (now, now);
            if let Err(error) = shared.write_checkpoint() {
                tracing::error!(%error, "checkpoint failed");
            }
        } else if now - last_flush_ms >= flush_every_ms {
            last_flush_ms = now;
            if let Err(error) = shared.flush_consume_queues() {
                tracing::error!(%error, "consume-queue flush failed");
            }
        }
        if now - last_clean_ms >= clean_every_ms {
            last_clean_ms = now;
            if let Err(error) = run_round(shared, now, false) {
                tracing::error!(%error, "retention round failed");
            }
        }
    }
}

/// Pages are handed back once a quarter of the window (at most 64 MiB) has gone cold, so
/// that each round is a few large madvise and fadvise calls rather than many small ones.
const RELEASE_STEP_MAX_BYTES: i64 = 64 << 20;

/// Hands back the page cache of flushed commit-log data older than the hot window.
fn release_cold_pages(shared: &Shared) {
    let window = i64::try_from(shared.config.page_cache_hot_window_bytes).unwrap_or(i64::MAX);
    if window == 0 {
        return;
    }
    let log = &shared.commit_log;
    let released = &shared.stats.page_cache_released_below;
    let below = released.load(Ordering::Relaxed);
    let cold_below = log.flushed_offset().saturating_sub(window);
    if cold_below - below < (window / 4).clamp(1, RELEASE_STEP_MAX_BYTES) {
        return;
    }
    if let Err(error) = log.release_cached(below, cold_below) {
        // Only memory is at stake: the pages stay cached until the kernel wants them.
        tracing::warn!(%error, "could not hand back the page cache of old commit-log data");
    }
    released.store(cold_below, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetentionPolicy {
        RetentionPolicy {
            max_used_ratio: 0.75,
            clean_forcibly_ratio: 0.85,
            warning_level_ratio: 0.90,
            delete_when_hours: vec![4],
            reserved_ms: 72 * 3_600_000,
            batch_max_count: 10,
        }
    }

    #[test]
    fn delete_mode_follows_hour_and_usage() {
        let p = policy();
        assert_eq!(delete_mode(0.10, 3, false, &p), DeleteMode::None);
        assert_eq!(delete_mode(0.10, 4, false, &p), DeleteMode::Expired);
        assert_eq!(delete_mode(0.10, 3, true, &p), DeleteMode::Expired);
        assert_eq!(delete_mode(0.80, 3, false, &p), DeleteMode::Expired);
        assert_eq!(delete_mode(0.86, 3, false, &p), DeleteMode::Forced);
    }
}
