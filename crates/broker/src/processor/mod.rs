//! Request processors, one per concern, each built from the few parts it uses.
//!
//! Failures are answered with a RocketMQ response code and a remark that says what was
//! wrong and what to do; a processor returns them as [`ProcessError`].

pub mod admin;
pub mod client;
pub mod end_transaction;
pub mod lock;
pub mod offset;
pub mod pull;
pub mod query;
pub mod send;

use karman_protocol::{RemotingCommand, ResponseCode};
use karman_remoting::ProcessError;
use serde::Serialize;

pub(crate) fn ok(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(request, ResponseCode::Success)
}

pub(crate) fn json_body<T: Serialize>(request: &RemotingCommand, body: &T) -> RemotingCommand {
    ok(request).with_body(karman_protocol::body::fastjson::to_vec(body))
}

pub(crate) fn fail(code: ResponseCode, remark: impl Into<String>) -> ProcessError {
    ProcessError::new(code, remark)
}
