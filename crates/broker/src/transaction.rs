//! Transactional messages (spec remoting.md §3.7, §7.9; semantics.md §6).
//!
//! A half message waits in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0, invisible to consumers.
//! END_TRANSACTION commits it (a copy goes to its real topic and queue) or rolls it back;
//! either way an op record naming the half's queue offset goes to
//! `RMQ_SYS_TRANS_OP_HALF_TOPIC`, which is the durable "decided" set. A check-back service
//! asks a live producer of the half's group about every half still undecided past the
//! transaction timeout, every `transactionCheckInterval`; after `transactionCheckMax`
//! checks the half is moved to `TRANS_CHECK_MAX_TIME_TOPIC` and logged.
//!
//! Unlike RocketMQ, Karman never re-appends a half to count its checks: each transaction
//! has exactly one half, the counts live in `config/transaction.json`, and a decision is
//! taken once — a second END_TRANSACTION for a decided half is ignored. Progress over the
//! half queue (everything before it is decided) and over the op queue (everything before it
//! concerns decided halves before the half progress) is persisted with the counts, so a
//! restart rebuilds the decided set from the op queue alone.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use karman_protocol::header::CheckTransactionStateRequestHeader;
use karman_protocol::message::id::offset_msg_id;
use karman_protocol::message::sysflag::message as sysflag;
use karman_protocol::message::{MessageView, Properties, StoredRecord, property};
use karman_protocol::{RemotingCommand, RequestCode};
use karman_store::{
    AcceptAll, Clock, CommitLogOffset, GetMessageStatus, MessageStore, QueueOffset,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::client_table::ClientTable;
use crate::error::BrokerError;
use crate::json_file;
use crate::message::InnerMessage;
use crate::schedule::ScheduleService;
use crate::topic_table::TopicTable;
use crate::topic_table::name::{TRANS_CHECK_MAX_TIME_TOPIC, TRANS_HALF_TOPIC, TRANS_OP_HALF_TOPIC};

/// The op record tag RocketMQ uses ("delete").
const OP_TAG: &str = "d";
/// Half and op records read per step of a scan.
const READ_BATCH: usize = 256;

/// How the producer decided (END_TRANSACTION `commitOrRollback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Commit,
    Rollback,
}

/// Why an END_TRANSACTION was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndError {
    #[error("Find prepared transaction message failed: no half message at commit-log offset {0}")]
    HalfNotFound(i64),
    #[error(
        "The producer group wrong: the half message belongs to {expected}, the request names {actual}"
    )]
    GroupMismatch { expected: String, actual: String },
    #[error(
        "The transaction state table offset wrong: the half message is at queue offset {expected}, the request names {actual}"
    )]
    QueueOffsetMismatch { expected: i64, actual: i64 },
    #[error(
        "the check immunity of {seconds} s has passed; this transaction is decided through check-back only"
    )]
    ImmunityPassed { seconds: i64 },
    #[error("storing the committed message failed: {0}")]
    CommitFailed(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Progress {
    /// Every half before this queue offset is decided.
    half_offset: i64,
    /// Every op record before this offset names a half before `half_offset`.
    op_offset: i64,
    /// Checks sent per undecided half queue offset.
    check_times: BTreeMap<i64, i32>,
}

#[derive(Debug, Default)]
struct State {
    progress: Progress,
    /// Decided halves at or past the half progress -> the op record that decided them.
    decided: BTreeMap<i64, i64>,
    /// Next op record to read into `decided`.
    op_read_offset: i64,
}

/// Counters for runtime info and metrics.
#[derive(Debug, Default)]
pub struct TransactionStats {
    pub commits: AtomicU64,
    pub rollbacks: AtomicU64,
    pub checks: AtomicU64,
    pub discarded: AtomicU64,
}

/// Settings read at each round, so updates through UPDATE_BROKER_CONFIG apply.
#[derive(Debug, Clone, Copy)]
pub struct CheckSettings {
    pub interval: Duration,
    pub timeout_ms: i64,
    pub check_max: i32,
}

#[derive(Debug)]
pub struct TransactionService {
    store: Arc<MessageStore>,
    store_host: SocketAddr,
    broker_name: String,
    clock: Arc<dyn Clock>,
    topics: Arc<TopicTable>,
    clients: Arc<ClientTable>,
    schedule: Arc<ScheduleService>,
    path: PathBuf,
    state: Mutex<State>,
    /// Serializes decisions so one half is never decided twice concurrently.
    deciding: tokio::sync::Mutex<()>,
    pub stats: TransactionStats,
}

impl TransactionService {
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        config_dir: PathBuf,
        store: Arc<MessageStore>,
        store_host: SocketAddr,
        broker_name: String,
        clock: Arc<dyn Clock>,
        topics: Arc<TopicTable>,
        clients: Arc<ClientTable>,
        schedule: Arc<ScheduleService>,
    ) -> Result<Self, BrokerError> {
        let path = config_dir.join("transaction.json");
        let progress: Progress = json_file::load(&path)?.unwrap_or_default();
        let service = Self {
            store,
            store_host,
            broker_name,
            clock,
            topics,
            clients,
            schedule,
            path,
            state: Mutex::new(State {
                op_read_offset: progress.op_offset,
                progress,
                decided: BTreeMap::new(),
            }),
            deciding: tokio::sync::Mutex::new(()),
            stats: TransactionStats::default(),
        };
        service.read_op_records();
        Ok(service)
    }

    /// Half messages not yet decided.
    pub fn pending_count(&self) -> i64 {
        let state = self.state.lock();
        let max = self.store.max_offset_in_queue(TRANS_HALF_TOPIC, 0).0;
        let decided_ahead = i64::try_from(state.decided.len()).unwrap_or(0);
        (max - state.progress.half_offset - decided_ahead).max(0)
    }

    fn is_decided(&self, half_offset: i64) -> bool {
        let state = self.state.lock();
        half_offset < state.progress.half_offset || state.decided.contains_key(&half_offset)
    }

    /// END_TRANSACTION with commit or rollback. `Ok(false)`: the half was decided already,
    /// nothing happened.
    pub async fn end(
        &self,
        decision: Decision,
        producer_group: &str,
        half_queue_offset: i64,
        half_physical_offset: i64,
        from_check: bool,
    ) -> Result<bool, EndError> {
        let _one_at_a_time = self.deciding.lock().await;
        self.read_op_records();
        let record = self
            .store
            .read_message(CommitLogOffset(half_physical_offset))
            .ok_or(EndError::HalfNotFound(half_physical_offset))?;
        let view = MessageView::parse(&record)
            .map_err(|_| EndError::HalfNotFound(half_physical_offset))?;
        if view.topic != TRANS_HALF_TOPIC {
            return Err(EndError::HalfNotFound(half_physical_offset));
        }
        let group = view.property(property::PRODUCER_GROUP).unwrap_or_default();
        if group != producer_group {
            return Err(EndError::GroupMismatch {
                expected: group.to_owned(),
                actual: producer_group.to_owned(),
            });
        }
        if view.queue_offset != half_queue_offset {
            return Err(EndError::QueueOffsetMismatch {
                expected: view.queue_offset,
                actual: half_queue_offset,
            });
        }
        if self.is_decided(view.queue_offset) {
            debug!(
                half = view.queue_offset,
                "transaction already decided; ignoring the second decision"
            );
            return Ok(false);
        }
        if !from_check
            && let Some(seconds) = view
                .property(property::CHECK_IMMUNITY_TIME_IN_SECONDS)
                .and_then(|s| s.parse::<i64>().ok())
            && self.clock.now_ms() - view.born_timestamp_ms > seconds.saturating_mul(1000)
        {
            return Err(EndError::ImmunityPassed { seconds });
        }
        if decision == Decision::Commit {
            self.commit(&view, &record).await?;
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.rollbacks.fetch_add(1, Ordering::Relaxed);
        }
        self.write_op_record(&view).await;
        Ok(true)
    }

    async fn commit(&self, half: &MessageView<'_>, record: &Bytes) -> Result<(), EndError> {
        let mut message = InnerMessage::from_stored(half, record);
        if !message.unpark() {
            return Err(EndError::CommitFailed(
                "the half message has no REAL_TOPIC/REAL_QID".to_owned(),
            ));
        }
        message.properties.remove(property::TRANSACTION_PREPARED);
        message.sys_flag =
            sysflag::with_transaction_type(message.sys_flag, sysflag::TRANSACTION_COMMIT_TYPE);
        message.prepared_transaction_offset = half.physical_offset;
        self.schedule.park(&mut message);
        let topic = message.topic.clone();
        let result = self
            .store
            .append(message.into_append(self.store_host))
            .await;
        if !result.status.is_ok() {
            return Err(EndError::CommitFailed(result.status.to_string()));
        }
        debug!(topic = %topic, half = half.queue_offset, "transaction committed");
        Ok(())
    }

    /// Records a decision in the op queue, and in memory at once.
    async fn write_op_record(&self, half: &MessageView<'_>) {
        let mut properties = Properties::new();
        properties.insert(property::TAGS, OP_TAG);
        properties.insert(property::WAIT_STORE_MSG_OK, "false");
        if let Some(id) = half.property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX) {
            properties.insert(property::TRANSACTION_ID, id);
        }
        let op = InnerMessage {
            topic: TRANS_OP_HALF_TOPIC.to_owned(),
            queue_id: 0,
            flag: 0,
            body: Bytes::from(format!("{},", half.queue_offset)),
            properties,
            sys_flag: 0,
            born_timestamp_ms: self.clock.now_ms(),
            born_host: self.store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        let result = self.store.append(op.into_append(self.store_host)).await;
        if result.status.is_ok() {
            self.state
                .lock()
                .decided
                .insert(half.queue_offset, result.queue_offset.0);
        } else {
            warn!(half = half.queue_offset, status = %result.status, "op record not written; the half will be checked again");
        }
    }

    /// Reads new op records into the decided set.
    fn read_op_records(&self) {
        loop {
            let offset = self.state.lock().op_read_offset;
            let result = self.store.get_message(
                TRANS_OP_HALF_TOPIC,
                0,
                QueueOffset(offset),
                READ_BATCH,
                0,
                &AcceptAll,
            );
            match result.status {
                GetMessageStatus::Found => {}
                GetMessageStatus::OffsetTooSmall | GetMessageStatus::OffsetOverflowBadly => {
                    self.state.lock().op_read_offset = result.next_begin_offset.0;
                    continue;
                }
                _ => return,
            }
            let mut state = self.state.lock();
            for (record, op_offset) in result.messages.iter().zip(&result.message_queue_offsets) {
                let Ok(view) = MessageView::parse(record) else {
                    continue;
                };
                let body = String::from_utf8_lossy(view.body);
                for half in body.split(',').filter_map(|s| s.trim().parse::<i64>().ok()) {
                    if half >= state.progress.half_offset {
                        state.decided.entry(half).or_insert(op_offset.0);
                    }
                }
            }
            state.op_read_offset = result.next_begin_offset.0;
        }
    }

    /// One check-back round over the undecided halves.
    pub async fn check_round(&self, settings: CheckSettings) {
        self.read_op_records();
        let now = self.clock.now_ms();
        let mut offset = self.state.lock().progress.half_offset;
        'scan: loop {
            let result = self.store.get_message(
                TRANS_HALF_TOPIC,
                0,
                QueueOffset(offset),
                READ_BATCH,
                0,
                &AcceptAll,
            );
            match result.status {
                GetMessageStatus::Found => {}
                GetMessageStatus::OffsetTooSmall
                | GetMessageStatus::OffsetOverflowBadly
                | GetMessageStatus::MessageWasRemoving => {
                    offset = result.next_begin_offset.0;
                    let mut state = self.state.lock();
                    if state.progress.half_offset < offset {
                        state.progress.half_offset = offset;
                    }
                    continue;
                }
                _ => break,
            }
            for (record, queue_offset) in result.messages.iter().zip(&result.message_queue_offsets)
            {
                let Ok(view) = MessageView::parse(record) else {
                    continue;
                };
                if self.is_decided(queue_offset.0) {
                    continue;
                }
                let immunity_ms = view
                    .property(property::CHECK_IMMUNITY_TIME_IN_SECONDS)
                    .and_then(|s| s.parse::<i64>().ok())
                    .map_or(settings.timeout_ms, |s| {
                        s.saturating_mul(1000).max(settings.timeout_ms)
                    });
                if now - view.born_timestamp_ms < immunity_ms {
                    // Later halves are younger: the round ends here.
                    break 'scan;
                }
                self.check_one(&view, record, settings.check_max).await;
            }
            offset = result.next_begin_offset.0;
        }
        self.advance_progress();
        self.persist();
    }

    async fn check_one(&self, view: &MessageView<'_>, record: &Bytes, check_max: i32) {
        let checks = self
            .state
            .lock()
            .progress
            .check_times
            .get(&view.queue_offset)
            .copied()
            .unwrap_or(0);
        if checks >= check_max {
            self.discard(view, record).await;
            return;
        }
        self.state
            .lock()
            .progress
            .check_times
            .insert(view.queue_offset, checks + 1);
        let group = view.property(property::PRODUCER_GROUP).unwrap_or_default();
        let Some(channel) = self.clients.producer_channel(group) else {
            debug!(
                group,
                half = view.queue_offset,
                "no live producer to check the transaction with"
            );
            return;
        };
        let Some(request) = self.check_request(view, record) else {
            return;
        };
        self.stats.checks.fetch_add(1, Ordering::Relaxed);
        debug!(
            group,
            half = view.queue_offset,
            checks = checks + 1,
            "checking transaction state"
        );
        if let Err(error) = channel.invoke_oneway(request).await {
            debug!(%error, "transaction check not delivered");
        }
    }

    /// CHECK_TRANSACTION_STATE: the half re-encoded with its real topic and queue (spec §5.6).
    fn check_request(&self, view: &MessageView<'_>, record: &Bytes) -> Option<RemotingCommand> {
        let mut message = InnerMessage::from_stored(view, record);
        message.unpark();
        let properties = message.properties.encode();
        let body = StoredRecord {
            topic: &message.topic,
            queue_id: message.queue_id,
            flag: view.flag,
            queue_offset: view.queue_offset,
            physical_offset: view.physical_offset,
            sys_flag: view.sys_flag,
            born_timestamp_ms: view.born_timestamp_ms,
            born_host: view.born_host,
            store_timestamp_ms: view.store_timestamp_ms,
            store_host: view.store_host,
            reconsume_times: view.reconsume_times,
            prepared_transaction_offset: view.prepared_transaction_offset,
            body: view.body,
            properties: properties.as_bytes(),
        };
        let mut encoded = Vec::with_capacity(record.len() + 64);
        body.encode(&mut encoded).ok()?;
        let uniq = view
            .property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .map(str::to_owned);
        let header = CheckTransactionStateRequestHeader {
            topic: Some(TRANS_HALF_TOPIC.to_owned()),
            tran_state_table_offset: view.queue_offset,
            commit_log_offset: view.physical_offset,
            msg_id: uniq.clone(),
            transaction_id: view
                .property(property::TRANSACTION_ID)
                .map(str::to_owned)
                .or(uniq),
            offset_msg_id: Some(offset_msg_id(view.store_host, view.physical_offset)),
            bname: Some(self.broker_name.clone()),
        };
        let request =
            RemotingCommand::request_with_header(RequestCode::CheckTransactionState, &header)
                .ok()?;
        Some(request.with_body(encoded))
    }

    /// A half checked `transactionCheckMax` times is moved aside for an operator, never
    /// silently dropped.
    async fn discard(&self, view: &MessageView<'_>, record: &Bytes) {
        let mut message = InnerMessage::from_stored(view, record);
        message.topic = TRANS_CHECK_MAX_TIME_TOPIC.to_owned();
        message.queue_id = 0;
        self.topics.find_or_create_system(
            TRANS_CHECK_MAX_TIME_TOPIC,
            1,
            karman_protocol::message::sysflag::perm::READ_WRITE,
        );
        let result = self
            .store
            .append(message.into_append(self.store_host))
            .await;
        if !result.status.is_ok() {
            warn!(half = view.queue_offset, status = %result.status, "could not move an unresolved transaction aside; will retry");
            return;
        }
        warn!(
            half = view.queue_offset,
            group = view.property(property::PRODUCER_GROUP).unwrap_or_default(),
            transaction = view
                .property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
                .unwrap_or_default(),
            "transaction undecided after transactionCheckMax checks; moved to TRANS_CHECK_MAX_TIME_TOPIC"
        );
        self.stats.discarded.fetch_add(1, Ordering::Relaxed);
        self.write_op_record(view).await;
    }

    /// Moves the half progress over decided halves and the op progress over op records
    /// no longer needed.
    fn advance_progress(&self) {
        let mut state = self.state.lock();
        let mut half = state.progress.half_offset;
        while state.decided.remove(&half).is_some() {
            half += 1;
        }
        state.progress.half_offset = half;
        state.decided = state.decided.split_off(&half);
        state.progress.check_times = state.progress.check_times.split_off(&half);
        state.progress.op_offset = state
            .decided
            .values()
            .copied()
            .min()
            .unwrap_or(state.op_read_offset);
    }

    fn persist(&self) {
        let snapshot = {
            let state = self.state.lock();
            Progress {
                half_offset: state.progress.half_offset,
                op_offset: state.progress.op_offset,
                check_times: state.progress.check_times.clone(),
            }
        };
        if let Err(error) = json_file::save(&self.path, &snapshot) {
            warn!(%error, "transaction progress not persisted");
        }
    }

    /// The check-back loop.
    pub fn spawn(
        self: &Arc<Self>,
        settings: impl Fn() -> CheckSettings + Send + 'static,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let current = settings();
                tokio::select! {
                    _ = tokio::time::sleep(current.interval) => this.check_round(current).await,
                    _ = stop.cancelled() => {
                        this.advance_progress();
                        this.persist();
                        return;
                    }
                }
            }
        })
    }

    /// Runtime-info entries.
    pub fn runtime_info(&self) -> HashMap<&'static str, String> {
        let mut info = HashMap::new();
        info.insert("transactionHalfPending", self.pending_count().to_string());
        info.insert(
            "transactionCommitTotal",
            self.stats.commits.load(Ordering::Relaxed).to_string(),
        );
        info.insert(
            "transactionRollbackTotal",
            self.stats.rollbacks.load(Ordering::Relaxed).to_string(),
        );
        info.insert(
            "transactionCheckTotal",
            self.stats.checks.load(Ordering::Relaxed).to_string(),
        );
        info.insert(
            "transactionDiscardTotal",
            self.stats.discarded.load(Ordering::Relaxed).to_string(),
        );
        info
    }

    pub fn log_started(&self) {
        let state = self.state.lock();
        info!(
            half_progress = state.progress.half_offset,
            decided_ahead = state.decided.len(),
            "transaction service ready"
        );
    }
}
