//! The client instance every producer and consumer of one client id shares (Java's
//! `MQClientInstance`): one [`RemotingClient`], the NameServer list with fail-over, the
//! route cache and broker address table, the heartbeat, and the periodic route refresh,
//! rebalance and offset persistence. It also serves the requests brokers send to clients
//! (see [`crate::processor`]).
//!
//! Producers and consumers register hooks; the instance never knows their types.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::body::{
    ConsumeMessageDirectlyResult, ConsumerData, ConsumerRunningInfo, HeartbeatData, MessageQueue,
    ProducerData, TopicRouteData, fastjson,
};
use karman_protocol::header::{CheckTransactionStateRequestHeader, GetRouteInfoRequestHeader};
use karman_protocol::message::MessageExt;
use karman_protocol::message::id::UniqIdGenerator;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{Channel, Dispatcher, RemotingClient};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::route::{self, AUTO_CREATE_TOPIC_KEY, MASTER_ID, TopicPublishInfo};

/// The producer group every Java client instance reports for its internal re-sends.
pub const CLIENT_INNER_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";

/// Wall-clock milliseconds since the epoch: born timestamps, message ids, consume
/// timestamps. Deadlines use `tokio::time::Instant` instead.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What the instance needs from a registered producer.
#[async_trait]
pub(crate) trait ProducerHooks: Send + Sync + 'static {
    fn published_topics(&self) -> Vec<String>;
    /// A broker asks about a half message (CHECK_TRANSACTION_STATE); only transactional
    /// producers override this.
    fn check_transaction(
        &self,
        _channel: Channel,
        _header: CheckTransactionStateRequestHeader,
        _message: MessageExt,
    ) {
    }
}

/// What the instance needs from a registered consumer.
#[async_trait]
pub(crate) trait ConsumerHooks: Send + Sync + 'static {
    fn consumer_data(&self) -> ConsumerData;
    fn subscribed_topics(&self) -> Vec<String>;
    async fn rebalance(&self);
    async fn persist_offsets(&self);
    async fn reset_offsets(&self, topic: &str, offsets: BTreeMap<MessageQueue, i64>);
    fn running_info(&self) -> ConsumerRunningInfo;
    async fn consume_directly(
        &self,
        message: MessageExt,
        broker_name: Option<String>,
    ) -> ConsumeMessageDirectlyResult;
}

#[derive(Default)]
struct Registry {
    producers: HashMap<String, Arc<dyn ProducerHooks>>,
    consumers: HashMap<String, Arc<dyn ConsumerHooks>>,
    /// Admin handles keep the instance alive without heartbeat data of their own.
    admins: usize,
}

/// One client instance; see the module docs.
pub struct ClientInstance {
    pub(crate) config: ClientConfig,
    pub(crate) client_id: String,
    pub(crate) remoting: RemotingClient,
    pub(crate) uniq_ids: UniqIdGenerator,
    namesrv_addrs: Vec<String>,
    namesrv_index: AtomicUsize,
    routes: RwLock<HashMap<String, TopicRouteData>>,
    publish: RwLock<HashMap<String, Arc<TopicPublishInfo>>>,
    /// brokerName → brokerId → address.
    broker_addrs: RwLock<HashMap<String, BTreeMap<i64, String>>>,
    registry: RwLock<Registry>,
    rebalance_now: Notify,
    /// Wakes the heartbeat task early: a route brought a broker this instance never
    /// greeted (a transactional producer must be known before the broker checks back).
    heartbeat_now: Notify,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// Serializes route refreshes so two callers do not race each other's answers.
    route_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ClientInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInstance")
            .field("client_id", &self.client_id)
            .field("namesrv", &self.namesrv_addrs)
            .finish_non_exhaustive()
    }
}

static INSTANCES: LazyLock<Mutex<HashMap<String, Weak<ClientInstance>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl ClientInstance {
    /// The live instance for this configuration's client id, or a new one with its
    /// periodic tasks started.
    pub(crate) fn get_or_create(config: &ClientConfig) -> Result<Arc<Self>> {
        config.validate()?;
        let ip = config.resolve_client_ip();
        let client_id = config.client_id(ip, &config.effective_instance_name());
        let mut instances = INSTANCES.lock();
        if let Some(existing) = instances.get(&client_id).and_then(Weak::upgrade)
            && !existing.stop.is_cancelled()
        {
            return Ok(existing);
        }
        let instance = Arc::new_cyclic(|weak: &Weak<ClientInstance>| {
            let mut dispatcher = Dispatcher::new();
            crate::processor::register(&mut dispatcher, weak.clone());
            let namesrv_addrs = config.namesrv_addrs();
            let start = fastrand::usize(..namesrv_addrs.len().max(1));
            ClientInstance {
                config: config.clone(),
                uniq_ids: UniqIdGenerator::new(ip, std::process::id(), fastrand::u32(..)),
                client_id: client_id.clone(),
                remoting: RemotingClient::new(
                    karman_remoting::ClientConfig {
                        request_serialize_type: config.serialize_type,
                        ..karman_remoting::ClientConfig::default()
                    },
                    dispatcher,
                ),
                namesrv_addrs,
                namesrv_index: AtomicUsize::new(start),
                routes: RwLock::default(),
                publish: RwLock::default(),
                broker_addrs: RwLock::default(),
                registry: RwLock::default(),
                rebalance_now: Notify::new(),
                heartbeat_now: Notify::new(),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
                route_lock: tokio::sync::Mutex::new(()),
            }
        });
        instances.insert(client_id.clone(), Arc::downgrade(&instance));
        instance.start_services();
        info!(client_id = %client_id, "client instance started");
        Ok(instance)
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    fn start_services(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let config = &self.config;
        spawn_periodic(
            &self.tasks,
            &self.stop,
            weak.clone(),
            config.poll_name_server_interval,
            |i| async move {
                i.update_all_routes().await;
            },
        );
        spawn_periodic(
            &self.tasks,
            &self.stop,
            weak.clone(),
            config.heartbeat_broker_interval,
            |i| async move {
                i.clean_offline_brokers();
                i.send_heartbeat_to_all_brokers().await;
            },
        );
        spawn_periodic(
            &self.tasks,
            &self.stop,
            weak.clone(),
            config.persist_consumer_offset_interval,
            |i| async move {
                i.persist_all_consumer_offsets().await;
            },
        );
        let stop = self.stop.clone();
        let interval = config.rebalance_interval;
        self.tasks.spawn(async move {
            loop {
                let notified = match weak.upgrade() {
                    Some(instance) => {
                        instance.rebalance_all().await;
                        async move { instance.rebalance_now.notified().await }
                    }
                    None => return,
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                    _ = notified => debug!("rebalance requested"),
                }
            }
        });
    }

    // -------------------------------------------------------------------------------
    // Registration

    pub(crate) fn register_producer(
        &self,
        group: &str,
        hooks: Arc<dyn ProducerHooks>,
    ) -> Result<()> {
        let mut registry = self.registry.write();
        if registry.producers.contains_key(group) {
            return Err(ClientError::GroupAlreadyRegistered {
                group: group.to_owned(),
                client_id: self.client_id.clone(),
            });
        }
        registry.producers.insert(group.to_owned(), hooks);
        Ok(())
    }

    pub(crate) fn register_consumer(
        &self,
        group: &str,
        hooks: Arc<dyn ConsumerHooks>,
    ) -> Result<()> {
        let mut registry = self.registry.write();
        if registry.consumers.contains_key(group) {
            return Err(ClientError::GroupAlreadyRegistered {
                group: group.to_owned(),
                client_id: self.client_id.clone(),
            });
        }
        registry.consumers.insert(group.to_owned(), hooks);
        Ok(())
    }

    pub(crate) fn producer(&self, group: &str) -> Option<Arc<dyn ProducerHooks>> {
        self.registry.read().producers.get(group).cloned()
    }

    pub(crate) fn consumer(&self, group: &str) -> Option<Arc<dyn ConsumerHooks>> {
        self.registry.read().consumers.get(group).cloned()
    }

    /// Removes a producer, tells every broker, and stops the instance when nothing is left.
    pub(crate) async fn unregister_producer(&self, group: &str) {
        self.registry.write().producers.remove(group);
        self.unregister_client(Some(group), None).await;
        self.shutdown_if_unused().await;
    }

    pub(crate) async fn unregister_consumer(&self, group: &str) {
        self.registry.write().consumers.remove(group);
        self.unregister_client(None, Some(group)).await;
        self.shutdown_if_unused().await;
    }

    pub(crate) fn register_admin(&self) {
        self.registry.write().admins += 1;
    }

    pub(crate) async fn unregister_admin(&self) {
        {
            let mut registry = self.registry.write();
            registry.admins = registry.admins.saturating_sub(1);
        }
        self.shutdown_if_unused().await;
    }

    async fn shutdown_if_unused(&self) {
        let empty = {
            let registry = self.registry.read();
            registry.producers.is_empty() && registry.consumers.is_empty() && registry.admins == 0
        };
        if !empty {
            return;
        }
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.remoting.shutdown().await;
        INSTANCES
            .lock()
            .retain(|_, weak| weak.strong_count() > 0 && !std::ptr::eq(weak.as_ptr(), self));
        info!(client_id = %self.client_id, "client instance stopped");
    }

    /// Asks the rebalance service to run now (NOTIFY_CONSUMER_IDS_CHANGED, start, subscribe).
    pub(crate) fn rebalance_immediately(&self) {
        self.rebalance_now.notify_one();
    }

    async fn rebalance_all(&self) {
        let consumers: Vec<_> = self.registry.read().consumers.values().cloned().collect();
        for consumer in consumers {
            consumer.rebalance().await;
        }
    }

    pub(crate) async fn persist_all_consumer_offsets(&self) {
        let consumers: Vec<_> = self.registry.read().consumers.values().cloned().collect();
        for consumer in consumers {
            consumer.persist_offsets().await;
        }
    }

    // -------------------------------------------------------------------------------
    // NameServer and routes

    /// Sends a request to the current NameServer, moving to the next one on a transport
    /// failure (spec semantics.md §3, clients).
    pub(crate) async fn invoke_namesrv(
        &self,
        request: RemotingCommand,
    ) -> Result<(String, RemotingCommand)> {
        let count = self.namesrv_addrs.len();
        let mut last = None;
        for _ in 0..count {
            let at = self.namesrv_index.load(Ordering::Relaxed) % count;
            let Some(addr) = self.namesrv_addrs.get(at) else {
                break;
            };
            match self
                .remoting
                .invoke(addr, request.clone(), self.config.api_timeout)
                .await
            {
                Ok(response) => return Ok((addr.clone(), response)),
                Err(source) => {
                    warn!(namesrv = %addr, %source, "NameServer call failed; trying the next one");
                    self.namesrv_index.store(at + 1, Ordering::Relaxed);
                    last = Some(ClientError::remoting(addr, source));
                }
            }
        }
        Err(last.unwrap_or(ClientError::NoNamesrv))
    }

    /// Asks a NameServer for a topic's route. `Ok(None)` when the topic has none.
    pub(crate) async fn fetch_route(&self, topic: &str) -> Result<Option<TopicRouteData>> {
        let request = command_with_header(
            RequestCode::GetRouteinfoByTopic,
            &GetRouteInfoRequestHeader {
                topic: topic.to_owned(),
                accept_standard_json_only: Some(true),
            },
        )?;
        let (addr, response) = self.invoke_namesrv(request.clone()).await?;
        match response.response_code() {
            ResponseCode::Success => {
                fastjson::from_slice(&response.body.to_bytes(), "TopicRouteData")
                    .map(Some)
                    .map_err(|source| ClientError::decode(&addr, "GET_ROUTEINFO_BY_TOPIC", source))
            }
            ResponseCode::TopicNotExist => Ok(None),
            _ => Err(ClientError::from_response(&addr, &request, &response)),
        }
    }

    /// Refreshes one topic's route; a producer asking for a topic the NameServer does not
    /// know gets the `TBW102` template clamped to `default_queue_nums`. Returns whether a
    /// route is now known.
    pub(crate) async fn update_route(
        &self,
        topic: &str,
        default_queue_nums: Option<i32>,
    ) -> Result<bool> {
        let _serial = self.route_lock.lock().await;
        self.update_route_serialized(topic, default_queue_nums)
            .await
    }

    /// [`Self::update_route`] for a caller that holds `route_lock`.
    async fn update_route_serialized(
        &self,
        topic: &str,
        default_queue_nums: Option<i32>,
    ) -> Result<bool> {
        let route = match self.fetch_route(topic).await? {
            Some(route) => Some(route),
            None => match default_queue_nums {
                Some(nums) => self
                    .fetch_route(AUTO_CREATE_TOPIC_KEY)
                    .await?
                    .map(|r| route::clamp_default_route(r, nums)),
                None => None,
            },
        };
        let Some(route) = route else {
            return Ok(false);
        };
        self.install_route(topic, route);
        Ok(true)
    }

    fn install_route(&self, topic: &str, route: TopicRouteData) {
        if self.routes.read().get(topic) == Some(&route) && self.publish.read().contains_key(topic)
        {
            return;
        }
        let new_broker = {
            let mut addrs = self.broker_addrs.write();
            let mut new_broker = false;
            for data in &route.broker_datas {
                let previous = addrs.insert(data.broker_name.clone(), data.broker_addrs.clone());
                new_broker |= previous.as_ref() != Some(&data.broker_addrs);
            }
            new_broker
        };
        if new_broker {
            self.heartbeat_now.notify_one();
        }
        let start = fastrand::usize(..);
        let publish = Arc::new(TopicPublishInfo::from_route(topic, &route, start));
        self.publish.write().insert(topic.to_owned(), publish);
        debug!(topic, ?route, "route updated");
        self.routes.write().insert(topic.to_owned(), route);
    }

    /// Every topic a producer or consumer of this instance uses.
    fn topics_in_use(&self) -> HashSet<String> {
        let registry = self.registry.read();
        let mut topics: HashSet<String> = registry
            .producers
            .values()
            .flat_map(|p| p.published_topics())
            .collect();
        topics.extend(
            registry
                .consumers
                .values()
                .flat_map(|c| c.subscribed_topics()),
        );
        topics
    }

    pub(crate) async fn update_all_routes(&self) {
        for topic in self.topics_in_use() {
            if let Err(error) = self.update_route(&topic, None).await {
                debug!(topic, %error, "route refresh failed");
            }
        }
    }

    /// The publish info of a topic, fetching the route when it is not cached.
    pub(crate) async fn publish_info(
        &self,
        topic: &str,
        default_queue_nums: i32,
    ) -> Result<Arc<TopicPublishInfo>> {
        let cached = || {
            self.publish
                .read()
                .get(topic)
                .filter(|i| !i.is_empty())
                .cloned()
        };
        if let Some(info) = cached() {
            return Ok(info);
        }
        {
            // Every send that starts before the route is known waits here. The first one
            // fetches it and the rest find it installed: one NameServer round trip instead
            // of one per waiting send, in series (2,048 sends in flight at a producer's
            // start took a second and more).
            let _serial = self.route_lock.lock().await;
            if cached().is_none() {
                self.update_route_serialized(topic, Some(default_queue_nums))
                    .await?;
            }
        }
        cached().ok_or_else(|| ClientError::NoRoute {
            topic: topic.to_owned(),
            reason: "the NameServer has no writable queue for it (and no TBW102 template)".into(),
        })
    }

    /// The readable queues of a topic, fetching the route when it is not cached.
    pub(crate) async fn subscribe_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        if !self.routes.read().contains_key(topic) {
            let _serial = self.route_lock.lock().await;
            // Another caller may have fetched it while this one waited (see publish_info).
            if !self.routes.read().contains_key(topic) {
                self.update_route_serialized(topic, None).await?;
            }
        }
        self.routes
            .read()
            .get(topic)
            .map(|route| route::subscribe_queues(topic, route))
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.to_owned(),
                reason: "the NameServer does not know the topic".into(),
            })
    }

    /// The cached route of a topic, if any.
    pub(crate) fn cached_route(&self, topic: &str) -> Option<TopicRouteData> {
        self.routes.read().get(topic).cloned()
    }

    /// The master address of a broker group.
    pub(crate) fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.broker_addrs
            .read()
            .get(broker_name)
            .and_then(|ids| ids.get(&MASTER_ID).cloned())
    }

    /// The master address, or any member's when the group has no master (offset calls,
    /// spec remoting.md §7.8).
    pub(crate) fn master_or_any_addr(&self, broker_name: &str) -> Option<String> {
        self.broker_addrs
            .read()
            .get(broker_name)
            .and_then(|ids| ids.get(&MASTER_ID).or_else(|| ids.values().next()).cloned())
    }

    /// The address for pulling from `broker_id` of a group: that id, else the next id,
    /// else any member. Returns the address and whether it is a slave.
    pub(crate) fn subscribe_addr(
        &self,
        broker_name: &str,
        broker_id: i64,
    ) -> Option<(String, bool)> {
        let table = self.broker_addrs.read();
        let ids = table.get(broker_name)?;
        let (id, addr) = ids
            .get_key_value(&broker_id)
            .or_else(|| ids.get_key_value(&(broker_id + 1)))
            .or_else(|| ids.iter().next())?;
        Some((addr.clone(), *id != MASTER_ID))
    }

    /// Looks up a master address, refreshing the topic's route once when it is unknown.
    pub(crate) async fn master_addr_refreshing(
        &self,
        topic: &str,
        broker_name: &str,
    ) -> Result<String> {
        if let Some(addr) = self.master_addr(broker_name) {
            return Ok(addr);
        }
        let _ = self.update_route(topic, None).await;
        self.master_addr(broker_name)
            .ok_or_else(|| ClientError::BrokerNotFound {
                broker_name: broker_name.to_owned(),
            })
    }

    /// Every broker address in the table, with its broker id.
    pub(crate) fn all_broker_addrs(&self) -> Vec<(String, i64, String)> {
        self.broker_addrs
            .read()
            .iter()
            .flat_map(|(name, ids)| {
                ids.iter()
                    .map(move |(id, addr)| (name.clone(), *id, addr.clone()))
            })
            .collect()
    }

    /// Drops broker addresses no route mentions any more (spec remoting.md §7.11).
    fn clean_offline_brokers(&self) {
        let routes = self.routes.read();
        let live: HashSet<(&str, &str)> = routes
            .values()
            .flat_map(|r| r.broker_datas.iter())
            .flat_map(|bd| {
                bd.broker_addrs
                    .values()
                    .map(move |a| (bd.broker_name.as_str(), a.as_str()))
            })
            .collect();
        let mut table = self.broker_addrs.write();
        for (name, ids) in table.iter_mut() {
            ids.retain(|_, addr| live.contains(&(name.as_str(), addr.as_str())));
        }
        table.retain(|_, ids| !ids.is_empty());
    }

    // -------------------------------------------------------------------------------
    // Heartbeat

    pub(crate) fn heartbeat_data(&self) -> HeartbeatData {
        let registry = self.registry.read();
        let mut producers: Vec<ProducerData> = registry
            .producers
            .keys()
            .map(|group| ProducerData {
                group_name: group.clone(),
            })
            .collect();
        producers.push(ProducerData {
            group_name: CLIENT_INNER_PRODUCER_GROUP.to_owned(),
        });
        producers.sort_by(|a, b| a.group_name.cmp(&b.group_name));
        let mut consumers: Vec<ConsumerData> = registry
            .consumers
            .values()
            .map(|c| c.consumer_data())
            .collect();
        consumers.sort_by(|a, b| a.group_name.cmp(&b.group_name));
        HeartbeatData {
            client_id: self.client_id.clone(),
            consumer_data_set: consumers,
            heartbeat_fingerprint: 0,
            producer_data_set: producers,
            without_sub: false,
        }
    }

    /// Sends the heartbeat to every broker in use: masters only when this instance has no
    /// consumer, every member otherwise (spec remoting.md §3.4).
    pub(crate) async fn send_heartbeat_to_all_brokers(&self) {
        let data = self.heartbeat_data();
        let has_consumers = !data.consumer_data_set.is_empty();
        let body = fastjson::to_vec(&data);
        let calls = self
            .all_broker_addrs()
            .into_iter()
            .filter(|(_, id, _)| has_consumers || *id == MASTER_ID)
            .map(|(name, _, addr)| {
                let request = client_command(RequestCode::HeartBeat).with_body(body.clone());
                async move {
                    match self.invoke_broker(&addr, request).await {
                        Ok(response) if response.response_code() == ResponseCode::Success => {}
                        Ok(response) => warn!(broker = %name, %addr, code = %response.response_code(), remark = ?response.remark, "heartbeat refused"),
                        Err(error) => debug!(broker = %name, %addr, %error, "heartbeat failed"),
                    }
                }
            });
        futures::future::join_all(calls).await;
    }

    async fn unregister_client(&self, producer_group: Option<&str>, consumer_group: Option<&str>) {
        let header = karman_protocol::header::UnregisterClientRequestHeader {
            client_id: self.client_id.clone(),
            producer_group: producer_group.map(str::to_owned),
            consumer_group: consumer_group.map(str::to_owned),
        };
        let Ok(request) = command_with_header(RequestCode::UnregisterClient, &header) else {
            return;
        };
        let calls = self.all_broker_addrs().into_iter().map(|(_, _, addr)| {
            let request = request.clone();
            async move {
                if let Err(error) = self.invoke_broker(&addr, request).await {
                    debug!(%addr, %error, "unregister failed");
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Sends a request to a broker and returns its answer, whatever the code.
    pub(crate) async fn invoke_broker(
        &self,
        addr: &str,
        request: RemotingCommand,
    ) -> Result<RemotingCommand> {
        self.invoke_broker_timeout(addr, request, self.config.api_timeout)
            .await
    }

    pub(crate) async fn invoke_broker_timeout(
        &self,
        addr: &str,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        request.language = self.config.language;
        self.remoting
            .invoke(addr, request, timeout)
            .await
            .map_err(|source| ClientError::remoting(addr, source))
    }

    pub(crate) async fn invoke_broker_oneway(
        &self,
        addr: &str,
        request: RemotingCommand,
    ) -> Result<()> {
        self.remoting
            .invoke_oneway(addr, request)
            .await
            .map_err(|source| ClientError::remoting(addr, source))
    }

    /// Whether this instance has stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// A request from this client; its language is set from the instance's config when sent.
pub(crate) fn client_command(code: RequestCode) -> RemotingCommand {
    RemotingCommand::request(code)
}

pub(crate) fn command_with_header<H: serde::Serialize>(
    code: RequestCode,
    header: &H,
) -> Result<RemotingCommand> {
    client_command(code)
        .with_header(header)
        .map_err(|source| ClientError::Encode {
            what: "request header",
            source,
        })
}

/// Runs `tick` every `period` until `stop`, as long as the instance lives.
fn spawn_periodic<F, Fut>(
    tasks: &TaskTracker,
    stop: &CancellationToken,
    instance: Weak<ClientInstance>,
    period: Duration,
    tick: F,
) where
    F: Fn(Arc<ClientInstance>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = stop.clone();
    tasks.spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let Some(instance) = instance.upgrade() else {
                return;
            };
            tick(instance).await;
        }
    });
}
