//! The `checkpoint` file: how far flushing and dispatching got (spec semantics §1.5).
//!
//! ```text
//! off  field                        meaning
//!   0  physicMsgTimestamp  i64      store time of the last flushed commit-log record
//!   8  logicsMsgTimestamp  i64      store time of the last record in flushed consume queues
//!  16  indexMsgTimestamp   i64      same, for the index
//!  24  masterFlushedOffset i64      RocketMQ 5.x HA field; Karman writes 0
//!  32  confirmPhyOffset    i64      commit-log offset fsync has covered
//!  40  dispatchedPhyOffset i64      Karman: consume queues and index are flushed up to here
//!  48  crc32 of bytes 0..48, u32    Karman: a torn checkpoint write is detected, not trusted
//! ```
//!
//! The first five fields sit where RocketMQ puts them. Recovery trusts offsets, not
//! timestamps: `dispatchedPhyOffset` is where re-dispatch starts, `confirmPhyOffset` is the
//! line below which an invalid record means corruption rather than a torn tail.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::mapped_file::{be_i64, open_rw, put_at};

pub const CHECKPOINT_FILE_BYTES: usize = 4096;
const CRC_AT: usize = 48;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub physic_msg_timestamp_ms: i64,
    pub logics_msg_timestamp_ms: i64,
    pub index_msg_timestamp_ms: i64,
    pub confirm_phy_offset: i64,
    pub dispatched_phy_offset: i64,
}

impl Checkpoint {
    pub fn encode(&self) -> [u8; CHECKPOINT_FILE_BYTES] {
        let mut out = [0u8; CHECKPOINT_FILE_BYTES];
        let fields = [
            self.physic_msg_timestamp_ms,
            self.logics_msg_timestamp_ms,
            self.index_msg_timestamp_ms,
            0,
            self.confirm_phy_offset,
            self.dispatched_phy_offset,
        ];
        for (i, value) in fields.iter().enumerate() {
            put_at(&mut out, i * 8, &value.to_be_bytes());
        }
        let crc = crc32fast::hash(out.get(..CRC_AT).unwrap_or_default());
        put_at(&mut out, CRC_AT, &crc.to_be_bytes());
        out
    }

    /// `None` when the bytes are short or the CRC disagrees (a torn write).
    pub fn decode(buf: &[u8]) -> Option<Self> {
        let stored_crc = buf.get(CRC_AT..CRC_AT + 4)?;
        let stored_crc = u32::from_be_bytes(stored_crc.try_into().ok()?);
        if crc32fast::hash(buf.get(..CRC_AT)?) != stored_crc {
            return None;
        }
        Some(Self {
            physic_msg_timestamp_ms: be_i64(buf, 0)?,
            logics_msg_timestamp_ms: be_i64(buf, 8)?,
            index_msg_timestamp_ms: be_i64(buf, 16)?,
            confirm_phy_offset: be_i64(buf, 32)?,
            dispatched_phy_offset: be_i64(buf, 40)?,
        })
    }
}

/// What was found in the checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointState {
    Missing,
    Torn,
    Valid(Checkpoint),
}

pub(crate) fn path(root: &Path) -> PathBuf {
    root.join("checkpoint")
}

pub(crate) fn load(root: &Path) -> Result<CheckpointState> {
    let path = path(root);
    match std::fs::read(&path) {
        Ok(bytes) => {
            Ok(Checkpoint::decode(&bytes).map_or(CheckpointState::Torn, CheckpointState::Valid))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CheckpointState::Missing),
        Err(e) => Err(StoreError::io("read checkpoint", path, e)),
    }
}

/// Writes and fsyncs the checkpoint in place (one 4 KiB page).
pub(crate) fn store(root: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let path = path(root);
    let file = open_rw(&path, true, "open checkpoint")?;
    file.write_all_at(&checkpoint.encode(), 0)
        .and_then(|()| file.sync_data())
        .map_err(|e| StoreError::io("write checkpoint", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_a_torn_write() {
        let cp = Checkpoint {
            physic_msg_timestamp_ms: 1,
            logics_msg_timestamp_ms: 2,
            index_msg_timestamp_ms: 3,
            confirm_phy_offset: 4,
            dispatched_phy_offset: 5,
        };
        let mut bytes = cp.encode();
        assert_eq!(Checkpoint::decode(&bytes), Some(cp));
        bytes[41] ^= 1;
        assert_eq!(Checkpoint::decode(&bytes), None);
    }
}
