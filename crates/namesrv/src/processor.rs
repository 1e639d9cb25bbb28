//! The NameServer's request handling (spec remoting.md §3.10).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use karman_protocol::body::{
    DataVersion, KVTable, RegisterBrokerBody, TopicList, TopicRouteData, fastjson,
};
use karman_protocol::header::{
    AddWritePermOfBrokerResponseHeader, BrokerHeartbeatRequestHeader, DeleteKVConfigRequestHeader,
    DeleteTopicFromNamesrvRequestHeader, GetBrokerMemberGroupRequestHeader,
    GetKVConfigRequestHeader, GetKVConfigResponseHeader, GetKVListByNamespaceRequestHeader,
    GetRouteInfoRequestHeader, GetTopicsByClusterRequestHeader, PutKVConfigRequestHeader,
    QueryDataVersionRequestHeader, QueryDataVersionResponseHeader, RegisterBrokerRequestHeader,
    RegisterBrokerResponseHeader, RegisterTopicRequestHeader, UnRegisterBrokerRequestHeader,
    WipeWritePermOfBrokerRequestHeader, WipeWritePermOfBrokerResponseHeader,
};
use karman_protocol::java_properties;
use karman_protocol::message::stored::body_crc;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode, code::version};
use karman_remoting::{
    Channel, ChannelEventListener, ProcessError, ProcessResult, RequestProcessor,
};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::{KEYS, NamesrvConfig};
use crate::kv_config::{KvConfig, NAMESPACE_ORDER_TOPIC_CONFIG};
use crate::route_table::{BrokerRegistration, RouteTable, UnitFilter};

/// How long a broker stays registered without re-registering, unless it says otherwise.
pub const BROKER_CHANNEL_EXPIRED_TIME: Duration = Duration::from_secs(120);

/// Every request code the NameServer serves.
pub const CODES: &[RequestCode] = &[
    RequestCode::PutKvConfig,
    RequestCode::GetKvConfig,
    RequestCode::DeleteKvConfig,
    RequestCode::GetKvlistByNamespace,
    RequestCode::RegisterBroker,
    RequestCode::UnregisterBroker,
    RequestCode::BrokerHeartbeat,
    RequestCode::QueryDataVersion,
    RequestCode::GetRouteinfoByTopic,
    RequestCode::GetBrokerClusterInfo,
    RequestCode::WipeWritePermOfBroker,
    RequestCode::AddWritePermOfBroker,
    RequestCode::GetAllTopicListFromNameserver,
    RequestCode::DeleteTopicInNamesrv,
    RequestCode::RegisterTopicInNamesrv,
    RequestCode::GetTopicsByCluster,
    RequestCode::GetSystemTopicListFromNs,
    RequestCode::GetUnitTopicList,
    RequestCode::GetHasUnitSubTopicList,
    RequestCode::GetHasUnitSubUnunitTopicList,
    RequestCode::UpdateNamesrvConfig,
    RequestCode::GetNamesrvConfig,
    RequestCode::GetBrokerMemberGroup,
];

/// Shared NameServer state.
#[derive(Debug)]
pub struct NamesrvState {
    pub(crate) routes: RwLock<RouteTable>,
    pub(crate) kv: Mutex<KvConfig>,
    pub(crate) config: RwLock<NamesrvConfig>,
    /// Connections brokers registered over, so an expired broker's connection is closed.
    pub(crate) broker_channels: Mutex<HashMap<u64, Channel>>,
    pub(crate) started: Instant,
}

impl NamesrvState {
    pub(crate) fn new(config: NamesrvConfig, kv: KvConfig) -> Self {
        Self {
            routes: RwLock::new(RouteTable::new()),
            kv: Mutex::new(kv),
            config: RwLock::new(config),
            broker_channels: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }

    /// One scan for expired brokers; closes their connections.
    pub(crate) fn scan_not_active_brokers(&self) {
        let expired = self.routes.write().scan_not_active_brokers(Instant::now());
        for (_, channel_id) in expired {
            if let Some(channel) = channel_id.and_then(|id| self.broker_channels.lock().remove(&id))
            {
                channel.close();
            }
        }
    }
}

#[derive(Debug)]
pub struct NamesrvProcessor {
    state: Arc<NamesrvState>,
}

impl NamesrvProcessor {
    pub fn new(state: Arc<NamesrvState>) -> Self {
        Self { state }
    }
}

fn ok(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(request, ResponseCode::Success)
}

fn json_body<T: Serialize>(request: &RemotingCommand, body: &T) -> RemotingCommand {
    ok(request).with_body(fastjson::to_vec(body))
}

fn with_header<H: Serialize>(response: RemotingCommand, header: &H) -> ProcessResult {
    Ok(Some(response.with_header(header)?))
}

#[async_trait]
impl RequestProcessor for NamesrvProcessor {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult {
        match request.request_code() {
            RequestCode::PutKvConfig => self.put_kv_config(&request),
            RequestCode::GetKvConfig => self.get_kv_config(&request),
            RequestCode::DeleteKvConfig => self.delete_kv_config(&request),
            RequestCode::GetKvlistByNamespace => self.get_kv_list(&request),
            RequestCode::RegisterBroker => self.register_broker(channel, &request),
            RequestCode::UnregisterBroker => self.unregister_broker(&request),
            RequestCode::BrokerHeartbeat => self.broker_heartbeat(&request),
            RequestCode::QueryDataVersion => self.query_data_version(&request),
            RequestCode::GetRouteinfoByTopic => self.route(&request),
            RequestCode::GetBrokerClusterInfo => Ok(Some(json_body(
                &request,
                &self.state.routes.read().cluster_info(),
            ))),
            RequestCode::WipeWritePermOfBroker => self.write_perm(&request, true),
            RequestCode::AddWritePermOfBroker => self.write_perm(&request, false),
            RequestCode::GetAllTopicListFromNameserver => self.all_topics(&request),
            RequestCode::DeleteTopicInNamesrv => self.delete_topic(&request),
            RequestCode::RegisterTopicInNamesrv => self.register_topic(&request),
            RequestCode::GetTopicsByCluster => self.topics_by_cluster(&request),
            RequestCode::GetSystemTopicListFromNs => self.system_topics(&request),
            RequestCode::GetUnitTopicList => self.unit_topics(&request, UnitFilter::Unit),
            RequestCode::GetHasUnitSubTopicList => {
                self.unit_topics(&request, UnitFilter::HasUnitSub)
            }
            RequestCode::GetHasUnitSubUnunitTopicList => {
                self.unit_topics(&request, UnitFilter::HasUnitSubNotUnit)
            }
            RequestCode::UpdateNamesrvConfig => self.update_config(&request),
            RequestCode::GetNamesrvConfig => {
                let text = java_properties::render(KEYS, &self.state.config.read());
                Ok(Some(ok(&request).with_body(text)))
            }
            RequestCode::GetBrokerMemberGroup => self.broker_member_group(&request),
            _ => Ok(Some(karman_remoting::processor::not_supported(&request))),
        }
    }
}

impl NamesrvProcessor {
    fn put_kv_config(&self, request: &RemotingCommand) -> ProcessResult {
        let header: PutKVConfigRequestHeader = request.decode_header()?;
        self.state
            .kv
            .lock()
            .put(&header.namespace, &header.key, &header.value)
            .map_err(|e| ProcessError::system_error(e.to_string()))?;
        info!(namespace = %header.namespace, key = %header.key, "KV config put");
        Ok(Some(ok(request)))
    }

    fn get_kv_config(&self, request: &RemotingCommand) -> ProcessResult {
        let header: GetKVConfigRequestHeader = request.decode_header()?;
        let value = self
            .state
            .kv
            .lock()
            .get(&header.namespace, &header.key)
            .map(str::to_owned);
        match value {
            Some(value) => with_header(
                ok(request),
                &GetKVConfigResponseHeader { value: Some(value) },
            ),
            None => Err(ProcessError::new(
                ResponseCode::QueryNotFound,
                format!(
                    "No config item, Namespace: {} Key: {}",
                    header.namespace, header.key
                ),
            )),
        }
    }

    fn delete_kv_config(&self, request: &RemotingCommand) -> ProcessResult {
        let header: DeleteKVConfigRequestHeader = request.decode_header()?;
        self.state
            .kv
            .lock()
            .delete(&header.namespace, &header.key)
            .map_err(|e| ProcessError::system_error(e.to_string()))?;
        Ok(Some(ok(request)))
    }

    fn get_kv_list(&self, request: &RemotingCommand) -> ProcessResult {
        let header: GetKVListByNamespaceRequestHeader = request.decode_header()?;
        let table = self.state.kv.lock().namespace(&header.namespace).cloned();
        match table {
            Some(table) => Ok(Some(json_body(request, &KVTable { table }))),
            None => Err(ProcessError::new(
                ResponseCode::QueryNotFound,
                format!("No config item, Namespace: {}", header.namespace),
            )),
        }
    }

    fn register_broker(&self, channel: &Channel, request: &RemotingCommand) -> ProcessResult {
        let header: RegisterBrokerRequestHeader = request.decode_header()?;
        let body = request.body.to_bytes();
        if let Some(expected) = header.body_crc32.filter(|crc| *crc != 0) {
            let actual = body_crc(&body) as i32;
            if actual != expected {
                warn!(broker = %header.broker_name, addr = %header.broker_addr, expected, actual, "register body CRC mismatch");
                return Err(ProcessError::system_error("crc32 not match"));
            }
        }
        let body = if body.is_empty() {
            RegisterBrokerBody::default()
        } else {
            RegisterBrokerBody::decode(&body, header.compressed, request.version)?
        };
        let registration = BrokerRegistration {
            cluster: header.cluster_name,
            addr: header.broker_addr,
            name: header.broker_name,
            id: header.broker_id,
            ha_server_addr: header.ha_server_addr,
            zone_name: header.zone_name,
            timeout: header
                .heartbeat_timeout_millis
                .and_then(|ms| u64::try_from(ms).ok())
                .map_or(BROKER_CHANNEL_EXPIRED_TIME, Duration::from_millis),
            enable_acting_master: header.enable_acting_master,
            topic_config: body.topic_config_serialize_wrapper,
            filter_servers: body.filter_server_list,
            channel_id: Some(channel.id()),
        };
        let result = self
            .state
            .routes
            .write()
            .register_broker(registration, Instant::now());
        let Some(result) = result else {
            return Err(ProcessError::system_error("register broker failed"));
        };
        self.state
            .broker_channels
            .lock()
            .insert(channel.id(), channel.clone());
        let mut response = ok(request).with_header(&RegisterBrokerResponseHeader {
            ha_server_addr: result.ha_server_addr,
            master_addr: result.master_addr,
        })?;
        if self.state.config.read().return_order_topic_config_to_broker
            && let Some(table) = self
                .state
                .kv
                .lock()
                .namespace(NAMESPACE_ORDER_TOPIC_CONFIG)
                .cloned()
        {
            response = response.with_body(fastjson::to_vec(&KVTable { table }));
        }
        Ok(Some(response))
    }

    fn unregister_broker(&self, request: &RemotingCommand) -> ProcessResult {
        let header: UnRegisterBrokerRequestHeader = request.decode_header()?;
        self.state.routes.write().unregister_broker(
            &header.cluster_name,
            &header.broker_addr,
            &header.broker_name,
            header.broker_id,
        );
        Ok(Some(ok(request)))
    }

    fn broker_heartbeat(&self, request: &RemotingCommand) -> ProcessResult {
        let header: BrokerHeartbeatRequestHeader = request.decode_header()?;
        let timeout = header
            .heartbeat_timeout_mills
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis);
        self.state.routes.write().touch(
            &header.cluster_name,
            &header.broker_addr,
            timeout,
            Instant::now(),
        );
        Ok(Some(ok(request)))
    }

    fn query_data_version(&self, request: &RemotingCommand) -> ProcessResult {
        let header: QueryDataVersionRequestHeader = request.decode_header()?;
        let version: DataVersion = fastjson::from_slice(&request.body.to_bytes(), "DataVersion")?;
        let (changed, stored) = self.state.routes.write().query_data_version(
            &header.cluster_name,
            &header.broker_addr,
            &version,
            Instant::now(),
        );
        let mut response = ok(request).with_header(&QueryDataVersionResponseHeader { changed })?;
        if let Some(stored) = stored {
            response = response.with_body(fastjson::to_vec(&stored));
        }
        Ok(Some(response))
    }

    fn not_ready(&self) -> Option<ProcessError> {
        let config = self.state.config.read();
        let waiting = config.need_wait_for_service
            && self.state.started.elapsed() < Duration::from_secs(config.wait_seconds_for_service);
        waiting.then(|| ProcessError::system_error("name server not ready"))
    }

    fn route(&self, request: &RemotingCommand) -> ProcessResult {
        if let Some(error) = self.not_ready() {
            return Err(error);
        }
        let header: GetRouteInfoRequestHeader = request.decode_header()?;
        let route = self.state.routes.read().topic_route(&header.topic);
        let Some(mut route) = route else {
            return Err(ProcessError::new(
                ResponseCode::TopicNotExist,
                format!(
                    "No topic route info in name server for the topic: {}",
                    header.topic
                ),
            ));
        };
        if self.state.config.read().order_message_enable {
            route.order_topic_conf = self
                .state
                .kv
                .lock()
                .get(NAMESPACE_ORDER_TOPIC_CONFIG, &header.topic)
                .map(str::to_owned);
        }
        Ok(Some(ok(request).with_body(encode_route(
            &route,
            request.version,
            header.accept_standard_json_only,
        ))))
    }

    fn write_perm(&self, request: &RemotingCommand, wipe: bool) -> ProcessResult {
        let header: WipeWritePermOfBrokerRequestHeader = request.decode_header()?;
        let count = self
            .state
            .routes
            .write()
            .set_write_perm(&header.broker_name, wipe);
        info!(broker = %header.broker_name, topics = count, wipe, "write permission changed");
        if wipe {
            with_header(
                ok(request),
                &WipeWritePermOfBrokerResponseHeader {
                    wipe_topic_count: count,
                },
            )
        } else {
            with_header(
                ok(request),
                &AddWritePermOfBrokerResponseHeader {
                    add_topic_count: count,
                },
            )
        }
    }

    fn all_topics(&self, request: &RemotingCommand) -> ProcessResult {
        if !self.state.config.read().enable_all_topic_list {
            return Err(ProcessError::system_error("disable"));
        }
        let topic_list = self.state.routes.read().all_topics();
        Ok(Some(json_body(
            request,
            &TopicList {
                broker_addr: None,
                topic_list,
            },
        )))
    }

    fn delete_topic(&self, request: &RemotingCommand) -> ProcessResult {
        let header: DeleteTopicFromNamesrvRequestHeader = request.decode_header()?;
        self.state
            .routes
            .write()
            .delete_topic(&header.topic, header.cluster_name.as_deref());
        info!(topic = %header.topic, cluster = ?header.cluster_name, "topic deleted from routes");
        Ok(Some(ok(request)))
    }

    fn register_topic(&self, request: &RemotingCommand) -> ProcessResult {
        let header: RegisterTopicRequestHeader = request.decode_header()?;
        let body = request.body.to_bytes();
        if !body.is_empty() {
            let route: TopicRouteData = fastjson::from_slice(&body, "TopicRouteData")?;
            self.state
                .routes
                .write()
                .register_topic(&header.topic, route.queue_datas);
        }
        Ok(Some(ok(request)))
    }

    fn topics_by_cluster(&self, request: &RemotingCommand) -> ProcessResult {
        if !self.state.config.read().enable_topic_list {
            return Err(ProcessError::system_error("disable"));
        }
        let header: GetTopicsByClusterRequestHeader = request.decode_header()?;
        let topic_list = self.state.routes.read().topics_by_cluster(&header.cluster);
        Ok(Some(json_body(
            request,
            &TopicList {
                broker_addr: None,
                topic_list,
            },
        )))
    }

    fn system_topics(&self, request: &RemotingCommand) -> ProcessResult {
        let (topic_list, broker_addr) = self.state.routes.read().system_topics();
        Ok(Some(json_body(
            request,
            &TopicList {
                broker_addr,
                topic_list,
            },
        )))
    }

    fn unit_topics(&self, request: &RemotingCommand, filter: UnitFilter) -> ProcessResult {
        if !self.state.config.read().enable_topic_list {
            return Err(ProcessError::system_error("disable"));
        }
        let topic_list = self.state.routes.read().unit_topics(filter);
        Ok(Some(json_body(
            request,
            &TopicList {
                broker_addr: None,
                topic_list,
            },
        )))
    }

    fn update_config(&self, request: &RemotingCommand) -> ProcessResult {
        let text = String::from_utf8_lossy(&request.body.to_bytes()).into_owned();
        let pairs = java_properties::parse(&text);
        if let Some((key, _)) = pairs
            .iter()
            .find(|(key, _)| !KEYS.iter().any(|k| k.name == key))
        {
            return Err(ProcessError::system_error(format!(
                "unknown NameServer config key `{key}`"
            )));
        }
        let mut config = self.state.config.write();
        let mut updated = config.clone();
        java_properties::apply(KEYS, &mut updated, &pairs, true)
            .map_err(|e| ProcessError::system_error(e.to_string()))?;
        *config = updated;
        info!(keys = ?pairs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), "NameServer config updated");
        Ok(Some(ok(request)))
    }

    fn broker_member_group(&self, request: &RemotingCommand) -> ProcessResult {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct BrokerMemberGroup {
            broker_addrs: std::collections::BTreeMap<i64, String>,
            broker_name: String,
            cluster: String,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            broker_member_group: BrokerMemberGroup,
        }
        let header: GetBrokerMemberGroupRequestHeader = request.decode_header()?;
        let broker_addrs = self
            .state
            .routes
            .read()
            .broker_member_group(&header.broker_name);
        Ok(Some(json_body(
            request,
            &Body {
                broker_member_group: BrokerMemberGroup {
                    broker_addrs,
                    broker_name: header.broker_name,
                    cluster: header.cluster_name,
                },
            },
        )))
    }
}

/// Routes go out as standard JSON to clients at V4_9_4 or later (or that ask for it), and
/// in fastjson's dialect to older ones, which parse the unquoted ids (spec §4.2).
pub fn encode_route(
    route: &TopicRouteData,
    request_version: i32,
    accept_standard_json_only: Option<bool>,
) -> Vec<u8> {
    if request_version >= version::V4_9_4 || accept_standard_json_only == Some(true) {
        fastjson::to_standard_vec(route)
    } else {
        fastjson::to_vec(route)
    }
}

/// Forgets brokers whose connection closed.
#[derive(Debug)]
pub struct BrokerChannelListener {
    pub(crate) state: Arc<NamesrvState>,
}

impl ChannelEventListener for BrokerChannelListener {
    fn on_close(&self, channel: &Channel) {
        if self
            .state
            .broker_channels
            .lock()
            .remove(&channel.id())
            .is_some()
        {
            self.state.routes.write().on_channel_closed(channel.id());
        }
    }
}
