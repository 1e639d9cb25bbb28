//! # karman-protocol
//!
//! The RocketMQ remoting wire formats, as pure functions over bytes: the frame and the
//! command header (JSON and ROCKETMQ binary), request and response codes, typed headers,
//! the message codec (client message, stored layout, batch, properties, ids, compression)
//! and the JSON bodies with their fastjson quirks.
//!
//! This crate owns the facts of `../shared/spec/remoting.md` and nothing else: it never
//! touches a socket, a file or a clock, so it can be fuzzed and used by every other crate
//! (server, client, proxy, tools) alike.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )
)]

pub mod body;
pub mod code;
pub mod command;
pub mod error;
pub mod ext_fields;
pub mod frame;
#[doc(hidden)]
pub mod fuzz_harness;
pub mod header;
pub mod java_properties;
pub mod message;

pub use code::{LanguageCode, RequestCode, ResponseCode};
pub use command::{Body, ExtFields, RemotingCommand};
pub use error::{ProtocolError, Result};
pub use frame::{Frame, FrameDecoder, SerializeType};
