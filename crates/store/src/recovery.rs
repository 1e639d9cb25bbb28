//! Crash recovery: find the end of the valid commit log, cut what lies past it, and
//! rebuild consume queues and index from the checkpoint on (spec semantics §1.6).
//!
//! Recovery starts at the checkpoint's `dispatchedPhyOffset` (consume queues and index are
//! durable up to there): consume-queue units at or past it are cut, then it walks the log
//! forward, checking every record: magic, size, that it fits its segment, that every field
//! parses, that PHYSICALOFFSET names its own position, and (with `checkCRCOnRecover`) the
//! body CRC. Each valid record is dispatched again through the live dispatcher's
//! `dispatch_record` in the same pass; the first record that fails ends the log.
//!
//! # Case table
//!
//! | # | state found at the scan position                                   | cause                                   | decision |
//! |---|--------------------------------------------------------------------|-----------------------------------------|----------|
//! | 1 | zeros, no `abort` file, checkpoint at the log end                  | clean shutdown                          | nothing to redo: restart is immediate |
//! | 2 | valid records past the checkpoint, `abort` present                 | kill -9 / crash after appends           | keep them; cut consume-queue units past the checkpoint and re-dispatch the records |
//! | 3 | a record whose size, magic or fields do not parse                  | write torn by the crash                 | end of log: zero the torn bytes, re-dispatch up to it |
//! | 4 | a record whose body CRC disagrees                                  | torn write inside the body              | same as 3 |
//! | 5 | a record whose PHYSICALOFFSET is not its position                  | stale bytes from an older life of the file | same as 3 |
//! | 6 | zeros, but non-zero bytes further on in the segment               | power loss wrote later pages, not earlier ones | end of log; zero everything after it so it cannot resurface |
//! | 7 | blank tail (`size = remaining`, BLANK_MAGIC)                       | segment closed                          | continue in the next segment; if there is none the log ends at the segment end |
//! | 8 | BLANK_MAGIC with a size that is not the remaining bytes            | torn blank tail                         | same as 3 |
//! | 9 | more segments after the segment where the log ended               | crash while rolling                     | delete them: nothing in them was acknowledged (an ack needs the fsync of every earlier byte) |
//! | 10| any invalid record below the checkpoint's `confirmPhyOffset`       | corruption of data fsync had covered    | refuse to open with file, offset and reason: never truncate acknowledged data |
//! | 11| checkpoint missing or its CRC wrong                                | first start, or torn checkpoint write   | scan from the first segment and rebuild every consume queue |
//! | 12| checkpoint offset past the last segment                            | commit-log files removed by hand        | refuse to open (CheckpointAheadOfLog) |
//! | 13| no commit-log segment at all                                       | new store, or the log was deleted       | delete every consume queue and index file |
//! | 14| consume-queue units that point past the log end                    | queue flushed, log tail lost            | cut those units |
//! | 15| last segment shorter than the segment size                         | crash between creating and sizing the file | extend it with zeros (it reads as case 1/6) |
//!
//! The index is not cut: queries re-read each candidate record and keep it only if topic
//! and key match, so entries that point at cut data are skipped, and entries written twice
//! by re-dispatch are de-duplicated.

use std::os::unix::fs::FileExt;

use karman_protocol::message::MessageView;
use karman_protocol::message::stored::{BLANK_MAGIC, MAGIC_V1, MAGIC_V2};

use crate::append::enters_consume_queue;
use crate::checkpoint::CheckpointState;
use crate::commit_log::{BLANK_TAIL_BYTES, CommitLog, Segment};
use crate::error::{Result, StoreError};
use crate::mapped_file::be_i32;

/// Smallest possible record: fixed fields of a v1 record with IPv4 hosts.
const RECORD_BYTES_MIN: i64 = 91;

/// Which row of the case table ended the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailCase {
    /// Zero bytes at the end position (rows 1, 2, 6).
    Zeros,
    /// The last segment ends with a blank tail and no segment follows (row 7).
    SegmentClosed,
    /// A record that is not whole or not ours (rows 3, 5, 8); `reason` says which check.
    Torn { reason: String },
    /// Body CRC mismatch (row 4).
    CrcMismatch { stored: u32, computed: u32 },
    /// The log has no segment (row 13).
    Empty,
}

/// What recovery found and did; logged at open and returned by
/// [`crate::MessageStore::recovery_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The `abort` file was present: the last run did not shut down cleanly.
    pub abnormal: bool,
    pub checkpoint: CheckpointState,
    /// Where the scan started (re-dispatch starts here too).
    pub scan_from_offset: i64,
    /// The recovered end of the log.
    pub log_end_offset: i64,
    pub tail: TailCase,
    /// Records found valid by the scan (and dispatched again).
    pub records_scanned: u64,
    /// Bytes past the end that were zeroed.
    pub bytes_zeroed: u64,
    /// Segments past the end that were deleted.
    pub segments_deleted: usize,
}

/// Called with every valid record the scan passes, and its position.
pub(crate) type Visit<'v> = dyn FnMut(&MessageView<'_>, i64) -> Result<()> + 'v;

/// How one position of the log reads.
enum Step {
    Record(i64),
    SegmentEnd,
    Stop(TailCase),
}

/// Classifies the bytes at `position` of `segment` (rows 1–8); hands a valid record to
/// `visit` before stepping over it.
fn step(segment: &Segment, position: i64, check_crc: bool, visit: &mut Visit<'_>) -> Result<Step> {
    let torn = |reason: String| Ok(Step::Stop(TailCase::Torn { reason }));
    let remaining = segment.end() - position;
    let (Some(size), Some(magic)) = (segment.i32_at(position), segment.i32_at(position + 4)) else {
        return torn("fewer than 8 bytes before the segment end".into());
    };
    if size == 0 && magic == 0 {
        return Ok(Step::Stop(TailCase::Zeros));
    }
    if magic == BLANK_MAGIC {
        if i64::from(size) == remaining {
            return Ok(Step::SegmentEnd);
        }
        return torn(format!("blank tail of {size} bytes, {remaining} remain"));
    }
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return torn(format!("magic {:#010X}", magic as u32));
    }
    let size = i64::from(size);
    if size < RECORD_BYTES_MIN || size + BLANK_TAIL_BYTES > remaining {
        return torn(format!("size {size} with {remaining} bytes left"));
    }
    let Some(bytes) = segment.slice(position, size) else {
        return torn("record runs past the mapping".into());
    };
    let view = match MessageView::parse(&bytes) {
        Ok(view) => view,
        Err(error) => return torn(error.to_string()),
    };
    if view.physical_offset != position {
        return torn(format!(
            "PHYSICALOFFSET {} at position {position}",
            view.physical_offset
        ));
    }
    if check_crc
        && let Err(karman_protocol::ProtocolError::BodyCrcMismatch { stored, computed }) =
            view.verify_body_crc()
    {
        return Ok(Step::Stop(TailCase::CrcMismatch { stored, computed }));
    }
    visit(&view, position)?;
    Ok(Step::Record(size))
}

/// Walks the log from `from`, handing every valid record to `visit`; returns the end, the
/// row that ended it, and how many records were valid.
pub(crate) fn scan(
    log: &CommitLog,
    from: i64,
    check_crc: bool,
    visit: &mut Visit<'_>,
) -> Result<(i64, TailCase, u64)> {
    let mut position = from;
    let mut records = 0;
    loop {
        let Some(segment) = log.segment_for(position) else {
            let closed = log.segments().last().is_some_and(|s| s.end() == position);
            let tail = if closed {
                TailCase::SegmentClosed
            } else {
                TailCase::Empty
            };
            return Ok((position, tail, records));
        };
        match step(&segment, position, check_crc, visit)? {
            Step::Record(size) => {
                position += size;
                records += 1;
            }
            Step::SegmentEnd => position = segment.end(),
            Step::Stop(tail) => return Ok((position, tail, records)),
        }
    }
}

/// Decides where the scan starts (rows 11, 12) and the line below which an invalid record
/// is corruption (row 10).
pub(crate) fn scan_start(log: &CommitLog, checkpoint: &CheckpointState) -> Result<(i64, i64)> {
    let min = log.min_offset();
    let last_end = log.segments().last().map_or(min, |s| s.end());
    match checkpoint {
        CheckpointState::Valid(cp) => {
            if cp.dispatched_phy_offset > last_end {
                return Err(StoreError::CheckpointAheadOfLog {
                    dispatched_offset: cp.dispatched_phy_offset,
                    log_end_offset: last_end,
                });
            }
            Ok((cp.dispatched_phy_offset.max(min), cp.confirm_phy_offset))
        }
        CheckpointState::Missing | CheckpointState::Torn => Ok((min, 0)),
    }
}

/// Refuses to cut data that fsync had covered (row 10).
pub(crate) fn check_not_below_confirmed(
    log: &CommitLog,
    end: i64,
    tail: &TailCase,
    confirmed: i64,
) -> Result<()> {
    if end >= confirmed || matches!(tail, TailCase::SegmentClosed | TailCase::Empty) {
        return Ok(());
    }
    let file = log
        .segment_for(end)
        .map(|s| s.path.clone())
        .unwrap_or_default();
    Err(StoreError::CorruptBeforeFlushed {
        file,
        offset: end,
        flushed_offset: confirmed,
        reason: format!("{tail:?}"),
    })
}

/// Zeroes every non-zero byte of the segment holding `end` from `end` on (rows 3–6, 8)
/// and deletes later segments (row 9). Returns (bytes zeroed, segments deleted).
pub(crate) fn cut_tail(log: &CommitLog, end: i64) -> Result<(u64, usize)> {
    let segments_after = log.segments().iter().filter(|s| s.start > end).count();
    log.delete_segments_from(end + 1)?;
    let Some(segment) = log.segment_for(end) else {
        return Ok((0, segments_after));
    };
    let from = usize::try_from(end - segment.start).unwrap_or(usize::MAX);
    let tail = segment.data.get(from..).unwrap_or_default();
    let Some(last_nonzero) = tail.iter().rposition(|b| *b != 0) else {
        return Ok((0, segments_after));
    };
    let dirty = last_nonzero + 1;
    let zeros = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < dirty {
        let n = (dirty - done).min(zeros.len());
        let at = u64::try_from(from + done).unwrap_or(u64::MAX);
        segment
            .file
            .write_all_at(zeros.get(..n).unwrap_or_default(), at)
            .map_err(|e| StoreError::io("zero torn tail", &segment.path, e))?;
        done += n;
    }
    segment
        .file
        .sync_data()
        .map_err(|e| StoreError::io("fdatasync", &segment.path, e))?;
    tracing::warn!(file = %segment.path.display(), offset = end, bytes = dirty, "zeroed commit-log bytes past the recovered end");
    Ok((dirty as u64, segments_after))
}

/// Checks bytes a replica received: whole, valid records from `offset` on, optionally
/// closed by a blank tail ending exactly at `segment_end`. Returns (topic, queue id, queue
/// offset) of every record that enters a consume queue.
pub(crate) fn validate_raw(
    offset: i64,
    bytes: &[u8],
    segment_end: i64,
) -> Result<Vec<(String, i32, i64)>> {
    let invalid = |at: i64, reason: String| StoreError::ReplicaBytesInvalid { offset: at, reason };
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let position = offset + at as i64;
        let rest = bytes.get(at..).unwrap_or_default();
        let (Some(size), Some(magic)) = (be_i32(rest, 0), be_i32(rest, 4)) else {
            return Err(invalid(position, "fewer than 8 bytes".into()));
        };
        if magic == BLANK_MAGIC {
            if position + i64::from(size) != segment_end
                || rest.len() != usize::try_from(size).unwrap_or(0)
            {
                return Err(invalid(
                    position,
                    "blank tail does not close the segment".into(),
                ));
            }
            break;
        }
        let view = MessageView::parse(rest).map_err(|e| invalid(position, e.to_string()))?;
        view.verify_body_crc()
            .map_err(|e| invalid(position, e.to_string()))?;
        if view.physical_offset != position
            || position + i64::from(size) + BLANK_TAIL_BYTES > segment_end
        {
            return Err(invalid(
                position,
                format!(
                    "record of PHYSICALOFFSET {} does not fit here",
                    view.physical_offset
                ),
            ));
        }
        if enters_consume_queue(view.sys_flag) {
            out.push((view.topic.to_owned(), view.queue_id, view.queue_offset));
        }
        at += view.record_len();
    }
    Ok(out)
}
