//! The put path: what the broker hands in, what it gets back, and the writer thread that
//! owns the commit-log tail (STYLE habit 7).
//!
//! ```text
//! append() ── encode + check (caller's task) ──► bounded queue ──► writer thread
//!                                   full? OS_PAGE_CACHE_BUSY       │ drains a batch,
//!                                                                  │ assigns offsets and
//!                                                                  │ store time, one pwrite,
//!                                                                  ▼ publishes the end
//!            ◄── PUT_OK (ASYNC_FLUSH, or WAIT=false) ──────────────┤
//!            ◄── PUT_OK once the group's fsync covers the record ──┘ (SYNC_FLUSH: the
//!                or FLUSH_DISK_TIMEOUT after syncFlushTimeout          writer fsyncs)
//! ```
//!
//! Records are encoded in the caller's task with placeholder offsets and time; the writer
//! patches the queue offset, physical offset and store timestamp in place (the body CRC
//! does not cover them), so the single writer thread does little more than a memcpy.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use bytes::Bytes;
use foldhash::HashMap;
use karman_protocol::message::StoredRecord;
use karman_protocol::message::properties::PROPERTIES_BYTES_MAX;
use karman_protocol::message::stored::{BLANK_MAGIC, position};
use karman_protocol::message::sysflag::message as sysflag;
use tokio::sync::oneshot;

use crate::answer::{Answer, deliver};
use crate::commit_log::{BLANK_TAIL_BYTES, CommitLog, Segment};
use crate::config::FlushDiskType;
use crate::error::{Result, StoreError};
use crate::flush::{GroupCommit, SyncWaiter};
use crate::mapped_file::put_at;
use crate::recovery::validate_raw;
use crate::store::Shared;
use crate::{CommitLogOffset, QueueOffset};

/// One message to store, as the broker's send processor fills it in (spec remoting §5.2).
#[derive(Debug, Clone)]
pub struct AppendMessage {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub body: Bytes,
    /// The encoded properties string (`name 0x01 value 0x02 ...`), UTF-8.
    pub properties: Bytes,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// The WAIT property: under SYNC_FLUSH, `false` answers without waiting for fsync.
    pub wait_store_msg_ok: bool,
}

/// Why a message was refused as MESSAGE_ILLEGAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IllegalReason {
    BodyTooLarge {
        body_bytes: usize,
        max_bytes: u64,
    },
    TopicTooLong {
        topic_bytes: usize,
    },
    PropertiesNotUtf8,
    BatchEmpty,
    BatchMixesQueues,
    BatchLargerThanSegment {
        batch_bytes: i64,
        segment_bytes: i64,
    },
}

/// Why the store cannot take writes (SERVICE_NOT_AVAILABLE).
#[derive(Debug, Clone, PartialEq)]
pub enum Unavailable {
    /// Disk usage passed a threshold; `threshold_key` names the broker.conf key.
    DiskFull {
        used_ratio: f64,
        threshold_ratio: f64,
        threshold_key: &'static str,
    },
    ShutDown,
    /// A write or fsync failed; the store turned read-only.
    WriteFailed,
    /// The store was made read-only ([`crate::MessageStore::set_read_only`]), as a slave
    /// is: only `append_raw` writes.
    ReadOnly,
}

/// RocketMQ's `PutMessageStatus`, with the facts behind refusals.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendStatus {
    PutOk,
    /// Written, but fsync did not cover it within `syncFlushTimeout`.
    FlushDiskTimeout,
    MessageIllegal(IllegalReason),
    PropertiesSizeExceeded {
        properties_bytes: usize,
    },
    ServiceNotAvailable(Unavailable),
    /// The append queue is full; the broker answers SYSTEM_BUSY.
    OsPageCacheBusy,
    UnknownError,
}

impl AppendStatus {
    /// The Java constant name, used as a response remark.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PutOk => "PUT_OK",
            Self::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            Self::MessageIllegal(_) => "MESSAGE_ILLEGAL",
            Self::PropertiesSizeExceeded { .. } => "PROPERTIES_SIZE_EXCEEDED",
            Self::ServiceNotAvailable(_) => "SERVICE_NOT_AVAILABLE",
            Self::OsPageCacheBusy => "OS_PAGE_CACHE_BUSY",
            Self::UnknownError => "UNKNOWN_ERROR",
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Self::PutOk)
    }
}

impl fmt::Display for AppendStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MessageIllegal(reason) => write!(f, "MESSAGE_ILLEGAL: {reason:?}"),
            Self::PropertiesSizeExceeded { properties_bytes } => write!(
                f,
                "PROPERTIES_SIZE_EXCEEDED: {properties_bytes} bytes, max {PROPERTIES_BYTES_MAX}"
            ),
            Self::ServiceNotAvailable(Unavailable::DiskFull {
                used_ratio,
                threshold_ratio,
                threshold_key,
            }) => write!(
                f,
                "SERVICE_NOT_AVAILABLE: disk full: usage {used_ratio:.3} passed {threshold_key} {threshold_ratio:.2}"
            ),
            Self::ServiceNotAvailable(why) => write!(f, "SERVICE_NOT_AVAILABLE: {why:?}"),
            other => f.write_str(other.name()),
        }
    }
}

/// What an append returns. For a batch the offsets are those of its first message.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendResult {
    pub status: AppendStatus,
    pub physical_offset: CommitLogOffset,
    pub queue_offset: QueueOffset,
    pub store_timestamp_ms: i64,
    /// Bytes written (all records of a batch).
    pub record_bytes: i64,
    pub message_count: usize,
    pub store_host: Option<SocketAddr>,
}

impl AppendResult {
    pub(crate) fn refused(status: AppendStatus) -> Self {
        Self {
            status,
            physical_offset: CommitLogOffset(0),
            queue_offset: QueueOffset(0),
            store_timestamp_ms: 0,
            record_bytes: 0,
            message_count: 0,
            store_host: None,
        }
    }

    /// The offsetMsgId of the (first) stored record: store host and physical offset.
    pub fn offset_msg_id(&self) -> Option<String> {
        let host = self.store_host?;
        Some(karman_protocol::message::id::offset_msg_id(
            host,
            self.physical_offset.0,
        ))
    }
}

/// A record encoded with placeholder offsets and time.
#[derive(Debug)]
pub(crate) struct EncodedRecord {
    bytes: Vec<u8>,
    store_timestamp_at: usize,
    enters_consume_queue: bool,
}

/// Encodes one message, refusing what the spec refuses.
pub(crate) fn encode(
    msg: &AppendMessage,
    max_body_bytes: u64,
) -> Result<EncodedRecord, AppendStatus> {
    if msg.body.len() as u64 > max_body_bytes {
        return Err(AppendStatus::MessageIllegal(IllegalReason::BodyTooLarge {
            body_bytes: msg.body.len(),
            max_bytes: max_body_bytes,
        }));
    }
    if msg.properties.len() > PROPERTIES_BYTES_MAX {
        return Err(AppendStatus::PropertiesSizeExceeded {
            properties_bytes: msg.properties.len(),
        });
    }
    if msg.topic.len() > usize::from(u8::MAX) {
        return Err(AppendStatus::MessageIllegal(IllegalReason::TopicTooLong {
            topic_bytes: msg.topic.len(),
        }));
    }
    if std::str::from_utf8(&msg.properties).is_err() {
        return Err(AppendStatus::MessageIllegal(
            IllegalReason::PropertiesNotUtf8,
        ));
    }
    let record = StoredRecord {
        topic: &msg.topic,
        queue_id: msg.queue_id,
        flag: msg.flag,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: msg.sys_flag,
        born_timestamp_ms: msg.born_timestamp_ms,
        born_host: msg.born_host,
        store_timestamp_ms: 0,
        store_host: msg.store_host,
        reconsume_times: msg.reconsume_times,
        prepared_transaction_offset: msg.prepared_transaction_offset,
        body: &msg.body,
        properties: &msg.properties,
    };
    let len = record.encoded_len().map_err(|_| {
        AppendStatus::MessageIllegal(IllegalReason::BodyTooLarge {
            body_bytes: msg.body.len(),
            max_bytes: max_body_bytes,
        })
    })?;
    let mut bytes = Vec::with_capacity(len);
    record
        .encode(&mut bytes)
        .map_err(|_| AppendStatus::UnknownError)?;
    let born_host_bytes = if msg.born_host.is_ipv6() { 20 } else { 8 };
    Ok(EncodedRecord {
        bytes,
        store_timestamp_at: position::BORN_HOST + born_host_bytes,
        enters_consume_queue: enters_consume_queue(msg.sys_flag),
    })
}

/// PREPARED and ROLLBACK records get queue offset 0 and never enter a consume queue.
pub(crate) fn enters_consume_queue(sys_flag: i32) -> bool {
    matches!(
        sysflag::transaction_type(sys_flag),
        sysflag::TRANSACTION_NOT_TYPE | sysflag::TRANSACTION_COMMIT_TYPE
    )
}

/// Work for the writer thread.
#[derive(Debug)]
pub(crate) enum WriteRequest {
    Append {
        /// SYNC_FLUSH with WAIT: answered once an fsync covers it.
        wait: bool,
        topic: String,
        queue_id: i32,
        records: Vec<EncodedRecord>,
        store_host: SocketAddr,
        reply: oneshot::Sender<AppendResult>,
        /// Where the answer is delivered ([`crate::answer`]).
        runtime: Option<tokio::runtime::Handle>,
    },
    Raw {
        offset: i64,
        bytes: Bytes,
        reply: oneshot::Sender<Result<i64>>,
    },
    ForgetTopic {
        topic: String,
    },
    Stop,
}

/// The next queue offset of each queue, by topic and queue id. The writer looks it up for
/// every append, so it hashes with foldhash: SipHash cost it more than the lookup.
pub(crate) type QueueOffsets = HashMap<String, HashMap<i32, i64>>;

/// Most bytes one writer batch gathers before writing.
const BATCH_BYTES_MAX: usize = 4 << 20;

/// The writer thread's state: the tail of the log and the next queue offset of each queue.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    segment: Option<Arc<Segment>>,
    /// Next physical offset to assign.
    position: i64,
    buffer: Vec<u8>,
    buffer_start: i64,
    queue_offsets: QueueOffsets,
    last_store_timestamp_ms: i64,
    /// Appends with WAIT placed in the batch being built, answered after the fsync.
    batch_waiters: Vec<SyncWaiter>,
    group: GroupCommit,
    sync_flush_timeout: Duration,
}

impl Writer {
    pub fn new(shared: Arc<Shared>, queue_offsets: QueueOffsets) -> Self {
        let position = shared.commit_log.written_offset();
        let segment = shared.commit_log.segment_for(position);
        let sync_flush_timeout = Duration::from_millis(shared.config.sync_flush_timeout_ms);
        Self {
            shared,
            segment,
            position,
            buffer: Vec::with_capacity(BATCH_BYTES_MAX + (1 << 20)),
            buffer_start: position,
            queue_offsets,
            last_store_timestamp_ms: 0,
            batch_waiters: Vec::new(),
            group: GroupCommit::default(),
            sync_flush_timeout,
        }
    }

    pub fn set_last_store_timestamp(&mut self, timestamp_ms: i64) {
        self.last_store_timestamp_ms = timestamp_ms;
    }

    /// Runs until a `Stop` request or until every sender is gone.
    pub fn run(mut self, rx: &Receiver<WriteRequest>) {
        let mut replies: Vec<Answer> = Vec::new();
        loop {
            let first = match self.group.wait_for_more(&self.shared) {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(wait) if wait.is_zero() => Err(RecvTimeoutError::Timeout),
                Some(wait) => rx.recv_timeout(wait),
            };
            let first = match first {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    self.group.commit(&self.shared);
                    crate::dispatch::dispatch_after_write(&self.shared);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut next = Some(first);
            let mut stop = false;
            while let Some(request) = next.take() {
                match request {
                    WriteRequest::Append {
                        wait,
                        topic,
                        queue_id,
                        records,
                        store_host,
                        reply,
                        runtime,
                    } => {
                        let result = self.place(&topic, queue_id, records, store_host);
                        let end = result.physical_offset.0 + result.record_bytes;
                        let wait = wait && result.status.is_ok();
                        let answer = Answer {
                            reply,
                            result,
                            runtime,
                        };
                        if wait {
                            self.batch_waiters.push(SyncWaiter { end, answer });
                        } else {
                            replies.push(answer);
                        }
                    }
                    WriteRequest::Raw {
                        offset,
                        bytes,
                        reply,
                    } => {
                        self.finish_batch(&mut replies);
                        let _ = reply.send(self.append_raw(offset, &bytes));
                    }
                    WriteRequest::ForgetTopic { topic } => {
                        self.queue_offsets.remove(&topic);
                    }
                    WriteRequest::Stop => stop = true,
                }
                if !stop && self.buffer.len() < BATCH_BYTES_MAX {
                    next = rx.try_recv().ok();
                }
            }
            self.finish_batch(&mut replies);
            if stop {
                break;
            }
        }
        if self.group.wait_for_more(&self.shared).is_some() {
            self.group.commit(&self.shared);
        }
    }

    /// Writes the batch, publishes its end, answers its requests (parks those that wait
    /// for an fsync, and commits their group once it is complete), then dispatches.
    fn finish_batch(&mut self, replies: &mut Vec<Answer>) {
        if let Err(error) = self.write_buffer() {
            tracing::error!(%error, "commit-log write failed; the store is now read-only");
            self.shared.flags.set_write_failed();
            self.position = self.shared.commit_log.written_offset();
            replies.extend(self.batch_waiters.drain(..).map(|w| w.answer));
            for answer in replies.iter_mut().filter(|a| a.result.status.is_ok()) {
                answer.result.status = AppendStatus::UnknownError;
            }
        } else {
            self.shared.commit_log.publish_written(self.position);
            self.group.written(self.batch_waiters.len());
            self.shared
                .sync_waiters
                .park(&mut self.batch_waiters, self.sync_flush_timeout);
        }
        if !replies.is_empty() {
            deliver(std::mem::take(replies));
        }
        if self.shared.config.flush_disk_type == FlushDiskType::SyncFlush {
            match self.group.wait_for_more(&self.shared) {
                Some(wait) if wait.is_zero() => self.group.commit(&self.shared),
                // The group is still gathering: its appenders wait for the fsync, not for
                // consume queues and index, so dispatch once it is answered.
                Some(_) => return,
                None => {}
            }
        }
        crate::dispatch::dispatch_after_write(&self.shared);
    }

    fn write_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let segment = self.segment.as_ref().ok_or(StoreError::OffsetOutOfRange {
            offset: self.buffer_start,
            min_offset: 0,
            max_offset: 0,
        })?;
        let outcome = CommitLog::write_at(segment, self.buffer_start, &self.buffer);
        self.buffer.clear();
        self.buffer_start = self.position;
        outcome
    }

    /// Makes room for `bytes` at the tail: a blank tail and a new segment when needed.
    fn reserve(&mut self, bytes: i64) -> Result<()> {
        let fits =
            |segment: &Segment, position: i64| position + bytes + BLANK_TAIL_BYTES <= segment.end();
        match &self.segment {
            Some(segment) if fits(segment, self.position) => return Ok(()),
            Some(segment) if self.position < segment.end() => {
                let remaining = segment.end() - self.position;
                let mut blank = [0u8; 8];
                put_at(
                    &mut blank,
                    0,
                    &i32::try_from(remaining).unwrap_or(i32::MAX).to_be_bytes(),
                );
                put_at(&mut blank, 4, &BLANK_MAGIC.to_be_bytes());
                self.buffer.extend_from_slice(&blank);
                self.position = segment.end();
            }
            _ => {}
        }
        self.write_buffer()?;
        let start = self.position
            - self
                .position
                .rem_euclid(self.shared.commit_log.segment_bytes());
        self.roll_to(start)?;
        self.buffer_start = self.position;
        Ok(())
    }

    /// Makes the segment starting at `start` the tail, warmed if the warmer has it ready,
    /// and asks for the one after it.
    fn roll_to(&mut self, start: i64) -> Result<()> {
        let warmer = &self.shared.warmer;
        let segment = self
            .shared
            .commit_log
            .create_segment(start, warmer.take(start))?;
        warmer.request(segment.end());
        self.segment = Some(segment);
        Ok(())
    }

    /// Assigns offsets and time to one request's records and buffers them.
    fn place(
        &mut self,
        topic: &str,
        queue_id: i32,
        mut records: Vec<EncodedRecord>,
        store_host: SocketAddr,
    ) -> AppendResult {
        if let Some(why) = self.shared.flags.unavailable() {
            return AppendResult::refused(AppendStatus::ServiceNotAvailable(why));
        }
        let total: i64 = records.iter().map(|r| r.bytes.len() as i64).sum();
        let segment_bytes = self.shared.commit_log.segment_bytes();
        if total + BLANK_TAIL_BYTES > segment_bytes {
            return AppendResult::refused(AppendStatus::MessageIllegal(
                IllegalReason::BatchLargerThanSegment {
                    batch_bytes: total,
                    segment_bytes,
                },
            ));
        }
        if let Err(error) = self.reserve(total) {
            tracing::error!(%error, "could not roll the commit log; the store is now read-only");
            self.shared.flags.set_write_failed();
            return AppendResult::refused(AppendStatus::UnknownError);
        }
        let now = self.shared.clock.now_ms();
        let store_timestamp_ms = now.max(self.last_store_timestamp_ms);
        self.last_store_timestamp_ms = store_timestamp_ms;
        let first_queue = self.queue_offset(topic, queue_id);
        let mut next = first_queue;
        let first_physical = self.position;
        for record in &mut records {
            let queue_offset = if record.enters_consume_queue { next } else { 0 };
            put_at(
                &mut record.bytes,
                position::QUEUE_OFFSET,
                &queue_offset.to_be_bytes(),
            );
            put_at(
                &mut record.bytes,
                position::PHYSICAL_OFFSET,
                &self.position.to_be_bytes(),
            );
            put_at(
                &mut record.bytes,
                record.store_timestamp_at,
                &store_timestamp_ms.to_be_bytes(),
            );
            if record.enters_consume_queue {
                next += 1;
            }
            self.position += record.bytes.len() as i64;
            self.buffer.extend_from_slice(&record.bytes);
        }
        self.set_queue_offset(topic, queue_id, next);
        let first_enters = records.first().is_some_and(|r| r.enters_consume_queue);
        self.shared.stats.record_put(records.len(), total);
        AppendResult {
            status: AppendStatus::PutOk,
            physical_offset: CommitLogOffset(first_physical),
            queue_offset: QueueOffset(if first_enters { first_queue } else { 0 }),
            store_timestamp_ms,
            record_bytes: total,
            message_count: records.len(),
            store_host: Some(store_host),
        }
    }

    fn queue_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queue_offsets
            .get(topic)
            .and_then(|queues| queues.get(&queue_id))
            .copied()
            .unwrap_or(0)
    }

    fn set_queue_offset(&mut self, topic: &str, queue_id: i32, next: i64) {
        match self.queue_offsets.get_mut(topic) {
            Some(queues) => {
                queues.insert(queue_id, next);
            }
            None => {
                self.queue_offsets
                    .insert(topic.to_owned(), HashMap::from_iter([(queue_id, next)]));
            }
        }
    }

    /// A replica's write: `bytes` must continue the log exactly and be whole records (or
    /// end with a blank tail that closes the segment).
    fn append_raw(&mut self, offset: i64, bytes: &[u8]) -> Result<i64> {
        if offset != self.position {
            return Err(StoreError::ReplicaOffsetMismatch {
                expected_offset: self.position,
                actual_offset: offset,
            });
        }
        let segment_bytes = self.shared.commit_log.segment_bytes();
        let segment_end = offset - offset.rem_euclid(segment_bytes) + segment_bytes;
        let records = validate_raw(offset, bytes, segment_end)?;
        if self.segment.as_ref().is_none_or(|s| s.end() <= offset) {
            self.roll_to(offset - offset.rem_euclid(segment_bytes))?;
        }
        self.buffer_start = offset;
        self.buffer.extend_from_slice(bytes);
        self.position = offset + bytes.len() as i64;
        for (topic, queue_id, queue_offset) in records {
            let next = self.queue_offset(&topic, queue_id).max(queue_offset + 1);
            self.set_queue_offset(&topic, queue_id, next);
        }
        self.write_buffer()?;
        self.shared.commit_log.publish_written(self.position);
        Ok(self.position)
    }
}
