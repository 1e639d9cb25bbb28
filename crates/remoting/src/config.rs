//! Transport settings. Defaults follow the Java remoting server and client.

use std::net::SocketAddr;
use std::time::Duration;

use karman_protocol::SerializeType;
use karman_protocol::frame::FRAME_BYTES_MAX_DEFAULT;

/// Settings shared by server-side and client-side connections.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Largest frame accepted, length prefix included (`frameMaxLength`, 16 MiB).
    pub frame_bytes_max: usize,
    /// Requests a peer may have in progress on one connection; past it new requests are
    /// answered SYSTEM_BUSY instead of queued.
    pub in_flight_requests_max: usize,
    /// Commands waiting to be written on one connection; writers wait past it.
    pub write_queue_max: usize,
    /// A connection with no read or write for this long is closed
    /// (`serverChannelMaxIdleTimeSeconds`, 120 s).
    pub idle_timeout: Duration,
    /// How responses are encoded: `None` answers in the request's own serialization,
    /// `Some(t)` always in `t`. Requests this side originates use JSON unless set.
    pub serialize_type: Option<SerializeType>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            in_flight_requests_max: 4096,
            write_queue_max: 4096,
            idle_timeout: Duration::from_secs(120),
            serialize_type: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen_addr: SocketAddr,
    /// Further addresses served by the same processors (the broker's `listenPort - 2`).
    pub extra_listen_addrs: Vec<SocketAddr>,
    pub connection: ConnectionConfig,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    pub fn new(listen_addr: SocketAddr) -> Self {
        Self {
            listen_addr,
            extra_listen_addrs: Vec::new(),
            connection: ConnectionConfig::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connection: ConnectionConfig,
    pub connect_timeout: Duration,
    /// Serialization of requests this client sends (Java clients default to JSON).
    pub request_serialize_type: SerializeType,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connection: ConnectionConfig {
                // A client has no reason to drop a quiet broker connection: heartbeats keep
                // it alive and the server enforces its own idle limit.
                idle_timeout: Duration::from_secs(24 * 3600),
                ..ConnectionConfig::default()
            },
            connect_timeout: Duration::from_secs(3),
            request_serialize_type: SerializeType::Json,
        }
    }
}
