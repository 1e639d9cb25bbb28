//! One test per row of the recovery case table (src/recovery.rs), plus reopen after
//! each kind of shutdown. Each test asserts the row the report names, so it proves it took
//! the branch it claims.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::*;
use karman_protocol::message::MessageView;
use karman_store::{
    AcceptAll, AppendResult, Checkpoint, CheckpointState, CommitLogOffset, MessageStore,
    QueueOffset, StoreConfig, StoreError, TailCase,
};

const SEGMENT: i64 = 64 * 1024;

fn segment_path(dir: &Path, start: i64) -> PathBuf {
    dir.join("commitlog").join(karman_store::file_name(start))
}

fn patch(dir: &Path, offset: i64, bytes: &[u8]) {
    let start = offset - offset % SEGMENT;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir, start))
        .unwrap();
    file.write_all_at(bytes, (offset - start) as u64).unwrap();
}

/// Appends `n` messages of `len` bytes to topic T queue 0, dispatches, then stops as a
/// crash would (no checkpoint since open, `abort` left behind).
fn crash_after(dir: &Path, n: u64, len: usize) -> Vec<AppendResult> {
    let store = open(small_config(dir));
    let rt = runtime();
    let results: Vec<_> = (0..n)
        .map(|i| rt.block_on(store.append(message("T", 0, body(i, len), &[]))))
        .collect();
    assert!(results.iter().all(|r| r.status.is_ok()));
    settle(&store);
    store.halt_without_cleanup();
    results
}

/// Reopens and checks that every message below `intact` reads back whole and is in the
/// consume queue, and that nothing past it is.
fn reopen_and_check(config: StoreConfig, results: &[AppendResult], intact: usize) -> MessageStore {
    let store = MessageStore::open(config).unwrap();
    for (i, r) in results.iter().enumerate().take(intact) {
        let bytes = store.read_message(r.physical_offset).unwrap();
        let view = MessageView::parse(&bytes).unwrap();
        view.verify_body_crc().unwrap();
        assert_eq!(view.queue_offset, i as i64);
        assert_eq!(
            store.commit_log_offset_in_queue("T", 0, QueueOffset(i as i64)),
            Some(r.physical_offset)
        );
    }
    assert_eq!(
        store.max_offset_in_queue("T", 0),
        QueueOffset(intact as i64)
    );
    if let Some(cut) = results.get(intact) {
        assert!(
            store.read_message(cut.physical_offset).is_none(),
            "a cut record is never served"
        );
        let end = intact.checked_sub(1).map_or(0, |i| {
            results[i].physical_offset.0 + results[i].record_bytes
        });
        assert_eq!(store.max_physical_offset(), end);
    }
    let pulled = store.get_message("T", 0, QueueOffset(0), 1000, 0, &AcceptAll);
    assert!(
        pulled
            .messages
            .iter()
            .all(|m| MessageView::parse(m).is_ok_and(|v| v.verify_body_crc().is_ok()))
    );
    store
}

#[test]
fn row_01_clean_shutdown_restarts_without_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(small_config(dir.path()));
    let results: Vec<_> = (0..50)
        .map(|i| rt.block_on(store.append(message("T", 0, body(i, 200), &[]))))
        .collect();
    store.shutdown().unwrap();
    drop(store);
    assert!(!dir.path().join("abort").exists());
    let store = reopen_and_check(small_config(dir.path()), &results, 50);
    let report = store.recovery_report();
    assert!(!report.abnormal);
    assert_eq!(
        (
            report.tail.clone(),
            report.records_scanned,
            report.bytes_zeroed
        ),
        (TailCase::Zeros, 0, 0)
    );
    assert_eq!(report.scan_from_offset, report.log_end_offset);
}

#[test]
fn row_02_crash_redispatches_records_past_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 40, 200);
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    let store = reopen_and_check(small_config(dir.path()), &results, 40);
    let report = store.recovery_report();
    assert!(report.abnormal);
    assert_eq!((report.scan_from_offset, report.records_scanned), (0, 40));
    assert_eq!(report.tail, TailCase::Zeros);
    let r = runtime().block_on(store.append(message("T", 0, "next", &[])));
    assert_eq!(
        r.queue_offset,
        QueueOffset(40),
        "queue offsets continue after recovery"
    );
}

#[test]
fn row_03_torn_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 20, 300);
    let last = &results[19];
    patch(dir.path(), last.physical_offset.0 + 150, &[0u8; 100]);
    patch(dir.path(), last.physical_offset.0 + 4, &[0xAB; 4]);
    let store = reopen_and_check(small_config(dir.path()), &results, 19);
    assert!(matches!(
        store.recovery_report().tail,
        TailCase::Torn { .. }
    ));
    assert!(store.recovery_report().bytes_zeroed > 0);
}

#[test]
fn row_04_crc_mismatch_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 20, 300);
    patch(dir.path(), results[17].physical_offset.0 + 95, b"X");
    let store = reopen_and_check(small_config(dir.path()), &results, 17);
    assert!(matches!(
        store.recovery_report().tail,
        TailCase::CrcMismatch { .. }
    ));
    for r in &results[17..] {
        assert!(store.read_message(r.physical_offset).is_none());
    }
}

#[test]
fn row_05_stale_record_with_wrong_physical_offset_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 10, 300);
    patch(
        dir.path(),
        results[9].physical_offset.0 + 28,
        &777i64.to_be_bytes(),
    );
    let store = reopen_and_check(small_config(dir.path()), &results, 9);
    let TailCase::Torn { reason } = &store.recovery_report().tail else {
        panic!("not torn")
    };
    assert!(reason.contains("PHYSICALOFFSET"), "{reason}");
}

#[test]
fn row_06_garbage_after_zeros_is_wiped() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 10, 300);
    let end = results[9].physical_offset.0 + results[9].record_bytes;
    // What a power loss can leave: a later page written, the one at the end not.
    let mut ghost = std::fs::read(segment_path(dir.path(), 0)).unwrap()
        [..results[1].record_bytes as usize]
        .to_vec();
    ghost[28..36].copy_from_slice(&(end + 4096).to_be_bytes());
    patch(dir.path(), end + 4096, &ghost);
    let store = reopen_and_check(small_config(dir.path()), &results, 10);
    assert_eq!(store.recovery_report().tail, TailCase::Zeros);
    assert!(store.recovery_report().bytes_zeroed > 4096);
    let segment = std::fs::read(segment_path(dir.path(), 0)).unwrap();
    assert!(segment[end as usize..].iter().all(|b| *b == 0));
}

#[test]
fn row_07_blank_tail_of_the_last_segment_ends_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 80, 1000);
    let first_in_second = results
        .iter()
        .position(|r| r.physical_offset.0 >= SEGMENT)
        .unwrap();
    for start in (SEGMENT..)
        .step_by(SEGMENT as usize)
        .take_while(|s| segment_path(dir.path(), *s).exists())
    {
        std::fs::remove_file(segment_path(dir.path(), start)).unwrap();
    }
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.recovery_report().tail, TailCase::SegmentClosed);
    assert_eq!(store.max_physical_offset(), SEGMENT);
    assert_eq!(
        store.max_offset_in_queue("T", 0),
        QueueOffset(first_in_second as i64)
    );
    let r = runtime().block_on(store.append(message("T", 0, "after roll", &[])));
    assert_eq!(
        (r.physical_offset.0, r.queue_offset.0),
        (SEGMENT, first_in_second as i64)
    );
}

#[test]
fn row_08_09_torn_blank_tail_is_cut_and_later_segments_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 150, 1000);
    let last_in_first = results
        .iter()
        .rposition(|r| r.physical_offset.0 < SEGMENT)
        .unwrap();
    let blank_at = results[last_in_first].physical_offset.0 + results[last_in_first].record_bytes;
    patch(dir.path(), blank_at, &5i32.to_be_bytes());
    let store = reopen_and_check(small_config(dir.path()), &results, last_in_first + 1);
    let report = store.recovery_report();
    assert!(matches!(&report.tail, TailCase::Torn { reason } if reason.contains("blank")));
    assert!(report.segments_deleted >= 1);
    assert!(!segment_path(dir.path(), SEGMENT).exists());
}

fn write_checkpoint(dir: &Path, dispatched: i64, confirm: i64) {
    let cp = Checkpoint {
        confirm_phy_offset: confirm,
        dispatched_phy_offset: dispatched,
        ..Checkpoint::default()
    };
    std::fs::write(dir.join("checkpoint"), cp.encode()).unwrap();
}

#[test]
fn row_10_invalid_record_below_the_flushed_offset_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 20, 300);
    let end = results[19].physical_offset.0 + results[19].record_bytes;
    write_checkpoint(dir.path(), 0, end);
    patch(dir.path(), results[5].physical_offset.0 + 95, b"X");
    match MessageStore::open(small_config(dir.path())) {
        Err(StoreError::CorruptBeforeFlushed {
            offset,
            flushed_offset,
            file,
            ..
        }) => {
            assert_eq!(
                (offset, flushed_offset),
                (results[5].physical_offset.0, end)
            );
            assert!(file.ends_with("00000000000000000000"));
        }
        other => panic!("expected CorruptBeforeFlushed, got {other:?}"),
    }
    let intact = std::fs::read(segment_path(dir.path(), 0)).unwrap();
    assert_ne!(
        intact[results[19].physical_offset.0 as usize + 3],
        0,
        "nothing was truncated"
    );
}

#[test]
fn row_11_missing_or_torn_checkpoint_rebuilds_every_queue() {
    for torn in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let results = crash_after(dir.path(), 30, 200);
        std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
        if torn {
            let mut bytes = std::fs::read(dir.path().join("checkpoint")).unwrap();
            bytes[40] ^= 0xFF;
            std::fs::write(dir.path().join("checkpoint"), bytes).unwrap();
        } else {
            std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
        }
        let store = reopen_and_check(small_config(dir.path()), &results, 30);
        let expected = if torn {
            CheckpointState::Torn
        } else {
            CheckpointState::Missing
        };
        assert_eq!(store.recovery_report().checkpoint, expected);
        assert_eq!(store.recovery_report().records_scanned, 30);
    }
}

#[test]
fn row_12_checkpoint_past_the_log_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    crash_after(dir.path(), 5, 200);
    write_checkpoint(dir.path(), 10 * SEGMENT, 10 * SEGMENT);
    assert!(matches!(
        MessageStore::open(small_config(dir.path())),
        Err(StoreError::CheckpointAheadOfLog { dispatched_offset, .. }) if dispatched_offset == 10 * SEGMENT
    ));
}

#[test]
fn row_13_no_commit_log_drops_queues_and_index() {
    let dir = tempfile::tempdir().unwrap();
    crash_after(dir.path(), 5, 200);
    std::fs::remove_dir_all(dir.path().join("commitlog")).unwrap();
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.recovery_report().tail, TailCase::Empty);
    assert_eq!(store.max_offset_in_queue("T", 0), QueueOffset(0));
    assert!(!dir.path().join("consumequeue").join("T").exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("index")).unwrap().count(),
        0
    );
    let r = runtime().block_on(store.append(message("T", 0, "fresh", &[])));
    assert_eq!((r.physical_offset.0, r.queue_offset.0), (0, 0));
}

#[test]
fn row_14_queue_units_past_the_log_end_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 20, 300);
    let from = results[17].physical_offset.0;
    patch(dir.path(), from, &vec![0u8; (SEGMENT - from) as usize]);
    let store = reopen_and_check(small_config(dir.path()), &results, 17);
    assert_eq!(store.recovery_report().tail, TailCase::Zeros);
    assert_eq!(
        store
            .get_message("T", 0, QueueOffset(17), 32, 0, &AcceptAll)
            .next_begin_offset,
        QueueOffset(17)
    );
}

#[test]
fn row_15_short_last_segment_is_extended() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 10, 300);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir.path(), 0))
        .unwrap();
    file.set_len(8192).unwrap();
    let store = reopen_and_check(small_config(dir.path()), &results, 10);
    assert_eq!(
        std::fs::metadata(segment_path(dir.path(), 0))
            .unwrap()
            .len(),
        SEGMENT as u64
    );
    drop(store);
}

#[test]
fn async_flush_clean_shutdown_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.flush_interval_commit_log_ms = 60_000;
    let rt = runtime();
    let store = open(config.clone());
    let results: Vec<_> = (0..500)
        .map(|i| rt.block_on(store.append(message("T", 0, body(i, 500), &[]))))
        .collect();
    store.shutdown().unwrap();
    drop(store);
    let store = reopen_and_check(config, &results, 500);
    assert!(!store.recovery_report().abnormal);
    assert_eq!(store.flushed_physical_offset(), store.max_physical_offset());
}

#[test]
fn reopen_after_crash_then_clean_shutdown_is_normal() {
    let dir = tempfile::tempdir().unwrap();
    let results = crash_after(dir.path(), 10, 100);
    let store = reopen_and_check(small_config(dir.path()), &results, 10);
    assert!(store.recovery_report().abnormal);
    store.shutdown().unwrap();
    drop(store);
    let store = reopen_and_check(small_config(dir.path()), &results, 10);
    assert!(!store.recovery_report().abnormal);
    assert_eq!(
        store.read_message(CommitLogOffset(1)),
        None,
        "not a record boundary"
    );
}
