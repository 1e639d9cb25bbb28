//! Reput and dispatch: the thread that follows the commit log and builds consume queues
//! and the index from it (spec semantics §1.7). Crash recovery re-dispatches through the
//! same [`dispatch_record`], so live and recovered queues are built by one piece of code.
//!
//! After each record enters its consume queue the registered [`ArrivalListener`] is called
//! on the dispatcher thread, so the broker can wake pulls held on that (topic, queue).

use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::time::Duration;

use karman_protocol::message::property;
use karman_protocol::message::sysflag::message as sysflag;
use karman_protocol::message::{MessageView, tag_code};

use crate::append::enters_consume_queue;
use crate::commit_log::BLANK_TAIL_BYTES;
use crate::consume_queue::CqUnit;
use crate::error::{Result, StoreError};
use crate::store::Shared;
use crate::{CommitLogOffset, QueueOffset};
use karman_protocol::message::stored::BLANK_MAGIC;

/// The topic of delay-level messages; its tag slot holds the delivery time.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

/// One record that has just entered its consume queue.
#[derive(Debug)]
pub struct Arrival<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
    pub queue_offset: QueueOffset,
    pub tag_code: i64,
    pub store_timestamp_ms: i64,
    /// The whole record, for SQL92 filters that need properties.
    pub record: &'a MessageView<'a>,
}

/// Told about every dispatched record. Called on the dispatcher thread: keep it short and
/// never block (wake a task, push to a bounded channel).
pub trait ArrivalListener: Send + Sync + Debug {
    fn on_arrival(&self, arrival: &Arrival<'_>);
}

/// The consume-queue tag code of a record: Java `String.hashCode()` of TAGS, except in
/// `SCHEDULE_TOPIC_XXXX` where it is the delivery time, store time + delay(DELAY level),
/// with levels above the table clamped to its last entry (spec semantics §5.1).
pub fn cq_tag_code(view: &MessageView<'_>, delay_level_ms: &[i64]) -> i64 {
    let props = DispatchProperties::of(view.properties);
    tag_code_of(view, &props, delay_level_ms)
}

/// The properties dispatch reads, found in one pass over the string (the last occurrence
/// of a name wins, as in a decoded map).
#[derive(Debug, Default)]
struct DispatchProperties<'a> {
    tags: Option<&'a str>,
    keys: Option<&'a str>,
    uniq_key: Option<&'a str>,
    delay_level: Option<&'a str>,
}

impl<'a> DispatchProperties<'a> {
    fn of(text: &'a str) -> Self {
        let mut found = Self::default();
        for (name, value) in karman_protocol::message::properties::iter_pairs(text) {
            match name {
                property::TAGS => found.tags = Some(value),
                property::KEYS => found.keys = Some(value),
                property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX => found.uniq_key = Some(value),
                property::DELAY_TIME_LEVEL => found.delay_level = Some(value),
                _ => {}
            }
        }
        found
    }
}

fn tag_code_of(
    view: &MessageView<'_>,
    props: &DispatchProperties<'_>,
    delay_level_ms: &[i64],
) -> i64 {
    if view.topic == SCHEDULE_TOPIC {
        let level = props
            .delay_level
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(0);
        let delay_ms = match level {
            0 => 0,
            l => delay_level_ms
                .get(l - 1)
                .or_else(|| delay_level_ms.last())
                .copied()
                .unwrap_or(0),
        };
        return view.store_timestamp_ms.saturating_add(delay_ms);
    }
    tag_code(props.tags)
}

/// Dispatches one valid record: its consume-queue unit, its index keys (only at or past
/// `index_from`), the arrival notification.
pub(crate) fn dispatch_record(
    shared: &Shared,
    view: &MessageView<'_>,
    position: i64,
    index_from: i64,
) -> Result<()> {
    let props = DispatchProperties::of(view.properties);
    let tag_code = tag_code_of(view, &props, &shared.resolved.delay_level_ms);
    if enters_consume_queue(view.sys_flag) {
        let queue = shared.cqs.get_or_create(view.topic, view.queue_id)?;
        queue.put(
            view.queue_offset,
            CqUnit {
                commit_log_offset: CommitLogOffset(position),
                size_bytes: view.total_size,
                tag_code,
            },
        )?;
    }
    if let Some(index) = &shared.index
        && position >= index_from
        && sysflag::transaction_type(view.sys_flag) != sysflag::TRANSACTION_ROLLBACK_TYPE
    {
        let keys = props.keys.unwrap_or("").split(' ');
        for key in props
            .uniq_key
            .into_iter()
            .chain(keys)
            .filter(|k| !k.is_empty())
        {
            index.put(
                view.topic,
                key,
                position,
                view.store_timestamp_ms,
                &*shared.clock,
            )?;
        }
    }
    shared
        .last_dispatched_timestamp_ms
        .store(view.store_timestamp_ms, Ordering::Release);
    if let (Some(listener), true) = (&shared.listener, enters_consume_queue(view.sys_flag)) {
        listener.on_arrival(&Arrival {
            topic: view.topic,
            queue_id: view.queue_id,
            queue_offset: QueueOffset(view.queue_offset),
            tag_code,
            store_timestamp_ms: view.store_timestamp_ms,
            record: view,
        });
    }
    Ok(())
}

/// Dispatches every record in `[from, to)`; returns where it stopped (`to` unless a record
/// does not parse, which is an error with its file and offset).
pub(crate) fn dispatch_range(shared: &Shared, from: i64, to: i64) -> Result<i64> {
    let log = &shared.commit_log;
    let mut position = from.max(log.min_offset());
    while position < to {
        let Some(segment) = log.segment_for(position) else {
            return Ok(position);
        };
        let (size, magic) = (segment.i32_at(position), segment.i32_at(position + 4));
        if magic == Some(BLANK_MAGIC) {
            position = segment.end();
            continue;
        }
        let size = i64::from(size.unwrap_or(0));
        let record = segment
            .slice(position, size)
            .filter(|_| size > 0 && position + size + BLANK_TAIL_BYTES <= segment.end());
        let view = record
            .as_deref()
            .map(MessageView::parse)
            .transpose()
            .map_err(|source| StoreError::RecordInvalid {
                file: segment.path.clone(),
                offset: position,
                source,
            })?;
        let Some(view) = view else {
            return Err(StoreError::RecordInvalid {
                file: segment.path.clone(),
                offset: position,
                source: karman_protocol::ProtocolError::LengthOutOfRange {
                    what: "TOTALSIZE",
                    length: size,
                },
            });
        };
        dispatch_record(shared, &view, position, i64::MIN)?;
        position += size;
    }
    Ok(position)
}

/// Dispatches everything written but not yet dispatched. Returns false when the range
/// could not be finished (an unreadable record), true otherwise.
fn dispatch_pending(shared: &Shared) -> bool {
    loop {
        let end = shared.commit_log.written_offset();
        let from = shared.dispatched.load(Ordering::Acquire);
        if from >= end {
            return true;
        }
        match dispatch_range(shared, from, end) {
            Ok(reached) => shared.dispatched.store(reached, Ordering::Release),
            Err(error) => {
                tracing::error!(%error, "dispatch stopped at an unreadable record");
                return false;
            }
        }
    }
}

/// Called by the writer right after a batch reached the log: it dispatches the batch
/// itself, so a write costs no wake-up of another thread. When the dispatcher thread holds
/// the lock (catching up), the writer rings it instead.
pub(crate) fn dispatch_after_write(shared: &Shared) {
    match shared.dispatch_lock.try_lock() {
        Some(_dispatching) => {
            if !dispatch_pending(shared) {
                shared.dispatch_wakeup.notify();
            }
        }
        None => shared.dispatch_wakeup.notify(),
    }
}

/// The dispatcher thread: a fallback that follows `written_offset` until shutdown, then
/// drains; normally the writer has dispatched already.
pub(crate) fn run(shared: &Shared) {
    loop {
        let stopping = shared.dispatch_stop.load(Ordering::Acquire);
        let behind = shared.dispatched.load(Ordering::Acquire) < shared.commit_log.written_offset();
        if behind {
            let finished = {
                let _dispatching = shared.dispatch_lock.lock();
                dispatch_pending(shared)
            };
            if !finished {
                shared.dispatch_wakeup.wait(Duration::from_millis(1000));
            }
            continue;
        }
        if stopping {
            return;
        }
        shared.dispatch_wakeup.wait(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use karman_protocol::message::StoredRecord;

    fn record(topic: &str, properties: &[u8]) -> Vec<u8> {
        let record = StoredRecord {
            topic,
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp_ms: 1,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp_ms: 1_000_000,
            store_host: "127.0.0.1:2".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: b"x",
            properties,
        };
        let mut out = Vec::new();
        record.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn tag_code_is_the_tags_hash_or_the_delivery_time() {
        let levels =
            crate::config::parse_delay_levels(crate::config::MESSAGE_DELAY_LEVEL_DEFAULT).unwrap();
        let bytes = record("T", b"TAGS\x01TagA\x02");
        assert_eq!(
            cq_tag_code(&MessageView::parse(&bytes).unwrap(), &levels),
            2_598_919
        );
        let bytes = record("T", b"");
        assert_eq!(
            cq_tag_code(&MessageView::parse(&bytes).unwrap(), &levels),
            0
        );
        let bytes = record(SCHEDULE_TOPIC, b"DELAY\x013\x02TAGS\x01TagA\x02");
        assert_eq!(
            cq_tag_code(&MessageView::parse(&bytes).unwrap(), &levels),
            1_010_000
        );
        let bytes = record(SCHEDULE_TOPIC, b"DELAY\x0199\x02");
        assert_eq!(
            cq_tag_code(&MessageView::parse(&bytes).unwrap(), &levels),
            1_000_000 + 7_200_000
        );
    }
}
