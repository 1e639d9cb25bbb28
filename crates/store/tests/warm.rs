//! Warmed commit-log segments (`warmMapedFileEnable`, always on under SYNC_FLUSH): rolls
//! take the zero-written next segment, and a warmed segment, used or not, never confuses
//! recovery or retention.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use karman_protocol::message::MessageView;
use karman_store::{
    AppendResult, FixedDiskUsage, MessageStore, QueueOffset, StoreConfig, StoreEnv, TailCase,
};

const SEGMENT: i64 = 64 * 1024;

fn wait_warmed(store: &MessageStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.runtime_stats().next_segment_warmed {
        assert!(Instant::now() < deadline, "next segment never warmed");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn warming_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(".warming"))
        .collect()
}

/// Appends `n` 1000-byte messages to T/0, waiting for the next segment to be warmed
/// before each one that rolls, so that every roll finds it ready.
fn append_warm(store: &MessageStore, first: u64, n: u64) -> Vec<AppendResult> {
    let rt = runtime();
    (first..first + n)
        .map(|i| {
            let end = store.max_physical_offset();
            if (end % SEGMENT) + 1200 > SEGMENT || end == 0 {
                wait_warmed(store);
            }
            let r = rt.block_on(store.append(message("T", 0, body(i, 1000), &[])));
            assert!(r.status.is_ok(), "{}", r.status);
            r
        })
        .collect()
}

fn check_all(store: &MessageStore, results: &[AppendResult]) {
    for (i, r) in results.iter().enumerate() {
        let bytes = store
            .read_message(r.physical_offset)
            .unwrap_or_else(|| panic!("message {i} lost"));
        let view = MessageView::parse(&bytes).unwrap();
        view.verify_body_crc().unwrap();
        assert_eq!(view.body, &body(i as u64, 1000)[..]);
        assert_eq!(
            store.commit_log_offset_in_queue("T", 0, QueueOffset(i as i64)),
            Some(r.physical_offset)
        );
    }
    assert_eq!(
        store.max_offset_in_queue("T", 0),
        QueueOffset(results.len() as i64)
    );
}

#[test]
fn sync_flush_rolls_into_warmed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(sync_config(dir.path()));
    let results = append_warm(&store, 0, 200);
    let stats = store.runtime_stats();
    assert!(stats.commit_log_segment_count >= 3, "{stats:?}");
    assert_eq!(stats.cold_rolls, 0, "{stats:?}");
    assert_eq!(
        stats.segments_warmed as usize,
        stats.commit_log_segment_count + usize::from(stats.next_segment_warmed),
        "{stats:?}"
    );
    settle(&store);
    check_all(&store, &results);
    store.shutdown().unwrap();
    drop(store);
    // A clean shutdown deletes the unused warmed segment; reopening finds the same log.
    assert!(warming_files(dir.path()).is_empty());
    let store = open(sync_config(dir.path()));
    assert_eq!(store.recovery_report().tail, TailCase::Zeros);
    check_all(&store, &results);
}

#[test]
fn sync_flush_without_warming_rolls_sparse_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sync_config(dir.path());
    config.warm_mapped_file_enable = Some(false);
    let store = open(config);
    let rt = runtime();
    let results: Vec<_> = (0..130)
        .map(|i| rt.block_on(store.append(message("T", 0, body(i, 1000), &[]))))
        .collect();
    let stats = store.runtime_stats();
    assert_eq!(
        (stats.segments_warmed, stats.cold_rolls),
        (0, 0),
        "{stats:?}"
    );
    assert!(warming_files(dir.path()).is_empty());
    settle(&store);
    check_all(&store, &results);
}

#[test]
fn async_flush_warms_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(small_config(dir.path()));
    std::thread::sleep(Duration::from_millis(50));
    let stats = store.runtime_stats();
    assert!(!stats.next_segment_warmed && stats.segments_warmed == 0);
    assert!(warming_files(dir.path()).is_empty());
    drop(store);

    let mut config = small_config(dir.path());
    config.warm_mapped_file_enable = Some(true);
    let store = open(config);
    let results = append_warm(&store, 0, 130);
    assert_eq!(store.runtime_stats().cold_rolls, 0);
    settle(&store);
    check_all(&store, &results);
}

/// A crash leaves the warmed next segment behind, possibly torn by power loss: the next
/// open deletes it unread, the log ends where it ended, and it never becomes a segment.
#[test]
fn leftover_warming_segment_is_deleted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(sync_config(dir.path()));
    let results = append_warm(&store, 0, 100);
    wait_warmed(&store);
    let segments = store.runtime_stats().commit_log_segment_count;
    let end = store.max_physical_offset();
    settle(&store);
    store.halt_without_cleanup();
    let leftovers = warming_files(dir.path());
    assert_eq!(leftovers.len(), 1, "the crash left the warmed segment");
    std::fs::write(&leftovers[0], vec![0xA5u8; 3 * 4096]).unwrap();

    let store = open(sync_config(dir.path()));
    let report = store.recovery_report().clone();
    assert!(report.abnormal);
    assert_eq!(report.log_end_offset, end);
    assert_eq!(report.segments_deleted, 0);
    assert_eq!(store.runtime_stats().commit_log_segment_count, segments);
    check_all(&store, &results);
    // It goes on from where it was, into a freshly warmed segment.
    let more = append_warm(&store, 100, 80);
    let all: Vec<AppendResult> = results.into_iter().chain(more).collect();
    settle(&store);
    check_all(&store, &all);
}

/// Forced retention deletes every segment but the active one; the warmed next segment is
/// not in the log, so it cannot pass for the active one.
#[test]
fn retention_never_takes_the_warmed_segment_for_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(FixedDiskUsage::new(0.10));
    let env = StoreEnv {
        disk_probe: disk.clone(),
        ..StoreEnv::default()
    };
    let config: StoreConfig = sync_config(dir.path());
    let store = open_env(config, env);
    let results = append_warm(&store, 0, 200);
    wait_warmed(&store);
    settle(&store);
    disk.set(0.88);
    let outcome = store.run_retention_now(false).unwrap();
    assert!(outcome.segments_deleted >= 2, "{outcome:?}");
    let stats = store.runtime_stats();
    assert_eq!(stats.commit_log_segment_count, 1, "{stats:?}");
    let last = results.last().unwrap();
    assert!(store.read_message(last.physical_offset).is_some());
    assert_eq!(
        store.max_physical_offset(),
        last.physical_offset.0 + last.record_bytes
    );
    assert_eq!(warming_files(dir.path()).len(), 1);
}
