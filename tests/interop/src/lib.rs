//! # karman-interop-tests
//!
//! Proves that a stock third-party RocketMQ client, `rocketmq-client-rust` (pinned to
//! 1.0.0), works unchanged against a Karman NameServer and broker. Each test starts its
//! own [`Cluster`]: one NameServer and one broker, in-process through their `start(config)`
//! calls, on ephemeral loopback ports, with a temp data dir of their own.
//!
//! The nodes run on a runtime of their own whose threads log into the cluster's buffer;
//! when a test fails (the cluster is dropped while panicking) that buffer is printed, so
//! every node's log ends up in the test's output. `KARMAN_TEST_LOG` overrides the filter
//! (default `info,karman_broker=debug`).
//!
//! Readiness is observed, never slept for: [`Cluster::wait_route`] polls the NameServer
//! until the topic's route names the broker, bounded by a deadline.
//!
//! This crate is a workspace member but not a default member: `cargo build` skips the heavy
//! client; `cargo test --workspace` (scripts/test, CI) runs it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use karman_broker::{BrokerConfig, BrokerHandle};
use karman_namesrv::{NamesrvConfig, NamesrvHandle};
use karman_protocol::body::fastjson;
use karman_protocol::body::{KVTable, TopicRouteData};
use karman_protocol::header::{CreateTopicRequestHeader, GetRouteInfoRequestHeader};
use karman_protocol::message::sysflag::perm;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{ClientConfig, Dispatcher, RemotingClient};
use parking_lot::Mutex;
use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig, TelemetryHandle};
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};
use tokio::time::Instant;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub mod collect;

pub use collect::{Collector, Received};

/// How long a test waits for anything the cluster should do promptly (routes, sends,
/// deliveries without a deliberate delay).
pub const PROMPT: Duration = Duration::from_secs(30);

/// Bytes of node log kept per cluster; older lines are dropped first.
const LOG_BYTES_MAX: usize = 8 * 1024 * 1024;

/// A bounded in-memory log sink shared by every thread of a cluster's node runtime.
#[derive(Clone, Default)]
pub struct LogBuffer {
    inner: Arc<Mutex<Vec<u8>>>,
}

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogBuffer({} bytes)", self.inner.lock().len())
    }
}

impl LogBuffer {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.inner.lock()).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut inner = self.inner.lock();
        inner.extend_from_slice(buf);
        if inner.len() > LOG_BYTES_MAX {
            let excess = inner.len() - LOG_BYTES_MAX / 2;
            inner.drain(..excess);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Settings of one test cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Applied to the broker config after the harness has set ports, addresses, names and
    /// the data dir: broker.conf settings a test needs.
    pub broker: fn(&mut BrokerConfig),
    /// The broker listens on a port chosen when the cluster starts (with `listenPort - 2`
    /// free for the VIP channel) instead of an ephemeral one, and
    /// [`Cluster::restart_broker`] brings it back on that same port, as a restarted
    /// production broker comes back on its configured port. Clients that cached the
    /// broker's address (a transactional producer ending a transaction, a consumer's pull
    /// loop) then reach the new broker without a route refresh.
    pub stable_port: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            broker: |_| {},
            stable_port: false,
        }
    }
}

/// One NameServer and one broker, started in-process on ephemeral loopback ports.
pub struct Cluster {
    name: String,
    nodes: Option<tokio::runtime::Runtime>,
    namesrv: Option<NamesrvHandle>,
    broker: Option<BrokerHandle>,
    broker_config: BrokerConfig,
    namesrv_addr: String,
    admin: RemotingClient,
    logs: LogBuffer,
    started_at: Instant,
    // Dropped last: the nodes' files live here.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("namesrv", &self.namesrv_addr)
            .field("broker", &self.broker.as_ref().map(|b| b.broker_addr()))
            .field("dir", &self.dir.path())
            .finish()
    }
}

static CLUSTER_SEQ: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// Starts a NameServer and a broker with default settings.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, ClusterOptions::default()).await
    }

    pub async fn start_with(name: &str, options: ClusterOptions) -> Self {
        let seq = CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{name}-{seq}");
        let dir = tempfile::Builder::new()
            .prefix(&format!("karman-interop-{name}-"))
            .tempdir()
            .expect("temp dir for the cluster");
        let logs = LogBuffer::default();
        let nodes = node_runtime(&name, &logs);
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);

        let namesrv_config = NamesrvConfig {
            bind_address: loopback,
            listen_port: 0,
            kv_config_path: dir.path().join("namesrv").join("kvConfig.json"),
            ..NamesrvConfig::default()
        };
        let namesrv = nodes
            .spawn(karman_namesrv::start(namesrv_config))
            .await
            .expect("namesrv start task")
            .expect("namesrv starts");
        let namesrv_addr = namesrv.local_addr().to_string();

        let mut broker_config = BrokerConfig {
            broker_cluster_name: "InteropCluster".to_owned(),
            broker_name: format!("broker-{name}"),
            namesrv_addr: Some(namesrv_addr.clone()),
            broker_ip1: loopback,
            broker_ip2: loopback,
            bind_address: loopback,
            listen_port: 0,
            ..BrokerConfig::default()
        };
        broker_config.store.store_path_root_dir = dir.path().join("broker").join("store");
        if options.stable_port {
            broker_config.listen_port = free_port_with_vip();
        }
        (options.broker)(&mut broker_config);

        let mut cluster = Self {
            name,
            nodes: Some(nodes),
            namesrv: Some(namesrv),
            broker: None,
            broker_config,
            namesrv_addr,
            admin: RemotingClient::new(ClientConfig::default(), Dispatcher::new()),
            logs,
            started_at: Instant::now(),
            dir,
        };
        cluster.start_broker().await;
        eprintln!("[interop] {cluster:?} started");
        cluster
    }

    fn nodes(&self) -> &tokio::runtime::Runtime {
        self.nodes.as_ref().expect("node runtime is running")
    }

    async fn start_broker(&mut self) {
        assert!(self.broker.is_none(), "one broker per cluster");
        let config = self.broker_config.clone();
        let broker = self
            .nodes()
            .spawn(karman_broker::start(config))
            .await
            .expect("broker start task")
            .expect("broker starts");
        self.broker = Some(broker);
    }

    /// The NameServer address clients are given.
    pub fn namesrv_addr(&self) -> &str {
        &self.namesrv_addr
    }

    /// `ip:port` of the broker, as registered with the NameServer.
    pub fn broker_addr(&self) -> String {
        self.broker().broker_addr().to_owned()
    }

    pub fn broker_name(&self) -> &str {
        &self.broker_config.broker_name
    }

    pub fn broker(&self) -> &BrokerHandle {
        self.broker.as_ref().expect("broker is running")
    }

    /// Everything the nodes have logged so far.
    pub fn logs(&self) -> String {
        self.logs.contents()
    }

    /// Shuts the broker down cleanly and starts it again on the same data dir (on the same
    /// port with [`ClusterOptions::stable_port`], else on a new ephemeral one), then waits
    /// until `topic`'s route names the new address.
    pub async fn restart_broker(&mut self, topic: &str) {
        let broker = self.broker.take().expect("broker is running");
        self.admin.close_channel(broker.broker_addr());
        self.nodes()
            .spawn(broker.shutdown())
            .await
            .expect("broker shutdown task");
        self.start_broker().await;
        self.wait_route(topic).await;
        eprintln!("[interop] broker restarted at {}", self.broker_addr());
    }

    /// A raw remoting request to the broker (what a well-behaved client would never send,
    /// or what mqadmin sends).
    pub async fn broker_request(&self, request: RemotingCommand) -> RemotingCommand {
        let addr = self.broker_addr();
        self.admin
            .invoke(&addr, request, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("request to the broker at {addr} failed: {e}"))
    }

    /// A connection of its own to the broker, for raw requests whose effect on the
    /// connection matters.
    pub async fn broker_channel(&self) -> karman_remoting::Channel {
        let addr = self.broker_addr();
        self.admin
            .channel(&addr)
            .await
            .unwrap_or_else(|e| panic!("connecting to the broker at {addr} failed: {e}"))
    }

    /// The broker's runtime counters, as `mqadmin brokerStatus` reads them
    /// (GET_BROKER_RUNTIME_INFO).
    pub async fn broker_runtime_info(&self) -> BTreeMap<String, String> {
        let response = self
            .broker_request(RemotingCommand::request(RequestCode::GetBrokerRuntimeInfo))
            .await;
        assert_eq!(
            response.response_code(),
            ResponseCode::Success,
            "GET_BROKER_RUNTIME_INFO failed: {:?}",
            response.remark
        );
        fastjson::from_slice::<KVTable>(&response.body.to_bytes(), "KVTable")
            .expect("runtime info body decodes")
            .table
    }

    /// A raw remoting request to the NameServer.
    pub async fn namesrv_request(&self, request: RemotingCommand) -> RemotingCommand {
        self.admin
            .invoke(&self.namesrv_addr, request, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "request to the namesrv at {} failed: {e}",
                    self.namesrv_addr
                )
            })
    }

    /// Creates `topic` with `queues` read and write queues, as `mqadmin updateTopic` does
    /// (UPDATE_AND_CREATE_TOPIC to the broker), and waits for its route.
    pub async fn create_topic(&self, topic: &str, queues: i32) {
        self.create_topic_with(topic, queues, false).await;
    }

    pub async fn create_topic_with(&self, topic: &str, queues: i32, order: bool) {
        let header = CreateTopicRequestHeader {
            topic: topic.to_owned(),
            default_topic: "TBW102".to_owned(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: perm::READ_WRITE,
            topic_filter_type: "SINGLE_TAG".to_owned(),
            order,
            ..CreateTopicRequestHeader::default()
        };
        let request =
            RemotingCommand::request_with_header(RequestCode::UpdateAndCreateTopic, &header)
                .expect("encode create-topic header");
        let response = self.broker_request(request).await;
        assert_eq!(
            response.response_code(),
            ResponseCode::Success,
            "creating topic {topic} failed: {:?}",
            response.remark
        );
        self.wait_route(topic).await;
    }

    /// The topic's route as the NameServer answers it, if it has one.
    pub async fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let header = GetRouteInfoRequestHeader {
            topic: topic.to_owned(),
            accept_standard_json_only: None,
        };
        let request =
            RemotingCommand::request_with_header(RequestCode::GetRouteinfoByTopic, &header)
                .expect("encode route header");
        let response = self.namesrv_request(request).await;
        if response.response_code() != ResponseCode::Success {
            return None;
        }
        Some(
            fastjson::from_slice(&response.body.to_bytes(), "TopicRouteData")
                .expect("route body decodes"),
        )
    }

    /// Waits until the NameServer routes `topic` to this broker's current address.
    pub async fn wait_route(&self, topic: &str) {
        let addr = self.broker_addr();
        let deadline = Instant::now() + PROMPT;
        loop {
            if let Some(route) = self.route(topic).await
                && route
                    .broker_datas
                    .iter()
                    .any(|b| b.broker_addrs.values().any(|a| *a == addr))
                && !route.queue_datas.is_empty()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no route for {topic} to {addr} within {PROMPT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the broker and the NameServer cleanly.
    pub async fn shutdown(mut self) {
        self.admin.shutdown().await;
        if let Some(broker) = self.broker.take() {
            self.nodes()
                .spawn(broker.shutdown())
                .await
                .expect("broker shutdown task");
        }
        if let Some(namesrv) = self.namesrv.take() {
            self.nodes()
                .spawn(namesrv.shutdown())
                .await
                .expect("namesrv shutdown task");
        }
        eprintln!(
            "[interop] cluster {} stopped after {:.1?}",
            self.name,
            self.started_at.elapsed()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== [interop] logs of cluster {} (namesrv {}, broker {:?}) =====\n{}\n===== end of logs =====",
                self.name,
                self.namesrv_addr,
                self.broker.as_ref().map(|b| b.broker_addr().to_owned()),
                self.logs.contents()
            );
        }
        if let Some(nodes) = self.nodes.take() {
            nodes.shutdown_background();
        }
    }
}

/// A loopback port that is free, and whose `port - 2` (the broker's VIP channel) is free
/// too. Both are released before returning; the broker binds them right after.
fn free_port_with_vip() -> u16 {
    for _ in 0..100 {
        let main = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind port 0");
        let port = main.local_addr().expect("bound address").port();
        if port > 1026 && std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port - 2)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port with a free port - 2 in 100 tries");
}

/// The runtime the nodes run on: its threads (workers and blocking pool alike) log into
/// `logs`.
fn node_runtime(name: &str, logs: &LogBuffer) -> tokio::runtime::Runtime {
    let filter = EnvFilter::try_from_env("KARMAN_TEST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,karman_broker=debug"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_thread_names(true)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("node-{name}"))
        .enable_all()
        .on_thread_start(move || {
            // The guard would reset the default when dropped; the thread keeps it for life.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .expect("node runtime")
}

/// Blocking work the client runtime queues before refusing more. The client runs every
/// transactional producer's local transaction and check on this lane, and skips the
/// listener when the lane refuses (see README, "What to know"); the default 256 is less
/// than the transactions tests keep in flight.
const CLIENT_BLOCKING_QUEUE: usize = 4096;

static CLIENT_RUNTIME_OWNER: LazyLock<RuntimeOwner> = LazyLock::new(|| {
    let mut config = RuntimeConfig {
        thread_name: "interop-client".to_owned(),
        worker_threads: 2,
        ..RuntimeConfig::default()
    };
    config.blocking_lane_policies.metadata_io.max_queue_depth = CLIENT_BLOCKING_QUEUE;
    RuntimeOwner::plan(config)
        .expect("client runtime configuration is valid")
        .build()
        .expect("client runtime starts")
});

/// A client runtime scope for one producer or consumer, as the client's own tests build it.
pub fn client_runtime(scope: &str) -> Arc<ClientRuntime> {
    ClientRuntime::try_new(
        CLIENT_RUNTIME_OWNER
            .root_context()
            .component(rocketmq_runtime::ScopeId::try_from(scope.to_owned()).expect("scope name")),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .expect("client runtime scope")
}

static GROUP_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A group or topic name unique within this test process.
pub fn unique(kind: &str) -> String {
    format!(
        "{kind}_{}_{}",
        std::process::id(),
        GROUP_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// An error with its whole source chain, for assertion messages (the client's errors
/// redact their text in `Debug` and keep it in the source).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Bodies `prefix-0` … `prefix-(n-1)`.
pub fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Counts of each value, to compare multisets exactly.
pub fn counts<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut map = BTreeMap::new();
    for item in items {
        *map.entry(item).or_insert(0) += 1;
    }
    map
}
