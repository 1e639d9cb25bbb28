//! Timer messages: delivery at an arbitrary time (spec semantics.md §5.2, remoting.md
//! §7.4), triggered by `TIMER_DELIVER_MS` (absolute), `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`
//! (relative) or the Alibaba Cloud SDKs' `__STARTDELIVERTIME` (absolute), which Apache
//! brokers ignore.
//!
//! A timer message is parked in `rmq_sys_wheel_timer` queue 0 with `TIMER_OUT_MS`; that
//! consume queue is the durable log. The service reads it into a min-heap by delivery time
//! and re-puts each message to its real topic when due. Because delivery runs in time
//! order, progress is one watermark — every message due before `done_ms` has been
//! delivered — persisted to `config/timercheck` every second and at shutdown. A restart
//! rescans the timer queue from `done_ms` minus the longest delay ever accepted, so no
//! message is lost, and only those delivered since the last persisted watermark can be
//! delivered twice (at least once).
//!
//! Karman delivers a timer message no earlier than the time asked for. RocketMQ's wheel
//! rounds the time down to `timerPrecisionMs` and may deliver up to one step early.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use karman_protocol::ResponseCode;
use karman_protocol::message::{MessageView, property};
use karman_remoting::ProcessError;
use karman_store::{
    AcceptAll, BoundaryType, Clock, CommitLogOffset, GetMessageStatus, MessageStore, QueueOffset,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::error::BrokerError;
use crate::json_file;
use crate::message::InnerMessage;
use crate::topic_table::name::TIMER_TOPIC;

/// Timer messages held in memory at most; past it, reading the timer queue pauses until
/// deliveries make room (the queue on disk keeps the rest).
pub const HEAP_CAPACITY: usize = 1_000_000;
/// How often the watermark is persisted.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long the service sleeps with nothing due, unless woken.
const IDLE_SLEEP: Duration = Duration::from_secs(1);
const READ_BATCH: usize = 256;

/// The trigger properties, in the order they are honoured.
const TRIGGERS: [&str; 4] = [
    property::TIMER_DELIVER_MS,
    property::TIMER_DELAY_SEC,
    property::TIMER_DELAY_MS,
    property::START_DELIVER_TIME,
];

/// Limits a timer send is checked against.
#[derive(Debug, Clone, Copy)]
pub struct TimerLimits {
    pub enabled: bool,
    pub max_delay_ms: i64,
}

/// The absolute delivery time a message asks for, if any trigger property is set.
pub fn requested_delivery_ms(message: &InnerMessage, now_ms: i64) -> Option<i64> {
    let value = |key| {
        message
            .properties
            .get(key)
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    if let Some(at) = value(property::TIMER_DELIVER_MS) {
        return Some(at);
    }
    if let Some(seconds) = value(property::TIMER_DELAY_SEC) {
        return Some(now_ms.saturating_add(seconds.saturating_mul(1000)));
    }
    if let Some(ms) = value(property::TIMER_DELAY_MS) {
        return Some(now_ms.saturating_add(ms));
    }
    value(property::START_DELIVER_TIME)
}

/// Parks a timer message in the timer queue. `Ok(false)`: no timer, or its time has
/// passed (deliver at once). Errors carry the response code a RocketMQ broker answers.
pub fn park(
    message: &mut InnerMessage,
    limits: TimerLimits,
    now_ms: i64,
) -> Result<bool, ProcessError> {
    let Some(deliver_ms) = requested_delivery_ms(message, now_ms) else {
        return Ok(false);
    };
    if deliver_ms <= now_ms {
        return Ok(false);
    }
    if !limits.enabled {
        return Err(ProcessError::system_error(
            "timer messages are disabled on this broker (timerWheelEnable=false)",
        ));
    }
    if deliver_ms - now_ms > limits.max_delay_ms {
        return Err(ProcessError::new(
            ResponseCode::MessageIllegal,
            format!(
                "timer message delivery time is {} ms ahead, more than timerMaxDelaySec allows ({} ms)",
                deliver_ms - now_ms,
                limits.max_delay_ms
            ),
        ));
    }
    message
        .properties
        .insert(property::TIMER_OUT_MS, deliver_ms.to_string());
    message.park(TIMER_TOPIC, 0);
    Ok(true)
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TimerCheckpoint {
    done_ms: i64,
    max_delay_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    deliver_ms: i64,
    physical_offset: i64,
}

#[derive(Debug, Default)]
struct State {
    heap: BinaryHeap<Reverse<Pending>>,
    /// A message popped but not yet re-put: the watermark must not pass it.
    in_flight: Option<i64>,
    /// Next timer-queue offset to read into the heap.
    read_offset: i64,
    done_ms: i64,
    max_delay_ms: i64,
}

#[derive(Debug)]
pub struct TimerService {
    store: Arc<MessageStore>,
    store_host: SocketAddr,
    clock: Arc<dyn Clock>,
    path: PathBuf,
    state: Mutex<State>,
    /// Woken by the dispatcher when a timer message is stored.
    wake: Arc<Notify>,
    delivered: AtomicI64,
}

impl TimerService {
    pub fn load(
        config_dir: PathBuf,
        store: Arc<MessageStore>,
        store_host: SocketAddr,
        clock: Arc<dyn Clock>,
        max_delay_ms: i64,
        wake: Arc<Notify>,
    ) -> Result<Self, BrokerError> {
        let path = config_dir.join("timercheck");
        let checkpoint: TimerCheckpoint = json_file::load(&path)?.unwrap_or_default();
        let max_delay_ms = checkpoint.max_delay_ms.max(max_delay_ms);
        // Everything stored before done - maxDelay fell due before done: delivered.
        let rescan_from_ms = checkpoint.done_ms.saturating_sub(max_delay_ms).max(0);
        let read_offset = if checkpoint.done_ms == 0 {
            store.min_offset_in_queue(TIMER_TOPIC, 0).0
        } else {
            store
                .offset_by_time(TIMER_TOPIC, 0, rescan_from_ms, BoundaryType::Lower)
                .0
        };
        Ok(Self {
            store,
            store_host,
            clock,
            path,
            state: Mutex::new(State {
                read_offset,
                done_ms: checkpoint.done_ms,
                max_delay_ms,
                ..State::default()
            }),
            wake,
            delivered: AtomicI64::new(0),
        })
    }

    /// Raises the longest delay accepted (remembered so a restart rescans far enough).
    pub fn note_delay(&self, delay_ms: i64) {
        let mut state = self.state.lock();
        state.max_delay_ms = state.max_delay_ms.max(delay_ms);
    }

    /// Messages waiting in memory, for runtime stats.
    pub fn pending_count(&self) -> usize {
        self.state.lock().heap.len()
    }

    pub fn delivered_count(&self) -> i64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn spawn(self: &Arc<Self>, stop: CancellationToken) -> Vec<JoinHandle<()>> {
        let deliverer = tokio::spawn(self.clone().run(stop.clone()));
        let this = self.clone();
        let checkpointer = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(CHECKPOINT_EVERY);
            loop {
                tokio::select! {
                    _ = ticker.tick() => this.persist(),
                    _ = stop.cancelled() => {
                        this.persist();
                        return;
                    }
                }
            }
        });
        vec![deliverer, checkpointer]
    }

    fn persist(&self) {
        let checkpoint = {
            let mut state = self.state.lock();
            self.advance_watermark(&mut state);
            TimerCheckpoint {
                done_ms: state.done_ms,
                max_delay_ms: state.max_delay_ms,
            }
        };
        if let Err(error) = json_file::save(&self.path, &checkpoint) {
            warn!(%error, "timer checkpoint not persisted");
        }
    }

    /// `done_ms` may pass a time only when every message due before it has been read into
    /// the heap and re-put.
    fn advance_watermark(&self, state: &mut State) {
        let caught_up = state.read_offset >= self.store.max_offset_in_queue(TIMER_TOPIC, 0).0;
        if !caught_up {
            return;
        }
        let mut done = self.clock.now_ms();
        if let Some(Reverse(top)) = state.heap.peek() {
            done = done.min(top.deliver_ms);
        }
        if let Some(in_flight) = state.in_flight {
            done = done.min(in_flight);
        }
        state.done_ms = state.done_ms.max(done);
    }

    async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            self.read_into_heap();
            let pause = self.deliver_due().await;
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Moves newly stored timer messages from the timer queue into the heap.
    fn read_into_heap(&self) {
        loop {
            let (offset, room) = {
                let state = self.state.lock();
                (
                    state.read_offset,
                    HEAP_CAPACITY.saturating_sub(state.heap.len()),
                )
            };
            if room == 0 {
                return;
            }
            let count = READ_BATCH.min(room);
            let result =
                self.store
                    .get_message(TIMER_TOPIC, 0, QueueOffset(offset), count, 0, &AcceptAll);
            match result.status {
                GetMessageStatus::Found => {}
                GetMessageStatus::OffsetTooSmall
                | GetMessageStatus::OffsetOverflowBadly
                | GetMessageStatus::MessageWasRemoving => {
                    self.state.lock().read_offset = result.next_begin_offset.0;
                    continue;
                }
                _ => return,
            }
            let mut state = self.state.lock();
            for record in &result.messages {
                let Ok(view) = MessageView::parse(record) else {
                    continue;
                };
                let deliver_ms = view
                    .property(property::TIMER_OUT_MS)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(view.store_timestamp_ms);
                if deliver_ms >= state.done_ms {
                    state.heap.push(Reverse(Pending {
                        deliver_ms,
                        physical_offset: view.physical_offset,
                    }));
                }
            }
            state.read_offset = result.next_begin_offset.0;
        }
    }

    /// Re-puts every due message; returns how long until the next one is due.
    async fn deliver_due(&self) -> Duration {
        loop {
            let next = {
                let mut state = self.state.lock();
                let now = self.clock.now_ms();
                match state.heap.peek() {
                    Some(Reverse(top)) if top.deliver_ms <= now => {
                        let top = *top;
                        state.heap.pop();
                        state.in_flight = Some(top.deliver_ms);
                        Ok(top)
                    }
                    Some(Reverse(top)) => Err(Duration::from_millis(
                        u64::try_from(top.deliver_ms - now).unwrap_or(0),
                    )),
                    None => Err(IDLE_SLEEP),
                }
            };
            let pending = match next {
                Ok(pending) => pending,
                Err(wait) => return wait.min(IDLE_SLEEP),
            };
            let delivered = self.deliver(pending).await;
            let mut state = self.state.lock();
            state.in_flight = None;
            if !delivered {
                state.heap.push(Reverse(pending));
                return Duration::from_millis(100);
            }
        }
    }

    async fn deliver(&self, pending: Pending) -> bool {
        let Some(record) = self
            .store
            .read_message(CommitLogOffset(pending.physical_offset))
        else {
            warn!(
                offset = pending.physical_offset,
                "timer message no longer in the commit log; skipped"
            );
            return true;
        };
        let Ok(view) = MessageView::parse(&record) else {
            warn!(
                offset = pending.physical_offset,
                "unreadable timer record skipped"
            );
            return true;
        };
        let mut message = InnerMessage::from_stored(&view, &record);
        for trigger in TRIGGERS {
            message.properties.remove(trigger);
        }
        if !message.unpark() {
            warn!(
                offset = pending.physical_offset,
                "timer message without its real topic dropped"
            );
            return true;
        }
        message
            .properties
            .insert(property::WAIT_STORE_MSG_OK, "false");
        let topic = message.topic.clone();
        let result = self
            .store
            .append(message.into_append(self.store_host))
            .await;
        if result.status.is_ok() {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            debug!(topic = %topic, due = pending.deliver_ms, "timer message delivered");
            true
        } else {
            warn!(topic = %topic, status = %result.status, "timer message not delivered; retrying");
            false
        }
    }
}
