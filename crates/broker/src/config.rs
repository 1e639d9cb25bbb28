//! Broker settings. `broker.conf` is parsed once, through [`KEYS`], into one
//! [`BrokerConfig`] that holds the store's [`StoreConfig`] too; the same table answers
//! GET/UPDATE_BROKER_CONFIG and generates docs/CONFIGURATION.md.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use karman_protocol::config_key;
use karman_protocol::java_properties::{self, ApplyReport, ConfigKey};
use karman_protocol::message::sysflag::perm;
use karman_store::{FlushDiskType, StoreConfig};

use crate::error::BrokerError;

/// `brokerRole`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    AsyncMaster,
    SyncMaster,
    Slave,
}

impl BrokerRole {
    pub fn name(self) -> &'static str {
        match self {
            Self::AsyncMaster => "ASYNC_MASTER",
            Self::SyncMaster => "SYNC_MASTER",
            Self::Slave => "SLAVE",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub broker_cluster_name: String,
    pub broker_name: String,
    pub broker_id: i64,
    /// `;`-separated NameServer addresses; none means the broker registers nowhere.
    pub namesrv_addr: Option<String>,
    /// The IP clients use to reach this broker (registered with the NameServer and written
    /// into every message's store host).
    pub broker_ip1: IpAddr,
    /// The IP slaves use for replication.
    pub broker_ip2: IpAddr,
    pub bind_address: IpAddr,
    /// 0 binds any free port (tests); the VIP port is then another free port.
    pub listen_port: u16,
    pub broker_role: BrokerRole,
    pub broker_permission: i32,
    pub auto_create_topic_enable: bool,
    pub auto_create_subscription_group: bool,
    pub default_topic_queue_nums: i32,
    pub cluster_topic_enable: bool,
    pub broker_topic_enable: bool,
    pub trace_topic_enable: bool,
    pub msg_trace_topic_name: String,
    pub register_name_server_period_ms: u64,
    pub register_broker_timeout_ms: u64,
    pub long_polling_enable: bool,
    pub short_polling_time_ms: u64,
    pub flush_consumer_offset_interval_ms: u64,
    pub flush_delay_offset_interval_ms: u64,
    pub enable_property_filter: bool,
    pub filter_support_retry: bool,
    pub reject_transaction_message: bool,
    pub transaction_timeout_ms: u64,
    pub transaction_check_max: i32,
    pub transaction_check_interval_ms: u64,
    pub timer_wheel_enable: bool,
    pub timer_max_delay_sec: u64,
    pub timer_precision_ms: u64,
    pub slave_read_enable: bool,
    pub trace_on: bool,
    pub region_id: String,
    pub lite_pull_message_enable: bool,
    pub notify_consumer_ids_changed_enable: bool,
    pub channel_expired_timeout_ms: u64,
    pub default_query_max_num: i32,
    pub send_thread_pool_queue_capacity: usize,
    pub wait_time_mills_in_send_queue: u64,
    pub pull_hold_count_max: usize,
    pub server_channel_max_idle_time_seconds: u64,
    pub store: StoreConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let local_ip = local_ip();
        Self {
            broker_cluster_name: "DefaultCluster".to_owned(),
            broker_name: default_broker_name(),
            broker_id: 0,
            namesrv_addr: std::env::var("NAMESRV_ADDR").ok().filter(|a| !a.is_empty()),
            broker_ip1: local_ip,
            broker_ip2: local_ip,
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            listen_port: 10911,
            broker_role: BrokerRole::AsyncMaster,
            broker_permission: perm::READ_WRITE,
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 8,
            cluster_topic_enable: true,
            broker_topic_enable: true,
            trace_topic_enable: false,
            msg_trace_topic_name: "RMQ_SYS_TRACE_TOPIC".to_owned(),
            register_name_server_period_ms: 30_000,
            register_broker_timeout_ms: 24_000,
            long_polling_enable: true,
            short_polling_time_ms: 1_000,
            flush_consumer_offset_interval_ms: 5_000,
            flush_delay_offset_interval_ms: 10_000,
            enable_property_filter: false,
            filter_support_retry: false,
            reject_transaction_message: false,
            transaction_timeout_ms: 6_000,
            transaction_check_max: 15,
            transaction_check_interval_ms: 30_000,
            timer_wheel_enable: true,
            timer_max_delay_sec: 3 * 24 * 3600,
            timer_precision_ms: 1_000,
            slave_read_enable: false,
            trace_on: true,
            region_id: "DefaultRegion".to_owned(),
            lite_pull_message_enable: true,
            notify_consumer_ids_changed_enable: true,
            channel_expired_timeout_ms: 120_000,
            default_query_max_num: 32,
            send_thread_pool_queue_capacity: 10_000,
            wait_time_mills_in_send_queue: 200,
            pull_hold_count_max: 100_000,
            server_channel_max_idle_time_seconds: 120,
            store: StoreConfig::new(home_dir().join("store")),
        }
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// RocketMQ names a broker after its host; `DEFAULT_BROKER` when that is unknown.
fn default_broker_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "DEFAULT_BROKER".to_owned())
}

/// The address the host uses for outbound traffic (no packet is sent: connecting a UDP
/// socket only picks a route); loopback when there is no route.
fn local_ip() -> IpAddr {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let Ok(socket) = UdpSocket::bind("0.0.0.0:0") else {
        return loopback;
    };
    if socket.connect("192.0.2.1:9").is_err() {
        return loopback;
    }
    socket.local_addr().map_or(loopback, |addr| addr.ip())
}

fn flush_disk_type_key() -> ConfigKey<BrokerConfig> {
    ConfigKey {
        name: "flushDiskType",
        doc: "ASYNC_FLUSH acks after the page cache; SYNC_FLUSH after fsync (one fsync covers every append queued behind it).",
        reloadable: false,
        get: |c| {
            match c.store.flush_disk_type {
                FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
                FlushDiskType::SyncFlush => "SYNC_FLUSH",
            }
            .to_owned()
        },
        set: |c, v| {
            c.store.flush_disk_type = match v.trim() {
                "ASYNC_FLUSH" => FlushDiskType::AsyncFlush,
                "SYNC_FLUSH" => FlushDiskType::SyncFlush,
                other => {
                    return Err(format!(
                        "expected ASYNC_FLUSH or SYNC_FLUSH, found {other:?}"
                    ));
                }
            };
            Ok(())
        },
    }
}

fn warm_mapped_file_key() -> ConfigKey<BrokerConfig> {
    ConfigKey {
        name: "warmMapedFileEnable",
        doc: "Zero-write and sync the next commit-log segment before the roll, so that fsyncs write data only (no block allocation to commit). Unset: true under SYNC_FLUSH, false under ASYNC_FLUSH. Costs a second write of every segment.",
        reloadable: false,
        get: |c| c.store.warms_commit_log().to_string(),
        set: |c, v| {
            c.store.warm_mapped_file_enable = Some(java_properties::ConfigValue::parse(v)?);
            Ok(())
        },
    }
}

fn broker_role_key() -> ConfigKey<BrokerConfig> {
    ConfigKey {
        name: "brokerRole",
        doc: "ASYNC_MASTER, SYNC_MASTER or SLAVE. Karman serves as a master; replication comes later.",
        reloadable: false,
        get: |c| c.broker_role.name().to_owned(),
        set: |c, v| {
            c.broker_role = match v.trim() {
                "ASYNC_MASTER" => BrokerRole::AsyncMaster,
                "SYNC_MASTER" => BrokerRole::SyncMaster,
                "SLAVE" => BrokerRole::Slave,
                other => {
                    return Err(format!(
                        "expected ASYNC_MASTER, SYNC_MASTER or SLAVE, found {other:?}"
                    ));
                }
            };
            Ok(())
        },
    }
}

fn namesrv_addr_key() -> ConfigKey<BrokerConfig> {
    ConfigKey {
        name: "namesrvAddr",
        doc: "NameServer addresses, `;`-separated; the broker registers with every one (default: the NAMESRV_ADDR variable).",
        reloadable: false,
        get: |c| c.namesrv_addr.clone().unwrap_or_default(),
        set: |c, v| {
            let v = v.trim();
            c.namesrv_addr = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    }
}

/// Every broker.conf key Karman reads, broker and store settings alike.
pub fn keys() -> Vec<ConfigKey<BrokerConfig>> {
    vec![
        config_key!(
            BrokerConfig,
            "brokerClusterName",
            broker_cluster_name,
            reloadable = false,
            "Cluster this broker belongs to."
        ),
        config_key!(
            BrokerConfig,
            "brokerName",
            broker_name,
            reloadable = false,
            "Broker group name, shared by a master and its slaves (default: the host name)."
        ),
        config_key!(
            BrokerConfig,
            "brokerId",
            broker_id,
            reloadable = false,
            "0 for the master, 1 and up for slaves."
        ),
        namesrv_addr_key(),
        config_key!(
            BrokerConfig,
            "brokerIP1",
            broker_ip1,
            reloadable = false,
            "IP clients reach this broker on (default: the host's outbound address)."
        ),
        config_key!(
            BrokerConfig,
            "brokerIP2",
            broker_ip2,
            reloadable = false,
            "IP slaves replicate from."
        ),
        config_key!(
            BrokerConfig,
            "bindAddress",
            bind_address,
            reloadable = false,
            "Address the listeners bind."
        ),
        config_key!(
            BrokerConfig,
            "listenPort",
            listen_port,
            reloadable = false,
            "Remoting port; listenPort-2 is served too (the VIP channel of old clients)."
        ),
        broker_role_key(),
        config_key!(
            BrokerConfig,
            "brokerPermission",
            broker_permission,
            reloadable = true,
            "6 read-write, 4 read-only, 2 write-only."
        ),
        config_key!(
            BrokerConfig,
            "autoCreateTopicEnable",
            auto_create_topic_enable,
            reloadable = true,
            "Create unknown topics on first send, from TBW102."
        ),
        config_key!(
            BrokerConfig,
            "autoCreateSubscriptionGroup",
            auto_create_subscription_group,
            reloadable = true,
            "Create unknown consumer groups on first use."
        ),
        config_key!(
            BrokerConfig,
            "defaultTopicQueueNums",
            default_topic_queue_nums,
            reloadable = false,
            "Queues of TBW102, the template of auto-created topics."
        ),
        config_key!(
            BrokerConfig,
            "clusterTopicEnable",
            cluster_topic_enable,
            reloadable = false,
            "Make the cluster-name topic readable and writable."
        ),
        config_key!(
            BrokerConfig,
            "brokerTopicEnable",
            broker_topic_enable,
            reloadable = false,
            "Make the broker-name topic readable and writable."
        ),
        config_key!(
            BrokerConfig,
            "traceTopicEnable",
            trace_topic_enable,
            reloadable = false,
            "Create the message-trace topic."
        ),
        config_key!(
            BrokerConfig,
            "msgTraceTopicName",
            msg_trace_topic_name,
            reloadable = false,
            "Name of the message-trace topic."
        ),
        config_key!(
            BrokerConfig,
            "registerNameServerPeriod",
            register_name_server_period_ms,
            reloadable = false,
            "Milliseconds between registrations (clamped to 10,000..60,000)."
        ),
        config_key!(
            BrokerConfig,
            "registerBrokerTimeoutMills",
            register_broker_timeout_ms,
            reloadable = false,
            "Timeout of one registration, in milliseconds."
        ),
        config_key!(
            BrokerConfig,
            "longPollingEnable",
            long_polling_enable,
            reloadable = true,
            "Hold pulls that find nothing until a message arrives or the hold ends."
        ),
        config_key!(
            BrokerConfig,
            "shortPollingTimeMills",
            short_polling_time_ms,
            reloadable = true,
            "Hold time of a pull when long polling is off."
        ),
        config_key!(
            BrokerConfig,
            "flushConsumerOffsetInterval",
            flush_consumer_offset_interval_ms,
            reloadable = false,
            "Milliseconds between writes of consumerOffset.json."
        ),
        config_key!(
            BrokerConfig,
            "flushDelayOffsetInterval",
            flush_delay_offset_interval_ms,
            reloadable = false,
            "Milliseconds between writes of delayOffset.json."
        ),
        config_key!(
            BrokerConfig,
            "enablePropertyFilter",
            enable_property_filter,
            reloadable = true,
            "Allow SQL92 subscriptions."
        ),
        config_key!(
            BrokerConfig,
            "filterSupportRetry",
            filter_support_retry,
            reloadable = true,
            "Apply tag filters to retry topics too."
        ),
        config_key!(
            BrokerConfig,
            "rejectTransactionMessage",
            reject_transaction_message,
            reloadable = true,
            "Refuse transactional (half) messages."
        ),
        config_key!(
            BrokerConfig,
            "transactionTimeOut",
            transaction_timeout_ms,
            reloadable = true,
            "Milliseconds before an undecided half message is checked."
        ),
        config_key!(
            BrokerConfig,
            "transactionCheckMax",
            transaction_check_max,
            reloadable = true,
            "Checks before an undecided half message is moved to TRANS_CHECK_MAX_TIME_TOPIC."
        ),
        config_key!(
            BrokerConfig,
            "transactionCheckInterval",
            transaction_check_interval_ms,
            reloadable = true,
            "Milliseconds between scans for undecided half messages."
        ),
        config_key!(
            BrokerConfig,
            "timerWheelEnable",
            timer_wheel_enable,
            reloadable = false,
            "Honour timer properties (TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS, __STARTDELIVERTIME)."
        ),
        config_key!(
            BrokerConfig,
            "timerMaxDelaySec",
            timer_max_delay_sec,
            reloadable = true,
            "Furthest a timer message may be scheduled, in seconds."
        ),
        config_key!(
            BrokerConfig,
            "timerPrecisionMs",
            timer_precision_ms,
            reloadable = false,
            "Timer delivery times are rounded down to this precision."
        ),
        config_key!(
            BrokerConfig,
            "slaveReadEnable",
            slave_read_enable,
            reloadable = true,
            "Suggest pulling cold data from a slave."
        ),
        config_key!(
            BrokerConfig,
            "traceOn",
            trace_on,
            reloadable = true,
            "Value of the TRACE_ON property and response key."
        ),
        config_key!(
            BrokerConfig,
            "regionId",
            region_id,
            reloadable = true,
            "Value of the MSG_REGION property and response key."
        ),
        config_key!(
            BrokerConfig,
            "litePullMessageEnable",
            lite_pull_message_enable,
            reloadable = true,
            "Serve LITE_PULL_MESSAGE (lite pull consumers)."
        ),
        config_key!(
            BrokerConfig,
            "notifyConsumerIdsChangedEnable",
            notify_consumer_ids_changed_enable,
            reloadable = true,
            "Tell consumers to rebalance when their group changes."
        ),
        config_key!(
            BrokerConfig,
            "channelExpiredTimeout",
            channel_expired_timeout_ms,
            reloadable = false,
            "Clients silent this many milliseconds are dropped."
        ),
        config_key!(
            BrokerConfig,
            "defaultQueryMaxNum",
            default_query_max_num,
            reloadable = true,
            "Most messages a query by unique key returns."
        ),
        config_key!(
            BrokerConfig,
            "sendThreadPoolQueueCapacity",
            send_thread_pool_queue_capacity,
            reloadable = false,
            "Sends waiting to be stored; past it, SYSTEM_BUSY."
        ),
        config_key!(
            BrokerConfig,
            "waitTimeMillsInSendQueue",
            wait_time_mills_in_send_queue,
            reloadable = false,
            "A send that cannot enter the send queue within this many milliseconds gets SYSTEM_BUSY."
        ),
        config_key!(
            BrokerConfig,
            "pullHoldCountMax",
            pull_hold_count_max,
            reloadable = false,
            "Most pulls held at once (Karman); past it, pulls answer at once."
        ),
        config_key!(
            BrokerConfig,
            "serverChannelMaxIdleTimeSeconds",
            server_channel_max_idle_time_seconds,
            reloadable = false,
            "Connections with no traffic this long are closed."
        ),
        config_key!(
            BrokerConfig,
            "storePathRootDir",
            store.store_path_root_dir,
            reloadable = false,
            "Root of the store: commitlog/, consumequeue/, index/, config/, checkpoint."
        ),
        ConfigKey {
            name: "storePathCommitLog",
            doc: "Commit-log directory (default: <storePathRootDir>/commitlog).",
            reloadable: false,
            get: |c| c.store.commit_log_dir().display().to_string(),
            set: |c, v| {
                c.store.store_path_commit_log = Some(java_properties::ConfigValue::parse(v)?);
                Ok(())
            },
        },
        config_key!(
            BrokerConfig,
            "mappedFileSizeCommitLog",
            store.mapped_file_size_commit_log_bytes,
            reloadable = false,
            "Bytes per commit-log segment."
        ),
        config_key!(
            BrokerConfig,
            "mappedFileSizeConsumeQueue",
            store.mapped_file_size_consume_queue_bytes,
            reloadable = false,
            "Bytes per consume-queue file (a multiple of 20)."
        ),
        flush_disk_type_key(),
        warm_mapped_file_key(),
        config_key!(
            BrokerConfig,
            "flushIntervalCommitLog",
            store.flush_interval_commit_log_ms,
            reloadable = false,
            "ASYNC_FLUSH flush period, in milliseconds."
        ),
        config_key!(
            BrokerConfig,
            "flushCommitLogLeastPages",
            store.flush_commit_log_least_pages_count,
            reloadable = false,
            "ASYNC_FLUSH waits for this many dirty 4 KiB pages."
        ),
        config_key!(
            BrokerConfig,
            "flushCommitLogThoroughInterval",
            store.flush_commit_log_thorough_interval_ms,
            reloadable = false,
            "Flush whatever is dirty at least this often, in milliseconds."
        ),
        config_key!(
            BrokerConfig,
            "syncFlushTimeout",
            store.sync_flush_timeout_ms,
            reloadable = false,
            "SYNC_FLUSH sends not durable by then answer FLUSH_DISK_TIMEOUT."
        ),
        config_key!(
            BrokerConfig,
            "flushIntervalConsumeQueue",
            store.flush_interval_consume_queue_ms,
            reloadable = false,
            "Consume-queue flush period, in milliseconds."
        ),
        config_key!(
            BrokerConfig,
            "flushConsumeQueueLeastPages",
            store.flush_consume_queue_least_pages,
            reloadable = false,
            "Between thorough flushes, a consume-queue file waits for this many dirty 4 KiB pages."
        ),
        config_key!(
            BrokerConfig,
            "flushConsumeQueueThoroughInterval",
            store.flush_consume_queue_thorough_interval_ms,
            reloadable = false,
            "Flush every consume queue and the index and move the checkpoint at least this often, in milliseconds."
        ),
        config_key!(
            BrokerConfig,
            "maxMessageSize",
            store.max_message_size_bytes,
            reloadable = false,
            "Largest message body accepted, in bytes."
        ),
        config_key!(
            BrokerConfig,
            "fileReservedTime",
            store.file_reserved_time_hours,
            reloadable = false,
            "Hours a commit-log segment is kept."
        ),
        config_key!(
            BrokerConfig,
            "deleteWhen",
            store.delete_when,
            reloadable = false,
            "Hours of the day (`;`-separated, in the machine's time zone, as in RocketMQ) when expired segments are deleted."
        ),
        config_key!(
            BrokerConfig,
            "diskMaxUsedSpaceRatio",
            store.disk_max_used_space_ratio_percent,
            reloadable = false,
            "Disk usage percent above which expired segments are deleted at once."
        ),
        config_key!(
            BrokerConfig,
            "diskSpaceCleanForciblyRatio",
            store.disk_space_clean_forcibly_ratio,
            reloadable = false,
            "Disk usage (0..1) above which segments are deleted even if not expired."
        ),
        config_key!(
            BrokerConfig,
            "diskSpaceWarningLevelRatio",
            store.disk_space_warning_level_ratio,
            reloadable = false,
            "Disk usage (0..1) above which sends are refused until space returns."
        ),
        config_key!(
            BrokerConfig,
            "cleanResourceInterval",
            store.clean_resource_interval_ms,
            reloadable = false,
            "Milliseconds between retention checks."
        ),
        config_key!(
            BrokerConfig,
            "deleteFileBatchMax",
            store.delete_file_batch_max_count,
            reloadable = false,
            "Segments deleted per retention round at most."
        ),
        config_key!(
            BrokerConfig,
            "messageIndexEnable",
            store.message_index_enable,
            reloadable = false,
            "Index KEYS and UNIQ_KEY for queries."
        ),
        config_key!(
            BrokerConfig,
            "maxHashSlotNum",
            store.max_hash_slot_count,
            reloadable = false,
            "Hash slots per index file."
        ),
        config_key!(
            BrokerConfig,
            "maxIndexNum",
            store.max_index_count,
            reloadable = false,
            "Entries per index file."
        ),
        config_key!(
            BrokerConfig,
            "maxMsgsNumBatch",
            store.max_msgs_num_batch_count,
            reloadable = false,
            "Most messages a query by key returns."
        ),
        config_key!(
            BrokerConfig,
            "messageDelayLevel",
            store.message_delay_level,
            reloadable = false,
            "Delay of each level, 1-based (units s, m, h, d)."
        ),
        config_key!(
            BrokerConfig,
            "checkCRCOnRecover",
            store.check_crc_on_recover,
            reloadable = false,
            "Verify body CRCs while recovering after a crash."
        ),
        config_key!(
            BrokerConfig,
            "maxTransferCountOnMessageInMemory",
            store.max_transfer_count_on_message_in_memory,
            reloadable = false,
            "Messages per pull from hot data."
        ),
        config_key!(
            BrokerConfig,
            "maxTransferCountOnMessageInDisk",
            store.max_transfer_count_on_message_in_disk,
            reloadable = false,
            "Messages per pull from cold data."
        ),
        config_key!(
            BrokerConfig,
            "maxTransferBytesOnMessageInMemory",
            store.max_transfer_bytes_on_message_in_memory,
            reloadable = false,
            "Bytes per pull from hot data."
        ),
        config_key!(
            BrokerConfig,
            "maxTransferBytesOnMessageInDisk",
            store.max_transfer_bytes_on_message_in_disk,
            reloadable = false,
            "Bytes per pull from cold data."
        ),
        config_key!(
            BrokerConfig,
            "accessMessageInMemoryMaxRatio",
            store.access_message_in_memory_max_ratio_percent,
            reloadable = false,
            "Percent of RAM, from the end of the commit log, that counts as hot."
        ),
        config_key!(
            BrokerConfig,
            "pageCacheHotWindow",
            store.page_cache_hot_window_bytes,
            reloadable = false,
            "Karman: the newest this many commit-log bytes stay in the page cache; pages of older, flushed data are handed back to the kernel (reads of them go to the disk), so that new writes reuse them instead of taking never-used memory, which a VM that returns free memory to its host pays for on first touch. 0 leaves it all to the kernel."
        ),
        config_key!(
            BrokerConfig,
            "maxFilterMessageSize",
            store.max_filter_message_size_bytes,
            reloadable = false,
            "Consume-queue bytes a filtered pull scans at least."
        ),
    ]
}

impl BrokerConfig {
    /// Reads a broker.conf. Unknown keys are returned for the caller to warn about; a bad
    /// value is an error naming the key.
    pub fn load(path: &Path) -> Result<(Self, ApplyReport), BrokerError> {
        let text = std::fs::read_to_string(path).map_err(|source| BrokerError::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::default();
        let report =
            config
                .apply_text(&text, false)
                .map_err(|source| BrokerError::ConfigValue {
                    path: path.to_owned(),
                    source,
                })?;
        Ok((config, report))
    }

    /// Applies properties text through the key table.
    pub fn apply_text(
        &mut self,
        text: &str,
        only_reloadable: bool,
    ) -> Result<ApplyReport, java_properties::ConfigError> {
        java_properties::apply(
            &keys(),
            self,
            &java_properties::parse(text),
            only_reloadable,
        )
    }

    /// The whole config as properties text (GET_BROKER_CONFIG).
    pub fn render(&self) -> String {
        java_properties::render(&keys(), self)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.listen_port)
    }

    /// The VIP port (listenPort - 2), or another free port when binding port 0.
    pub fn vip_listen_addr(&self) -> Option<SocketAddr> {
        match self.listen_port {
            0 => Some(SocketAddr::new(self.bind_address, 0)),
            port => port
                .checked_sub(2)
                .map(|p| SocketAddr::new(self.bind_address, p)),
        }
    }

    pub fn namesrv_addrs(&self) -> Vec<String> {
        self.namesrv_addr
            .as_deref()
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Registration period, clamped to 10..60 s as RocketMQ does.
    pub fn register_period(&self) -> Duration {
        Duration::from_millis(self.register_name_server_period_ms.clamp(10_000, 60_000))
    }

    pub fn config_dir(&self) -> PathBuf {
        self.store.store_path_root_dir.join("config")
    }

    pub fn is_master(&self) -> bool {
        self.broker_id == 0 && self.broker_role != BrokerRole::Slave
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rocketmq_broker_conf_configures_karman() {
        let mut config = BrokerConfig::default();
        let report = config
            .apply_text(
                "brokerClusterName = DefaultCluster\nbrokerName = broker-a\nbrokerId = 0\ndeleteWhen = 04\n\
                 fileReservedTime = 48\nbrokerRole = ASYNC_MASTER\nflushDiskType = SYNC_FLUSH\n\
                 storePathRootDir=/data/rocketmq/store\nnamesrvAddr=10.0.0.1:9876;10.0.0.2:9876\n\
                 listenPort=10921\nsomethingKarmanIgnores=1\n",
                false,
            )
            .unwrap();
        assert_eq!(config.broker_name, "broker-a");
        assert_eq!(config.store.file_reserved_time_hours, 48);
        assert_eq!(config.store.flush_disk_type, FlushDiskType::SyncFlush);
        assert_eq!(
            config.store.store_path_root_dir,
            PathBuf::from("/data/rocketmq/store")
        );
        assert_eq!(config.namesrv_addrs(), ["10.0.0.1:9876", "10.0.0.2:9876"]);
        assert_eq!(config.vip_listen_addr().unwrap().port(), 10919);
        assert_eq!(report.unknown_keys, ["somethingKarmanIgnores"]);
    }

    #[test]
    fn warm_mapped_file_follows_the_flush_type_unless_set() {
        let mut config = BrokerConfig::default();
        assert!(!config.store.warms_commit_log());
        config
            .apply_text("flushDiskType = SYNC_FLUSH\n", false)
            .unwrap();
        assert!(config.store.warms_commit_log());
        assert!(config.render().contains("warmMapedFileEnable=true"));
        config
            .apply_text("warmMapedFileEnable = false\n", false)
            .unwrap();
        assert!(!config.store.warms_commit_log());
        let mut config = BrokerConfig::default();
        config
            .apply_text("warmMapedFileEnable = true\n", false)
            .unwrap();
        assert!(config.store.warms_commit_log());
    }

    #[test]
    fn bad_value_names_the_key() {
        let error = BrokerConfig::default()
            .apply_text("flushDiskType=SOMETIMES\n", false)
            .unwrap_err();
        assert!(error.to_string().contains("flushDiskType"), "{error}");
    }

    #[test]
    fn rendered_config_parses_back_to_the_same() {
        let config = BrokerConfig::default();
        let mut reread = BrokerConfig::default();
        reread.apply_text(&config.render(), false).unwrap();
        assert_eq!(reread.render(), config.render());
    }
}
