//! Rebalance (spec semantics.md §7.2): which queues of each subscribed topic this client
//! owns, and the start position of a queue it takes (§7.3). Shared by the push and
//! lite-pull consumers, which decide what "take" and "give up" mean.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use karman_protocol::body::{
    ConsumeFromWhere, GetConsumerListByGroupResponseBody, MessageModel, MessageQueue,
    SubscriptionData, fastjson,
};
use karman_protocol::header::GetConsumerListByGroupRequestHeader;
use karman_protocol::{RequestCode, ResponseCode};
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::allocate::AllocateMessageQueueStrategy;
use super::offset_store::{OffsetStore, ReadOffsetType};
use super::process_queue::ProcessQueue;
use super::pull;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, command_with_header};
use crate::route::is_retry_topic;

/// The assignment state of one consumer.
pub(crate) struct RebalanceCore {
    pub instance: Arc<ClientInstance>,
    pub group: String,
    pub model: MessageModel,
    pub strategy: Arc<dyn AllocateMessageQueueStrategy>,
    pub subscriptions: RwLock<BTreeMap<String, SubscriptionData>>,
    pub process_queues: Mutex<BTreeMap<MessageQueue, Arc<ProcessQueue>>>,
    /// Held for a whole rebalance round. Rounds start from the instance's rebalance
    /// service, `subscribe`, `rebalance_now` and offset corrections; a queue is looked up
    /// and taken across awaits (start offset, lock), so two rounds at once would both take
    /// it and run two pull tasks for it.
    round: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RebalanceCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebalanceCore")
            .field("group", &self.group)
            .field("model", &self.model)
            .field("strategy", &self.strategy.name())
            .finish_non_exhaustive()
    }
}

/// What a consumer does when it gains or loses a queue.
#[async_trait]
pub(crate) trait QueueOwner: Send + Sync {
    fn rebalance_core(&self) -> &RebalanceCore;
    /// Takes a newly assigned queue (lock, start position, pull task); `false` skips it
    /// until the next rebalance.
    async fn add_queue(&self, mq: &MessageQueue) -> bool;
    /// Gives up a queue, already marked dropped; `false` keeps it for the next round.
    async fn remove_queue(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>) -> bool;
    /// Whether queues nobody pulled for two minutes are dropped (push consumers).
    fn expires_idle_queues(&self) -> bool {
        false
    }
    /// After the assignment of a topic changed.
    async fn queues_changed(&self, _topic: &str) {}
}

impl RebalanceCore {
    pub fn new(
        instance: Arc<ClientInstance>,
        group: &str,
        model: MessageModel,
        strategy: Arc<dyn AllocateMessageQueueStrategy>,
    ) -> Self {
        Self {
            instance,
            group: group.to_owned(),
            model,
            strategy,
            subscriptions: RwLock::default(),
            process_queues: Mutex::default(),
            round: tokio::sync::Mutex::new(()),
        }
    }

    pub fn queues(&self) -> HashSet<MessageQueue> {
        self.process_queues.lock().keys().cloned().collect()
    }

    pub fn process_queue(&self, mq: &MessageQueue) -> Option<Arc<ProcessQueue>> {
        self.process_queues.lock().get(mq).cloned()
    }

    /// The client ids of the group, from one broker that serves `topic`.
    async fn find_consumer_ids(&self, topic: &str) -> Result<Vec<String>> {
        let route = match self.instance.cached_route(topic) {
            Some(route) => route,
            None => {
                self.instance.update_route(topic, None).await?;
                self.instance
                    .cached_route(topic)
                    .ok_or_else(|| ClientError::NoRoute {
                        topic: topic.to_owned(),
                        reason: "no route to find the group's members through".into(),
                    })?
            }
        };
        let brokers = &route.broker_datas;
        let pick = brokers.get(fastrand::usize(..brokers.len().max(1)));
        let addr = pick
            .and_then(|bd| bd.select_broker_addr().map(str::to_owned))
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.to_owned(),
                reason: "the route lists no broker address".into(),
            })?;
        let header = GetConsumerListByGroupRequestHeader {
            consumer_group: self.group.clone(),
        };
        let request = command_with_header(RequestCode::GetConsumerListByGroup, &header)?;
        let response = self.instance.invoke_broker(&addr, request.clone()).await?;
        if response.response_code() != ResponseCode::Success || response.body.is_empty() {
            return Err(ClientError::from_response(&addr, &request, &response));
        }
        let body: GetConsumerListByGroupResponseBody =
            fastjson::from_slice(&response.body.to_bytes(), "consumer list").map_err(|source| {
                ClientError::decode(&addr, "GET_CONSUMER_LIST_BY_GROUP body", source)
            })?;
        Ok(body.consumer_id_list)
    }

    /// The queues of `topic` this client should own now.
    async fn allocated_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let all = self.instance.subscribe_queues(topic).await?;
        if self.model == MessageModel::Broadcasting {
            return Ok(all);
        }
        let mut cids = self.find_consumer_ids(topic).await?;
        cids.sort();
        cids.dedup();
        let mine = self
            .strategy
            .allocate(&self.group, self.instance.client_id(), &all, &cids);
        debug!(group = %self.group, topic, members = cids.len(), queues = all.len(), mine = mine.len(), "allocated");
        Ok(mine)
    }
}

/// One rebalance round over every subscribed topic.
pub(crate) async fn rebalance(owner: &(impl QueueOwner + ?Sized)) {
    let core = owner.rebalance_core();
    let _round = core.round.lock().await;
    let topics: Vec<String> = core.subscriptions.read().keys().cloned().collect();
    for topic in &topics {
        match core.allocated_queues(topic).await {
            Ok(target) => {
                if update_process_queues(owner, topic, &target).await {
                    info!(group = %core.group, topic, queues = ?target.iter().map(ToString::to_string).collect::<Vec<_>>(), "assignment changed");
                    owner.queues_changed(topic).await;
                }
            }
            Err(error) => debug!(group = %core.group, topic, %error, "rebalance skipped a topic"),
        }
    }
    let stale: Vec<(MessageQueue, Arc<ProcessQueue>)> = core
        .process_queues
        .lock()
        .iter()
        .filter(|(mq, _)| !topics.contains(&mq.topic))
        .map(|(mq, pq)| (mq.clone(), pq.clone()))
        .collect();
    for (mq, pq) in stale {
        pq.set_dropped();
        if owner.remove_queue(&mq, &pq).await {
            core.process_queues.lock().remove(&mq);
        }
    }
}

/// Drops queues no longer assigned (and idle ones), takes the new ones; returns whether
/// anything changed.
async fn update_process_queues(
    owner: &(impl QueueOwner + ?Sized),
    topic: &str,
    target: &[MessageQueue],
) -> bool {
    let core = owner.rebalance_core();
    let target: HashSet<&MessageQueue> = target.iter().collect();
    let mut changed = false;
    let current: Vec<(MessageQueue, Arc<ProcessQueue>)> = core
        .process_queues
        .lock()
        .iter()
        .filter(|(mq, _)| mq.topic == topic)
        .map(|(mq, pq)| (mq.clone(), pq.clone()))
        .collect();
    let now = Instant::now();
    for (mq, pq) in current {
        let unassigned = !target.contains(&mq);
        let idle = owner.expires_idle_queues() && pq.is_pull_expired(now);
        if !(unassigned || idle || pq.is_dropped()) {
            continue;
        }
        if idle {
            warn!(%mq, "no pull for two minutes; dropping the queue");
        }
        pq.set_dropped();
        if owner.remove_queue(&mq, &pq).await {
            core.process_queues.lock().remove(&mq);
            changed = true;
        }
    }
    for mq in target {
        if core.process_queues.lock().contains_key(mq) {
            continue;
        }
        if owner.add_queue(mq).await {
            changed = true;
        }
    }
    changed
}

/// Where a newly owned queue starts (spec semantics.md §7.3): the stored offset if there is
/// one, otherwise by `consume_from`. An error means "try again at the next rebalance".
pub(crate) async fn compute_pull_from_where(
    instance: &ClientInstance,
    store: &OffsetStore,
    mq: &MessageQueue,
    consume_from: ConsumeFromWhere,
    consume_timestamp_ms: i64,
) -> Result<i64> {
    let stored = store.read(mq, ReadOffsetType::ReadFromStore).await;
    if stored >= 0 {
        return Ok(stored);
    }
    if stored != -1 {
        return Err(ClientError::NoRoute {
            topic: mq.topic.clone(),
            reason: format!("the stored offset of {mq} could not be read"),
        });
    }
    let retry = is_retry_topic(&mq.topic);
    match consume_from {
        ConsumeFromWhere::ConsumeFromFirstOffset => Ok(0),
        ConsumeFromWhere::ConsumeFromTimestamp => {
            if retry {
                pull::max_offset(instance, mq).await
            } else {
                pull::search_offset(instance, mq, consume_timestamp_ms).await
            }
        }
        ConsumeFromWhere::ConsumeFromLastOffset
        | ConsumeFromWhere::ConsumeFromLastOffsetAndFromMinWhenBootFirst
        | ConsumeFromWhere::ConsumeFromMinOffset
        | ConsumeFromWhere::ConsumeFromMaxOffset => {
            if retry {
                Ok(0)
            } else {
                pull::max_offset(instance, mq).await
            }
        }
    }
}
