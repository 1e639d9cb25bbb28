//! Delay levels (spec semantics.md §5.1): a message with `DELAY=n` waits in
//! `SCHEDULE_TOPIC_XXXX` queue `n-1`, whose consume-queue tag slot holds its delivery time,
//! and is re-put to its real topic when due. Within one level messages fall due in the
//! order they were stored, so each level's progress is a single offset, persisted to
//! `config/delayOffset.json` every `flushDelayOffsetInterval` and at shutdown; after a
//! crash delivery resumes from the last persisted offset (at least once).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use karman_protocol::body::{DataVersion, DelayOffsetSerializeWrapper};
use karman_protocol::message::{MessageView, property};
use karman_store::{
    AcceptAll, Clock, GetMessageStatus, MessageStore, QueueOffset, cq_tag_code, parse_delay_levels,
};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::error::BrokerError;
use crate::json_file;
use crate::message::InnerMessage;
use crate::topic_table::name::SCHEDULE_TOPIC;

/// How often an idle level looks for new messages, and how soon a failed re-put retries.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Messages read per look at a level.
const BATCH_COUNT: usize = 32;

#[derive(Debug)]
pub struct ScheduleService {
    store: Arc<MessageStore>,
    store_host: SocketAddr,
    clock: Arc<dyn Clock>,
    delay_level_ms: Vec<i64>,
    /// Level (1-based) -> next schedule-queue offset to deliver.
    offsets: Mutex<BTreeMap<i32, i64>>,
    path: PathBuf,
}

impl ScheduleService {
    pub fn load(
        config_dir: PathBuf,
        delay_levels: &str,
        store: Arc<MessageStore>,
        store_host: SocketAddr,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BrokerError> {
        let path = config_dir.join("delayOffset.json");
        let stored: Option<DelayOffsetSerializeWrapper> = json_file::load(&path)?;
        // The store has validated the same table already.
        let delay_level_ms = parse_delay_levels(delay_levels).unwrap_or_default();
        Ok(Self {
            store,
            store_host,
            clock,
            delay_level_ms,
            offsets: Mutex::new(stored.map(|w| w.offset_table).unwrap_or_default()),
            path,
        })
    }

    pub fn max_level(&self) -> i32 {
        i32::try_from(self.delay_level_ms.len()).unwrap_or(i32::MAX)
    }

    /// Parks a message with a positive DELAY level in its level's schedule queue (levels
    /// past the table are clamped to the last). False when the message has no delay.
    pub fn park(&self, message: &mut InnerMessage) -> bool {
        let level = message.delay_level();
        if level <= 0 || self.delay_level_ms.is_empty() {
            return false;
        }
        let level = level.min(self.max_level());
        message
            .properties
            .insert(property::DELAY_TIME_LEVEL, level.to_string());
        message.park(SCHEDULE_TOPIC, level - 1);
        true
    }

    /// Progress of every level (GET_ALL_DELAY_OFFSET).
    pub fn offsets(&self) -> DelayOffsetSerializeWrapper {
        DelayOffsetSerializeWrapper {
            data_version: DataVersion::default(),
            offset_table: self.offsets.lock().clone(),
        }
    }

    pub fn persist(&self) {
        if let Err(error) = json_file::save(&self.path, &self.offsets()) {
            warn!(%error, "delay offsets not persisted");
        }
    }

    /// One delivery task per level, plus the periodic persister.
    pub fn spawn(
        self: &Arc<Self>,
        persist_every: Duration,
        stop: CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks: Vec<JoinHandle<()>> = (1..=self.max_level())
            .map(|level| tokio::spawn(self.clone().run_level(level, stop.clone())))
            .collect();
        let this = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(persist_every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => this.persist(),
                    _ = stop.cancelled() => {
                        this.persist();
                        return;
                    }
                }
            }
        }));
        tasks
    }

    async fn run_level(self: Arc<Self>, level: i32, stop: CancellationToken) {
        loop {
            let pause = self.deliver_due(level).await;
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Delivers what is due on one level; returns how long to wait before looking again.
    async fn deliver_due(&self, level: i32) -> Duration {
        let queue_id = level - 1;
        let offset = self.offsets.lock().get(&level).copied().unwrap_or(0);
        let result = self.store.get_message(
            SCHEDULE_TOPIC,
            queue_id,
            QueueOffset(offset),
            BATCH_COUNT,
            0,
            &AcceptAll,
        );
        match result.status {
            GetMessageStatus::Found => {}
            GetMessageStatus::OffsetTooSmall
            | GetMessageStatus::OffsetOverflowBadly
            | GetMessageStatus::MessageWasRemoving => {
                self.offsets
                    .lock()
                    .insert(level, result.next_begin_offset.0);
                return Duration::ZERO;
            }
            _ => return IDLE_POLL,
        }
        let delay_ms = self
            .delay_level_ms
            .get(usize::try_from(queue_id).unwrap_or(0))
            .copied()
            .unwrap_or(0);
        for (record, queue_offset) in result.messages.iter().zip(&result.message_queue_offsets) {
            let Ok(view) = MessageView::parse(record) else {
                warn!(
                    level,
                    offset = queue_offset.0,
                    "unreadable schedule record skipped"
                );
                self.offsets.lock().insert(level, queue_offset.0 + 1);
                continue;
            };
            let now = self.clock.now_ms();
            // A delivery time further out than the level's delay means the clock went back:
            // deliver now rather than wait for the old clock.
            let due = cq_tag_code(&view, &self.delay_level_ms).min(now + delay_ms);
            if due > now {
                return Duration::from_millis(u64::try_from(due - now).unwrap_or(0))
                    .min(IDLE_POLL * 10);
            }
            if !self.deliver(&view, record).await {
                return IDLE_POLL;
            }
            self.offsets.lock().insert(level, queue_offset.0 + 1);
        }
        Duration::ZERO
    }

    async fn deliver(&self, view: &MessageView<'_>, record: &Bytes) -> bool {
        let mut message = InnerMessage::from_stored(view, record);
        message.properties.remove(property::DELAY_TIME_LEVEL);
        message.properties.remove(property::TIMER_DELIVER_MS);
        message.properties.remove(property::TIMER_DELAY_SEC);
        message.properties.remove(property::TIMER_DELAY_MS);
        if !message.unpark() {
            warn!(
                offset = view.physical_offset,
                "delayed message without its real topic dropped"
            );
            return true;
        }
        // Delivery does not wait for flush: the schedule record already was durable.
        message
            .properties
            .insert(property::WAIT_STORE_MSG_OK, "false");
        let (topic, uniq) = (message.topic.clone(), message.uniq_key().map(str::to_owned));
        let result = self
            .store
            .append(message.into_append(self.store_host))
            .await;
        if result.status.is_ok() {
            debug!(topic = %topic, uniq = ?uniq, "delayed message delivered");
            true
        } else {
            warn!(topic = %topic, status = %result.status, "delayed message not delivered; retrying");
            false
        }
    }
}
