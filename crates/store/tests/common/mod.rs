//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use karman_store::{AppendMessage, FlushDiskType, MessageStore, StoreConfig, StoreEnv};

pub const BORN: &str = "127.0.0.1:54321";
pub const STORE_HOST: &str = "127.0.0.1:10911";

/// Small files so that tests roll segments and consume-queue files; no periodic
/// checkpoint (tests decide when one is written).
pub fn small_config(dir: &Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.mapped_file_size_commit_log_bytes = 64 * 1024;
    config.mapped_file_size_consume_queue_bytes = 20 * 64;
    config.max_hash_slot_count = 1024;
    config.max_index_count = 4096;
    config.flush_interval_consume_queue_ms = 3_600_000;
    config.clean_resource_interval_ms = 3_600_000;
    config.flush_interval_commit_log_ms = 10;
    config
}

pub fn sync_config(dir: &Path) -> StoreConfig {
    let mut config = small_config(dir);
    config.flush_disk_type = FlushDiskType::SyncFlush;
    config
}

/// Encodes properties with the protocol crate's codec.
pub fn properties(pairs: &[(&str, &str)]) -> Bytes {
    let props: karman_protocol::message::Properties = pairs.iter().copied().collect();
    Bytes::from(props.encode())
}

pub fn message(
    topic: &str,
    queue_id: i32,
    body: impl Into<Bytes>,
    props: &[(&str, &str)],
) -> AppendMessage {
    AppendMessage {
        topic: topic.to_owned(),
        queue_id,
        flag: 0,
        body: body.into(),
        properties: properties(props),
        sys_flag: 0,
        born_timestamp_ms: 1_700_000_000_000,
        born_host: BORN.parse().unwrap(),
        store_host: STORE_HOST.parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        wait_store_msg_ok: true,
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn open(config: StoreConfig) -> MessageStore {
    MessageStore::open(config).unwrap()
}

pub fn open_env(config: StoreConfig, env: StoreEnv) -> MessageStore {
    MessageStore::open_with(config, env).unwrap()
}

pub fn settle(store: &MessageStore) {
    assert!(
        store.wait_for_dispatch(Duration::from_secs(10)),
        "dispatch did not catch up"
    );
}

pub fn env_with_clock(clock: Arc<dyn karman_store::Clock>) -> StoreEnv {
    StoreEnv {
        clock,
        ..StoreEnv::default()
    }
}

/// Body of message `i`: distinct, and at least `len` bytes.
pub fn body(i: u64, len: usize) -> Bytes {
    let mut out = format!("message-{i:08}-").into_bytes();
    while out.len() < len {
        out.push(b'a' + (out.len() % 26) as u8);
    }
    Bytes::from(out)
}

/// SplitMix64: a seeded, replayable generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// The seed of a randomized test: `KARMAN_SEED` if set (to replay), else fresh; printed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("KARMAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test} seed: KARMAN_SEED={seed}");
    seed
}
