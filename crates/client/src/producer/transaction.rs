//! Transactional producer (spec semantics.md §6, remoting.md §3.7): send a half message,
//! run the local transaction, then commit or roll back with END_TRANSACTION. A broker that
//! does not hear back asks with CHECK_TRANSACTION_STATE, which reaches
//! [`TransactionListener::check_local_transaction`].
//!
//! ```no_run
//! use async_trait::async_trait;
//! use karman_client::producer::{LocalTransactionState, SendResult, TransactionListener, TransactionProducer};
//! use karman_client::{Message, MessageExt};
//!
//! struct Orders;
//!
//! #[async_trait]
//! impl TransactionListener for Orders {
//!     async fn execute_local_transaction(&self, _msg: &Message, _half: &SendResult) -> LocalTransactionState {
//!         LocalTransactionState::CommitMessage // write the order row here
//!     }
//!     async fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
//!         LocalTransactionState::CommitMessage // look the order row up here
//!     }
//! }
//!
//! # async fn run() -> Result<(), karman_client::ClientError> {
//! let producer = TransactionProducer::builder(Orders).group("tx_group").build().await?;
//! let result = producer.send_in_transaction(Message::new("Orders", "order 42")).await?;
//! println!("{:?}", result.local_state);
//! producer.shutdown().await;
//! # Ok(()) }
//! ```

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use karman_protocol::RequestCode;
use karman_protocol::header::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};
use karman_protocol::message::id::parse_offset_msg_id;
use karman_protocol::message::sysflag::message as sysflag;
use karman_protocol::message::{Message, MessageExt, property};
use karman_remoting::Channel;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{ProducerConfig, ProducerCore, SendResult, SendStatus};
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{ProducerHooks, command_with_header};

/// The outcome of a local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalTransactionState {
    CommitMessage,
    RollbackMessage,
    /// Not decided yet: the broker will ask again later.
    Unknown,
}

impl LocalTransactionState {
    /// The END_TRANSACTION `commitOrRollback` value.
    fn wire_type(self) -> i32 {
        match self {
            Self::CommitMessage => sysflag::TRANSACTION_COMMIT_TYPE,
            Self::RollbackMessage => sysflag::TRANSACTION_ROLLBACK_TYPE,
            Self::Unknown => sysflag::TRANSACTION_NOT_TYPE,
        }
    }
}

/// The application side of a transaction.
#[async_trait]
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction after the half message is stored.
    async fn execute_local_transaction(
        &self,
        message: &Message,
        half: &SendResult,
    ) -> LocalTransactionState;

    /// Answers a broker's check-back for a half message whose outcome it never heard.
    async fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState;
}

/// The result of [`TransactionProducer::send_in_transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSendResult {
    pub send_result: SendResult,
    pub local_state: LocalTransactionState,
}

/// Check-backs queued at most; past it a check is dropped (the broker asks again).
const CHECK_QUEUE_MAX: usize = 2000;

/// Builds a [`TransactionProducer`].
pub struct TransactionProducerBuilder {
    client: ClientConfig,
    producer: ProducerConfig,
    listener: Arc<dyn TransactionListener>,
}

impl std::fmt::Debug for TransactionProducerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionProducerBuilder")
            .field("client", &self.client)
            .field("producer", &self.producer)
            .finish_non_exhaustive()
    }
}

impl TransactionProducerBuilder {
    pub fn namesrv_addr(mut self, addr: impl Into<String>) -> Self {
        self.client.namesrv_addr = addr.into();
        self
    }

    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.producer.group = group.into();
        self
    }

    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.client.instance_name = name.into();
        self
    }

    pub fn client_config(mut self, config: ClientConfig) -> Self {
        self.client = config;
        self
    }

    pub fn producer_config(mut self, config: ProducerConfig) -> Self {
        self.producer = config;
        self
    }

    pub async fn build(self) -> Result<TransactionProducer> {
        let core = ProducerCore::start(self.client, self.producer)?;
        let (checks, check_rx) = mpsc::channel(CHECK_QUEUE_MAX);
        let hooks = Arc::new(TransactionHooks {
            core: core.clone(),
            checks,
        });
        core.instance.register_producer(&core.config.group, hooks)?;
        let worker = tokio::spawn(check_worker(core.clone(), self.listener.clone(), check_rx));
        core.learn_brokers().await;
        core.instance.send_heartbeat_to_all_brokers().await;
        Ok(TransactionProducer {
            core,
            listener: self.listener,
            worker: parking_lot::Mutex::new(Some(worker)),
        })
    }
}

/// A producer of transactional messages; see the module docs.
pub struct TransactionProducer {
    core: Arc<ProducerCore>,
    listener: Arc<dyn TransactionListener>,
    worker: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for TransactionProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionProducer")
            .field("group", &self.core.config.group)
            .finish_non_exhaustive()
    }
}

impl TransactionProducer {
    pub fn builder(listener: impl TransactionListener) -> TransactionProducerBuilder {
        TransactionProducerBuilder {
            client: ClientConfig::default(),
            producer: ProducerConfig::default(),
            listener: Arc::new(listener),
        }
    }

    /// Sends the half message, runs the local transaction and reports its outcome to the
    /// broker. A half message the broker did not store as SEND_OK is rolled back without
    /// running the local transaction.
    pub async fn send_in_transaction(&self, mut message: Message) -> Result<TransactionSendResult> {
        message.properties.remove(property::DELAY_TIME_LEVEL);
        message
            .properties
            .insert(property::TRANSACTION_PREPARED, "true");
        message
            .properties
            .insert(property::PRODUCER_GROUP, self.core.config.group.clone());
        let send_result = self.core.send_sync(message.clone()).await?;
        let local_state = if send_result.status == SendStatus::SendOk {
            let run = self
                .listener
                .execute_local_transaction(&message, &send_result);
            match AssertUnwindSafe(run).catch_unwind().await {
                Ok(state) => state,
                Err(_) => {
                    warn!(msg_id = %send_result.msg_id, "local transaction panicked; reporting UNKNOW");
                    LocalTransactionState::Unknown
                }
            }
        } else {
            LocalTransactionState::RollbackMessage
        };
        if let Err(error) = self
            .end_transaction(&message, &send_result, local_state)
            .await
        {
            // The broker will check back; the caller still learns the local outcome.
            warn!(msg_id = %send_result.msg_id, %error, "END_TRANSACTION could not be sent");
        }
        Ok(TransactionSendResult {
            send_result,
            local_state,
        })
    }

    async fn end_transaction(
        &self,
        message: &Message,
        half: &SendResult,
        state: LocalTransactionState,
    ) -> Result<()> {
        let id = if half.offset_msg_id.is_empty() {
            &half.msg_id
        } else {
            &half.offset_msg_id
        };
        let (_, commit_log_offset) =
            parse_offset_msg_id(id).map_err(|source| ClientError::Decode {
                addr: half.queue.broker_name.clone(),
                what: "the half message's offsetMsgId",
                source,
            })?;
        let header = EndTransactionRequestHeader {
            producer_group: self.core.config.group.clone(),
            tran_state_table_offset: half.queue_offset,
            commit_log_offset,
            commit_or_rollback: state.wire_type(),
            from_transaction_check: Some(false),
            msg_id: half.msg_id.clone(),
            transaction_id: half.transaction_id.clone(),
            topic: Some(message.topic.clone()),
            bname: Some(half.queue.broker_name.clone()),
        };
        let addr = self
            .core
            .instance
            .master_addr_refreshing(&message.topic, &half.queue.broker_name)
            .await?;
        let request = command_with_header(RequestCode::EndTransaction, &header)?;
        self.core
            .instance
            .invoke_broker_oneway(&addr, request)
            .await
    }

    /// Stops taking sends and check-backs and unregisters the producer group.
    pub async fn shutdown(&self) {
        self.core.shutdown().await;
        let worker = self.worker.lock().take();
        if let Some(worker) = worker {
            worker.abort();
        }
    }
}

struct CheckRequest {
    channel: Channel,
    header: CheckTransactionStateRequestHeader,
    message: MessageExt,
}

struct TransactionHooks {
    core: Arc<ProducerCore>,
    checks: mpsc::Sender<CheckRequest>,
}

#[async_trait]
impl ProducerHooks for TransactionHooks {
    fn published_topics(&self) -> Vec<String> {
        self.core.published_topics()
    }

    fn check_transaction(
        &self,
        channel: Channel,
        header: CheckTransactionStateRequestHeader,
        message: MessageExt,
    ) {
        let request = CheckRequest {
            channel,
            header,
            message,
        };
        if self.checks.try_send(request).is_err() {
            warn!(group = %self.core.config.group, "transaction check queue full; the broker will ask again");
        }
    }
}

/// Answers check-backs one at a time, over the connection the check came in on.
async fn check_worker(
    core: Arc<ProducerCore>,
    listener: Arc<dyn TransactionListener>,
    mut checks: mpsc::Receiver<CheckRequest>,
) {
    while let Some(CheckRequest {
        channel,
        header,
        message,
    }) = checks.recv().await
    {
        let state = match AssertUnwindSafe(listener.check_local_transaction(&message))
            .catch_unwind()
            .await
        {
            Ok(state) => state,
            Err(_) => LocalTransactionState::Unknown,
        };
        let msg_id = message
            .properties
            .uniq_key()
            .map_or_else(|| message.offset_msg_id(), str::to_owned);
        info!(%msg_id, ?state, broker = %channel.remote_addr(), "answering a transaction check");
        let answer = EndTransactionRequestHeader {
            producer_group: core.config.group.clone(),
            tran_state_table_offset: header.tran_state_table_offset,
            commit_log_offset: header.commit_log_offset,
            commit_or_rollback: state.wire_type(),
            from_transaction_check: Some(true),
            msg_id,
            transaction_id: header.transaction_id.clone(),
            topic: header.topic.clone(),
            bname: header.bname.clone(),
        };
        let Ok(mut request) = command_with_header(RequestCode::EndTransaction, &answer) else {
            continue;
        };
        request.language = core.instance.config.language;
        if state == LocalTransactionState::Unknown {
            request.remark = Some("checkLocalTransactionState return UNKNOW".into());
        }
        let sent =
            tokio::time::timeout(Duration::from_secs(3), channel.invoke_oneway(request)).await;
        if !matches!(sent, Ok(Ok(()))) {
            debug!(broker = %channel.remote_addr(), "END_TRANSACTION for a check could not be sent");
        }
    }
}
