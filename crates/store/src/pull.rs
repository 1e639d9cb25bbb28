//! The read path: pulls by queue offset with RocketMQ's statuses and caps, offsets by
//! time, and queries by key (spec remoting §3.2, §3.3, §3.9, §7.5; semantics §1.10).
//!
//! Every message handed out is a `Bytes` slice of the commit-log mapping: no copy between
//! the page cache and the socket buffer.

use bytes::Bytes;
use karman_protocol::message::{MessageView, property};

use crate::consume_queue::{ConsumeQueue, CqUnit};
use crate::store::MessageStore;
use crate::{CommitLogOffset, QueueOffset};

/// Decides which messages a pull returns. The tag-code check runs on consume-queue units
/// (cheap); the record check runs on the parsed record, only when `needs_record` is true
/// (SQL92 over properties).
pub trait MessageFilter {
    fn matches_tag_code(&self, tag_code: i64) -> bool;

    fn needs_record(&self) -> bool {
        false
    }

    fn matches_record(&self, _record: &MessageView<'_>) -> bool {
        true
    }
}

/// Accepts every message (`*`).
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAll;

impl MessageFilter for AcceptAll {
    fn matches_tag_code(&self, _tag_code: i64) -> bool {
        true
    }
}

/// Pull statuses (spec remoting §3.2); the broker maps them to response codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetMessageStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

impl GetMessageStatus {
    /// The Java constant name (the pull response remark).
    pub fn name(self) -> &'static str {
        match self {
            Self::Found => "FOUND",
            Self::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            Self::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
            Self::OffsetFoundNull => "OFFSET_FOUND_NULL",
            Self::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
            Self::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            Self::OffsetTooSmall => "OFFSET_TOO_SMALL",
            Self::NoMatchedLogicQueue => "NO_MATCHED_LOGIC_QUEUE",
            Self::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
        }
    }
}

/// The answer to one pull.
#[derive(Debug, Clone)]
pub struct GetMessageResult {
    pub status: GetMessageStatus,
    pub next_begin_offset: QueueOffset,
    pub min_offset: QueueOffset,
    pub max_offset: QueueOffset,
    /// Whole records, in queue order, each a slice of the mapped commit log.
    pub messages: Vec<Bytes>,
    pub message_queue_offsets: Vec<QueueOffset>,
    pub total_bytes: usize,
    /// The data pulled is colder than the hot window: the broker may redirect to a slave.
    pub suggest_pulling_from_slave: bool,
}

impl GetMessageResult {
    fn empty(status: GetMessageStatus, next: i64, min: i64, max: i64) -> Self {
        Self {
            status,
            next_begin_offset: QueueOffset(next),
            min_offset: QueueOffset(min),
            max_offset: QueueOffset(max),
            messages: Vec::new(),
            message_queue_offsets: Vec::new(),
            total_bytes: 0,
            suggest_pulling_from_slave: false,
        }
    }
}

/// `LOWER`: first message stored at or after the time; `UPPER`: last at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoundaryType {
    #[default]
    Lower,
    Upper,
}

/// Messages found by key, with the index's last update.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub messages: Vec<Bytes>,
    pub index_last_update_timestamp_ms: i64,
    pub index_last_update_phy_offset: i64,
}

/// The per-pull limits of spec §7.5, for one message of `size` bytes.
struct Caps {
    max_count: usize,
    max_bytes: usize,
    in_memory_count: usize,
    in_memory_bytes: usize,
    in_disk_count: usize,
    in_disk_bytes: usize,
}

impl Caps {
    /// RocketMQ's `isTheBatchFull`: never full before the first message.
    fn full(&self, size: usize, count: usize, bytes: usize, in_disk: bool) -> bool {
        if count == 0 || bytes == 0 {
            return false;
        }
        if count >= self.max_count || (self.max_bytes > 0 && bytes + size > self.max_bytes) {
            return true;
        }
        let (count_max, bytes_max) = if in_disk {
            (self.in_disk_count, self.in_disk_bytes)
        } else {
            (self.in_memory_count, self.in_memory_bytes)
        };
        bytes + size > bytes_max || count + 1 > count_max
    }
}

/// A cheap check that a consume-queue unit points at the start of the record it claims
/// (TOTALSIZE and magic), so a damaged unit can never make a pull serve other bytes.
fn looks_like_record(bytes: &[u8], size: i32) -> bool {
    use karman_protocol::message::stored::{MAGIC_V1, MAGIC_V2};
    let word = |at| crate::mapped_file::be_i32(bytes, at);
    word(0) == Some(size) && matches!(word(4), Some(MAGIC_V1 | MAGIC_V2))
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

impl MessageStore {
    fn queue(&self, topic: &str, queue_id: i32) -> Option<std::sync::Arc<ConsumeQueue>> {
        self.shared.cqs.get(topic, queue_id)
    }

    /// Reads up to `max_count` messages (and `max_bytes` if non-zero) from `offset`
    /// through `filter`, with the statuses and `nextBeginOffset` of spec §3.2.
    pub fn get_message(
        &self,
        topic: &str,
        queue_id: i32,
        offset: QueueOffset,
        max_count: usize,
        max_bytes: usize,
        filter: &dyn MessageFilter,
    ) -> GetMessageResult {
        use GetMessageStatus as S;
        let offset = offset.0;
        let Some(queue) = self.queue(topic, queue_id) else {
            return GetMessageResult::empty(S::NoMatchedLogicQueue, 0, 0, 0);
        };
        let (min, max) = (queue.min_offset().0, queue.max_offset().0);
        if max == 0 {
            return GetMessageResult::empty(S::NoMessageInQueue, 0, min, max);
        }
        if offset < min {
            return GetMessageResult::empty(S::OffsetTooSmall, min, min, max);
        }
        if offset == max {
            return GetMessageResult::empty(S::OffsetOverflowOne, offset, min, max);
        }
        if offset > max {
            return GetMessageResult::empty(S::OffsetOverflowBadly, max, min, max);
        }
        let config = &self.shared.config;
        let scan_units =
            to_usize(config.max_filter_message_size_bytes).max(max_count.saturating_mul(20)) / 20;
        let units = match queue.units_from(offset, scan_units.max(1)) {
            Ok(units) => units,
            Err(next_file) => {
                return GetMessageResult::empty(S::OffsetFoundNull, next_file, min, max);
            }
        };
        let mut result = GetMessageResult::empty(S::NoMatchedMessage, offset, min, max);
        self.select(&units, offset, max_count, max_bytes, filter, &mut result);
        result
    }

    /// Walks the units, applying caps and filter; fills `result`.
    fn select(
        &self,
        units: &[CqUnit],
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        filter: &dyn MessageFilter,
        result: &mut GetMessageResult,
    ) {
        use GetMessageStatus as S;
        let config = &self.shared.config;
        let caps = Caps {
            max_count: max_count.max(1),
            max_bytes,
            in_memory_count: to_usize(config.max_transfer_count_on_message_in_memory),
            in_memory_bytes: to_usize(config.max_transfer_bytes_on_message_in_memory),
            in_disk_count: to_usize(config.max_transfer_count_on_message_in_disk),
            in_disk_bytes: to_usize(config.max_transfer_bytes_on_message_in_disk),
        };
        let log = &self.shared.commit_log;
        let max_physical = log.written_offset();
        let hot_bytes = i64::try_from(
            self.shared.memory_total_bytes / 100
                * config.access_message_in_memory_max_ratio_percent,
        )
        .unwrap_or(i64::MAX);
        let (mut examined, mut last_physical, mut skip_below) = (0usize, max_physical, i64::MIN);
        for unit in units {
            let physical = unit.commit_log_offset.0;
            let size = usize::try_from(unit.size_bytes).unwrap_or(0);
            if unit.is_hole() || physical < skip_below {
                examined += 1;
                continue;
            }
            last_physical = physical;
            let in_disk = max_physical - physical > hot_bytes;
            if caps.full(size, result.messages.len(), result.total_bytes, in_disk) {
                break;
            }
            examined += 1;
            if !filter.matches_tag_code(unit.tag_code) {
                continue;
            }
            let Some(record) = log
                .read(physical, i64::from(unit.size_bytes))
                .filter(|r| looks_like_record(r, unit.size_bytes))
            else {
                if result.messages.is_empty() {
                    result.status = S::MessageWasRemoving;
                }
                skip_below =
                    physical - physical.rem_euclid(log.segment_bytes()) + log.segment_bytes();
                continue;
            };
            if filter.needs_record()
                && !MessageView::parse(&record).is_ok_and(|v| filter.matches_record(&v))
            {
                continue;
            }
            result.total_bytes += record.len();
            result.messages.push(record);
            result.message_queue_offsets.push(QueueOffset(
                offset + i64::try_from(examined).unwrap_or(0) - 1,
            ));
            result.status = S::Found;
        }
        result.next_begin_offset = QueueOffset(offset + i64::try_from(examined).unwrap_or(0));
        result.suggest_pulling_from_slave = max_physical - last_physical > hot_bytes;
    }

    /// First queue offset with data (GET_MIN_OFFSET).
    pub fn min_offset_in_queue(&self, topic: &str, queue_id: i32) -> QueueOffset {
        self.queue(topic, queue_id)
            .map_or(QueueOffset(0), |q| q.min_offset())
    }

    /// Offset of the next message to be written (GET_MAX_OFFSET); 0 for an unknown queue.
    pub fn max_offset_in_queue(&self, topic: &str, queue_id: i32) -> QueueOffset {
        self.queue(topic, queue_id)
            .map_or(QueueOffset(0), |q| q.max_offset())
    }

    /// The consume-queue unit at a queue offset (the schedule service reads delivery
    /// times from its tag code).
    pub fn cq_unit(&self, topic: &str, queue_id: i32, offset: QueueOffset) -> Option<CqUnit> {
        self.queue(topic, queue_id)?.unit(offset.0)
    }

    /// The commit-log offset of the message at a queue offset.
    pub fn commit_log_offset_in_queue(
        &self,
        topic: &str,
        queue_id: i32,
        offset: QueueOffset,
    ) -> Option<CommitLogOffset> {
        Some(
            self.queue(topic, queue_id)?
                .unit(offset.0)?
                .commit_log_offset,
        )
    }

    /// Store time of the record at a commit-log offset.
    pub fn store_timestamp_at(&self, offset: CommitLogOffset) -> Option<i64> {
        let record = self.shared.commit_log.read_record(offset.0)?;
        MessageView::parse(&record)
            .ok()
            .map(|v| v.store_timestamp_ms)
    }

    /// Store time of the message at a queue offset.
    pub fn message_store_timestamp(
        &self,
        topic: &str,
        queue_id: i32,
        offset: QueueOffset,
    ) -> Option<i64> {
        self.store_timestamp_at(self.commit_log_offset_in_queue(topic, queue_id, offset)?)
    }

    /// Store time of the queue's first message (GET_EARLIEST_MSG_STORETIME).
    pub fn earliest_message_time(&self, topic: &str, queue_id: i32) -> Option<i64> {
        let min = self.min_offset_in_queue(topic, queue_id);
        self.message_store_timestamp(topic, queue_id, min)
    }

    /// SEARCH_OFFSET_BY_TIMESTAMP: `Lower` gives the first offset stored at or after
    /// `timestamp_ms` (the max offset if none), `Upper` the last one stored at or before it
    /// (the min offset if none). Binary search over store times read from the log.
    pub fn offset_by_time(
        &self,
        topic: &str,
        queue_id: i32,
        timestamp_ms: i64,
        boundary: BoundaryType,
    ) -> QueueOffset {
        let Some(queue) = self.queue(topic, queue_id) else {
            return QueueOffset(0);
        };
        let (min, max) = (queue.min_offset().0, queue.max_offset().0);
        let time = |offset: i64| {
            queue
                .unit(offset)
                .and_then(|u| self.store_timestamp_at(u.commit_log_offset))
                .unwrap_or(i64::MIN)
        };
        // First offset in [min, max) whose time satisfies `past`; max if none.
        let partition = |past: &dyn Fn(i64) -> bool| {
            let (mut lo, mut hi) = (min, max);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if past(time(mid)) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        };
        match boundary {
            BoundaryType::Lower => QueueOffset(partition(&|t| t >= timestamp_ms)),
            BoundaryType::Upper => QueueOffset((partition(&|t| t > timestamp_ms) - 1).max(min)),
        }
    }

    /// QUERY_MESSAGE: records of `topic` whose UNIQ_KEY or a KEYS token is `key`, stored
    /// in `[begin_ms, end_ms]`, newest first, at most min(`max_count`, maxMsgsNumBatch).
    pub fn query_message(
        &self,
        topic: &str,
        key: &str,
        max_count: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> QueryResult {
        let Some(index) = &self.shared.index else {
            return QueryResult::default();
        };
        let (index_last_update_timestamp_ms, index_last_update_phy_offset) = index.last_update();
        let max_count = max_count.min(to_usize(self.shared.config.max_msgs_num_batch_count));
        let mut messages = Vec::new();
        for physical in index.query(topic, key, max_count, begin_ms, end_ms) {
            let Some(record) = self.shared.commit_log.read_record(physical) else {
                continue;
            };
            let matches = MessageView::parse(&record).is_ok_and(|v| {
                v.topic == topic
                    && (v.property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX) == Some(key)
                        || v.property(property::KEYS)
                            .is_some_and(|keys| keys.split(' ').any(|k| k == key)))
            });
            if matches {
                messages.push(record);
            }
        }
        QueryResult {
            messages,
            index_last_update_timestamp_ms,
            index_last_update_phy_offset,
        }
    }
}
