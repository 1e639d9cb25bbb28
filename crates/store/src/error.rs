//! The store's one error type. Every variant carries the facts an operator needs (which
//! file, which offset, what was stored and what was computed) and keeps its cause.

use std::path::PathBuf;

use karman_protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} failed on {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("store {path} is locked by another process (lock file held)")]
    Locked {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("config field {field} is invalid: {reason}")]
    ConfigInvalid { field: &'static str, reason: String },

    #[error("{path}: file name is not a 20-digit offset")]
    FileNameInvalid { path: PathBuf },

    #[error("{path}: file is {actual_bytes} bytes, expected {expected_bytes}")]
    FileSizeMismatch {
        path: PathBuf,
        expected_bytes: u64,
        actual_bytes: u64,
    },

    #[error(
        "{path}: segment starts at {found_offset}, expected {expected_offset} (a segment is missing)"
    )]
    SegmentGap {
        path: PathBuf,
        expected_offset: i64,
        found_offset: i64,
    },

    #[error("{file} at byte {offset}: record is invalid: {source}")]
    RecordInvalid {
        file: PathBuf,
        offset: i64,
        #[source]
        source: ProtocolError,
    },

    #[error(
        "{file} at byte {offset}: body CRC mismatch: stored {stored:#010X}, computed {computed:#010X}"
    )]
    CrcMismatch {
        file: PathBuf,
        offset: i64,
        stored: u32,
        computed: u32,
    },

    #[error(
        "{file} at byte {offset}: invalid record below the flushed offset {flushed_offset} \
         recorded in the checkpoint; refusing to truncate acknowledged data ({reason})"
    )]
    CorruptBeforeFlushed {
        file: PathBuf,
        offset: i64,
        flushed_offset: i64,
        reason: String,
    },

    #[error(
        "checkpoint says consume queues were built up to commit-log offset {dispatched_offset}, \
         but the commit log ends at {log_end_offset}: commit-log data is missing"
    )]
    CheckpointAheadOfLog {
        dispatched_offset: i64,
        log_end_offset: i64,
    },

    #[error(
        "replica append at {actual_offset} does not continue the commit log at {expected_offset}"
    )]
    ReplicaOffsetMismatch {
        expected_offset: i64,
        actual_offset: i64,
    },

    #[error("replica bytes at commit-log offset {offset} are not valid records: {reason}")]
    ReplicaBytesInvalid { offset: i64, reason: String },

    #[error("commit-log offset {offset} is outside [{min_offset}, {max_offset})")]
    OffsetOutOfRange {
        offset: i64,
        min_offset: i64,
        max_offset: i64,
    },

    #[error("store is shut down")]
    ShutDown,

    #[error("could not start thread {name}: {source}")]
    Thread {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
