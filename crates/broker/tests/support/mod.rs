//! An in-process NameServer and broker on ephemeral loopback ports, and a remoting client
//! that speaks to them the way a Java client does.

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use karman_broker::{BrokerConfig, BrokerHandle};
use karman_namesrv::{NamesrvConfig, NamesrvHandle};
use karman_protocol::header::{PullMessageRequestHeader, SendMessageRequestHeaderV2};
use karman_protocol::message::MessageExt;
use karman_protocol::message::sysflag::pull as pull_flag;
use karman_protocol::{RemotingCommand, RequestCode};
use karman_remoting::{ClientConfig, Dispatcher, RemotingClient};

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub namesrv: Option<NamesrvHandle>,
    pub broker: Option<BrokerHandle>,
    pub client: RemotingClient,
}

pub fn broker_config(dir: &std::path::Path, namesrv: &str) -> BrokerConfig {
    let mut config = BrokerConfig::default();
    let loopback = "127.0.0.1".parse().unwrap();
    config.bind_address = loopback;
    config.broker_ip1 = loopback;
    config.broker_ip2 = loopback;
    config.listen_port = 0;
    config.broker_name = "broker-a".into();
    config.namesrv_addr = Some(namesrv.to_owned());
    config.store.store_path_root_dir = dir.join("store");
    config.store.mapped_file_size_commit_log_bytes = 16 << 20;
    config.store.mapped_file_size_consume_queue_bytes = 20 * 10_000;
    config.store.max_hash_slot_count = 10_000;
    config.store.max_index_count = 40_000;
    config
}

impl Cluster {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        // RUST_LOG=debug shows every node's log for a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let namesrv = karman_namesrv::start(NamesrvConfig {
            bind_address: "127.0.0.1".parse().unwrap(),
            listen_port: 0,
            kv_config_path: dir.path().join("kvConfig.json"),
            ..NamesrvConfig::default()
        })
        .await
        .unwrap();
        let mut config = broker_config(dir.path(), &namesrv.local_addr().to_string());
        tweak(&mut config);
        let broker = karman_broker::start(config).await.unwrap();
        Self {
            dir,
            namesrv: Some(namesrv),
            broker: Some(broker),
            client: RemotingClient::new(ClientConfig::default(), Dispatcher::new()),
        }
    }

    pub fn broker(&self) -> &BrokerHandle {
        self.broker.as_ref().unwrap()
    }

    pub fn broker_addr(&self) -> String {
        self.broker().broker_addr().to_owned()
    }

    pub fn namesrv_addr(&self) -> String {
        self.namesrv.as_ref().unwrap().local_addr().to_string()
    }

    /// Stops the broker cleanly and starts it again on the same data.
    pub async fn restart_broker(&mut self, tweak: impl FnOnce(&mut BrokerConfig)) {
        self.broker.take().unwrap().shutdown().await;
        let mut config = broker_config(self.dir.path(), &self.namesrv_addr());
        tweak(&mut config);
        self.broker = Some(karman_broker::start(config).await.unwrap());
    }

    pub async fn call(&self, request: RemotingCommand) -> RemotingCommand {
        self.client
            .invoke(&self.broker_addr(), request, TIMEOUT)
            .await
            .unwrap()
    }

    pub async fn send(
        &self,
        topic: &str,
        queue_id: i32,
        body: &str,
        properties: &str,
    ) -> RemotingCommand {
        self.call(send_request(topic, queue_id, body, properties))
            .await
    }

    pub fn pull_request(
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: i64,
        suspend_ms: i64,
    ) -> RemotingCommand {
        let header = PullMessageRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            queue_id,
            queue_offset: offset,
            max_msg_nums: 32,
            sys_flag: pull_flag::SUBSCRIPTION
                | if suspend_ms > 0 {
                    pull_flag::SUSPEND
                } else {
                    0
                },
            commit_offset: 0,
            suspend_timeout_millis: suspend_ms,
            subscription: Some("*".into()),
            sub_version: 0,
            expression_type: Some("TAG".into()),
            ..PullMessageRequestHeader::default()
        };
        RemotingCommand::request_with_header(RequestCode::PullMessage, &header).unwrap()
    }

    pub async fn pull(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: i64,
        suspend_ms: i64,
    ) -> RemotingCommand {
        self.call(Self::pull_request(
            group, topic, queue_id, offset, suspend_ms,
        ))
        .await
    }

    pub async fn shutdown(mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
        if let Some(namesrv) = self.namesrv.take() {
            namesrv.shutdown().await;
        }
        self.client.shutdown().await;
    }
}

/// A SEND_MESSAGE_V2 request as the Java client builds it.
pub fn send_request(topic: &str, queue_id: i32, body: &str, properties: &str) -> RemotingCommand {
    let header = SendMessageRequestHeaderV2 {
        producer_group: "test_producer".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: now_ms(),
        flag: 0,
        properties: Some(properties.into()),
        reconsume_times: Some(0),
        ..SendMessageRequestHeaderV2::default()
    };
    RemotingCommand::request_with_header(RequestCode::SendMessageV2, &header)
        .unwrap()
        .with_body(Bytes::copy_from_slice(body.as_bytes()))
}

pub fn messages(response: &RemotingCommand) -> Vec<MessageExt> {
    MessageExt::decode_all(&response.body.to_bytes()).unwrap()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
