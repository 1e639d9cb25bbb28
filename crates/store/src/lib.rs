//! # karman-store
//!
//! The message store: commit log, consume queues, key index, flush (async and group
//! commit), crash recovery and retention. It owns everything under `storePathRootDir` and
//! knows nothing about the network: the broker hands it messages and pulls, it hands back
//! offsets, statuses and `Bytes` slices of its mapped files.
//!
//! The layout, the recovery case table and the flush design are in
//! `docs/internals/STORAGE.md`; wire facts are in `../shared/spec/`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), karman_store::StoreError> {
//! use karman_store::{AcceptAll, AppendMessage, MessageStore, QueueOffset, StoreConfig};
//!
//! let store = MessageStore::open(StoreConfig::new("/tmp/karman-store"))?;
//! let result = store
//!     .append(AppendMessage {
//!         topic: "TopicTest".into(),
//!         queue_id: 0,
//!         flag: 0,
//!         body: "hello".into(),
//!         properties: "TAGS\u{1}TagA\u{2}".into(),
//!         sys_flag: 0,
//!         born_timestamp_ms: 1_700_000_000_000,
//!         born_host: "127.0.0.1:54321".parse().unwrap(),
//!         store_host: "127.0.0.1:10911".parse().unwrap(),
//!         reconsume_times: 0,
//!         prepared_transaction_offset: 0,
//!         wait_store_msg_ok: true,
//!     })
//!     .await;
//! assert!(result.status.is_ok());
//! store.wait_for_dispatch(std::time::Duration::from_secs(1));
//! let pulled = store.get_message("TopicTest", 0, QueueOffset(0), 32, 0, &AcceptAll);
//! assert_eq!(pulled.messages.len(), 1);
//! store.shutdown()?;
//! # Ok(()) }
//! ```
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )
)]

mod answer;
mod append;
mod checkpoint;
mod clock;
mod commit_log;
mod config;
mod consume_queue;
mod dispatch;
mod error;
mod flush;
mod index_file;
mod mapped_file;
mod pull;
pub mod recovery;
mod retention;
mod store;
mod warm;

pub use append::{AppendMessage, AppendResult, AppendStatus, IllegalReason, Unavailable};
pub use checkpoint::{Checkpoint, CheckpointState};
pub use clock::{Clock, DiskUsageProbe, FixedDiskUsage, ManualClock, StatvfsProbe, SystemClock};
pub use commit_log::file_name;
pub use config::{
    CQ_UNIT_BYTES, FlushDiskType, MESSAGE_DELAY_LEVEL_DEFAULT, StoreConfig, parse_delay_levels,
};
pub use consume_queue::CqUnit;
pub use dispatch::{Arrival, ArrivalListener, SCHEDULE_TOPIC, cq_tag_code};
pub use error::{Result, StoreError};
pub use pull::{
    AcceptAll, BoundaryType, GetMessageResult, GetMessageStatus, MessageFilter, QueryResult,
};
pub use recovery::{RecoveryReport, TailCase};
pub use retention::{DeleteMode, RetentionOutcome};
pub use store::{MessageStore, StoreEnv, StoreStats};

/// A byte position in the commit log (RocketMQ's "physical offset").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CommitLogOffset(pub i64);

/// An entry number in one consume queue (RocketMQ's "queue offset" / "logical offset").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct QueueOffset(pub i64);
