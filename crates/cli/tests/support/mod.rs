//! An in-process NameServer and broker `broker-a` of `DefaultCluster` on ephemeral
//! loopback ports, with small store files, for tests that run the `karman` binary
//! against them.

#![allow(dead_code)]

use std::process::Command;

use karman_broker::{BrokerConfig, BrokerHandle};
use karman_namesrv::{NamesrvConfig, NamesrvHandle};

pub struct Cluster {
    pub runtime: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub namesrv: Option<NamesrvHandle>,
    pub broker: Option<BrokerHandle>,
}

impl Cluster {
    pub fn start() -> Self {
        let mut cluster = Self::namesrv_only();
        let broker = cluster.runtime.block_on(karman_broker::start(broker_config(
            cluster.dir.path(),
            &cluster.namesrv(),
        )));
        cluster.broker = Some(broker.unwrap());
        cluster
    }

    pub fn namesrv_only() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let namesrv = runtime
            .block_on(karman_namesrv::start(NamesrvConfig {
                bind_address: "127.0.0.1".parse().unwrap(),
                listen_port: 0,
                kv_config_path: dir.path().join("kvConfig.json"),
                ..NamesrvConfig::default()
            }))
            .unwrap();
        Self {
            runtime,
            dir,
            namesrv: Some(namesrv),
            broker: None,
        }
    }

    pub fn namesrv(&self) -> String {
        self.namesrv.as_ref().unwrap().local_addr().to_string()
    }

    pub fn broker_addr(&self) -> String {
        self.broker.as_ref().unwrap().broker_addr().to_owned()
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let (broker, namesrv) = (self.broker.take(), self.namesrv.take());
        self.runtime.block_on(async {
            if let Some(broker) = broker {
                broker.shutdown().await;
            }
            if let Some(namesrv) = namesrv {
                namesrv.shutdown().await;
            }
        });
    }
}

/// Small segments and index so a test's store stays a few MB.
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
    config.store.mapped_file_size_commit_log_bytes = 4 << 20;
    config.store.mapped_file_size_consume_queue_bytes = 20 * 1000;
    config.store.max_hash_slot_count = 1000;
    config.store.max_index_count = 4000;
    config
}

/// The binary under test, with times in UTC and no NameServer or log filter inherited
/// from the environment.
pub fn karman() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_karman"));
    command
        .env("TZ", "UTC")
        .env_remove("NAMESRV_ADDR")
        .env_remove("RUST_LOG");
    command
}
