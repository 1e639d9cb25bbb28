//! # karman-namesrv
//!
//! The NameServer: the route registry brokers register with every 30 s and clients ask
//! for topic routes (spec semantics.md §3, remoting.md §3.10). It owns the route tables,
//! the KV config and their request processor; it never talks to another NameServer, so
//! several run side by side and converge from the brokers' registrations alone.
//!
//! ```no_run
//! # async fn run() -> Result<(), karman_namesrv::NamesrvError> {
//! let mut config = karman_namesrv::NamesrvConfig::default();
//! config.listen_port = 0; // any free port
//! let handle = karman_namesrv::start(config).await?;
//! println!("NameServer on {}", handle.local_addr());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod kv_config;
pub mod processor;
pub mod route_table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use karman_remoting::{ConnectionConfig, Dispatcher, ServerConfig, ServerHandle, server};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::NamesrvConfig;
pub use error::NamesrvError;
use kv_config::KvConfig;
use processor::{BrokerChannelListener, CODES, NamesrvProcessor, NamesrvState};

/// A running NameServer.
#[derive(Debug)]
pub struct NamesrvHandle {
    server: ServerHandle,
    scanner: JoinHandle<()>,
    stop: CancellationToken,
    state: Arc<NamesrvState>,
}

/// Loads the KV config, binds the listener and starts the expiry scan.
pub async fn start(config: NamesrvConfig) -> Result<NamesrvHandle, NamesrvError> {
    let kv = KvConfig::load(&config.kv_config_path)?;
    let server_config = ServerConfig {
        connection: ConnectionConfig {
            idle_timeout: Duration::from_secs(config.server_channel_max_idle_time_seconds.max(1)),
            ..ConnectionConfig::default()
        },
        ..ServerConfig::new(config.listen_addr())
    };
    let scan_interval = config.scan_interval();
    let state = Arc::new(NamesrvState::new(config, kv));
    let mut dispatcher = Dispatcher::new();
    dispatcher.register(CODES, Arc::new(NamesrvProcessor::new(state.clone())));
    dispatcher.add_listener(Arc::new(BrokerChannelListener {
        state: state.clone(),
    }));
    let server = server::start(server_config, dispatcher)
        .await
        .map_err(|source| NamesrvError::Listen { source })?;
    let stop = CancellationToken::new();
    let scanner = tokio::spawn(scan_loop(state.clone(), scan_interval, stop.clone()));
    info!(addr = %server.local_addr(), "NameServer started");
    Ok(NamesrvHandle {
        server,
        scanner,
        stop,
        state,
    })
}

async fn scan_loop(state: Arc<NamesrvState>, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => state.scan_not_active_brokers(),
            _ = stop.cancelled() => return,
        }
    }
}

impl NamesrvHandle {
    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Topics currently known, for embedding programs and tests.
    pub fn topics(&self) -> std::collections::BTreeSet<String> {
        self.state.routes.read().all_topics()
    }

    /// Stops the scan and the listener, draining in-flight requests.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.scanner.await;
        self.server.shutdown().await;
        info!("NameServer stopped");
    }
}
