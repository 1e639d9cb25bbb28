//! What a benchmark run measures and prints: per-interval lines with the columns RocketMQ's
//! benchmark tools print, HDR percentiles, a final summary and a JSON line for scripts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hdrhistogram::sync::{Recorder, SyncHistogram};
use parking_lot::Mutex;
use serde::Serialize;

/// Latencies are recorded in microseconds, up to an hour.
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// Counters shared by every worker of a run.
#[derive(Debug, Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub ok_bytes: AtomicU64,
    /// Failures on the client side: transport errors, timeouts, refusals before sending.
    pub send_failed: AtomicU64,
    /// Error answers from the broker.
    pub response_failed: AtomicU64,
    /// A second latency (store-to-consume) for consumer runs.
    second_us_sum: AtomicU64,
    second_us_max: AtomicU64,
}

impl Counters {
    pub fn record(&self, recorder: &mut Recorder<u64>, latency: Duration, bytes: usize) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_US_MAX);
        let _ = recorder.record(us);
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.ok_bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(0), Ordering::Relaxed);
    }

    pub fn record_second(&self, latency_ms: i64) {
        let us = u64::try_from(latency_ms.max(0))
            .unwrap_or(0)
            .saturating_mul(1000);
        self.second_us_sum.fetch_add(us, Ordering::Relaxed);
        self.second_us_max.fetch_max(us, Ordering::Relaxed);
    }
}

/// One snapshot of the counters, to subtract the previous one from.
#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    ok: u64,
    ok_bytes: u64,
    send_failed: u64,
    response_failed: u64,
    second_us_sum: u64,
}

impl Snapshot {
    fn take(c: &Counters) -> Self {
        Self {
            ok: c.ok.load(Ordering::Relaxed),
            ok_bytes: c.ok_bytes.load(Ordering::Relaxed),
            send_failed: c.send_failed.load(Ordering::Relaxed),
            response_failed: c.response_failed.load(Ordering::Relaxed),
            second_us_sum: c.second_us_sum.load(Ordering::Relaxed),
        }
    }
}

/// The final figures, printed as the last line with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub kind: &'static str,
    pub seconds: f64,
    pub sent: u64,
    pub failed: u64,
    pub tps: f64,
    pub mb_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub avg_ms: f64,
}

/// Which columns a run prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// Send TPS | Max RT | Average RT | Send Failed | Response Failed.
    Producer,
    /// Consume TPS | AVG(B2C) | AVG(S2C) | MAX(B2C) | MAX(S2C) | Consume Fail.
    Consumer,
}

pub struct Reporter {
    pub counters: Arc<Counters>,
    histogram: Mutex<SyncHistogram<u64>>,
    columns: Columns,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("columns", &self.columns)
            .finish()
    }
}

fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
        .expect("1 µs .. 1 h at 3 digits is a valid histogram")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `HH:MM:SS` of the wall clock, UTC.
fn clock_time() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

impl Reporter {
    pub fn new(columns: Columns) -> Self {
        Self {
            counters: Arc::new(Counters::default()),
            histogram: Mutex::new(empty_histogram().into_sync()),
            columns,
        }
    }

    /// A recorder for one worker.
    pub fn recorder(&self) -> Recorder<u64> {
        self.histogram.lock().recorder()
    }

    pub fn header(&self) -> String {
        match self.columns {
            Columns::Producer => format!(
                "{:<8} | {:>10} | {:>10} | {:>14} | {:>11} | {:>15} | {:>8} | {:>8} | {:>9}",
                "Time",
                "Send TPS",
                "Max RT(ms)",
                "Average RT(ms)",
                "Send Failed",
                "Response Failed",
                "p50(ms)",
                "p99(ms)",
                "p999(ms)"
            ),
            Columns::Consumer => format!(
                "{:<8} | {:>11} | {:>16} | {:>16} | {:>16} | {:>16} | {:>12} | {:>8} | {:>8} | {:>9}",
                "Time",
                "Consume TPS",
                "AVG(B2C) RT(ms)",
                "AVG(S2C) RT(ms)",
                "MAX(B2C) RT(ms)",
                "MAX(S2C) RT(ms)",
                "Consume Fail",
                "p50(ms)",
                "p99(ms)",
                "p999(ms)"
            ),
        }
    }

    /// Runs the once-per-interval line until `done`; returns when it resolves.
    pub async fn tick_until(
        &self,
        interval: Duration,
        mut print: impl FnMut(String),
        done: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(done);
        let mut previous = Snapshot::default();
        let mut previous_histogram = empty_histogram();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = &mut done => return,
            }
            let now = Snapshot::take(&self.counters);
            let current = {
                let mut histogram = self.histogram.lock();
                histogram.refresh_timeout(Duration::from_millis(100));
                (*histogram).clone()
            };
            let mut window = current.clone();
            let _ = window.subtract(&previous_histogram);
            previous_histogram = current;
            // The interval's latencies (max, mean, percentiles) come from the histogram
            // window: it holds one value per send, where the counters count messages.
            print(self.line(&now, &previous, &window, interval));
            previous = now;
        }
    }

    fn line(
        &self,
        now: &Snapshot,
        before: &Snapshot,
        window: &Histogram<u64>,
        interval: Duration,
    ) -> String {
        let count = now.ok - before.ok;
        let tps = count as f64 / interval.as_secs_f64();
        let (avg, p50, p99, p999, max) = if window.is_empty() {
            (0.0, 0.0, 0.0, 0.0, 0.0)
        } else {
            (
                window.mean() / 1000.0,
                ms(window.value_at_quantile(0.5)),
                ms(window.value_at_quantile(0.99)),
                ms(window.value_at_quantile(0.999)),
                ms(window.max()),
            )
        };
        match self.columns {
            Columns::Producer => format!(
                "{:<8} | {:>10.0} | {:>10.1} | {:>14.3} | {:>11} | {:>15} | {:>8.3} | {:>8.3} | {:>9.3}",
                clock_time(),
                tps,
                max,
                avg,
                now.send_failed,
                now.response_failed,
                p50,
                p99,
                p999
            ),
            Columns::Consumer => {
                let avg_s2c = if count == 0 {
                    0.0
                } else {
                    ms(now.second_us_sum - before.second_us_sum) / count as f64
                };
                let max_s2c = ms(self.counters.second_us_max.swap(0, Ordering::Relaxed));
                format!(
                    "{:<8} | {:>11.0} | {:>16.3} | {:>16.3} | {:>16.1} | {:>16.1} | {:>12} | {:>8.3} | {:>8.3} | {:>9.3}",
                    clock_time(),
                    tps,
                    avg,
                    avg_s2c,
                    max,
                    max_s2c,
                    now.send_failed + now.response_failed,
                    p50,
                    p99,
                    p999
                )
            }
        }
    }

    /// The run's totals; `measured` is how long the workers ran.
    pub fn summary(&self, kind: &'static str, measured: Duration) -> Summary {
        let histogram = {
            let mut histogram = self.histogram.lock();
            histogram.refresh_timeout(Duration::from_millis(500));
            (*histogram).clone()
        };
        let c = Snapshot::take(&self.counters);
        let seconds = measured.as_secs_f64().max(f64::MIN_POSITIVE);
        let quantile = |q: f64| {
            if histogram.is_empty() {
                0.0
            } else {
                ms(histogram.value_at_quantile(q))
            }
        };
        Summary {
            kind,
            seconds,
            sent: c.ok,
            failed: c.send_failed + c.response_failed,
            tps: c.ok as f64 / seconds,
            mb_per_sec: c.ok_bytes as f64 / seconds / 1_000_000.0,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            max_ms: if histogram.is_empty() {
                0.0
            } else {
                ms(histogram.max())
            },
            // Per recorded send (a batch is one send), not per message.
            avg_ms: if histogram.is_empty() {
                0.0
            } else {
                histogram.mean() / 1000.0
            },
        }
    }
}

/// The summary as a person reads it.
pub fn summary_text(summary: &Summary) -> String {
    format!(
        "[Complete] {kind}: {sent} ok, {failed} failed in {secs:.1} s\n  \
         TPS {tps:.0} | {mb:.1} MB/s | latency ms: avg {avg:.3}  p50 {p50:.3}  p99 {p99:.3}  p999 {p999:.3}  max {max:.3}",
        kind = summary.kind,
        sent = summary.sent,
        failed = summary.failed,
        secs = summary.seconds,
        tps = summary.tps,
        mb = summary.mb_per_sec,
        avg = summary.avg_ms,
        p50 = summary.p50_ms,
        p99 = summary.p99_ms,
        p999 = summary.p999_ms,
        max = summary.max_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch is one send: the interval's average RT must be the send's latency, as in the
    /// summary, not that latency spread over the batch's messages.
    #[test]
    fn interval_average_is_per_send_when_batches_count_each_message() {
        let reporter = Reporter::new(Columns::Producer);
        let mut recorder = reporter.recorder();
        for latency_ms in [10, 30] {
            reporter
                .counters
                .record(&mut recorder, Duration::from_millis(latency_ms), 32 * 1024);
            reporter.counters.ok.fetch_add(31, Ordering::Relaxed);
        }
        let mut window = empty_histogram();
        for us in [10_000, 30_000] {
            window.record(us).unwrap();
        }
        let now = Snapshot::take(&reporter.counters);
        let line = reporter.line(&now, &Snapshot::default(), &window, Duration::from_secs(1));
        let columns: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(columns[1], "64", "{line}");
        let average: f64 = columns[3].parse().unwrap();
        assert!((average - 20.0).abs() < 0.05, "{line}");
        assert_eq!(columns[2], "30.0", "{line}");
    }
}
