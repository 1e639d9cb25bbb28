//! NameServer settings, defined once in [`KEYS`]: `namesrv.conf` parsing, the
//! GET/UPDATE_NAMESRV_CONFIG commands and the configuration docs all read that table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use karman_protocol::config_key;
use karman_protocol::java_properties::{self, ApplyReport, ConfigKey};

use crate::error::NamesrvError;

#[derive(Debug, Clone, PartialEq)]
pub struct NamesrvConfig {
    pub bind_address: IpAddr,
    pub listen_port: u16,
    pub kv_config_path: PathBuf,
    pub scan_not_active_broker_interval_ms: u64,
    pub server_channel_max_idle_time_seconds: u64,
    pub order_message_enable: bool,
    pub return_order_topic_config_to_broker: bool,
    pub enable_all_topic_list: bool,
    pub enable_topic_list: bool,
    pub need_wait_for_service: bool,
    pub wait_seconds_for_service: u64,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self {
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            listen_port: 9876,
            kv_config_path: home.join("namesrv").join("kvConfig.json"),
            scan_not_active_broker_interval_ms: 5_000,
            server_channel_max_idle_time_seconds: 120,
            order_message_enable: false,
            return_order_topic_config_to_broker: true,
            enable_all_topic_list: true,
            enable_topic_list: true,
            need_wait_for_service: false,
            wait_seconds_for_service: 45,
        }
    }
}

/// Every namesrv.conf key. File paths are not reloadable: a remote UPDATE_NAMESRV_CONFIG
/// must never redirect where the NameServer writes.
pub const KEYS: &[ConfigKey<NamesrvConfig>] = &[
    config_key!(
        NamesrvConfig,
        "bindAddress",
        bind_address,
        reloadable = false,
        "Address the listener binds (0.0.0.0 = every interface)."
    ),
    config_key!(
        NamesrvConfig,
        "listenPort",
        listen_port,
        reloadable = false,
        "Remoting port clients and brokers connect to."
    ),
    config_key!(
        NamesrvConfig,
        "kvConfigPath",
        kv_config_path,
        reloadable = false,
        "File the KV config (updateKvConfig) is persisted to."
    ),
    config_key!(
        NamesrvConfig,
        "scanNotActiveBrokerInterval",
        scan_not_active_broker_interval_ms,
        reloadable = false,
        "Milliseconds between scans for brokers whose registration expired."
    ),
    config_key!(
        NamesrvConfig,
        "serverChannelMaxIdleTimeSeconds",
        server_channel_max_idle_time_seconds,
        reloadable = false,
        "A connection with no traffic for this many seconds is closed."
    ),
    config_key!(
        NamesrvConfig,
        "orderMessageEnable",
        order_message_enable,
        reloadable = true,
        "Append orderTopicConf (KV namespace ORDER_TOPIC_CONFIG) to routes."
    ),
    config_key!(
        NamesrvConfig,
        "returnOrderTopicConfigToBroker",
        return_order_topic_config_to_broker,
        reloadable = true,
        "Answer broker registrations with the ORDER_TOPIC_CONFIG KV list."
    ),
    config_key!(
        NamesrvConfig,
        "enableAllTopicList",
        enable_all_topic_list,
        reloadable = true,
        "Serve GET_ALL_TOPIC_LIST_FROM_NAMESERVER (topicList)."
    ),
    config_key!(
        NamesrvConfig,
        "enableTopicList",
        enable_topic_list,
        reloadable = true,
        "Serve the per-cluster and unit topic lists."
    ),
    config_key!(
        NamesrvConfig,
        "needWaitForService",
        need_wait_for_service,
        reloadable = false,
        "Answer routes with 'name server not ready' until waitSecondsForService have passed."
    ),
    config_key!(
        NamesrvConfig,
        "waitSecondsForService",
        wait_seconds_for_service,
        reloadable = false,
        "Startup grace in seconds, with needWaitForService."
    ),
];

impl NamesrvConfig {
    /// Reads a namesrv.conf; unknown keys are returned for the caller to warn about.
    pub fn load(path: &Path) -> Result<(Self, ApplyReport), NamesrvError> {
        let text = std::fs::read_to_string(path).map_err(|source| NamesrvError::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::default();
        let report =
            java_properties::apply(KEYS, &mut config, &java_properties::parse(&text), false)
                .map_err(|source| NamesrvError::ConfigValue {
                    path: path.to_owned(),
                    source,
                })?;
        Ok((config, report))
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.listen_port)
    }

    pub fn scan_interval(&self) -> Duration {
        Duration::from_millis(self.scan_not_active_broker_interval_ms.max(1))
    }
}
