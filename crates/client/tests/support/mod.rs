//! A real NameServer plus minimal in-process fake brokers, enough to test the client's
//! protocol behaviour until the real broker lands. A fake broker keeps messages in memory,
//! registers its topics with the NameServer, holds pulls (long polling), keeps offsets,
//! locks and group membership, records what clients sent, and can be scripted to answer
//! with error codes. It is deliberately small: anything end-to-end belongs to the real
//! broker's tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use karman_namesrv::{NamesrvConfig, NamesrvHandle};
use karman_protocol::body::{
    DataVersion, GetConsumerListByGroupResponseBody, HeartbeatData, LockBatchRequestBody,
    LockBatchResponseBody, MessageModel, MessageQueue, RegisterBrokerBody, SubscriptionData,
    TopicConfig, TopicConfigSerializeWrapper, fastjson,
};
use karman_protocol::header::*;
use karman_protocol::message::batch::decode_batch;
use karman_protocol::message::id::offset_msg_id;
use karman_protocol::message::{MessageExt, Properties, StoredRecord, property};
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{
    Channel, ClientConfig, Dispatcher, ProcessResult, RemotingClient, RequestProcessor,
    ServerConfig, ServerHandle,
};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

pub const CLUSTER: &str = "FakeCluster";

/// Logs to stderr when `RUST_LOG` is set; harmless to call twice.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Seed for randomized tests: `KARMAN_SEED` or a fresh one, printed so a failure replays.
pub fn seed() -> u64 {
    let seed = std::env::var("KARMAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("KARMAN_SEED={seed}");
    seed
}

pub async fn start_namesrv(dir: &tempfile::TempDir) -> NamesrvHandle {
    let config = NamesrvConfig {
        bind_address: "127.0.0.1".parse().unwrap(),
        listen_port: 0,
        kv_config_path: dir.path().join("kvConfig.json"),
        ..NamesrvConfig::default()
    };
    karman_namesrv::start(config).await.unwrap()
}

/// One stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    pub record: Bytes,
    pub message: MessageExt,
}

#[derive(Debug, Default)]
pub struct Membership {
    /// group → client id → channel.
    pub consumers: HashMap<String, BTreeMap<String, Channel>>,
    /// producer group → client id → channel.
    pub producers: HashMap<String, BTreeMap<String, Channel>>,
}

/// Everything a fake broker holds, open to tests.
pub struct BrokerState {
    pub name: String,
    pub addr: SocketAddr,
    pub topics: Mutex<BTreeMap<String, i32>>,
    pub queues: Mutex<HashMap<(String, i32), Vec<Stored>>>,
    pub half: Mutex<Vec<Stored>>,
    pub commit_log_offset: AtomicI64,
    pub offsets: Mutex<HashMap<(String, String, i32), i64>>,
    pub heartbeats: Mutex<Vec<HeartbeatData>>,
    /// The `language` of every heartbeat request.
    pub heartbeat_languages: Mutex<Vec<karman_protocol::LanguageCode>>,
    pub members: Mutex<Membership>,
    /// Answers for the next sends, before any storing.
    pub send_script: Mutex<VecDeque<ResponseCode>>,
    pub send_delay: Mutex<Duration>,
    pub sends: AtomicUsize,
    pub pull_script: Mutex<VecDeque<(ResponseCode, i64)>>,
    pub pulls: Mutex<Vec<PullMessageRequestHeader>>,
    pub send_backs: Mutex<Vec<ConsumerSendMsgBackRequestHeader>>,
    pub fail_send_back: AtomicBool,
    /// CHECK_CLIENT_CONFIG answers SYSTEM_ERROR, as a broker without property filtering.
    pub refuse_sql92: AtomicBool,
    pub client_checks: AtomicUsize,
    pub end_transactions: Mutex<Vec<EndTransactionRequestHeader>>,
    pub locks: Mutex<HashMap<(String, MessageQueue), (String, Instant)>>,
    pub lock_requests: AtomicUsize,
    pub unlocks: Mutex<Vec<(String, BTreeSet<MessageQueue>)>>,
    pub unregistered: Mutex<Vec<UnregisterClientRequestHeader>>,
    pub arrivals: Notify,
    pub data_version: AtomicI64,
    namesrv: RemotingClient,
    namesrv_addr: String,
}

impl std::fmt::Debug for BrokerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerState")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A running fake broker.
pub struct FakeBroker {
    pub state: Arc<BrokerState>,
    server: Option<ServerHandle>,
}

const LOCK_MAX_LIVE: Duration = Duration::from_secs(60);

impl FakeBroker {
    /// Starts a broker named `name` with `topics` (name, queue count) and registers it.
    pub async fn start(name: &str, namesrv_addr: &str, topics: &[(&str, i32)]) -> Self {
        let mut dispatcher = Dispatcher::new();
        let processor = Arc::new(Processor {
            state: Mutex::new(None),
        });
        dispatcher.set_fallback(processor.clone());
        let server = karman_remoting::server::start(
            ServerConfig::new("127.0.0.1:0".parse().unwrap()),
            dispatcher,
        )
        .await
        .unwrap();
        let state = Arc::new(BrokerState {
            name: name.to_owned(),
            addr: server.local_addr(),
            topics: Mutex::new(topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()),
            queues: Mutex::default(),
            half: Mutex::default(),
            commit_log_offset: AtomicI64::new(0),
            offsets: Mutex::default(),
            heartbeats: Mutex::default(),
            heartbeat_languages: Mutex::default(),
            members: Mutex::default(),
            send_script: Mutex::default(),
            send_delay: Mutex::new(Duration::ZERO),
            sends: AtomicUsize::new(0),
            pull_script: Mutex::default(),
            pulls: Mutex::default(),
            send_backs: Mutex::default(),
            fail_send_back: AtomicBool::new(false),
            refuse_sql92: AtomicBool::new(false),
            client_checks: AtomicUsize::new(0),
            end_transactions: Mutex::default(),
            locks: Mutex::default(),
            lock_requests: AtomicUsize::new(0),
            unlocks: Mutex::default(),
            unregistered: Mutex::default(),
            arrivals: Notify::new(),
            data_version: AtomicI64::new(1),
            namesrv: RemotingClient::new(ClientConfig::default(), Dispatcher::new()),
            namesrv_addr: namesrv_addr.to_owned(),
        });
        *processor.state.lock() = Some(state.clone());
        let broker = Self {
            state,
            server: Some(server),
        };
        broker.register().await;
        broker
    }

    pub fn addr(&self) -> String {
        self.state.addr.to_string()
    }

    /// REGISTER_BROKER with the current topic table.
    pub async fn register(&self) {
        self.state.register().await;
    }

    pub async fn create_topic(&self, topic: &str, queues: i32) {
        self.state.topics.lock().insert(topic.to_owned(), queues);
        self.register().await;
    }

    /// Messages stored in a topic, in queue then offset order.
    pub fn messages(&self, topic: &str) -> Vec<MessageExt> {
        let queues = self.state.queues.lock();
        let mut keys: Vec<_> = queues.keys().filter(|(t, _)| t == topic).cloned().collect();
        keys.sort();
        keys.iter()
            .flat_map(|k| queues[k].iter().map(|s| s.message.clone()))
            .collect()
    }

    pub fn queue_len(&self, topic: &str, queue_id: i32) -> usize {
        self.state
            .queues
            .lock()
            .get(&(topic.to_owned(), queue_id))
            .map_or(0, Vec::len)
    }

    pub fn script_sends(&self, codes: &[ResponseCode]) {
        self.state.send_script.lock().extend(codes.iter().copied());
    }

    pub fn sends(&self) -> usize {
        self.state.sends.load(Ordering::Relaxed)
    }

    pub fn consumer_offset(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.state
            .offsets
            .lock()
            .get(&(group.to_owned(), topic.to_owned(), queue_id))
            .copied()
    }

    /// Stores a message directly, as if a producer had sent it.
    pub fn put(&self, topic: &str, queue_id: i32, body: &[u8], properties: &Properties) -> i64 {
        self.state.store(
            topic,
            queue_id,
            0,
            body,
            &properties.encode(),
            "127.0.0.1:1".parse().unwrap(),
            0,
        )
    }

    /// Sends a broker-to-client request to every producer channel of `group`.
    pub async fn send_to_producers(&self, group: &str, request: RemotingCommand) -> usize {
        let channels: Vec<Channel> = self
            .state
            .members
            .lock()
            .producers
            .get(group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for channel in &channels {
            channel.invoke_oneway(request.clone()).await.unwrap();
        }
        channels.len()
    }

    /// Client ids of a consumer group with a live channel.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        self.state.live_consumers(group)
    }

    /// Stops the broker; the NameServer drops it when the registration connection closes.
    pub async fn shutdown(mut self) {
        self.state.namesrv.shutdown().await;
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

impl BrokerState {
    /// REGISTER_BROKER with the current topic table.
    pub async fn register(&self) {
        let version = self.data_version.fetch_add(1, Ordering::Relaxed);
        let mut wrapper = TopicConfigSerializeWrapper {
            data_version: DataVersion {
                counter: version,
                state_version: 0,
                timestamp: version,
            },
            ..TopicConfigSerializeWrapper::default()
        };
        for (topic, queues) in self.topics.lock().iter() {
            wrapper.topic_config_table.insert(
                topic.clone(),
                TopicConfig::new(topic.clone(), *queues, *queues, 6),
            );
        }
        let body = RegisterBrokerBody {
            filter_server_list: vec![],
            topic_config_serialize_wrapper: wrapper,
        };
        let header = RegisterBrokerRequestHeader {
            broker_name: self.name.clone(),
            broker_addr: self.addr.to_string(),
            cluster_name: CLUSTER.into(),
            ha_server_addr: self.addr.to_string(),
            broker_id: 0,
            heartbeat_timeout_millis: None,
            enable_acting_master: None,
            compressed: false,
            body_crc32: None,
            zone_name: None,
        };
        let request = RemotingCommand::request_with_header(RequestCode::RegisterBroker, &header)
            .unwrap()
            .with_body(fastjson::to_vec(&body));
        let response = self
            .namesrv
            .invoke(&self.namesrv_addr, request, Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(
            response.response_code(),
            ResponseCode::Success,
            "{:?}",
            response.remark
        );
    }

    // Every field of a stored record the fake does not make up itself.
    #[allow(clippy::too_many_arguments)]
    fn store(
        &self,
        topic: &str,
        queue_id: i32,
        flag: i32,
        body: &[u8],
        properties: &str,
        born: SocketAddr,
        reconsume: i32,
    ) -> i64 {
        let mut queues = self.queues.lock();
        let queue = queues.entry((topic.to_owned(), queue_id)).or_default();
        let queue_offset = i64::try_from(queue.len()).unwrap();
        let record = StoredRecord {
            topic,
            queue_id,
            flag,
            queue_offset,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp_ms: 1,
            born_host: born,
            store_timestamp_ms: karman_client::wall_clock_ms(),
            store_host: self.addr,
            reconsume_times: reconsume,
            prepared_transaction_offset: 0,
            body,
            properties: properties.as_bytes(),
        };
        let len = i64::try_from(record.encoded_len().unwrap()).unwrap();
        let physical = self.commit_log_offset.fetch_add(len, Ordering::Relaxed);
        let record = StoredRecord {
            physical_offset: physical,
            ..record
        };
        let mut bytes = Vec::new();
        record.encode(&mut bytes).unwrap();
        let bytes = Bytes::from(bytes);
        let message = MessageExt::decode(&bytes).unwrap();
        queue.push(Stored {
            record: bytes,
            message,
        });
        drop(queues);
        self.arrivals.notify_waiters();
        queue_offset
    }

    fn live_consumers(&self, group: &str) -> Vec<String> {
        self.members
            .lock()
            .consumers
            .get(group)
            .map(|m| {
                m.iter()
                    .filter(|(_, c)| !c.is_closed())
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn find_by_commit_log_offset(&self, offset: i64) -> Option<MessageExt> {
        self.queues
            .lock()
            .values()
            .flatten()
            .find(|s| s.message.commit_log_offset == offset)
            .map(|s| s.message.clone())
    }
}

struct Processor {
    state: Mutex<Option<Arc<BrokerState>>>,
}

fn ok(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(request, ResponseCode::Success)
}

fn fail(request: &RemotingCommand, code: ResponseCode, remark: &str) -> ProcessResult {
    Ok(Some(
        RemotingCommand::response_to(request, code).with_remark(remark),
    ))
}

#[async_trait]
impl RequestProcessor for Processor {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult {
        let state = self.state.lock().clone().expect("state set at start");
        match request.request_code() {
            RequestCode::HeartBeat => heartbeat(&state, channel, &request).await,
            RequestCode::UnregisterClient => {
                let header: UnregisterClientRequestHeader = request.decode_header()?;
                if let Some(group) = &header.consumer_group {
                    let changed = state
                        .members
                        .lock()
                        .consumers
                        .get_mut(group)
                        .is_some_and(|m| m.remove(&header.client_id).is_some());
                    if changed {
                        notify_group(&state, group).await;
                    }
                }
                state.unregistered.lock().push(header);
                Ok(Some(ok(&request)))
            }
            RequestCode::GetConsumerListByGroup => {
                let header: GetConsumerListByGroupRequestHeader = request.decode_header()?;
                let ids = state.live_consumers(&header.consumer_group);
                if ids.is_empty() {
                    return fail(
                        &request,
                        ResponseCode::SystemError,
                        "no consumer for this group",
                    );
                }
                let body = GetConsumerListByGroupResponseBody {
                    consumer_id_list: ids,
                };
                Ok(Some(ok(&request).with_body(fastjson::to_vec(&body))))
            }
            RequestCode::SendMessage
            | RequestCode::SendMessageV2
            | RequestCode::SendBatchMessage => send(&state, channel, &request).await,
            RequestCode::PullMessage | RequestCode::LitePullMessage => {
                pull(&state, channel, &request).await
            }
            RequestCode::QueryConsumerOffset => {
                let header: QueryConsumerOffsetRequestHeader = request.decode_header()?;
                let key = (header.consumer_group, header.topic, header.queue_id);
                match state.offsets.lock().get(&key) {
                    Some(offset) => Ok(Some(
                        ok(&request).with_header(&OffsetResponseHeader { offset: *offset })?,
                    )),
                    None => fail(
                        &request,
                        ResponseCode::QueryNotFound,
                        "Not found, V3_0_6_SNAPSHOT maybe",
                    ),
                }
            }
            RequestCode::UpdateConsumerOffset => {
                let header: UpdateConsumerOffsetRequestHeader = request.decode_header()?;
                state.offsets.lock().insert(
                    (header.consumer_group, header.topic, header.queue_id),
                    header.commit_offset,
                );
                Ok(Some(ok(&request)))
            }
            RequestCode::GetMaxOffset => {
                let header: GetMaxOffsetRequestHeader = request.decode_header()?;
                let len = state
                    .queues
                    .lock()
                    .get(&(header.topic, header.queue_id))
                    .map_or(0, Vec::len);
                Ok(Some(ok(&request).with_header(&OffsetResponseHeader {
                    offset: len as i64,
                })?))
            }
            RequestCode::GetMinOffset => Ok(Some(
                ok(&request).with_header(&OffsetResponseHeader { offset: 0 })?,
            )),
            RequestCode::SearchOffsetByTimestamp => {
                let header: SearchOffsetRequestHeader = request.decode_header()?;
                let queues = state.queues.lock();
                let queue = queues.get(&(header.topic, header.queue_id));
                let offset = queue.map_or(0, |q| {
                    q.iter()
                        .position(|s| s.message.store_timestamp_ms >= header.timestamp)
                        .unwrap_or(q.len())
                });
                Ok(Some(ok(&request).with_header(&OffsetResponseHeader {
                    offset: offset as i64,
                })?))
            }
            RequestCode::ConsumerSendMsgBack => send_back(&state, &request),
            RequestCode::EndTransaction => {
                let header: EndTransactionRequestHeader = request.decode_header()?;
                state.end_transactions.lock().push(header);
                Ok(None)
            }
            RequestCode::LockBatchMq => {
                let body: LockBatchRequestBody =
                    fastjson::from_slice(&request.body.to_bytes(), "lock")?;
                state.lock_requests.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                let mut locks = state.locks.lock();
                let mut granted = BTreeSet::new();
                for mq in body.mq_set {
                    let key = (body.consumer_group.clone(), mq.clone());
                    let free = locks.get(&key).is_none_or(|(holder, at)| {
                        *holder == body.client_id || now.duration_since(*at) > LOCK_MAX_LIVE
                    });
                    if free {
                        locks.insert(key, (body.client_id.clone(), now));
                        granted.insert(mq);
                    }
                }
                let answer = LockBatchResponseBody {
                    lock_ok_mq_set: granted,
                };
                Ok(Some(ok(&request).with_body(fastjson::to_vec(&answer))))
            }
            RequestCode::UnlockBatchMq => {
                let body: LockBatchRequestBody =
                    fastjson::from_slice(&request.body.to_bytes(), "unlock")?;
                let mut locks = state.locks.lock();
                for mq in &body.mq_set {
                    let key = (body.consumer_group.clone(), mq.clone());
                    if locks
                        .get(&key)
                        .is_some_and(|(holder, _)| *holder == body.client_id)
                    {
                        locks.remove(&key);
                    }
                }
                state.unlocks.lock().push((body.client_id, body.mq_set));
                Ok(Some(ok(&request)))
            }
            RequestCode::CheckClientConfig => {
                state.client_checks.fetch_add(1, Ordering::SeqCst);
                if state.refuse_sql92.load(Ordering::SeqCst) {
                    return fail(
                        &request,
                        ResponseCode::SystemError,
                        "The broker does not support consumer to filter message by SQL92",
                    );
                }
                Ok(Some(ok(&request)))
            }
            RequestCode::ViewMessageById => {
                let header: ViewMessageRequestHeader = request.decode_header()?;
                let found = state
                    .queues
                    .lock()
                    .values()
                    .flatten()
                    .find(|s| s.message.commit_log_offset == header.offset)
                    .cloned();
                match found {
                    Some(stored) => Ok(Some(ok(&request).with_body(stored.record))),
                    None => fail(
                        &request,
                        ResponseCode::SystemError,
                        "no message at that offset",
                    ),
                }
            }
            RequestCode::QueryMessage => {
                let header: QueryMessageRequestHeader = request.decode_header()?;
                let found: Vec<Bytes> = state
                    .queues
                    .lock()
                    .iter()
                    .filter(|((topic, _), _)| *topic == header.topic)
                    .flat_map(|(_, q)| q.iter())
                    .filter(|s| {
                        s.message.keys().any(|k| k == header.key)
                            || s.message.properties.uniq_key() == Some(header.key.as_str())
                    })
                    .map(|s| s.record.clone())
                    .collect();
                if found.is_empty() {
                    return fail(
                        &request,
                        ResponseCode::QueryNotFound,
                        "can not find message, maybe time range not correct",
                    );
                }
                Ok(Some(ok(&request).with_body(found)))
            }
            RequestCode::UpdateAndCreateTopic => {
                let header: CreateTopicRequestHeader = request.decode_header()?;
                state
                    .topics
                    .lock()
                    .insert(header.topic, header.write_queue_nums);
                state.register().await;
                Ok(Some(ok(&request)))
            }
            RequestCode::GetTopicStatsInfo => {
                let header: TopicRequestHeader = request.decode_header()?;
                let Some(nums) = state.topics.lock().get(&header.topic).copied() else {
                    return fail(&request, ResponseCode::TopicNotExist, "no topic");
                };
                let mut table = karman_protocol::body::TopicStatsTable::default();
                for q in 0..nums {
                    let len = state
                        .queues
                        .lock()
                        .get(&(header.topic.clone(), q))
                        .map_or(0, Vec::len) as i64;
                    table.offset_table.insert(
                        fastjson::ObjectKey(MessageQueue::new(
                            header.topic.clone(),
                            state.name.clone(),
                            q,
                        )),
                        karman_protocol::body::TopicOffset {
                            last_update_timestamp: 0,
                            max_offset: len,
                            min_offset: 0,
                        },
                    );
                }
                Ok(Some(ok(&request).with_body(fastjson::to_vec(&table))))
            }
            other => fail(
                &request,
                ResponseCode::RequestCodeNotSupported,
                &format!("fake broker: {other} not supported"),
            ),
        }
    }
}

async fn heartbeat(
    state: &BrokerState,
    channel: &Channel,
    request: &RemotingCommand,
) -> ProcessResult {
    let data: HeartbeatData = fastjson::from_slice(&request.body.to_bytes(), "HeartbeatData")?;
    let mut changed_groups = Vec::new();
    let mut new_retry_topics = Vec::new();
    {
        let mut members = state.members.lock();
        for producer in &data.producer_data_set {
            members
                .producers
                .entry(producer.group_name.clone())
                .or_default()
                .insert(data.client_id.clone(), channel.clone());
        }
        for consumer in &data.consumer_data_set {
            let group = members
                .consumers
                .entry(consumer.group_name.clone())
                .or_default();
            let previous = group.insert(data.client_id.clone(), channel.clone());
            if previous.is_none_or(|c| c.is_closed()) {
                changed_groups.push(consumer.group_name.clone());
            }
            if consumer.message_model == MessageModel::Clustering {
                new_retry_topics.push(format!("%RETRY%{}", consumer.group_name));
            }
        }
    }
    {
        let mut topics = state.topics.lock();
        new_retry_topics.retain(|t| !topics.contains_key(t));
        for topic in &new_retry_topics {
            topics.insert(topic.clone(), 1);
        }
    }
    state.heartbeats.lock().push(data);
    state.heartbeat_languages.lock().push(request.language);
    if !new_retry_topics.is_empty() {
        state.register().await;
    }
    for group in changed_groups {
        notify_group(state, &group).await;
    }
    Ok(Some(ok(request)))
}

async fn notify_group(state: &BrokerState, group: &str) {
    let channels: Vec<Channel> = state
        .members
        .lock()
        .consumers
        .get(group)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    let header = GetConsumerListByGroupRequestHeader {
        consumer_group: group.to_owned(),
    };
    for channel in channels.iter().filter(|c| !c.is_closed()) {
        let request =
            RemotingCommand::request_with_header(RequestCode::NotifyConsumerIdsChanged, &header)
                .unwrap();
        let _ = channel.invoke_oneway(request).await;
    }
}

async fn send(state: &BrokerState, channel: &Channel, request: &RemotingCommand) -> ProcessResult {
    state.sends.fetch_add(1, Ordering::Relaxed);
    let delay = *state.send_delay.lock();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = state.send_script.lock().pop_front() {
        return fail(request, code, "scripted answer");
    }
    let header = SendMessageRequestHeader::decode_from(request)?;
    let mut known = state.topics.lock().get(&header.topic).copied();
    let template = state.topics.lock().get(&header.default_topic).copied();
    if let (None, Some(template)) = (known, template) {
        // Broker-side auto-creation from TBW102 (spec remoting.md §7.1).
        let nums = header.default_topic_queue_nums.min(template);
        state.topics.lock().insert(header.topic.clone(), nums);
        state.register().await;
        known = Some(nums);
    }
    let Some(queue_nums) = known else {
        return fail(
            request,
            ResponseCode::TopicNotExist,
            &format!("topic[{}] not exist, apply first please!", header.topic),
        );
    };
    if header.queue_id >= queue_nums {
        return fail(
            request,
            ResponseCode::InvalidParameter,
            "queueId out of range",
        );
    }
    let queue_id = header.queue_id.max(0);
    let properties = header.properties.clone().unwrap_or_default();
    let born = channel.remote_addr();
    let body = request.body.to_bytes();
    let mut ids = Vec::new();
    let mut first_offset = None;
    if header.batch {
        for entry in decode_batch(&body)? {
            let props = String::from_utf8_lossy(&entry.properties).into_owned();
            let offset = state.store(
                &header.topic,
                queue_id,
                entry.flag,
                &entry.body,
                &props,
                born,
                0,
            );
            first_offset.get_or_insert(offset);
            let stored = &state.queues.lock()[&(header.topic.clone(), queue_id)][offset as usize];
            ids.push(offset_msg_id(state.addr, stored.message.commit_log_offset));
        }
    } else if Properties::decode(&properties).get(property::TRANSACTION_PREPARED) == Some("true") {
        let physical = state.commit_log_offset.fetch_add(100, Ordering::Relaxed);
        let offset = state.half.lock().len() as i64;
        let record = StoredRecord {
            topic: &header.topic,
            queue_id,
            flag: header.flag,
            queue_offset: offset,
            physical_offset: physical,
            sys_flag: header.sys_flag,
            born_timestamp_ms: header.born_timestamp,
            born_host: born,
            store_timestamp_ms: 1,
            store_host: state.addr,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: &body,
            properties: properties.as_bytes(),
        };
        let mut bytes = Vec::new();
        record.encode(&mut bytes).unwrap();
        let bytes = Bytes::from(bytes);
        state.half.lock().push(Stored {
            message: MessageExt::decode(&bytes).unwrap(),
            record: bytes,
        });
        first_offset = Some(offset);
        ids.push(offset_msg_id(state.addr, physical));
    } else {
        let reconsume = header.reconsume_times.unwrap_or(0);
        let offset = state.store(
            &header.topic,
            queue_id,
            header.flag,
            &body,
            &properties,
            born,
            reconsume,
        );
        first_offset = Some(offset);
        let stored = &state.queues.lock()[&(header.topic.clone(), queue_id)][offset as usize];
        ids.push(offset_msg_id(state.addr, stored.message.commit_log_offset));
    }
    let answer = SendMessageResponseHeader {
        msg_id: ids.join(","),
        queue_id,
        queue_offset: first_offset.unwrap_or(0),
        transaction_id: Properties::decode(&properties)
            .uniq_key()
            .map(str::to_owned),
        msg_region: Some("DefaultRegion".into()),
        trace_on: Some("true".into()),
        ..SendMessageResponseHeader::default()
    };
    Ok(Some(ok(request).with_header(&answer)?))
}

async fn pull(state: &BrokerState, channel: &Channel, request: &RemotingCommand) -> ProcessResult {
    let header: PullMessageRequestHeader = request.decode_header()?;
    state.pulls.lock().push(header.clone());
    if header.sys_flag & 0x1 != 0 {
        state.offsets.lock().insert(
            (
                header.consumer_group.clone(),
                header.topic.clone(),
                header.queue_id,
            ),
            header.commit_offset,
        );
    }
    if let Some((code, next)) = state.pull_script.lock().pop_front() {
        let answer = PullMessageResponseHeader {
            next_begin_offset: next,
            ..PullMessageResponseHeader::default()
        };
        return Ok(Some(
            RemotingCommand::response_to(request, code).with_header(&answer)?,
        ));
    }
    let key = (header.topic.clone(), header.queue_id);
    let hold_until =
        Instant::now() + Duration::from_millis(header.suspend_timeout_millis.max(0) as u64);
    loop {
        let arrival = state.arrivals.notified();
        let (len, found) = {
            let queues = state.queues.lock();
            let queue = queues.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let len = queue.len() as i64;
            let from = header.queue_offset.clamp(0, len) as usize;
            let wanted = header.max_msg_nums.max(1) as usize;
            let found: Vec<Stored> = queue.iter().skip(from).take(wanted).cloned().collect();
            (len, found)
        };
        let answer = |next: i64| PullMessageResponseHeader {
            next_begin_offset: next,
            min_offset: 0,
            max_offset: len,
            ..Default::default()
        };
        if header.queue_offset > len {
            return Ok(Some(
                RemotingCommand::response_to(request, ResponseCode::PullOffsetMoved)
                    .with_header(&answer(len))?,
            ));
        }
        if !found.is_empty() {
            let next = header.queue_offset + found.len() as i64;
            let sub = SubscriptionData::from_tag_expression(
                &header.topic,
                header.subscription.as_deref().unwrap_or("*"),
                0,
            );
            let matching: Vec<Bytes> = found
                .iter()
                .filter(|s| {
                    sub.matches_all() || s.message.tags().is_some_and(|t| sub.tags_set.contains(t))
                })
                .map(|s| s.record.clone())
                .collect();
            if matching.is_empty() {
                return Ok(Some(
                    RemotingCommand::response_to(request, ResponseCode::PullRetryImmediately)
                        .with_header(&answer(next))?,
                ));
            }
            return Ok(Some(
                ok(request).with_header(&answer(next))?.with_body(matching),
            ));
        }
        let suspend = header.sys_flag & 0x2 != 0;
        if !suspend || Instant::now() >= hold_until {
            return Ok(Some(
                RemotingCommand::response_to(request, ResponseCode::PullNotFound)
                    .with_header(&answer(header.queue_offset))?,
            ));
        }
        tokio::select! {
            _ = arrival => {}
            _ = tokio::time::sleep_until(hold_until) => {}
            _ = channel.closing() => return Ok(None),
        }
    }
}

fn send_back(state: &BrokerState, request: &RemotingCommand) -> ProcessResult {
    let header: ConsumerSendMsgBackRequestHeader = request.decode_header()?;
    state.send_backs.lock().push(header.clone());
    if state.fail_send_back.load(Ordering::Relaxed) {
        return fail(
            request,
            ResponseCode::SystemError,
            "scripted send-back failure",
        );
    }
    let Some(original) = state.find_by_commit_log_offset(header.offset) else {
        return fail(
            request,
            ResponseCode::SystemError,
            "no message at that offset",
        );
    };
    let retry = format!("%RETRY%{}", header.group);
    state.topics.lock().entry(retry.clone()).or_insert(1);
    let mut props = original.properties.clone();
    if props.get(property::RETRY_TOPIC).is_none() {
        props.insert(property::RETRY_TOPIC, original.topic.clone());
    }
    state.store(
        &retry,
        0,
        original.flag,
        &original.body,
        &props.encode(),
        original.born_host,
        original.reconsume_times + 1,
    );
    Ok(Some(ok(request)))
}

/// Polls `check` every 20 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client config pointed at `namesrv`, with short periods so tests run fast.
pub fn fast_client(namesrv: &NamesrvHandle, instance: &str) -> karman_client::ClientConfig {
    karman_client::ClientConfig {
        namesrv_addr: namesrv.local_addr().to_string(),
        instance_name: instance.to_owned(),
        poll_name_server_interval: Duration::from_millis(500),
        heartbeat_broker_interval: Duration::from_millis(500),
        persist_consumer_offset_interval: Duration::from_millis(300),
        rebalance_interval: Duration::from_millis(500),
        api_timeout: Duration::from_secs(3),
        ..karman_client::ClientConfig::default()
    }
}

/// A NameServer in front of a real one that counts route requests per topic, so that a
/// test can see how often a client asks.
pub struct CountingNamesrv {
    route_requests: Arc<Mutex<HashMap<String, usize>>>,
    server: ServerHandle,
}

impl CountingNamesrv {
    pub async fn start(upstream: &NamesrvHandle) -> Self {
        let route_requests = Arc::new(Mutex::new(HashMap::new()));
        let mut dispatcher = Dispatcher::new();
        dispatcher.set_fallback(Arc::new(Forward {
            upstream: upstream.local_addr().to_string(),
            client: RemotingClient::new(ClientConfig::default(), Dispatcher::new()),
            route_requests: route_requests.clone(),
        }));
        let server = karman_remoting::server::start(
            ServerConfig::new("127.0.0.1:0".parse().unwrap()),
            dispatcher,
        )
        .await
        .unwrap();
        Self {
            route_requests,
            server,
        }
    }

    pub fn addr(&self) -> String {
        self.server.local_addr().to_string()
    }

    pub fn route_requests(&self, topic: &str) -> usize {
        self.route_requests.lock().get(topic).copied().unwrap_or(0)
    }
}

struct Forward {
    upstream: String,
    client: RemotingClient,
    route_requests: Arc<Mutex<HashMap<String, usize>>>,
}

#[async_trait]
impl RequestProcessor for Forward {
    async fn process(&self, _channel: &Channel, request: RemotingCommand) -> ProcessResult {
        if request.request_code() == RequestCode::GetRouteinfoByTopic {
            let header: GetRouteInfoRequestHeader = request.decode_header()?;
            *self.route_requests.lock().entry(header.topic).or_default() += 1;
        }
        self.client
            .invoke(&self.upstream, request, Duration::from_secs(3))
            .await
            .map(Some)
            .map_err(|error| {
                karman_remoting::ProcessError::new(ResponseCode::SystemError, error.to_string())
            })
    }
}
