//! The transport's one error type.

use std::time::Duration;

use karman_protocol::{ProtocolError, ResponseCode};

#[derive(Debug, thiserror::Error)]
pub enum RemotingError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("connecting to {addr} took longer than {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },

    #[error("no response from {addr} to request code {code} (opaque {opaque}) within {timeout:?}")]
    Timeout {
        addr: String,
        code: i32,
        opaque: i32,
        timeout: Duration,
    },

    #[error("connection to {addr} is closed")]
    ChannelClosed { addr: String },

    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot encode request for {addr}: {source}")]
    Encode {
        addr: String,
        #[source]
        source: ProtocolError,
    },

    #[error("the client is shut down")]
    Shutdown,
}

/// What a processor answers when it cannot build a response itself: a response code and a
/// remark that says what went wrong. The transport turns it into an error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessError {
    pub code: ResponseCode,
    pub remark: String,
}

impl ProcessError {
    pub fn new(code: ResponseCode, remark: impl Into<String>) -> Self {
        Self {
            code,
            remark: remark.into(),
        }
    }

    pub fn system_error(remark: impl Into<String>) -> Self {
        Self::new(ResponseCode::SystemError, remark)
    }
}

impl std::fmt::Display for ProcessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.remark)
    }
}

impl std::error::Error for ProcessError {}

/// A header that does not decode is answered SYSTEM_ERROR with the reason, as Java does.
impl From<ProtocolError> for ProcessError {
    fn from(error: ProtocolError) -> Self {
        Self::system_error(error.to_string())
    }
}
