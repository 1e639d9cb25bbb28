//! The consume services of the push consumer (spec semantics.md §7.5, §7.6): calling the
//! listener under a bounded pool, committing offsets, retry through send-back with a local
//! fallback, and orderly consumption under broker queue locks.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use karman_protocol::body::{
    ConsumeMessageDirectlyResult, LockBatchRequestBody, LockBatchResponseBody, MessageQueue,
    fastjson,
};
use karman_protocol::header::ConsumerSendMsgBackRequestHeader;
use karman_protocol::message::{Message, MessageExt, property};
use karman_protocol::{RequestCode, ResponseCode};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::process_queue::ProcessQueue;
use super::push::{Listener, PushInner};
use super::{
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, ConsumeOrderlyContext,
    ConsumeOrderlyStatus, MessageListenerConcurrently, MessageListenerOrderly,
};
use crate::error::{ClientError, Result};
use crate::instance::{client_command, command_with_header, wall_clock_ms};
use crate::route::retry_topic;

/// A failed send-back is retried locally after this pause.
const LOCAL_RETRY_DELAY: Duration = Duration::from_secs(5);
/// CONSUMER_SEND_MSG_BACK timeout.
const SEND_BACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Orderly: a task yields its queue after consuming this long without a break.
const MAX_TIME_CONSUME_CONTINUOUSLY: Duration = Duration::from_secs(60);
/// LOCK/UNLOCK_BATCH_MQ timeout.
const LOCK_TIMEOUT: Duration = Duration::from_secs(1);

impl PushInner {
    pub(crate) fn submit_concurrently(
        self: &Arc<Self>,
        listener: Arc<dyn MessageListenerConcurrently>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        messages: Vec<MessageExt>,
        delay: Duration,
    ) {
        let this = self.clone();
        // Boxed: the consume future is large, and spawning moves it several times; one
        // per message, those copies were a fifth of a draining consumer's CPU.
        self.tasks.spawn(Box::pin(async move {
            if !delay.is_zero() && !this.pause(delay).await {
                return;
            }
            this.consume_concurrently(listener, mq, pq, messages).await;
        }));
    }

    async fn consume_concurrently(
        self: Arc<Self>,
        listener: Arc<dyn MessageListenerConcurrently>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        mut messages: Vec<MessageExt>,
    ) {
        let Ok(_permit) = self.consume_permits.clone().acquire_owned().await else {
            return;
        };
        if pq.is_dropped() || self.stop.is_cancelled() {
            return;
        }
        let offsets: Vec<i64> = messages.iter().map(|m| m.queue_offset).collect();
        pq.note_consume_started(&offsets, Instant::now());
        let started = wall_clock_ms().to_string();
        for message in &mut messages {
            message
                .properties
                .insert(property::CONSUME_START_TIMESTAMP, started.clone());
        }
        let mut context = ConsumeConcurrentlyContext::new(mq.clone());
        let call = listener.consume_message(&messages, &mut context);
        let status = match AssertUnwindSafe(call).catch_unwind().await {
            Ok(status) => status,
            Err(_) => {
                warn!(%mq, "listener panicked; the batch will be retried");
                ConsumeConcurrentlyStatus::ReconsumeLater
            }
        };
        pq.note_consume(Instant::now());
        if pq.is_dropped() {
            debug!(%mq, "queue dropped while consuming; result not committed");
            return;
        }
        let last = i32::try_from(messages.len()).unwrap_or(i32::MAX) - 1;
        let ack_index = match status {
            ConsumeConcurrentlyStatus::ConsumeSuccess => context.ack_index.min(last),
            ConsumeConcurrentlyStatus::ReconsumeLater => -1,
        };
        let first_failed = usize::try_from(ack_index + 1).unwrap_or(0);
        let mut local_retry = Vec::new();
        for message in messages.iter().skip(first_failed) {
            if !self.is_clustering() {
                warn!(%mq, msg_id = %message.msg_id(), "broadcasting consumer failed a message; it is dropped");
                continue;
            }
            if !self
                .send_message_back(message, context.delay_level_when_next_consume)
                .await
            {
                let mut again = message.clone();
                again.reconsume_times += 1;
                local_retry.push(again);
            }
        }
        let done: Vec<i64> = messages
            .iter()
            .map(|m| m.queue_offset)
            .filter(|o| !local_retry.iter().any(|r| r.queue_offset == *o))
            .collect();
        let offset = pq.remove_messages(&done);
        if offset >= 0 && !pq.is_dropped() {
            self.offset_store.update(&mq, offset, true);
        }
        if !local_retry.is_empty() {
            info!(%mq, count = local_retry.len(), "send-back failed; consuming again locally in 5 s");
            self.submit_concurrently(listener, mq, pq, local_retry, LOCAL_RETRY_DELAY);
        }
    }

    /// Concurrent mode, every `consume_timeout`: messages whose listener call started
    /// longer ago than that are sent back (delay level 3) and dropped from the cache, so
    /// one stuck call cannot hold the committed offset forever (Java `cleanExpiredMsg`).
    pub(crate) fn spawn_consume_timeout_cleaner(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        let (stop, period) = (self.stop.clone(), self.config.consume_timeout);
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                let Some(this) = this.upgrade() else { return };
                this.clean_expired_messages().await;
            }
        });
    }

    async fn clean_expired_messages(&self) {
        let queues: Vec<(MessageQueue, Arc<ProcessQueue>)> = self
            .rebalance
            .process_queues
            .lock()
            .iter()
            .map(|(mq, pq)| (mq.clone(), pq.clone()))
            .collect();
        for (mq, pq) in queues {
            for message in pq.expired_head(Instant::now(), self.config.consume_timeout, 16) {
                warn!(%mq, offset = message.queue_offset, "consume timed out; sending the message back");
                if !self.send_message_back(&message, 3).await {
                    break;
                }
                let offset = pq.remove_messages(&[message.queue_offset]);
                if offset >= 0 && !pq.is_dropped() {
                    self.offset_store.update(&mq, offset, true);
                }
            }
        }
    }

    /// CONSUMER_SEND_MSG_BACK to the broker that delivered the message; when that fails,
    /// a re-send to the retry topic through the internal producer. `true` when either
    /// worked.
    pub(crate) async fn send_message_back(&self, message: &MessageExt, delay_level: i32) -> bool {
        match self.send_back_to_broker(message, delay_level).await {
            Ok(()) => true,
            Err(error) => {
                debug!(msg_id = %message.msg_id(), %error, "send-back failed; re-sending to the retry topic");
                let level = 3 + message.reconsume_times;
                match self.resend_to_retry_topic(message, Some(level)).await {
                    Ok(()) => true,
                    Err(error) => {
                        warn!(msg_id = %message.msg_id(), %error, "re-send to the retry topic failed");
                        false
                    }
                }
            }
        }
    }

    async fn send_back_to_broker(&self, message: &MessageExt, delay_level: i32) -> Result<()> {
        let broker_name = self.broker_name_of(message);
        let addr = match broker_name
            .as_deref()
            .and_then(|n| self.instance.master_addr(n))
        {
            Some(addr) => addr,
            None => message.store_host.to_string(),
        };
        let header = ConsumerSendMsgBackRequestHeader {
            offset: message.commit_log_offset,
            group: self.config.group.clone(),
            delay_level,
            origin_msg_id: Some(message.msg_id()),
            origin_topic: Some(message.topic.clone()),
            unit_mode: false,
            max_reconsume_times: Some(self.max_reconsume_times()),
            bname: broker_name,
        };
        let request = command_with_header(RequestCode::ConsumerSendMsgBack, &header)?;
        let response = self
            .instance
            .invoke_broker_timeout(&addr, request.clone(), SEND_BACK_TIMEOUT)
            .await?;
        match response.response_code() {
            ResponseCode::Success => Ok(()),
            _ => Err(ClientError::from_response(&addr, &request, &response)),
        }
    }

    /// The broker group a message came from, found by its store address.
    fn broker_name_of(&self, message: &MessageExt) -> Option<String> {
        let store = message.store_host.to_string();
        self.instance
            .all_broker_addrs()
            .into_iter()
            .find(|(_, _, addr)| *addr == store)
            .map(|(name, _, _)| name)
    }

    /// Re-sends a message to `%RETRY%<group>` as a new message (Java's fallback and the
    /// orderly "too many reconsumes" path, spec remoting.md §3.6).
    async fn resend_to_retry_topic(
        &self,
        message: &MessageExt,
        delay_level: Option<i32>,
    ) -> Result<()> {
        let mut retry = Message::new(retry_topic(&self.config.group), message.body.clone());
        retry.flag = message.flag;
        for (name, value) in message.properties.iter() {
            retry.properties.insert(name, value);
        }
        let origin = message
            .properties
            .get(property::ORIGIN_MESSAGE_ID)
            .map_or_else(|| message.msg_id(), str::to_owned);
        retry.properties.insert(property::ORIGIN_MESSAGE_ID, origin);
        retry
            .properties
            .insert(property::RETRY_TOPIC, message.topic.clone());
        retry.properties.insert(
            property::RECONSUME_TIME,
            (message.reconsume_times + 1).to_string(),
        );
        retry.properties.insert(
            property::MAX_RECONSUME_TIMES,
            self.max_reconsume_times().to_string(),
        );
        retry.properties.remove(property::TRANSACTION_PREPARED);
        // UNIQ_KEY stays: the copy is the same message to the application (Java copies
        // every property, and its producer only sets a missing UNIQ_KEY), so listeners and
        // idempotent consumers see one msgId through retries and in the DLQ.
        retry = retry.with_delay_level(delay_level.unwrap_or(0));
        self.send_back.send_sync(retry).await.map(|_| ())
    }

    // ---------------------------------------------------------------------------------
    // Orderly

    pub(crate) fn submit_orderly(
        self: &Arc<Self>,
        listener: Arc<dyn MessageListenerOrderly>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        delay: Duration,
    ) {
        let this = self.clone();
        self.tasks.spawn(async move {
            if !delay.is_zero() && !this.pause(delay).await {
                return;
            }
            this.consume_orderly(listener, mq, pq).await;
        });
    }

    /// One orderly run over a queue: batches in offset order while this client holds the
    /// queue's lock, at most one run per queue at a time.
    async fn consume_orderly(
        self: Arc<Self>,
        listener: Arc<dyn MessageListenerOrderly>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
    ) {
        let Ok(_permit) = self.consume_permits.clone().acquire_owned().await else {
            return;
        };
        let _consuming = pq.consume_lock.lock().await;
        let started = Instant::now();
        loop {
            if pq.is_dropped() || self.stop.is_cancelled() {
                return;
            }
            if self.is_clustering() && pq.is_lock_expired(Instant::now()) {
                debug!(%mq, "lock missing or expired; consuming later");
                self.try_lock_later(listener, mq, pq.clone());
                return;
            }
            if started.elapsed() > MAX_TIME_CONSUME_CONTINUOUSLY {
                self.submit_orderly(listener, mq, pq.clone(), Duration::from_millis(10));
                return;
            }
            let messages = pq.take_messages(self.config.consume_message_batch_max_size);
            if messages.is_empty() {
                if pq.finish_consuming() {
                    continue;
                }
                return;
            }
            let mut context = ConsumeOrderlyContext {
                queue: mq.clone(),
                suspend_current_queue_time: None,
            };
            let call = listener.consume_message(&messages, &mut context);
            let status = match AssertUnwindSafe(call).catch_unwind().await {
                Ok(status) => status,
                Err(_) => {
                    warn!(%mq, "orderly listener panicked; suspending the queue");
                    ConsumeOrderlyStatus::SuspendCurrentQueueAMoment
                }
            };
            pq.note_consume(Instant::now());
            if pq.is_dropped() {
                return;
            }
            let commit = match status {
                ConsumeOrderlyStatus::Success => true,
                ConsumeOrderlyStatus::SuspendCurrentQueueAMoment => {
                    !self.check_reconsume_times(&messages).await
                }
            };
            if commit {
                let offset = pq.commit();
                if offset >= 0 {
                    self.offset_store.update(&mq, offset, false);
                }
                continue;
            }
            pq.make_messages_consume_again(&messages);
            let pause = context
                .suspend_current_queue_time
                .unwrap_or(self.config.suspend_current_queue_time)
                .clamp(Duration::from_millis(10), Duration::from_secs(30));
            self.submit_orderly(listener, mq, pq.clone(), pause);
            return;
        }
    }

    /// Whether a suspended batch must be consumed again: messages past
    /// `max_reconsume_times` go to the retry topic (the broker turns them into dead
    /// letters); any other message keeps the batch suspended.
    async fn check_reconsume_times(&self, messages: &[MessageExt]) -> bool {
        let max = self.max_reconsume_times();
        let mut suspend = false;
        for message in messages {
            if message.reconsume_times < max {
                suspend = true;
            } else if let Err(error) = self.resend_to_retry_topic(message, None).await {
                warn!(msg_id = %message.msg_id(), %error, "cannot move a message past its reconsume limit");
                suspend = true;
            }
        }
        suspend
    }

    fn try_lock_later(
        self: &Arc<Self>,
        listener: Arc<dyn MessageListenerOrderly>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
    ) {
        let this = self.clone();
        self.tasks.spawn(async move {
            if !this.pause(Duration::from_millis(100)).await {
                return;
            }
            let locked = this.lock_one(&mq).await;
            if locked {
                pq.set_locked(true, Instant::now());
            }
            let delay = if locked {
                Duration::from_millis(10)
            } else {
                Duration::from_secs(3)
            };
            this.submit_orderly(listener, mq, pq, delay);
        });
    }

    async fn lock_batch(
        &self,
        broker_name: &str,
        mqs: BTreeSet<MessageQueue>,
    ) -> Result<BTreeSet<MessageQueue>> {
        let addr =
            self.instance
                .master_addr(broker_name)
                .ok_or_else(|| ClientError::BrokerNotFound {
                    broker_name: broker_name.to_owned(),
                })?;
        let body = LockBatchRequestBody {
            client_id: self.instance.client_id().to_owned(),
            consumer_group: self.config.group.clone(),
            mq_set: mqs,
            only_this_broker: false,
        };
        let request = client_command(RequestCode::LockBatchMq).with_body(fastjson::to_vec(&body));
        let response = self
            .instance
            .invoke_broker_timeout(&addr, request.clone(), LOCK_TIMEOUT)
            .await?;
        if response.response_code() != ResponseCode::Success {
            return Err(ClientError::from_response(&addr, &request, &response));
        }
        let answer: LockBatchResponseBody =
            fastjson::from_slice(&response.body.to_bytes(), "LockBatchResponseBody")
                .map_err(|source| ClientError::decode(&addr, "LOCK_BATCH_MQ body", source))?;
        Ok(answer.lock_ok_mq_set)
    }

    /// Locks one queue on its broker; `true` when this client holds it now.
    pub(crate) async fn lock_one(&self, mq: &MessageQueue) -> bool {
        match self.lock_batch(&mq.broker_name, [mq.clone()].into()).await {
            Ok(locked) => locked.contains(mq),
            Err(error) => {
                debug!(%mq, %error, "lock failed");
                false
            }
        }
    }

    async fn unlock_batch(&self, broker_name: &str, mqs: BTreeSet<MessageQueue>) {
        let Some(addr) = self.instance.master_addr(broker_name) else {
            return;
        };
        let body = LockBatchRequestBody {
            client_id: self.instance.client_id().to_owned(),
            consumer_group: self.config.group.clone(),
            mq_set: mqs,
            only_this_broker: false,
        };
        let request = client_command(RequestCode::UnlockBatchMq).with_body(fastjson::to_vec(&body));
        if let Err(error) = self
            .instance
            .invoke_broker_timeout(&addr, request, LOCK_TIMEOUT)
            .await
        {
            debug!(broker = broker_name, %error, "unlock failed; the broker lock will expire");
        }
    }

    fn queues_by_broker(&self) -> BTreeMap<String, BTreeSet<MessageQueue>> {
        let mut by_broker: BTreeMap<String, BTreeSet<MessageQueue>> = BTreeMap::new();
        for mq in self.rebalance.queues() {
            by_broker
                .entry(mq.broker_name.clone())
                .or_default()
                .insert(mq);
        }
        by_broker
    }

    /// Renews every owned queue's lock; queues the broker refuses stop being consumed.
    pub(crate) async fn lock_all(&self) {
        for (broker, mqs) in self.queues_by_broker() {
            let locked = match self.lock_batch(&broker, mqs.clone()).await {
                Ok(locked) => locked,
                Err(error) => {
                    debug!(%broker, %error, "lock renewal failed");
                    continue;
                }
            };
            let now = Instant::now();
            for mq in &mqs {
                if let Some(pq) = self.rebalance.process_queue(mq) {
                    let held = locked.contains(mq);
                    if !held && pq.is_locked() {
                        warn!(%mq, "lock lost to another member");
                    }
                    pq.set_locked(held, now);
                }
            }
        }
    }

    pub(crate) async fn unlock_all(&self) {
        for (broker, mqs) in self.queues_by_broker() {
            for mq in &mqs {
                if let Some(pq) = self.rebalance.process_queue(mq) {
                    pq.set_locked(false, Instant::now());
                }
            }
            self.unlock_batch(&broker, mqs).await;
        }
    }

    pub(crate) fn spawn_lock_renewal(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        let (stop, period) = (self.stop.clone(), self.config.lock_renew_interval);
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                let Some(this) = this.upgrade() else { return };
                this.lock_all().await;
            }
        });
    }

    /// Gives up an orderly queue: unlock on the broker only once no batch of it is being
    /// consumed, so two members never consume one queue at the same time. While a batch
    /// runs, the queue stays locked (and renewed) and the next rebalance tries again, which
    /// is the "unlock later if a consume is in progress" rule of spec semantics.md §7.6.
    pub(crate) async fn release_orderly_queue(
        &self,
        mq: &MessageQueue,
        pq: &Arc<ProcessQueue>,
    ) -> bool {
        let Ok(guard) = tokio::time::timeout(Duration::from_secs(1), pq.consume_lock.lock()).await
        else {
            pq.inc_try_unlock_times();
            debug!(%mq, "queue still consuming; unlock retried at the next rebalance");
            return false;
        };
        drop(guard);
        pq.set_locked(false, Instant::now());
        self.unlock_batch(&mq.broker_name, [mq.clone()].into())
            .await;
        info!(%mq, "orderly queue released");
        true
    }

    /// CONSUME_MESSAGE_DIRECTLY: run the listener on one message an operator picked.
    pub(crate) async fn consume_one_directly(
        &self,
        message: MessageExt,
        _broker_name: Option<String>,
    ) -> ConsumeMessageDirectlyResult {
        let started = Instant::now();
        let mq = MessageQueue::new(message.topic.clone(), "", message.queue_id);
        let (order, result) = match &self.listener {
            Listener::Concurrently(listener) => {
                let mut context = ConsumeConcurrentlyContext::new(mq);
                let call = listener.consume_message(std::slice::from_ref(&message), &mut context);
                let result = match AssertUnwindSafe(call).catch_unwind().await {
                    Ok(ConsumeConcurrentlyStatus::ConsumeSuccess) => "CR_SUCCESS",
                    Ok(ConsumeConcurrentlyStatus::ReconsumeLater) => "CR_LATER",
                    Err(_) => "CR_THROW_EXCEPTION",
                };
                (false, result)
            }
            Listener::Orderly(listener) => {
                let mut context = ConsumeOrderlyContext {
                    queue: mq,
                    suspend_current_queue_time: None,
                };
                let call = listener.consume_message(std::slice::from_ref(&message), &mut context);
                let result = match AssertUnwindSafe(call).catch_unwind().await {
                    Ok(ConsumeOrderlyStatus::Success) => "CR_SUCCESS",
                    Ok(ConsumeOrderlyStatus::SuspendCurrentQueueAMoment) => "CR_LATER",
                    Err(_) => "CR_THROW_EXCEPTION",
                };
                (true, result)
            }
        };
        ConsumeMessageDirectlyResult {
            auto_commit: true,
            consume_result: Some(result.to_owned()),
            order,
            remark: None,
            spent_time_mills: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        }
    }
}
