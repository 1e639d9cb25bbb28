//! The store's public API, as the broker will use it.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use karman_protocol::message::sysflag::message as sysflag;
use karman_protocol::message::{MessageView, java_string_hash};
use karman_store::{
    AcceptAll, AppendStatus, Arrival, ArrivalListener, BoundaryType, CommitLogOffset,
    GetMessageStatus, IllegalReason, ManualClock, MessageFilter, MessageStore, QueueOffset,
    SCHEDULE_TOPIC, StoreEnv, StoreError, Unavailable,
};

#[test]
fn appended_messages_pull_back_byte_identical_with_spec_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(small_config(dir.path()));
    let rt = runtime();
    let mut results = Vec::new();
    for i in 0..10 {
        results.push(rt.block_on(store.append(message("T", 1, body(i, 100), &[("TAGS", "A")]))));
    }
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.status, AppendStatus::PutOk);
        assert_eq!(r.queue_offset, QueueOffset(i as i64));
        assert_eq!(r.message_count, 1);
    }
    assert_eq!(
        results[0].offset_msg_id().unwrap(),
        "7F00000100002A9F0000000000000000",
        "offsetMsgId = store host + physical offset (spec §6.3)"
    );
    settle(&store);
    let pulled = store.get_message("T", 1, QueueOffset(0), 32, 0, &AcceptAll);
    assert_eq!(pulled.status, GetMessageStatus::Found);
    assert_eq!(pulled.messages.len(), 10);
    assert_eq!(pulled.next_begin_offset, QueueOffset(10));
    assert_eq!(
        (pulled.min_offset, pulled.max_offset),
        (QueueOffset(0), QueueOffset(10))
    );
    for (i, bytes) in pulled.messages.iter().enumerate() {
        let view = MessageView::parse(bytes).unwrap();
        view.verify_body_crc().unwrap();
        assert_eq!(view.body, &body(i as u64, 100)[..]);
        assert_eq!(view.queue_offset, i as i64);
        assert_eq!(view.physical_offset, results[i].physical_offset.0);
        assert_eq!(view.store_timestamp_ms, results[i].store_timestamp_ms);
        assert_eq!(bytes.len() as i64, results[i].record_bytes);
        assert_eq!(
            store.read_message(results[i].physical_offset).unwrap(),
            *bytes
        );
    }
    let at = |offset| store.get_message("T", 1, QueueOffset(offset), 32, 0, &AcceptAll);
    assert_eq!(
        (at(10).status, at(10).next_begin_offset.0),
        (GetMessageStatus::OffsetOverflowOne, 10)
    );
    assert_eq!(
        (at(15).status, at(15).next_begin_offset.0),
        (GetMessageStatus::OffsetOverflowBadly, 10)
    );
    let missing = store.get_message("T", 2, QueueOffset(3), 32, 0, &AcceptAll);
    assert_eq!(missing.status, GetMessageStatus::NoMatchedLogicQueue);
    assert_eq!(missing.next_begin_offset, QueueOffset(0));
    store.shutdown().unwrap();
}

#[test]
fn records_never_straddle_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(small_config(dir.path()));
    let rt = runtime();
    let mut offsets = Vec::new();
    for i in 0..400 {
        let r = rt.block_on(store.append(message("T", 0, body(i, 700), &[])));
        assert!(r.status.is_ok());
        let segment = 64 * 1024;
        assert_eq!(
            r.physical_offset.0 / segment,
            (r.physical_offset.0 + r.record_bytes + 7) / segment
        );
        offsets.push(r);
    }
    assert!(store.runtime_stats().commit_log_segment_count > 4);
    for (i, r) in offsets.iter().enumerate() {
        let bytes = store.read_message(r.physical_offset).unwrap();
        assert_eq!(
            MessageView::parse(&bytes).unwrap().body,
            &body(i as u64, 700)[..]
        );
    }
    settle(&store);
    assert_eq!(store.max_offset_in_queue("T", 0), QueueOffset(400));
}

#[test]
fn batch_is_contiguous_with_consecutive_queue_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(small_config(dir.path()));
    let rt = runtime();
    rt.block_on(store.append(message("B", 0, "first", &[])));
    let batch: Vec<_> = (0..5).map(|i| message("B", 0, body(i, 50), &[])).collect();
    let r = rt.block_on(store.append_batch(batch));
    assert_eq!(r.status, AppendStatus::PutOk);
    assert_eq!((r.queue_offset, r.message_count), (QueueOffset(1), 5));
    settle(&store);
    let pulled = store.get_message("B", 0, QueueOffset(1), 32, 0, &AcceptAll);
    let mut expected = r.physical_offset.0;
    for (i, bytes) in pulled.messages.iter().enumerate() {
        let view = MessageView::parse(bytes).unwrap();
        assert_eq!(
            (view.physical_offset, view.queue_offset),
            (expected, 1 + i as i64)
        );
        expected += bytes.len() as i64;
    }
    assert_eq!(expected, r.physical_offset.0 + r.record_bytes);
    let mixed = vec![message("B", 0, "x", &[]), message("B", 1, "y", &[])];
    assert_eq!(
        rt.block_on(store.append_batch(mixed)).status,
        AppendStatus::MessageIllegal(IllegalReason::BatchMixesQueues)
    );
    let too_big: Vec<_> = (0..80)
        .map(|i| message("B", 0, body(i, 1000), &[]))
        .collect();
    assert!(matches!(
        rt.block_on(store.append_batch(too_big)).status,
        AppendStatus::MessageIllegal(IllegalReason::BatchLargerThanSegment { .. })
    ));
}

#[test]
fn oversize_messages_are_refused_with_facts() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.max_message_size_bytes = 1000;
    let store = open(config);
    let rt = runtime();
    let r = rt.block_on(store.append(message("T", 0, vec![0u8; 1001], &[])));
    assert_eq!(
        r.status,
        AppendStatus::MessageIllegal(IllegalReason::BodyTooLarge {
            body_bytes: 1001,
            max_bytes: 1000
        })
    );
    let mut big_props = message("T", 0, "x", &[]);
    big_props.properties = vec![b'a'; 40_000].into();
    assert_eq!(
        rt.block_on(store.append(big_props)).status,
        AppendStatus::PropertiesSizeExceeded {
            properties_bytes: 40_000
        }
    );
    assert_eq!(store.max_physical_offset(), 0, "nothing was written");
}

#[test]
fn prepared_and_rollback_records_stay_out_of_consume_queues() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(small_config(dir.path()));
    let rt = runtime();
    let with_flag = |flag, key: &str| {
        let mut m = message("TX", 0, "b", &[("KEYS", key)]);
        m.sys_flag = flag;
        m
    };
    let normal = rt.block_on(store.append(with_flag(0, "n")));
    let prepared = rt.block_on(store.append(with_flag(sysflag::TRANSACTION_PREPARED_TYPE, "p")));
    let commit = rt.block_on(store.append(with_flag(sysflag::TRANSACTION_COMMIT_TYPE, "c")));
    let rollback = rt.block_on(store.append(with_flag(sysflag::TRANSACTION_ROLLBACK_TYPE, "r")));
    assert_eq!(normal.queue_offset, QueueOffset(0));
    assert_eq!(prepared.queue_offset, QueueOffset(0));
    assert_eq!(commit.queue_offset, QueueOffset(1));
    assert_eq!(rollback.queue_offset, QueueOffset(0));
    settle(&store);
    assert_eq!(store.max_offset_in_queue("TX", 0), QueueOffset(2));
    let view = |off| store.read_message(CommitLogOffset(off)).unwrap();
    assert_eq!(
        MessageView::parse(&view(prepared.physical_offset.0))
            .unwrap()
            .queue_offset,
        0
    );
    let query = |key| {
        store
            .query_message("TX", key, 10, 0, i64::MAX)
            .messages
            .len()
    };
    assert_eq!(
        (query("n"), query("p"), query("c"), query("r")),
        (1, 1, 1, 0),
        "ROLLBACK is not indexed"
    );
}

#[test]
fn schedule_topic_tag_code_is_the_delivery_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = open_env(small_config(dir.path()), env_with_clock(clock));
    let rt = runtime();
    rt.block_on(store.append(message(
        SCHEDULE_TOPIC,
        2,
        "d",
        &[("DELAY", "3"), ("TAGS", "A")],
    )));
    rt.block_on(store.append(message("T", 0, "t", &[("TAGS", "TagA")])));
    settle(&store);
    let unit = store.cq_unit(SCHEDULE_TOPIC, 2, QueueOffset(0)).unwrap();
    assert_eq!(unit.tag_code, 1_700_000_000_000 + 10_000);
    let unit = store.cq_unit("T", 0, QueueOffset(0)).unwrap();
    assert_eq!(unit.tag_code, i64::from(java_string_hash("TagA")));
}

struct TagFilter(i64);

impl MessageFilter for TagFilter {
    fn matches_tag_code(&self, tag_code: i64) -> bool {
        tag_code == self.0
    }
}

struct PropertyFilter;

impl MessageFilter for PropertyFilter {
    fn matches_tag_code(&self, _: i64) -> bool {
        true
    }
    fn needs_record(&self) -> bool {
        true
    }
    fn matches_record(&self, record: &MessageView<'_>) -> bool {
        record.property("color") == Some("red")
    }
}

#[test]
fn filters_skip_messages_and_advance_next_begin_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(small_config(dir.path()));
    let rt = runtime();
    for i in 0..6 {
        let (tag, color) = if i % 3 == 0 {
            ("A", "red")
        } else {
            ("B", "blue")
        };
        rt.block_on(store.append(message(
            "F",
            0,
            body(i, 10),
            &[("TAGS", tag), ("color", color)],
        )));
    }
    settle(&store);
    let a = i64::from(java_string_hash("A"));
    let pulled = store.get_message("F", 0, QueueOffset(0), 32, 0, &TagFilter(a));
    assert_eq!(pulled.messages.len(), 2);
    assert_eq!(
        pulled.message_queue_offsets,
        vec![QueueOffset(0), QueueOffset(3)]
    );
    assert_eq!(
        pulled.next_begin_offset,
        QueueOffset(6),
        "trailing filtered entries are examined"
    );
    let pulled = store.get_message("F", 0, QueueOffset(4), 32, 0, &TagFilter(a));
    assert_eq!(pulled.status, GetMessageStatus::NoMatchedMessage);
    assert_eq!(pulled.next_begin_offset, QueueOffset(6));
    let pulled = store.get_message("F", 0, QueueOffset(0), 32, 0, &PropertyFilter);
    assert_eq!(
        pulled.message_queue_offsets,
        vec![QueueOffset(0), QueueOffset(3)]
    );
}

#[test]
fn pulls_are_capped_but_return_at_least_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.mapped_file_size_consume_queue_bytes = 20 * 1000;
    config.mapped_file_size_commit_log_bytes = 1 << 20;
    let store = open(config);
    let rt = runtime();
    for i in 0..100 {
        rt.block_on(store.append(message("C", 0, body(i, 100), &[])));
    }
    rt.block_on(store.append(message("C", 0, vec![7u8; 300 * 1024], &[])));
    settle(&store);
    let pulled = store.get_message("C", 0, QueueOffset(0), 1000, 0, &AcceptAll);
    assert_eq!(
        pulled.messages.len(),
        32,
        "maxTransferCountOnMessageInMemory"
    );
    let pulled = store.get_message("C", 0, QueueOffset(0), 10, 0, &AcceptAll);
    assert_eq!(
        (pulled.messages.len(), pulled.next_begin_offset.0),
        (10, 10)
    );
    let pulled = store.get_message("C", 0, QueueOffset(0), 32, 1000, &AcceptAll);
    assert_eq!(
        pulled.messages.len(),
        5,
        "five 190-byte records fit in 1000 bytes"
    );
    let pulled = store.get_message("C", 0, QueueOffset(100), 32, 0, &AcceptAll);
    assert_eq!(
        pulled.messages.len(),
        1,
        "a record over 256 KiB is still returned alone"
    );
    assert!(!pulled.suggest_pulling_from_slave);
}

#[test]
fn search_offset_by_time_lower_and_upper() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open_env(small_config(dir.path()), env_with_clock(clock.clone()));
    let rt = runtime();
    for i in 0..10 {
        clock.set_ms(1_000_000 + i * 1000);
        rt.block_on(store.append(message("S", 0, body(i as u64, 10), &[])));
    }
    settle(&store);
    let lower = |t| store.offset_by_time("S", 0, t, BoundaryType::Lower).0;
    let upper = |t| store.offset_by_time("S", 0, t, BoundaryType::Upper).0;
    assert_eq!((lower(1_003_000), upper(1_003_000)), (3, 3));
    assert_eq!((lower(1_003_500), upper(1_003_500)), (4, 3));
    assert_eq!((lower(0), upper(0)), (0, 0));
    assert_eq!((lower(2_000_000), upper(2_000_000)), (10, 9));
    assert_eq!(store.earliest_message_time("S", 0), Some(1_000_000));
    assert_eq!(
        store.message_store_timestamp("S", 0, QueueOffset(4)),
        Some(1_004_000)
    );
}

#[test]
fn query_by_key_and_unique_key_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let rt = runtime();
    {
        let store = open_env(small_config(dir.path()), env_with_clock(clock.clone()));
        for i in 0..20 {
            clock.advance_ms(1000);
            let uniq = format!("UNIQ{i:04}");
            let keys = format!("order-{} shared", i % 4);
            rt.block_on(store.append(message(
                "Q",
                0,
                body(i, 10),
                &[("UNIQ_KEY", &uniq), ("KEYS", &keys)],
            )));
        }
        settle(&store);
        store.shutdown().unwrap();
    }
    let store = open_env(small_config(dir.path()), env_with_clock(clock));
    let found = store.query_message("Q", "UNIQ0007", 32, 0, i64::MAX);
    assert_eq!(found.messages.len(), 1);
    assert_eq!(
        MessageView::parse(&found.messages[0]).unwrap().body,
        &body(7, 10)[..]
    );
    assert_eq!(
        store
            .query_message("Q", "order-1", 32, 0, i64::MAX)
            .messages
            .len(),
        5
    );
    assert_eq!(
        store
            .query_message("Q", "shared", 3, 0, i64::MAX)
            .messages
            .len(),
        3
    );
    let window = store.query_message("Q", "shared", 32, 1_700_000_005_000, 1_700_000_007_000);
    assert_eq!(window.messages.len(), 3);
    assert!(
        store
            .query_message("Other", "shared", 32, 0, i64::MAX)
            .messages
            .is_empty()
    );
    assert_eq!(found.index_last_update_timestamp_ms, 1_700_000_020_000);
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(String, i32, i64)>>);

impl ArrivalListener for Recorder {
    fn on_arrival(&self, arrival: &Arrival<'_>) {
        self.0.lock().unwrap().push((
            arrival.topic.to_owned(),
            arrival.queue_id,
            arrival.queue_offset.0,
        ));
    }
}

#[test]
fn arrival_listener_hears_every_dispatched_message() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let env = StoreEnv {
        arrival_listener: Some(recorder.clone()),
        ..StoreEnv::default()
    };
    let store = open_env(small_config(dir.path()), env);
    let rt = runtime();
    for q in 0..3 {
        rt.block_on(store.append(message("L", q, "x", &[])));
    }
    settle(&store);
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![("L".into(), 0, 0), ("L".into(), 1, 0), ("L".into(), 2, 0)]
    );
}

#[test]
fn a_replica_rebuilds_queues_from_streamed_commit_log() {
    let master_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let master = open(small_config(master_dir.path()));
    let replica = open(small_config(replica_dir.path()));
    let rt = runtime();
    for i in 0..300 {
        rt.block_on(master.append(message("R", (i % 3) as i32, body(i, 300), &[("KEYS", "k")])));
    }
    replica.set_read_only(true);
    assert_eq!(
        rt.block_on(replica.append(message("R", 0, "refused", &[])))
            .status,
        AppendStatus::ServiceNotAvailable(Unavailable::ReadOnly)
    );
    let mut offset = 0;
    while let Some(chunk) = master.read_commit_log(offset, 10_000) {
        offset = rt.block_on(replica.append_raw(offset, chunk)).unwrap();
    }
    assert_eq!(offset, master.max_physical_offset());
    assert!(matches!(
        rt.block_on(replica.append_raw(5, "x".into())),
        Err(StoreError::ReplicaOffsetMismatch { .. })
    ));
    settle(&master);
    settle(&replica);
    for q in 0..3 {
        assert_eq!(
            replica.max_offset_in_queue("R", q),
            master.max_offset_in_queue("R", q)
        );
        let a = master
            .get_message("R", q, QueueOffset(0), 32, 0, &AcceptAll)
            .messages;
        let b = replica
            .get_message("R", q, QueueOffset(0), 32, 0, &AcceptAll)
            .messages;
        assert_eq!(a, b);
    }
    assert_eq!(
        replica
            .query_message("R", "k", 64, 0, i64::MAX)
            .messages
            .len(),
        64
    );
    replica.set_read_only(false);
    let r = rt.block_on(replica.append(message("R", 0, "after", &[])));
    assert_eq!(
        r.queue_offset,
        QueueOffset(100),
        "a promoted replica continues queue offsets"
    );
}

#[test]
fn sync_flush_acks_after_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(sync_config(dir.path()));
    let rt = runtime();
    let r = rt.block_on(store.append(message("S", 0, "durable", &[])));
    assert_eq!(r.status, AppendStatus::PutOk);
    assert!(store.flushed_physical_offset() >= r.physical_offset.0 + r.record_bytes);
    let mut no_wait = message("S", 0, "fast", &[]);
    no_wait.wait_store_msg_ok = false;
    assert_eq!(
        rt.block_on(store.append(no_wait)).status,
        AppendStatus::PutOk
    );
}

#[test]
fn a_full_append_queue_answers_busy_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.append_queue_capacity_count = 1;
    let store = open(config);
    let rt = runtime();
    let results = rt.block_on(futures_join_all(&store, 500));
    let busy = results
        .iter()
        .filter(|s| **s == AppendStatus::OsPageCacheBusy)
        .count();
    let ok = results.iter().filter(|s| s.is_ok()).count();
    assert_eq!(busy + ok, 500);
    assert!(busy > 0 && ok > 0, "busy {busy}, ok {ok}");
}

/// Starts `n` appends at once from one task.
async fn futures_join_all(store: &MessageStore, n: u64) -> Vec<AppendStatus> {
    let mut pending: Vec<_> = (0..n)
        .map(|i| Box::pin(store.append(message("Busy", 0, body(i, 10), &[]))))
        .collect();
    let mut out = vec![None; pending.len()];
    std::future::poll_fn(|cx| {
        for (slot, fut) in out.iter_mut().zip(pending.iter_mut()) {
            if slot.is_none()
                && let std::task::Poll::Ready(r) = fut.as_mut().poll(cx)
            {
                *slot = Some(r.status);
            }
        }
        if out.iter().all(Option::is_some) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[test]
fn delete_topic_drops_its_queues_and_restarts_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(small_config(dir.path()));
    let rt = runtime();
    for i in 0..3 {
        rt.block_on(store.append(message("D", 0, body(i, 10), &[])));
    }
    settle(&store);
    assert!(store.delete_topic("D").unwrap());
    assert_eq!(store.max_offset_in_queue("D", 0), QueueOffset(0));
    let r = rt.block_on(store.append(message("D", 0, "again", &[])));
    assert_eq!(r.queue_offset, QueueOffset(0));
}

#[test]
fn a_second_open_of_the_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(small_config(dir.path()));
    assert!(matches!(
        MessageStore::open(small_config(dir.path())),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn appends_after_shutdown_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(small_config(dir.path()));
    store.shutdown().unwrap();
    let rt = runtime();
    assert_eq!(
        rt.block_on(store.append(message("T", 0, "x", &[]))).status,
        AppendStatus::ServiceNotAvailable(Unavailable::ShutDown)
    );
}

#[test]
fn runtime_stats_count_puts_and_lag() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(small_config(dir.path()));
    let rt = runtime();
    for i in 0..5 {
        rt.block_on(store.append(message("T", 0, body(i, 10), &[])));
    }
    settle(&store);
    let stats = store.runtime_stats();
    assert_eq!(stats.put_message_count, 5);
    assert_eq!(stats.commit_log_max_offset, store.max_physical_offset());
    assert_eq!(stats.dispatch_lag_bytes, 0);
}
