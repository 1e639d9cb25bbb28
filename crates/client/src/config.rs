//! Settings shared by every producer and consumer of one client instance. Defaults are
//! the Java client's (spec semantics.md §4, remoting.md §7.11).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use karman_protocol::{LanguageCode, SerializeType};

use crate::error::{ClientError, Result};

/// Where the NameServer is when nothing else says: the `NAMESRV_ADDR` environment variable,
/// else `127.0.0.1:9876`.
pub fn default_namesrv_addr() -> String {
    std::env::var("NAMESRV_ADDR")
        .ok()
        .filter(|addr| !addr.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9876".to_owned())
}

/// The instance name that means "make one up per client" (Java's `DEFAULT`).
pub const DEFAULT_INSTANCE_NAME: &str = "DEFAULT";

/// Settings of one client instance. Producers and consumers that resolve to the same
/// client id (same IP, instance name and unit name) share one instance: one connection per
/// broker, one heartbeat, one route cache.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// NameServer addresses separated by `;` (`"10.0.0.1:9876;10.0.0.2:9876"`).
    pub namesrv_addr: String,
    /// `DEFAULT` becomes `<pid>#<nanos>`, so every client gets its own instance unless the
    /// caller names one.
    pub instance_name: String,
    pub unit_name: Option<String>,
    /// The IP in the client id and message ids; found from the route to the NameServer when
    /// not set.
    pub client_ip: Option<IpAddr>,
    /// Route refresh of every topic in use (`pollNameServerInterval`, 30 s).
    pub poll_name_server_interval: Duration,
    /// Heartbeat to every broker in use (`heartbeatBrokerInterval`, 30 s).
    pub heartbeat_broker_interval: Duration,
    /// Consumer offset persistence (`persistConsumerOffsetInterval`, 5 s).
    pub persist_consumer_offset_interval: Duration,
    /// Periodic rebalance (`rocketmq.client.rebalance.waitInterval`, 20 s).
    pub rebalance_interval: Duration,
    /// Timeout of ordinary broker and NameServer calls (`mqClientApiTimeout`, 3 s).
    pub api_timeout: Duration,
    /// The `language` of every request. `JAVA` by default: Java brokers parse the name into
    /// an enum that lacks `RUST` before 4.9.8 and reject the request (spec remoting.md
    /// §1.4), and some broker relays (running info, consume directly) serve Java clients
    /// only. Set `LanguageCode::Rust` to be reported as what this client is.
    pub language: LanguageCode,
    /// Header encoding of every request. JSON by default, like Java; the environment
    /// variable `ROCKETMQ_SERIALIZE_TYPE=ROCKETMQ` switches to the binary header, as it
    /// does for Java clients (RocketMQ's benchmark tools use it).
    pub serialize_type: SerializeType,
}

/// Java's `ROCKETMQ_SERIALIZE_TYPE`: `ROCKETMQ` selects the binary header.
fn default_serialize_type() -> SerializeType {
    match std::env::var("ROCKETMQ_SERIALIZE_TYPE") {
        Ok(value) if value.eq_ignore_ascii_case("ROCKETMQ") => SerializeType::RocketMq,
        _ => SerializeType::Json,
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            namesrv_addr: default_namesrv_addr(),
            instance_name: DEFAULT_INSTANCE_NAME.to_owned(),
            unit_name: None,
            client_ip: None,
            poll_name_server_interval: Duration::from_secs(30),
            heartbeat_broker_interval: Duration::from_secs(30),
            persist_consumer_offset_interval: Duration::from_secs(5),
            rebalance_interval: Duration::from_secs(20),
            api_timeout: Duration::from_secs(3),
            language: LanguageCode::Java,
            serialize_type: default_serialize_type(),
        }
    }
}

impl ClientConfig {
    /// The NameServer addresses, in configured order.
    pub fn namesrv_addrs(&self) -> Vec<String> {
        self.namesrv_addr
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.namesrv_addrs().is_empty() {
            return Err(ClientError::NoNamesrv);
        }
        for (field, value) in [
            ("poll_name_server_interval", self.poll_name_server_interval),
            ("heartbeat_broker_interval", self.heartbeat_broker_interval),
            (
                "persist_consumer_offset_interval",
                self.persist_consumer_offset_interval,
            ),
            ("rebalance_interval", self.rebalance_interval),
            ("api_timeout", self.api_timeout),
        ] {
            if value.is_zero() {
                return Err(ClientError::InvalidConfig {
                    field,
                    reason: "must be longer than zero".into(),
                });
            }
        }
        Ok(())
    }

    /// The IP this client reports: the configured one, else the local address of the route
    /// to the first NameServer (no packet is sent), else loopback.
    pub fn resolve_client_ip(&self) -> IpAddr {
        if let Some(ip) = self.client_ip {
            return ip;
        }
        let target = self
            .namesrv_addrs()
            .first()
            .and_then(|addr| addr.to_socket_addrs().ok())
            .and_then(|mut addrs| addrs.next());
        target
            .and_then(local_ip_towards)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// `ip@instanceName[@unitName]`, with `DEFAULT` already replaced.
    pub(crate) fn client_id(&self, ip: IpAddr, instance_name: &str) -> String {
        let mut id = format!("{ip}@{instance_name}");
        if let Some(unit) = self.unit_name.as_deref().filter(|u| !u.is_empty()) {
            id.push('@');
            id.push_str(unit);
        }
        id
    }

    /// The effective instance name: Java turns `DEFAULT` into `pid#nanotime`. The nanos
    /// never repeat within a process: two clients built at the same moment on two threads
    /// read the same clock value often enough (in 5 of 300 runs of the transaction tests)
    /// to end up sharing one instance and its NameServer.
    pub(crate) fn effective_instance_name(&self) -> String {
        if self.instance_name == DEFAULT_INSTANCE_NAME {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            format!("{}#{}", std::process::id(), unique_nanos(now))
        } else {
            self.instance_name.clone()
        }
    }
}

/// `now`, unless an earlier call in this process returned it or later; then one more than
/// the latest.
fn unique_nanos(now: u64) -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let next = |last: u64| now.max(last.saturating_add(1));
    let last = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(next(last))
        })
        .unwrap_or(0);
    next(last)
}

fn local_ip_towards(target: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).ok()?;
    // A UDP connect only picks a route; nothing goes on the wire.
    socket.connect(target).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

/// Validates a topic name the way Java clients do (spec semantics.md §0).
pub(crate) fn check_topic(topic: &str) -> Result<()> {
    let invalid = |reason: &str| ClientError::InvalidMessage {
        topic: topic.to_owned(),
        reason: reason.to_owned(),
    };
    if topic.trim().is_empty() {
        return Err(invalid("the topic is empty"));
    }
    let limit = if topic.starts_with("%RETRY%") || topic.starts_with("%DLQ%") {
        255
    } else {
        127
    };
    if topic.len() > limit {
        return Err(invalid("the topic is longer than the broker allows"));
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
    {
        return Err(invalid("the topic may only hold [%|a-zA-Z0-9_-]"));
    }
    Ok(())
}

/// Validates a group name (≤ 120 chars, same charset as topics).
pub(crate) fn check_group(field: &'static str, group: &str) -> Result<()> {
    if group.is_empty() || group.len() > 120 {
        return Err(ClientError::InvalidConfig {
            field,
            reason: format!("group {group:?} must be 1 to 120 characters"),
        });
    }
    if !group
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
    {
        return Err(ClientError::InvalidConfig {
            field,
            reason: format!("group {group:?} may only hold [%|a-zA-Z0-9_-]"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_has_ip_instance_and_unit() {
        let mut config = ClientConfig {
            namesrv_addr: "127.0.0.1:9876".into(),
            ..ClientConfig::default()
        };
        let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 5, 9));
        assert_eq!(config.client_id(ip, "i1"), "10.1.5.9@i1");
        config.unit_name = Some("u".into());
        assert_eq!(config.client_id(ip, "i1"), "10.1.5.9@i1@u");
    }

    #[test]
    fn default_instance_name_becomes_pid_and_nanos() {
        let config = ClientConfig::default();
        let name = config.effective_instance_name();
        assert!(
            name.starts_with(&format!("{}#", std::process::id())),
            "{name}"
        );
        let named = ClientConfig {
            instance_name: "mine".into(),
            ..ClientConfig::default()
        };
        assert_eq!(named.effective_instance_name(), "mine");
    }

    #[test]
    fn instance_nanos_never_repeat_even_for_the_same_clock_reading() {
        let now = 1_000;
        let first = unique_nanos(now);
        let second = unique_nanos(now);
        assert!(second > first, "{first} then {second}");
    }

    #[test]
    fn namesrv_list_splits_on_semicolons() {
        let config = ClientConfig {
            namesrv_addr: " a:1; b:2 ;".into(),
            ..ClientConfig::default()
        };
        assert_eq!(config.namesrv_addrs(), ["a:1", "b:2"]);
        let empty = ClientConfig {
            namesrv_addr: " ; ".into(),
            ..ClientConfig::default()
        };
        assert!(matches!(empty.validate(), Err(ClientError::NoNamesrv)));
    }

    #[test]
    fn loopback_namesrv_gives_loopback_ip() {
        let config = ClientConfig {
            namesrv_addr: "127.0.0.1:9876".into(),
            ..ClientConfig::default()
        };
        assert_eq!(config.resolve_client_ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn topic_and_group_names_are_checked() {
        assert!(check_topic("Topic_A-1").is_ok());
        assert!(check_topic("%RETRY%g").is_ok());
        assert!(check_topic("bad topic").is_err());
        assert!(check_topic(&"t".repeat(128)).is_err());
        assert!(check_group("group", "g1").is_ok());
        assert!(check_group("group", "").is_err());
        assert!(check_group("group", "a/b").is_err());
    }
}
