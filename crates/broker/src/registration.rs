//! Registration with every NameServer (spec remoting.md §3.10, semantics.md §3): at start,
//! every `registerNameServerPeriod`, at once when the topic table changes, and
//! UNREGISTER_BROKER at shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use karman_protocol::body::{RegisterBrokerBody, fastjson};
use karman_protocol::header::{RegisterBrokerRequestHeader, UnRegisterBrokerRequestHeader};
use karman_protocol::message::stored::body_crc;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{ClientConfig, Dispatcher, RemotingClient};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::topic_table::TopicTable;
use crate::{BrokerIdentity, SharedConfig};

#[derive(Debug)]
pub struct Registrar {
    config: SharedConfig,
    identity: Arc<BrokerIdentity>,
    topics: Arc<TopicTable>,
    client: RemotingClient,
}

impl Registrar {
    pub fn new(
        config: SharedConfig,
        identity: Arc<BrokerIdentity>,
        topics: Arc<TopicTable>,
    ) -> Self {
        Self {
            config,
            identity,
            topics,
            client: RemotingClient::new(ClientConfig::default(), Dispatcher::new()),
        }
    }

    fn register_request(&self) -> Option<RemotingCommand> {
        let (broker_permission, timeout_ms) = {
            let config = self.config.read();
            (config.broker_permission, config.channel_expired_timeout_ms)
        };
        let body = RegisterBrokerBody {
            filter_server_list: Vec::new(),
            topic_config_serialize_wrapper: self.topics.registration_wrapper(broker_permission),
        };
        let body = fastjson::to_vec(&body);
        let header = RegisterBrokerRequestHeader {
            broker_name: self.identity.name.clone(),
            broker_addr: self.identity.addr.clone(),
            cluster_name: self.identity.cluster.clone(),
            ha_server_addr: self.identity.ha_addr.clone(),
            broker_id: self.identity.id,
            heartbeat_timeout_millis: Some(i64::try_from(timeout_ms).unwrap_or(120_000)),
            enable_acting_master: Some(false),
            compressed: false,
            body_crc32: Some(i32::try_from(body_crc(&body)).unwrap_or(0)),
            zone_name: None,
        };
        let command =
            RemotingCommand::request_with_header(RequestCode::RegisterBroker, &header).ok()?;
        Some(command.with_body(body))
    }

    /// Registers with every NameServer in parallel; failures are logged and retried at the
    /// next period.
    pub async fn register_all(&self) {
        let addrs = self.config.read().namesrv_addrs();
        let Some(request) = self.register_request() else {
            return;
        };
        let timeout = Duration::from_millis(self.config.read().register_broker_timeout_ms);
        let calls = addrs.iter().map(|addr| {
            let request = request.clone();
            async move {
                match self.client.invoke(addr, request, timeout).await {
                    Ok(response) if response.response_code() == ResponseCode::Success => {
                        debug!(namesrv = %addr, "registered");
                    }
                    Ok(response) => warn!(namesrv = %addr, code = response.code, remark = ?response.remark, "registration refused"),
                    Err(error) => warn!(namesrv = %addr, %error, "registration failed; retrying at the next period"),
                }
            }
        });
        join_all(calls).await;
    }

    /// Re-registers every period and whenever the topic table changes.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let period = self.config.read().register_period();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.topics.changed.notified() => {}
                _ = stop.cancelled() => return,
            }
            self.register_all().await;
        }
    }

    pub async fn unregister_all(&self) {
        let addrs = self.config.read().namesrv_addrs();
        let header = UnRegisterBrokerRequestHeader {
            broker_name: self.identity.name.clone(),
            broker_addr: self.identity.addr.clone(),
            cluster_name: self.identity.cluster.clone(),
            broker_id: self.identity.id,
        };
        let Ok(request) =
            RemotingCommand::request_with_header(RequestCode::UnregisterBroker, &header)
        else {
            return;
        };
        let calls = addrs.iter().map(|addr| {
            let request = request.clone();
            async move {
                if let Err(error) = self.client.invoke(addr, request, Duration::from_secs(3)).await {
                    warn!(namesrv = %addr, %error, "unregister failed; the NameServer will expire this broker");
                }
            }
        });
        join_all(calls).await;
        self.client.shutdown().await;
    }
}
