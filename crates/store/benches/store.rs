//! Criterion benches of the store's hot paths: batch append (ASYNC_FLUSH), consume-queue
//! lookup through `get_message`, and index query. Throughput figures against the disk
//! are in `examples/store_throughput.rs`.
//!
//! `cargo bench -p karman-store --bench store`
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use karman_store::{AcceptAll, AppendMessage, MessageStore, QueueOffset, StoreConfig};

fn message(queue_id: i32, body: &Bytes, key: &str) -> AppendMessage {
    AppendMessage {
        topic: "BenchTopic".to_owned(),
        queue_id,
        flag: 0,
        body: body.clone(),
        properties: Bytes::from(format!("KEYS\u{1}{key}\u{2}TAGS\u{1}TagA\u{2}")),
        sys_flag: 0,
        born_timestamp_ms: 1_700_000_000_000,
        born_host: SocketAddr::from(([127, 0, 0, 1], 54321)),
        store_host: SocketAddr::from(([127, 0, 0, 1], 10911)),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        wait_store_msg_ok: true,
    }
}

fn open(dir: &std::path::Path) -> MessageStore {
    let mut config = StoreConfig::new(dir);
    config.mapped_file_size_commit_log_bytes = 256 << 20;
    config.max_hash_slot_count = 100_000;
    config.max_index_count = 400_000;
    MessageStore::open(config).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn batch_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let rt = runtime();
    let body = Bytes::from(vec![b'x'; 1024]);
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(32));
    group.bench_function("batch_32x1KiB_async_flush", |b| {
        b.iter_batched(
            || {
                (0..32)
                    .map(|i| message(0, &body, &format!("k{i}")))
                    .collect::<Vec<_>>()
            },
            |batch| assert!(rt.block_on(store.append_batch(batch)).status.is_ok()),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn filled_store(dir: &std::path::Path, count: u64) -> MessageStore {
    let store = open(dir);
    let rt = runtime();
    let body = Bytes::from(vec![b'y'; 1024]);
    for chunk in 0..count / 32 {
        let batch = (0..32)
            .map(|i| message(0, &body, &format!("key-{}", (chunk * 32 + i) % 1000)))
            .collect();
        assert!(rt.block_on(store.append_batch(batch)).status.is_ok());
    }
    assert!(store.wait_for_dispatch(Duration::from_secs(60)));
    store
}

fn lookups(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let count = 64_000;
    let store = filled_store(dir.path(), count);
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(32));
    let mut offset = 0;
    group.bench_function("get_message_32", |b| {
        b.iter(|| {
            let pulled = store.get_message("BenchTopic", 0, QueueOffset(offset), 32, 0, &AcceptAll);
            assert_eq!(pulled.messages.len(), 32);
            offset = (offset + 32) % (count as i64 - 32);
        });
    });
    group.throughput(Throughput::Elements(1));
    let mut key = 0;
    group.bench_function("query_message_by_key", |b| {
        b.iter(|| {
            let found = store.query_message("BenchTopic", &format!("key-{key}"), 32, 0, i64::MAX);
            assert!(!found.messages.is_empty());
            key = (key + 7) % 1000;
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = batch_append, lookups }
criterion_main!(benches);
