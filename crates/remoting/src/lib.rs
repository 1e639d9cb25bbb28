//! # karman-remoting
//!
//! The RocketMQ remoting transport over tokio TCP, used by the NameServer, the broker and
//! the client alike.
//!
//! - [`server::start`] binds one or more addresses (the broker's main port and its
//!   `listenPort - 2` VIP port) and dispatches requests by code to registered
//!   [`RequestProcessor`]s, answering REQUEST_CODE_NOT_SUPPORTED for the rest. Requests on
//!   a connection run concurrently and are answered as they complete; oneway requests get
//!   no answer; in-flight work per connection is bounded; idle connections are closed;
//!   shutdown drains in-flight requests.
//! - [`RemotingClient`] keeps one connection per address shared by all callers, matches
//!   responses by opaque with a timeout, sends oneway requests, re-dials after a failure,
//!   and serves the requests a server sends back over the connection.
//! - Malformed input never panics: a bad header with a readable opaque is answered
//!   SYSTEM_ERROR; a broken frame (over the size limit, truncated, unknown serialization)
//!   closes that one connection and everyone else keeps being served.
//!
//! This crate knows frames and connections, not what any request means.
#![forbid(unsafe_code)]

pub mod channel;
pub mod client;
pub mod config;
pub mod error;
pub mod processor;
pub mod server;

pub use channel::Channel;
pub use client::RemotingClient;
pub use config::{ClientConfig, ConnectionConfig, ServerConfig};
pub use error::{ProcessError, RemotingError};
pub use processor::{ChannelEventListener, Dispatcher, ProcessResult, RequestProcessor};
pub use server::ServerHandle;
