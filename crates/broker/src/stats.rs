//! Broker counters for GET_BROKER_RUNTIME_INFO, topic stats and `clusterList`: totals,
//! per-second rates sampled every second (the broker's over the last ten minutes, as
//! RocketMQ's `putTps` "10 s, 60 s, 600 s"; each topic's over the last minute), and the
//! totals at the last two local midnights (`clusterList -m`: yesterday's and today's).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

/// Seconds of samples kept for the broker's rates.
const WINDOW_SECS: usize = 600;
/// Seconds of samples kept for each topic's rate: a map per sample, so fewer of them.
const TOPIC_WINDOW_SECS: usize = 60;

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    put_messages: u64,
    get_messages: u64,
    get_bytes: u64,
}

#[derive(Debug, Default)]
pub struct BrokerStats {
    pub put_messages: AtomicU64,
    pub put_bytes: AtomicU64,
    pub put_failures: AtomicU64,
    pub get_messages: AtomicU64,
    pub get_bytes: AtomicU64,
    pub get_found: AtomicU64,
    pub get_missed: AtomicU64,
    per_topic_put: RwLock<HashMap<String, AtomicU64>>,
    samples: Mutex<VecDeque<Sample>>,
    topic_samples: Mutex<VecDeque<HashMap<String, u64>>>,
    mornings: Mutex<Mornings>,
}

/// Totals at the start of today and of yesterday (local time), as RocketMQ's BrokerStats
/// records them at each midnight; zero until the broker has seen a midnight, so that
/// "today" counts from its start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mornings {
    /// The local day (days from the common era) of the last sample.
    day: Option<i32>,
    pub today_put: u64,
    pub today_get: u64,
    pub yesterday_put: u64,
    pub yesterday_get: u64,
}

/// Messages per second over the last `seconds` of samples (or as many as there are).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub put_tps: f64,
    pub get_tps: f64,
    pub get_bytes_per_sec: f64,
}

impl BrokerStats {
    pub fn record_put(&self, topic: &str, count: usize, bytes: usize, ok: bool) {
        let count = u64::try_from(count).unwrap_or(0);
        if !ok {
            self.put_failures.fetch_add(count, Ordering::Relaxed);
            return;
        }
        self.put_messages.fetch_add(count, Ordering::Relaxed);
        self.put_bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(0), Ordering::Relaxed);
        if let Some(counter) = self.per_topic_put.read().get(topic) {
            counter.fetch_add(count, Ordering::Relaxed);
            return;
        }
        self.per_topic_put
            .write()
            .entry(topic.to_owned())
            .or_default()
            .fetch_add(count, Ordering::Relaxed);
    }

    pub fn record_get(&self, count: usize, bytes: usize) {
        let count = u64::try_from(count).unwrap_or(0);
        if count == 0 {
            self.get_missed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.get_found.fetch_add(1, Ordering::Relaxed);
        self.get_messages.fetch_add(count, Ordering::Relaxed);
        self.get_bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(0), Ordering::Relaxed);
    }

    pub fn topic_put_total(&self, topic: &str) -> u64 {
        self.per_topic_put
            .read()
            .get(topic)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn current(&self) -> (Sample, HashMap<String, u64>) {
        let sample = Sample {
            put_messages: self.put_messages.load(Ordering::Relaxed),
            get_messages: self.get_messages.load(Ordering::Relaxed),
            get_bytes: self.get_bytes.load(Ordering::Relaxed),
        };
        let topics = self
            .per_topic_put
            .read()
            .iter()
            .map(|(t, c)| (t.clone(), c.load(Ordering::Relaxed)))
            .collect();
        (sample, topics)
    }

    /// Takes one sample; the broker calls it every second.
    pub fn sample(&self) {
        use chrono::Datelike;
        self.sample_on(chrono::Local::now().date_naive().num_days_from_ce());
    }

    /// [`Self::sample`] on a given local day.
    fn sample_on(&self, day: i32) {
        let current = self.current();
        {
            let mut mornings = self.mornings.lock();
            if mornings.day.is_some_and(|last| last != day) {
                mornings.yesterday_put = mornings.today_put;
                mornings.yesterday_get = mornings.today_get;
                mornings.today_put = current.0.put_messages;
                mornings.today_get = current.0.get_messages;
            }
            mornings.day = Some(day);
        }
        let (sample, topics) = current;
        let mut samples = self.samples.lock();
        samples.push_back(sample);
        while samples.len() > WINDOW_SECS + 1 {
            samples.pop_front();
        }
        drop(samples);
        let mut topic_samples = self.topic_samples.lock();
        topic_samples.push_back(topics);
        while topic_samples.len() > TOPIC_WINDOW_SECS + 1 {
            topic_samples.pop_front();
        }
    }

    /// Rates over the last `seconds` seconds.
    pub fn rates(&self, seconds: usize) -> Rates {
        let samples = self.samples.lock();
        let (Some(last), Some(first)) = (
            samples.back(),
            samples.get(samples.len().saturating_sub(seconds + 1)),
        ) else {
            return Rates::default();
        };
        let span = (samples.len() - 1).min(seconds).max(1) as f64;
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / span;
        Rates {
            put_tps: rate(last.put_messages, first.put_messages),
            get_tps: rate(last.get_messages, first.get_messages),
            get_bytes_per_sec: rate(last.get_bytes, first.get_bytes),
        }
    }

    pub fn mornings(&self) -> Mornings {
        *self.mornings.lock()
    }

    /// Put rate of one topic over the last minute.
    pub fn topic_put_tps(&self, topic: &str) -> f64 {
        let samples = self.topic_samples.lock();
        let (Some(last), Some(first)) = (samples.back(), samples.front()) else {
            return 0.0;
        };
        let span = (samples.len().saturating_sub(1)).max(1) as f64;
        let of = |s: &HashMap<String, u64>| s.get(topic).copied().unwrap_or(0);
        of(last).saturating_sub(of(first)) as f64 / span
    }
}

/// Sampling period.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_counters() {
        let stats = BrokerStats::default();
        stats.sample();
        stats.record_put("T", 10, 100, true);
        stats.record_put("T", 5, 50, false);
        stats.record_get(4, 40);
        stats.sample();
        let rates = stats.rates(1);
        assert_eq!(rates.put_tps, 10.0);
        assert_eq!(rates.get_tps, 4.0);
        assert_eq!(stats.topic_put_total("T"), 10);
        assert_eq!(stats.put_failures.load(Ordering::Relaxed), 5);
    }

    /// `putTps` reports 10 s, 60 s and 600 s rates: ten minutes of samples are kept for the
    /// broker's totals, one minute for each topic.
    #[test]
    fn broker_rates_reach_back_ten_minutes_and_topic_rates_one() {
        let stats = BrokerStats::default();
        stats.sample_on(1);
        stats.record_put("T", 600, 0, true);
        for _ in 0..600 {
            stats.sample_on(1);
        }
        assert_eq!(stats.rates(600).put_tps, 1.0);
        assert_eq!(stats.rates(60).put_tps, 0.0);
        assert_eq!(stats.topic_put_tps("T"), 0.0, "the topic's minute is quiet");
        stats.record_put("T", 120, 0, true);
        stats.sample_on(1);
        assert_eq!(stats.topic_put_tps("T"), 2.0);
        // The first 600 fell out of the ten minutes with this sample.
        assert_eq!(stats.rates(600).put_tps, 0.2);
    }

    #[test]
    fn mornings_move_at_each_new_day() {
        let stats = BrokerStats::default();
        stats.record_put("T", 3, 30, true);
        stats.sample_on(100);
        stats.record_put("T", 4, 40, true);
        stats.record_get(2, 20);
        stats.sample_on(100);
        let before_midnight = stats.mornings();
        assert_eq!(
            (before_midnight.today_put, before_midnight.yesterday_put),
            (0, 0)
        );
        stats.sample_on(101);
        stats.record_put("T", 5, 50, true);
        stats.sample_on(101);
        let next_day = stats.mornings();
        assert_eq!((next_day.today_put, next_day.today_get), (7, 2));
        assert_eq!((next_day.yesterday_put, next_day.yesterday_get), (0, 0));
        stats.sample_on(102);
        let day_after = stats.mornings();
        assert_eq!((day_after.today_put, day_after.yesterday_put), (12, 7));
        assert_eq!(day_after.yesterday_get, 2);
    }
}
