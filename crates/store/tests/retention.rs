//! Retention and disk-full behaviour, driven by a manual clock and a fixed disk probe so
//! that 72 hours and a full disk take milliseconds.

mod common;

use std::sync::Arc;

use common::*;
use karman_protocol::message::MessageView;
use karman_store::{
    AcceptAll, AppendStatus, DeleteMode, FixedDiskUsage, GetMessageStatus, ManualClock,
    MessageStore, QueueOffset, StoreEnv, Unavailable,
};

const HOUR_MS: i64 = 3_600_000;

struct Fixture {
    _dir: tempfile::TempDir,
    store: MessageStore,
    clock: Arc<ManualClock>,
    disk: Arc<FixedDiskUsage>,
    /// Real time at open: the day the segments are written, whatever the clock says later.
    start_ms: i64,
}

/// A store whose clock starts now (segment mtimes are real time).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let now = karman_store::Clock::now_ms(&karman_store::SystemClock);
    let clock = Arc::new(ManualClock::new(now));
    let disk = Arc::new(FixedDiskUsage::new(0.10));
    let env = StoreEnv {
        clock: clock.clone(),
        disk_probe: disk.clone(),
        arrival_listener: None,
    };
    let store = open_env(small_config(dir.path()), env);
    Fixture {
        _dir: dir,
        store,
        clock,
        disk,
        start_ms: now,
    }
}

/// Fills about `segments` segments of T/0 with 1000-byte messages.
fn fill(store: &MessageStore, segments: u64) -> u64 {
    let rt = runtime();
    let count = segments * 60;
    for i in 0..count {
        assert!(
            rt.block_on(store.append(message("T", 0, body(i, 1000), &[("KEYS", "k")])))
                .status
                .is_ok()
        );
    }
    settle(store);
    count
}

/// Moves the clock to `hour`:30 local time (`deleteWhen` hours are local), `days` days
/// after the day the fixture opened (not the clock's current day, so that the ages a test
/// expects do not depend on the hour or the time zone it runs in).
fn set_hour(f: &Fixture, days: u64, hour: u32) {
    use chrono::{Local, TimeZone};
    let opened = Local.timestamp_millis_opt(f.start_ms).unwrap();
    let at = (opened.date_naive() + chrono::Days::new(days))
        .and_hms_opt(hour, 30, 0)
        .unwrap();
    let local = Local.from_local_datetime(&at);
    let at = local.earliest().or(local.latest()).unwrap();
    f.clock.set_ms(at.timestamp_millis());
}

#[test]
fn expired_segments_go_only_at_delete_when() {
    let f = fixture();
    fill(&f.store, 5);
    let segments = f.store.runtime_stats().commit_log_segment_count;
    set_hour(&f, 3, 3);
    let outcome = f.store.run_retention_now(false).unwrap();
    assert_eq!(
        (outcome.mode, outcome.segments_deleted),
        (DeleteMode::None, 0),
        "03:30 is not deleteWhen"
    );
    set_hour(&f, 0, 4);
    let outcome = f.store.run_retention_now(false).unwrap();
    assert_eq!(
        outcome.segments_deleted, 0,
        "at 04:30 today nothing is 72 h old yet"
    );
    set_hour(&f, 4, 4);
    let outcome = f.store.run_retention_now(false).unwrap();
    assert_eq!(outcome.mode, DeleteMode::Expired);
    assert_eq!(
        outcome.segments_deleted,
        segments - 1,
        "all but the active segment"
    );
    assert_eq!(f.store.runtime_stats().commit_log_segment_count, 1);
    assert!(outcome.consume_queue_files_deleted > 0);
}

#[test]
fn consume_queues_and_pulls_follow_the_deleted_segments() {
    let f = fixture();
    let count = fill(&f.store, 4);
    let held = f
        .store
        .get_message("T", 0, QueueOffset(0), 1, 0, &AcceptAll)
        .messages;
    set_hour(&f, 4, 4);
    f.store.run_retention_now(false).unwrap();
    let min_physical = f.store.min_physical_offset();
    let min = f.store.min_offset_in_queue("T", 0);
    assert!(min.0 > 0);
    let first = f.store.get_message("T", 0, min, 1, 0, &AcceptAll);
    assert_eq!(first.status, GetMessageStatus::Found);
    assert!(
        MessageView::parse(&first.messages[0])
            .unwrap()
            .physical_offset
            >= min_physical
    );
    let too_small = f
        .store
        .get_message("T", 0, QueueOffset(0), 1, 0, &AcceptAll);
    assert_eq!(
        (too_small.status, too_small.next_begin_offset),
        (GetMessageStatus::OffsetTooSmall, min)
    );
    assert_eq!(f.store.max_offset_in_queue("T", 0).0, count as i64);
    assert!(
        f.store
            .query_message("T", "k", 64, 0, i64::MAX)
            .messages
            .iter()
            .all(|m| { MessageView::parse(m).unwrap().physical_offset >= min_physical })
    );
    // A slice taken before deletion stays readable: the mapping outlives the file.
    assert_eq!(
        MessageView::parse(&held[0]).unwrap().body,
        &body(0, 1000)[..]
    );
}

#[test]
fn usage_over_max_ratio_deletes_expired_at_once_and_forced_deletes_unexpired() {
    let f = fixture();
    fill(&f.store, 4);
    set_hour(&f, 4, 10);
    f.disk.set(0.80);
    let outcome = f.store.run_retention_now(false).unwrap();
    assert_eq!(
        outcome.mode,
        DeleteMode::Expired,
        "over diskMaxUsedSpaceRatio 75 %: no need to wait for 04"
    );
    assert!(outcome.segments_deleted > 0);
    fill(&f.store, 3);
    set_hour(&f, 0, 10);
    f.disk.set(0.86);
    let before = f.store.runtime_stats().commit_log_segment_count;
    let outcome = f.store.run_retention_now(false).unwrap();
    assert_eq!(outcome.mode, DeleteMode::Forced);
    assert_eq!(
        outcome.segments_deleted,
        before - 1,
        "not expired, deleted anyway; active kept"
    );
}

#[test]
fn delete_file_batch_max_bounds_each_round() {
    let dir = tempfile::tempdir().unwrap();
    let now = karman_store::Clock::now_ms(&karman_store::SystemClock);
    let clock = Arc::new(ManualClock::new(now));
    let mut config = small_config(dir.path());
    config.delete_file_batch_max_count = 2;
    let env = StoreEnv {
        clock: clock.clone(),
        ..StoreEnv::default()
    };
    let store = open_env(config, env);
    fill(&store, 6);
    clock.advance_ms(100 * HOUR_MS);
    assert_eq!(store.run_retention_now(true).unwrap().segments_deleted, 2);
    assert_eq!(store.run_retention_now(true).unwrap().segments_deleted, 2);
}

#[test]
fn a_full_disk_refuses_appends_naming_the_ratio_until_space_returns() {
    let f = fixture();
    let rt = runtime();
    f.disk.set(0.93);
    let outcome = f.store.run_retention_now(false).unwrap();
    assert!(outcome.disk_full);
    let refused = rt.block_on(f.store.append(message("T", 0, "x", &[])));
    match &refused.status {
        AppendStatus::ServiceNotAvailable(Unavailable::DiskFull {
            used_ratio,
            threshold_ratio,
            threshold_key,
        }) => {
            assert!((used_ratio - 0.93).abs() < 1e-6);
            assert!((threshold_ratio - 0.90).abs() < 1e-6);
            assert_eq!(*threshold_key, "diskSpaceWarningLevelRatio");
        }
        other => panic!("expected disk full, got {other:?}"),
    }
    let text = refused.status.to_string();
    assert!(
        text.contains("disk full")
            && text.contains("0.930")
            && text.contains("diskSpaceWarningLevelRatio"),
        "{text}"
    );
    f.disk.set(0.50);
    assert!(!f.store.run_retention_now(false).unwrap().disk_full);
    assert!(
        rt.block_on(f.store.append(message("T", 0, "x", &[])))
            .status
            .is_ok()
    );
    assert!((f.store.runtime_stats().disk_used_ratio - 0.5).abs() < 1e-6);
}

/// clusterList shows the disk usage from the start, and a full disk refuses appends from
/// the start, not only after the first retention round a minute later.
#[test]
fn disk_usage_counts_from_open() {
    let f = fixture();
    assert!((f.store.runtime_stats().disk_used_ratio - 0.10).abs() < 1e-6);

    let dir = tempfile::tempdir().unwrap();
    let env = StoreEnv {
        clock: Arc::new(ManualClock::new(0)),
        disk_probe: Arc::new(FixedDiskUsage::new(0.95)),
        arrival_listener: None,
    };
    let store = open_env(small_config(dir.path()), env);
    let appended = runtime().block_on(store.append(message("T", 0, "x", &[])));
    assert!(
        matches!(
            appended.status,
            AppendStatus::ServiceNotAvailable(Unavailable::DiskFull { .. })
        ),
        "{:?}",
        appended.status
    );
}

#[test]
fn retention_survives_restart() {
    let f = fixture();
    fill(&f.store, 4);
    set_hour(&f, 4, 4);
    f.store.run_retention_now(false).unwrap();
    let (min, max) = (
        f.store.min_offset_in_queue("T", 0),
        f.store.max_offset_in_queue("T", 0),
    );
    f.store.shutdown().unwrap();
    let config = small_config(f._dir.path());
    drop(f.store);
    let store = MessageStore::open(config).unwrap();
    assert_eq!(
        (
            store.min_offset_in_queue("T", 0),
            store.max_offset_in_queue("T", 0)
        ),
        (min, max)
    );
}

#[test]
fn page_cache_behind_the_hot_window_is_handed_back_and_every_message_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let window = 128 * 1024;
    let mut config = small_config(dir.path());
    config.page_cache_hot_window_bytes = window;
    let store = open(config);
    let rt = runtime();
    let count = 600;
    for i in 0..count {
        assert!(
            rt.block_on(store.append(message("T", 0, body(i, 1000), &[])))
                .status
                .is_ok()
        );
    }
    settle(&store);
    // Slices taken before the release must keep their bytes after it.
    let held = store
        .get_message("T", 0, QueueOffset(0), 32, 0, &AcceptAll)
        .messages;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stats = loop {
        let stats = store.runtime_stats();
        let cold_below = stats.commit_log_flushed_offset - window as i64;
        // Released in steps of a quarter window.
        if stats.page_cache_released_below > cold_below - window as i64 / 4 {
            break stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no release past {}: {stats:?}",
            stats.page_cache_released_below
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(stats.page_cache_released_below >= 400 * 1024, "{stats:?}");
    for (i, slice) in held.iter().enumerate() {
        assert_eq!(
            MessageView::parse(slice).unwrap().body,
            &body(i as u64, 1000)[..]
        );
    }
    for i in 0..count {
        let found = store.get_message("T", 0, QueueOffset(i as i64), 1, 0, &AcceptAll);
        assert_eq!(found.status, GetMessageStatus::Found, "message {i}");
        assert_eq!(
            MessageView::parse(&found.messages[0]).unwrap().body,
            &body(i, 1000)[..],
            "message {i}"
        );
    }
}

#[test]
fn a_zero_hot_window_keeps_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.page_cache_hot_window_bytes = 0;
    let store = open(config);
    let rt = runtime();
    for i in 0..300 {
        assert!(
            rt.block_on(store.append(message("T", 0, body(i, 1000), &[])))
                .status
                .is_ok()
        );
    }
    settle(&store);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(store.runtime_stats().page_cache_released_below, 0);
}
