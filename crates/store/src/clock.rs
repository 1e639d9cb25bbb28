//! Time and disk usage are inputs (STYLE habit 14): the store asks a [`Clock`] for wall time
//! (store timestamps, retention hours, file names) and a [`DiskUsageProbe`] for how full the
//! disk is, so tests drive retention and disk-full behaviour in milliseconds.

use std::fmt::Debug;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::{Result, StoreError};

/// Wall-clock milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    fn now_ms(&self) -> i64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        Self {
            now_ms: AtomicI64::new(now_ms),
        }
    }

    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, delta_ms: i64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// How full the file system holding `path` is, as a ratio in `[0, 1]`.
pub trait DiskUsageProbe: Send + Sync + Debug {
    fn used_ratio(&self, path: &Path) -> Result<f64>;
}

/// `statvfs`: (blocks − free blocks) / blocks, as Java's `File.getFreeSpace` sees it.
#[derive(Debug, Default, Clone, Copy)]
pub struct StatvfsProbe;

impl DiskUsageProbe for StatvfsProbe {
    fn used_ratio(&self, path: &Path) -> Result<f64> {
        let stat = rustix::fs::statvfs(path)
            .map_err(|e| StoreError::io("statvfs", path, std::io::Error::from(e)))?;
        if stat.f_blocks == 0 {
            return Ok(0.0);
        }
        let used = stat.f_blocks.saturating_sub(stat.f_bfree);
        // u64 → f64 loses precision only past 2^53 blocks, far beyond any disk.
        #[allow(clippy::cast_precision_loss)]
        Ok(used as f64 / stat.f_blocks as f64)
    }
}

/// A probe that reports whatever ratio a test sets (stored as parts per million).
#[derive(Debug, Default)]
pub struct FixedDiskUsage {
    ppm: AtomicI64,
}

impl FixedDiskUsage {
    pub fn new(ratio: f64) -> Self {
        let probe = Self::default();
        probe.set(ratio);
        probe
    }

    pub fn set(&self, ratio: f64) {
        #[allow(clippy::cast_possible_truncation)]
        let ppm = (ratio.clamp(0.0, 1.0) * 1_000_000.0).round() as i64;
        self.ppm.store(ppm, Ordering::SeqCst);
    }
}

impl DiskUsageProbe for FixedDiskUsage {
    fn used_ratio(&self, _path: &Path) -> Result<f64> {
        #[allow(clippy::cast_precision_loss)]
        Ok(self.ppm.load(Ordering::SeqCst) as f64 / 1_000_000.0)
    }
}

/// `yyyyMMddHHmmssSSS` in UTC, the name RocketMQ gives index files.
pub(crate) fn format_file_timestamp(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}{milli:03}")
}

/// The hour of day (0..24) of an epoch time where the broker runs: RocketMQ reads
/// `deleteWhen` in the machine's time zone, so "04" is 4 a.m. local time, the quiet hour
/// its users picked, not 4 a.m. UTC.
pub(crate) fn local_hour(ms: i64) -> u32 {
    use chrono::{Local, Offset, TimeZone};
    let offset_secs = Local
        .timestamp_millis_opt(ms)
        .single()
        .map_or(0, |time| time.offset().fix().local_minus_utc());
    hour_at_offset(ms, offset_secs)
}

/// The hour of day (0..24) of an epoch time at a fixed offset from UTC.
fn hour_at_offset(ms: i64, offset_secs: i32) -> u32 {
    let local_ms = ms + i64::from(offset_secs) * 1000;
    u32::try_from(local_ms.rem_euclid(86_400_000) / 3_600_000).unwrap_or(0)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_timestamp_matches_known_dates() {
        assert_eq!(format_file_timestamp(0), "19700101000000000");
        // 2023-11-14T22:13:20.005Z
        assert_eq!(
            format_file_timestamp(1_700_000_000_005),
            "20231114221320005"
        );
        // leap day
        assert_eq!(format_file_timestamp(951_782_400_000), "20000229000000000");
    }

    #[test]
    fn hours_follow_the_offset_across_midnight() {
        // 2023-11-14T22:13:20.005Z
        let ms = 1_700_000_000_005;
        assert_eq!(hour_at_offset(ms, 0), 22);
        assert_eq!(
            hour_at_offset(ms, 8 * 3600),
            6,
            "Asia/Shanghai is the next day"
        );
        assert_eq!(hour_at_offset(ms, -5 * 3600), 17);
        assert_eq!(hour_at_offset(ms, 5 * 3600 + 1800), 3, "India's half hour");
        assert_eq!(hour_at_offset(0, -3600), 23, "before the epoch");
    }

    /// `TZ` is read once per process, so the check runs in a child with `TZ` set (a POSIX
    /// rule, which needs no tz database on the machine).
    #[test]
    fn local_hour_follows_tz() {
        const CHILD: &str = "KARMAN_LOCAL_HOUR_CHILD";
        // 2023-11-14T22:13:20.005Z is 06:13 the next day at UTC+8.
        let ms = 1_700_000_000_005;
        if std::env::var_os(CHILD).is_some() {
            assert_eq!(local_hour(ms), 6);
            return;
        }
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "clock::tests::local_hour_follows_tz"])
            .env(CHILD, "1")
            .env("TZ", "CST-8")
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "the child with TZ=CST-8 failed: {}\n{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(5);
        clock.advance_ms(10);
        assert_eq!(clock.now_ms(), 15);
    }

    #[test]
    fn statvfs_probe_reports_a_ratio() {
        let ratio = StatvfsProbe.used_ratio(Path::new("/")).unwrap();
        assert!((0.0..=1.0).contains(&ratio));
    }
}
