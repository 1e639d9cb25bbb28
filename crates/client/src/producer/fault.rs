//! Latency fault tolerance (spec semantics.md §4): every send records how long a broker
//! took; slow or failing brokers are skipped for a while. Off by default, as in Java.
//!
//! | latency ≥ (ms)       | 50 | 100 | 550 | 1800 | 3000 | 5000 | 15000 |
//! |----------------------|----|-----|-----|------|------|------|-------|
//! | not available for    | 0  | 0   | 2 s | 5 s  | 6 s  | 10 s | 30 s  |
//!
//! A transport or broker error counts as a 10 s latency, so 10 s of isolation (5.x).
//!
//! ```
//! use std::time::Duration;
//! use karman_client::producer::LatencyFaultTolerance;
//! use tokio::time::Instant;
//!
//! let fault = LatencyFaultTolerance::new(true);
//! let now = Instant::now();
//! fault.record("broker-a", Duration::from_millis(600), false, now);
//! assert!(!fault.is_available("broker-a", now + Duration::from_secs(1)));
//! assert!(fault.is_available("broker-a", now + Duration::from_secs(2)));
//! ```

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Latency thresholds, milliseconds (`latencyMax`, 5.1+).
const LATENCY_STEPS_MS: [u64; 7] = [50, 100, 550, 1800, 3000, 5000, 15_000];
/// Isolation for each threshold, milliseconds (`notAvailableDuration`, 5.1+).
const NOT_AVAILABLE_MS: [u64; 7] = [0, 0, 2000, 5000, 6000, 10_000, 30_000];
/// The latency an error counts as.
const ISOLATION_LATENCY: Duration = Duration::from_secs(10);

const _: () = assert!(LATENCY_STEPS_MS.len() == NOT_AVAILABLE_MS.len());

#[derive(Debug, Clone, Copy)]
struct FaultItem {
    available_at: Instant,
    reachable: bool,
}

/// Per-broker isolation table; see the module docs.
#[derive(Debug)]
pub struct LatencyFaultTolerance {
    enabled: bool,
    items: Mutex<HashMap<String, FaultItem>>,
}

impl LatencyFaultTolerance {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            items: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// How long a broker with this latency is skipped.
    pub fn not_available_for(latency: Duration) -> Duration {
        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        LATENCY_STEPS_MS
            .iter()
            .zip(NOT_AVAILABLE_MS)
            .rev()
            .find(|(step, _)| latency_ms >= **step)
            .map_or(Duration::ZERO, |(_, ms)| Duration::from_millis(ms))
    }

    /// Records one send to `broker`. `failed` marks a transport or broker error, which
    /// isolates the broker as a 10 s latency would and marks it unreachable.
    pub fn record(&self, broker: &str, latency: Duration, failed: bool, now: Instant) {
        if !self.enabled {
            return;
        }
        let latency = if failed { ISOLATION_LATENCY } else { latency };
        let item = FaultItem {
            available_at: now + Self::not_available_for(latency),
            reachable: !failed,
        };
        self.items.lock().insert(broker.to_owned(), item);
    }

    /// Whether `broker` may be chosen at `now`.
    pub fn is_available(&self, broker: &str, now: Instant) -> bool {
        self.items
            .lock()
            .get(broker)
            .is_none_or(|item| now >= item.available_at)
    }

    /// Whether the last send to `broker` got an answer at all.
    pub fn is_reachable(&self, broker: &str) -> bool {
        self.items
            .lock()
            .get(broker)
            .is_none_or(|item| item.reachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_table_matches_the_5x_steps() {
        let cases = [
            (0, 0),
            (49, 0),
            (100, 0),
            (549, 0),
            (550, 2000),
            (1800, 5000),
            (3000, 6000),
            (5000, 10_000),
            (14_999, 10_000),
            (15_000, 30_000),
            (600_000, 30_000),
        ];
        for (latency_ms, isolated_ms) in cases {
            assert_eq!(
                LatencyFaultTolerance::not_available_for(Duration::from_millis(latency_ms)),
                Duration::from_millis(isolated_ms),
                "latency {latency_ms} ms"
            );
        }
    }

    #[test]
    fn an_error_isolates_for_ten_seconds_and_marks_unreachable() {
        let fault = LatencyFaultTolerance::new(true);
        let now = Instant::now();
        fault.record("b", Duration::from_millis(5), true, now);
        assert!(!fault.is_reachable("b"));
        assert!(!fault.is_available("b", now + Duration::from_millis(9_999)));
        assert!(fault.is_available("b", now + Duration::from_secs(10)));
        fault.record("b", Duration::from_millis(5), false, now);
        assert!(fault.is_reachable("b"));
        assert!(fault.is_available("b", now));
    }

    #[test]
    fn disabled_table_never_isolates() {
        let fault = LatencyFaultTolerance::new(false);
        let now = Instant::now();
        fault.record("b", Duration::from_secs(60), true, now);
        assert!(fault.is_available("b", now));
        assert!(fault.is_available("unknown", now));
    }
}
