//! # karman-client
//!
//! The Rust SDK for Karman and any RocketMQ-compatible broker, over the remoting protocol
//! (spec `../shared/spec/remoting.md` and `semantics.md` §4–§8):
//!
//! - [`producer::Producer`]: sync, async and oneway sends, batches, ordered sends through a
//!   queue selector, delay levels and timer messages; retries on another broker, optional
//!   latency fault tolerance, compression over 4 KiB.
//! - [`producer::TransactionProducer`]: half message, local transaction, commit/rollback,
//!   and check-backs from the broker.
//! - [`consumer::PushConsumer`]: clustering or broadcasting, tag or SQL92 subscriptions,
//!   concurrent or orderly listeners, rebalance, long polling, flow control, retry through
//!   send-back, offsets on the broker or in a local file.
//! - [`consumer::LitePullConsumer`]: subscribe or assign, poll, seek, commit.
//! - [`admin::Admin`]: topics, groups, routes, offsets, stats and message queries.
//! - [`idempotent`]: consume each message once, by UNIQ_KEY or a business key.
//!
//! Producers and consumers built with the same client id share one client instance (one
//! connection per broker, one heartbeat, one route cache), as Java clients do. Every
//! producer and consumer must be shut down with its `shutdown()`: consumers persist their
//! offsets and unlock their queues, producers finish their in-flight sends.
//!
//! This crate never knows how a broker stores anything; it only speaks the protocol.
#![forbid(unsafe_code)]
// Network input never unwraps: a bad answer is an error that names the broker.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod config;
pub mod consumer;
pub mod error;
pub mod idempotent;
pub mod producer;
pub mod route;

mod instance;
mod processor;

pub use admin::Admin;
pub use config::ClientConfig;
pub use consumer::{LitePullConsumer, PushConsumer};
pub use error::{ClientError, Result};
pub use instance::wall_clock_ms;
pub use karman_protocol::body::{ConsumeFromWhere, MessageModel, MessageQueue};
pub use karman_protocol::message::{Message, MessageExt};
pub use producer::{Producer, SendResult, SendStatus, TransactionProducer};
