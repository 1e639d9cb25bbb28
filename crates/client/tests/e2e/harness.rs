//! An in-process NameServer and broker (`karman_namesrv::start`, `karman_broker::start`) on
//! ephemeral loopback ports with a temp data dir, for karman-client to talk to.
//!
//! The nodes run on a runtime of their own whose threads log into the cluster's buffer;
//! when a test fails (the cluster is dropped while panicking) that buffer is printed.
//! `KARMAN_TEST_LOG` sets the node filter (default `info,karman_broker=debug`); `RUST_LOG`
//! the client's (printed through the test writer).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use karman_broker::{BrokerConfig, BrokerHandle};
use karman_client::admin::Admin;
use karman_client::consumer::{
    ConsumeConcurrentlyStatus, PushConsumer, PushConsumerBuilder, concurrently,
};
use karman_client::{ClientConfig, MessageExt, Producer};
use karman_namesrv::{NamesrvConfig, NamesrvHandle};
use karman_protocol::body::TopicConfig;
use karman_protocol::message::sysflag::perm;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How long a test waits for anything the cluster should do promptly.
pub const PROMPT: Duration = Duration::from_secs(30);

/// Bytes of node log kept per cluster; older lines are dropped first.
const LOG_BYTES_MAX: usize = 8 * 1024 * 1024;

#[derive(Clone, Default)]
pub struct LogBuffer {
    inner: Arc<Mutex<Vec<u8>>>,
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

/// One NameServer and one broker.
pub struct Cluster {
    name: String,
    nodes: Option<tokio::runtime::Runtime>,
    namesrv: Option<NamesrvHandle>,
    broker: Option<BrokerHandle>,
    broker_config: BrokerConfig,
    namesrv_addr: String,
    admin: Option<Admin>,
    logs: LogBuffer,
    started_at: Instant,
    // Dropped last: the nodes' files live here.
    dir: tempfile::TempDir,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A name unique within this test process (groups, topics, instance names).
pub fn unique(kind: &str) -> String {
    format!(
        "{kind}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn init_client_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

impl Cluster {
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, |_| {}).await
    }

    /// `tweak` changes the broker config after ports, names and the data dir are set.
    pub async fn start_with(name: &str, tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        init_client_tracing();
        let name = unique(name);
        let dir = tempfile::Builder::new()
            .prefix(&format!("karman-e2e-{name}-"))
            .tempdir()
            .expect("temp dir for the cluster");
        let logs = LogBuffer::default();
        let nodes = node_runtime(&name, &logs);
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let namesrv = nodes
            .spawn(karman_namesrv::start(NamesrvConfig {
                bind_address: loopback,
                listen_port: 0,
                kv_config_path: dir.path().join("namesrv").join("kvConfig.json"),
                ..NamesrvConfig::default()
            }))
            .await
            .expect("namesrv start task")
            .expect("namesrv starts");
        let namesrv_addr = namesrv.local_addr().to_string();
        let mut broker_config = BrokerConfig {
            broker_cluster_name: "E2eCluster".to_owned(),
            broker_name: format!("broker-{name}"),
            namesrv_addr: Some(namesrv_addr.clone()),
            broker_ip1: loopback,
            broker_ip2: loopback,
            bind_address: loopback,
            listen_port: 0,
            ..BrokerConfig::default()
        };
        let store = &mut broker_config.store;
        store.store_path_root_dir = dir.path().join("broker").join("store");
        // Small files: tests write little, and 2 cores share the page cache.
        store.mapped_file_size_commit_log_bytes = 64 << 20;
        store.mapped_file_size_consume_queue_bytes = 20 * 30_000;
        store.max_hash_slot_count = 50_000;
        store.max_index_count = 200_000;
        tweak(&mut broker_config);
        let mut cluster = Self {
            name,
            nodes: Some(nodes),
            namesrv: Some(namesrv),
            broker: None,
            broker_config,
            namesrv_addr,
            admin: None,
            logs,
            started_at: Instant::now(),
            dir,
        };
        cluster.start_broker().await;
        let admin = Admin::with_config(cluster.client_config("admin"))
            .await
            .expect("admin connects");
        cluster.admin = Some(admin);
        eprintln!(
            "[e2e] cluster {} started: namesrv {} broker {} dir {}",
            cluster.name,
            cluster.namesrv_addr,
            cluster.broker_addr(),
            cluster.dir.path().display()
        );
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

    pub fn broker(&self) -> &BrokerHandle {
        self.broker.as_ref().expect("broker is running")
    }

    pub fn broker_addr(&self) -> String {
        self.broker().broker_addr().to_owned()
    }

    pub fn broker_name(&self) -> &str {
        &self.broker_config.broker_name
    }

    pub fn admin(&self) -> &Admin {
        self.admin.as_ref().expect("admin is connected")
    }

    /// Client settings naming this cluster's NameServer, with a distinct instance name (so
    /// clients in this process get distinct client ids, as separate processes would) and
    /// short periods so tests do not wait on Java's 20–30 s timers.
    pub fn client_config(&self, instance: &str) -> ClientConfig {
        ClientConfig {
            namesrv_addr: self.namesrv_addr.clone(),
            instance_name: unique(instance),
            poll_name_server_interval: Duration::from_secs(1),
            heartbeat_broker_interval: Duration::from_secs(1),
            persist_consumer_offset_interval: Duration::from_millis(500),
            rebalance_interval: Duration::from_secs(1),
            ..ClientConfig::default()
        }
    }

    /// A producer of `group` on a client instance of its own.
    pub async fn producer(&self, group: &str) -> Producer {
        Producer::builder()
            .client_config(self.client_config(group))
            .group(group)
            .send_timeout(Duration::from_secs(10))
            .build()
            .await
            .expect("producer starts")
    }

    /// A push consumer builder on a client instance of its own, for `group`.
    pub fn push_consumer(&self, group: &str, instance: &str) -> PushConsumerBuilder {
        PushConsumer::builder()
            .client_config(self.client_config(instance))
            .group(group)
            .consume_thread_count(4)
    }

    /// A started concurrent push consumer that records every delivery into `collector`
    /// under `label` and answers CONSUME_SUCCESS.
    pub async fn recording_consumer(
        &self,
        group: &str,
        label: &str,
        topic: &str,
        expression: &str,
        collector: &Collector,
        tweak: impl FnOnce(PushConsumerBuilder) -> PushConsumerBuilder,
    ) -> PushConsumer {
        let (collector, who) = (collector.clone(), label.to_owned());
        tweak(
            self.push_consumer(group, label)
                .subscribe(topic, expression),
        )
        .listener_concurrently(concurrently(move |messages| {
            let (collector, who) = (collector.clone(), who.clone());
            async move {
                for m in &messages {
                    collector.record(&who, m);
                }
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await
        .expect("push consumer starts")
    }

    /// Creates `topic` with `queues` read and write queues on the broker (mqadmin
    /// `updateTopic`) and waits for its route.
    pub async fn create_topic(&self, topic: &str, queues: i32) {
        self.create_topic_with(topic, queues, false).await;
    }

    pub async fn create_topic_with(&self, topic: &str, queues: i32, order: bool) {
        let mut config = TopicConfig::new(topic, queues, queues, perm::READ_WRITE);
        config.order = order;
        self.admin()
            .create_topic(&self.broker_addr(), &config)
            .await
            .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
        self.wait_route(topic).await;
    }

    /// Waits until the NameServer routes `topic` to the broker's current address.
    pub async fn wait_route(&self, topic: &str) {
        let addr = self.broker_addr();
        let deadline = Instant::now() + PROMPT;
        loop {
            if let Ok(route) = self.admin().topic_route(topic).await
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

    /// Shuts the broker down cleanly and starts it on the same data dir (new port), then
    /// waits until `topic` routes to it.
    pub async fn restart_broker(&mut self, topic: &str) {
        let broker = self.broker.take().expect("broker is running");
        self.nodes()
            .spawn(broker.shutdown())
            .await
            .expect("broker shutdown task");
        self.start_broker().await;
        self.wait_route(topic).await;
        eprintln!("[e2e] broker restarted at {}", self.broker_addr());
    }

    pub async fn shutdown(mut self) {
        if let Some(admin) = self.admin.take() {
            admin.shutdown().await;
        }
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
            "[e2e] cluster {} stopped after {:.1?}",
            self.name,
            self.started_at.elapsed()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== [e2e] logs of cluster {} (namesrv {}, broker {:?}) =====\n{}\n===== end of logs =====",
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

/// One delivery of one message to a listener.
#[derive(Debug, Clone)]
pub struct Received {
    pub consumer: String,
    pub body: String,
    /// UNIQ_KEY, what Java's `getMsgId()` returns to a listener.
    pub msg_id: String,
    pub offset_msg_id: String,
    pub topic: String,
    pub tags: Option<String>,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub reconsume_times: i32,
    pub properties: BTreeMap<String, String>,
    pub at: Instant,
}

impl Received {
    pub fn from_ext(consumer: &str, m: &MessageExt) -> Self {
        Self {
            consumer: consumer.to_owned(),
            body: String::from_utf8_lossy(&m.body).into_owned(),
            msg_id: m.msg_id(),
            offset_msg_id: m.offset_msg_id(),
            topic: m.topic.clone(),
            tags: m.tags().map(str::to_owned),
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            reconsume_times: m.reconsume_times,
            properties: m
                .properties
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            at: Instant::now(),
        }
    }
}

/// A shared log of deliveries that tests wait on.
#[derive(Debug, Clone, Default)]
pub struct Collector {
    inner: Arc<(Mutex<Vec<Received>>, Notify)>,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, received: Received) {
        self.inner.0.lock().push(received);
        self.inner.1.notify_waiters();
    }

    pub fn record(&self, consumer: &str, m: &MessageExt) {
        self.push(Received::from_ext(consumer, m));
    }

    pub fn all(&self) -> Vec<Received> {
        self.inner.0.lock().clone()
    }

    pub fn bodies(&self) -> Vec<String> {
        self.all().into_iter().map(|r| r.body).collect()
    }

    /// Waits until `done` holds over everything received or `within` passes; returns
    /// whether it held.
    pub async fn wait_until(
        &self,
        within: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.inner.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.inner.0.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.inner.0.lock());
            }
        }
    }

    pub async fn wait_count(&self, n: usize, within: Duration) -> bool {
        self.wait_until(within, |all| all.len() >= n).await
    }
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

/// Polls `check` every 20 ms until it holds; panics naming `what` after `within`.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 20 ms until it holds or `within` passes; returns whether it held.
pub async fn wait_for(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Seed for randomized tests: `KARMAN_SEED` or a fresh one, printed so a failure replays.
pub fn seed() -> u64 {
    let seed = std::env::var("KARMAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("[e2e] KARMAN_SEED={seed}");
    seed
}

pub fn now_ms() -> i64 {
    karman_client::wall_clock_ms()
}
