//! # karman-broker
//!
//! A RocketMQ broker on Karman's store: send (single, batch, delayed, timer, half), pull
//! with long polling, offsets, client registration, retry and DLQ, queue locks, queries,
//! admin, and registration with the NameServers (spec remoting.md §3, semantics.md §2–§8).
//!
//! The broker owns request handling and its JSON tables (`config/*.json`); messages belong
//! to [`karman_store`], and the wire to [`karman_protocol`] and [`karman_remoting`].
//!
//! ```no_run
//! # async fn run() -> Result<(), karman_broker::BrokerError> {
//! let mut config = karman_broker::BrokerConfig::default();
//! config.listen_port = 0;
//! config.namesrv_addr = Some("127.0.0.1:9876".into());
//! config.store.store_path_root_dir = "/tmp/karman-broker".into();
//! let broker = karman_broker::start(config).await?;
//! println!("broker serving on {}", broker.broker_addr());
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod client_table;
pub mod config;
pub mod error;
pub mod filter;
pub mod group_table;
mod json_file;
pub mod lock_table;
pub mod long_polling;
pub mod message;
pub mod offset_table;
pub mod processor;
mod registration;
pub mod schedule;
pub mod stats;
pub mod timer;
pub mod topic_table;
pub mod transaction;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use karman_protocol::message::id::UniqIdGenerator;
use karman_remoting::{ConnectionConfig, Dispatcher, ServerConfig, ServerHandle, server};
use karman_store::{Clock, MessageStore, StoreEnv, SystemClock};
use parking_lot::RwLock;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::BrokerConfig;
pub use error::BrokerError;

use crate::client_table::ClientTable;
use crate::group_table::GroupTable;
use crate::lock_table::LockTable;
use crate::long_polling::{ArrivalNotifier, PullHolds};
use crate::offset_table::OffsetTable;
use crate::processor::admin::AdminProcessor;
use crate::processor::client::{ClientChannelListener, ClientProcessor, GroupNotifier};
use crate::processor::end_transaction::EndTransactionProcessor;
use crate::processor::lock::LockProcessor;
use crate::processor::offset::OffsetProcessor;
use crate::processor::pull::PullProcessor;
use crate::processor::query::QueryProcessor;
use crate::processor::send::SendProcessor;
use crate::registration::Registrar;
use crate::schedule::ScheduleService;
use crate::stats::BrokerStats;
use crate::timer::TimerService;
use crate::topic_table::TopicTable;
use crate::transaction::{CheckSettings, TransactionService};

/// The broker config, shared live: the reloadable keys change through
/// UPDATE_BROKER_CONFIG and every reader sees the new value.
pub type SharedConfig = Arc<RwLock<BrokerConfig>>;

/// Who this broker is on the wire, fixed once its listener is bound.
#[derive(Debug, Clone)]
pub struct BrokerIdentity {
    pub cluster: String,
    pub name: String,
    pub id: i64,
    /// `brokerIP1:port`: what the NameServer hands to clients.
    pub addr: String,
    /// Written into every stored message; the offsetMsgId points here.
    pub store_host: SocketAddr,
    pub ha_addr: String,
}

/// A running broker.
#[derive(Debug)]
pub struct BrokerHandle {
    server: ServerHandle,
    identity: Arc<BrokerIdentity>,
    store: Arc<MessageStore>,
    topics: Arc<TopicTable>,
    offsets: Arc<OffsetTable>,
    schedule: Arc<ScheduleService>,
    registrar: Arc<Registrar>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Inputs besides the config: the clock the store and timers read.
#[derive(Debug, Clone)]
pub struct BrokerEnv {
    pub clock: Arc<dyn Clock>,
}

impl Default for BrokerEnv {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
        }
    }
}

/// Opens the store, loads the tables, binds `listenPort` and `listenPort - 2`, starts the
/// services and registers with every NameServer.
pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, BrokerError> {
    start_with(config, BrokerEnv::default()).await
}

pub async fn start_with(config: BrokerConfig, env: BrokerEnv) -> Result<BrokerHandle, BrokerError> {
    let holds = Arc::new(PullHolds::new(config.pull_hold_count_max));
    let timer_wake = Arc::new(Notify::new());
    let store_env = StoreEnv {
        clock: env.clock.clone(),
        arrival_listener: Some(Arc::new(ArrivalNotifier {
            holds: holds.clone(),
            timer_wake: timer_wake.clone(),
        })),
        ..StoreEnv::default()
    };
    let store_config = config.store.clone();
    // Recovery reads the commit log: keep it off the async workers.
    let store =
        tokio::task::spawn_blocking(move || MessageStore::open_with(store_config, store_env))
            .await
            .map_err(|_| BrokerError::StoreOpenAborted)?
            .map_err(|source| BrokerError::Store { source })?;
    let store = Arc::new(store);
    let topics = Arc::new(TopicTable::load(&config)?);
    let groups = Arc::new(GroupTable::load(&config)?);
    let offsets = Arc::new(OffsetTable::load(&config)?);

    let bound = server::bind(server_config(&config))
        .await
        .map_err(|source| BrokerError::Listen { source })?;
    let port = bound.local_addrs()[0].port();
    let identity = Arc::new(BrokerIdentity {
        cluster: config.broker_cluster_name.clone(),
        name: config.broker_name.clone(),
        id: config.broker_id,
        addr: SocketAddr::new(config.broker_ip1, port).to_string(),
        store_host: SocketAddr::new(config.broker_ip1, port),
        ha_addr: SocketAddr::new(config.broker_ip2, port.saturating_add(1)).to_string(),
    });
    let config_dir = config.config_dir();
    let schedule = Arc::new(ScheduleService::load(
        config_dir.clone(),
        &config.store.message_delay_level,
        store.clone(),
        identity.store_host,
        env.clock.clone(),
    )?);
    let timer = Arc::new(TimerService::load(
        config_dir,
        store.clone(),
        identity.store_host,
        env.clock.clone(),
        i64::try_from(config.timer_max_delay_sec.saturating_mul(1000)).unwrap_or(i64::MAX),
        timer_wake,
    )?);
    let clients = Arc::new(ClientTable::default());
    let transactions = Arc::new(TransactionService::load(
        config.config_dir(),
        store.clone(),
        identity.store_host,
        identity.name.clone(),
        env.clock.clone(),
        topics.clone(),
        clients.clone(),
        schedule.clone(),
    )?);
    transactions.log_started();
    let shared: SharedConfig = Arc::new(RwLock::new(config));
    let parts = Parts {
        config: shared.clone(),
        identity: identity.clone(),
        clock: env.clock.clone(),
        store: store.clone(),
        topics: topics.clone(),
        groups,
        offsets: offsets.clone(),
        clients,
        locks: Arc::new(LockTable::default()),
        holds,
        schedule: schedule.clone(),
        timer: timer.clone(),
        transactions: transactions.clone(),
        stats: Arc::new(BrokerStats::default()),
    };
    let server = bound.serve(parts.dispatcher());
    let stop = CancellationToken::new();
    let registrar = Arc::new(Registrar::new(
        shared.clone(),
        identity.clone(),
        topics.clone(),
    ));
    let mut tasks = parts.spawn_housekeeping(&stop);
    tasks.extend(schedule.spawn(
        Duration::from_millis(shared.read().flush_delay_offset_interval_ms),
        stop.clone(),
    ));
    tasks.extend(timer.spawn(stop.clone()));
    let check_config = shared.clone();
    tasks.push(transactions.spawn(
        move || {
            let config = check_config.read();
            CheckSettings {
                interval: Duration::from_millis(config.transaction_check_interval_ms.max(100)),
                timeout_ms: i64::try_from(config.transaction_timeout_ms).unwrap_or(i64::MAX),
                check_max: config.transaction_check_max,
            }
        },
        stop.clone(),
    ));
    registrar.register_all().await;
    tasks.push(tokio::spawn(registrar.clone().run(stop.clone())));
    info!(addr = %identity.addr, name = %identity.name, cluster = %identity.cluster, "broker started");
    Ok(BrokerHandle {
        server,
        identity,
        store,
        topics,
        offsets,
        schedule,
        registrar,
        stop,
        tasks,
    })
}

fn server_config(config: &BrokerConfig) -> ServerConfig {
    ServerConfig {
        extra_listen_addrs: config.vip_listen_addr().into_iter().collect(),
        connection: ConnectionConfig {
            idle_timeout: Duration::from_secs(config.server_channel_max_idle_time_seconds.max(1)),
            ..ConnectionConfig::default()
        },
        ..ServerConfig::new(config.listen_addr())
    }
}

/// Everything the processors are built from.
struct Parts {
    config: SharedConfig,
    identity: Arc<BrokerIdentity>,
    clock: Arc<dyn Clock>,
    store: Arc<MessageStore>,
    topics: Arc<TopicTable>,
    groups: Arc<GroupTable>,
    offsets: Arc<OffsetTable>,
    clients: Arc<ClientTable>,
    locks: Arc<LockTable>,
    holds: Arc<PullHolds>,
    schedule: Arc<ScheduleService>,
    timer: Arc<TimerService>,
    transactions: Arc<TransactionService>,
    stats: Arc<BrokerStats>,
}

impl Parts {
    fn dispatcher(&self) -> Dispatcher {
        let mut dispatcher = Dispatcher::new();
        let uniq_ids = Arc::new(UniqIdGenerator::new(
            self.identity.store_host.ip(),
            std::process::id(),
            0x4B41_524D,
        ));
        let send_capacity = self.config.read().send_thread_pool_queue_capacity.max(1);
        dispatcher.register(
            processor::send::CODES,
            Arc::new(SendProcessor {
                config: self.config.clone(),
                identity: self.identity.clone(),
                clock: self.clock.clone(),
                store: self.store.clone(),
                topics: self.topics.clone(),
                groups: self.groups.clone(),
                locks: self.locks.clone(),
                schedule: self.schedule.clone(),
                timer: self.timer.clone(),
                stats: self.stats.clone(),
                send_permits: Arc::new(Semaphore::new(send_capacity)),
                uniq_ids,
            }),
        );
        dispatcher.register(
            processor::pull::CODES,
            Arc::new(PullProcessor {
                config: self.config.clone(),
                identity: self.identity.clone(),
                store: self.store.clone(),
                topics: self.topics.clone(),
                groups: self.groups.clone(),
                clients: self.clients.clone(),
                offsets: self.offsets.clone(),
                holds: self.holds.clone(),
                stats: self.stats.clone(),
            }),
        );
        dispatcher.register(
            processor::offset::CODES,
            Arc::new(OffsetProcessor {
                store: self.store.clone(),
                topics: self.topics.clone(),
                groups: self.groups.clone(),
                offsets: self.offsets.clone(),
            }),
        );
        let notifier = Arc::new(GroupNotifier {
            config: self.config.clone(),
            groups: self.groups.clone(),
            clients: self.clients.clone(),
        });
        dispatcher.register(
            processor::client::CODES,
            Arc::new(ClientProcessor {
                config: self.config.clone(),
                clock: self.clock.clone(),
                topics: self.topics.clone(),
                groups: self.groups.clone(),
                clients: self.clients.clone(),
                notifier: notifier.clone(),
            }),
        );
        dispatcher.add_listener(Arc::new(ClientChannelListener {
            clients: self.clients.clone(),
            notifier,
        }));
        dispatcher.register(
            processor::lock::CODES,
            Arc::new(LockProcessor {
                locks: self.locks.clone(),
            }),
        );
        dispatcher.register(
            processor::end_transaction::CODES,
            Arc::new(EndTransactionProcessor {
                config: self.config.clone(),
                transactions: self.transactions.clone(),
            }),
        );
        dispatcher.register(
            processor::query::CODES,
            Arc::new(QueryProcessor {
                config: self.config.clone(),
                store: self.store.clone(),
            }),
        );
        dispatcher.register(
            processor::admin::CODES,
            Arc::new(AdminProcessor {
                config: self.config.clone(),
                identity: self.identity.clone(),
                clock: self.clock.clone(),
                store: self.store.clone(),
                topics: self.topics.clone(),
                groups: self.groups.clone(),
                offsets: self.offsets.clone(),
                clients: self.clients.clone(),
                schedule: self.schedule.clone(),
                transactions: self.transactions.clone(),
                stats: self.stats.clone(),
                boot_timestamp_ms: self.clock.now_ms(),
            }),
        );
        dispatcher
    }

    /// Client expiry, offset persistence and stats sampling.
    fn spawn_housekeeping(&self, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        let (offset_every, channel_timeout) = {
            let config = self.config.read();
            (
                Duration::from_millis(config.flush_consumer_offset_interval_ms.max(100)),
                Duration::from_millis(config.channel_expired_timeout_ms),
            )
        };
        let clients = self.clients.clone();
        let offsets = self.offsets.clone();
        let stats = self.stats.clone();
        vec![
            every(Duration::from_secs(10), stop.clone(), move || {
                for channel in
                    clients.expired_channels(tokio::time::Instant::now(), channel_timeout)
                {
                    warn!(remote = %channel.remote_addr(), "client silent past channelExpiredTimeout; closing its connection");
                    channel.close();
                }
            }),
            every(offset_every, stop.clone(), move || {
                offsets.persist_if_dirty()
            }),
            every(stats::SAMPLE_EVERY, stop.clone(), move || stats.sample()),
        ]
    }
}

/// Runs `work` every `period` until `stop`.
fn every(
    period: Duration,
    stop: CancellationToken,
    mut work: impl FnMut() + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => work(),
                _ = stop.cancelled() => return,
            }
        }
    })
}

impl BrokerHandle {
    /// The main listener's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Every bound address: the main port, then the VIP port.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.server.local_addrs()
    }

    /// `brokerIP1:port`, as registered with the NameServers.
    pub fn broker_addr(&self) -> &str {
        &self.identity.addr
    }

    pub fn identity(&self) -> &BrokerIdentity {
        &self.identity
    }

    /// The store, for embedding programs and tests.
    pub fn store(&self) -> &Arc<MessageStore> {
        &self.store
    }

    /// Unregisters, drains requests, stops the services, persists every table and closes
    /// the store cleanly.
    pub async fn shutdown(self) {
        self.registrar.unregister_all().await;
        self.server.shutdown().await;
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.offsets.persist_if_dirty();
        self.topics.persist();
        self.schedule.persist();
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.shutdown()).await {
            Ok(Ok(())) => info!("broker stopped"),
            Ok(Err(error)) => {
                warn!(%error, "store did not shut down cleanly; it will recover at the next start")
            }
            Err(error) => warn!(%error, "store shutdown task failed"),
        }
    }
}
