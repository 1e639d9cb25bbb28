//! The client's one error type. Every variant carries the facts an operator needs: which
//! broker or NameServer, which topic, which response code and remark, how long a timeout
//! was.

use std::path::PathBuf;
use std::time::Duration;

use karman_protocol::{ProtocolError, RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::RemotingError;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid client setting {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    #[error("message for topic {topic:?} refused before sending: {reason}")]
    InvalidMessage { topic: String, reason: String },

    #[error("no NameServer address configured (set namesrv_addr or NAMESRV_ADDR)")]
    NoNamesrv,

    #[error("no route for topic {topic:?}: {reason}")]
    NoRoute { topic: String, reason: String },

    #[error("no address known for broker {broker_name:?}")]
    BrokerNotFound { broker_name: String },

    #[error("transport error talking to {addr}: {source}")]
    Remoting {
        addr: String,
        #[source]
        source: RemotingError,
    },

    #[error("{addr} answered {request} with {code}: {remark}")]
    Broker {
        addr: String,
        /// The Java name of the request (`SEND_MESSAGE_V2(310)`).
        request: String,
        code: ResponseCode,
        remark: String,
    },

    #[error("cannot decode the answer of {addr} to {what}: {source}")]
    Decode {
        addr: String,
        what: &'static str,
        #[source]
        source: ProtocolError,
    },

    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: ProtocolError,
    },

    #[error("sending to topic {topic:?} used up its {budget:?} budget after {attempts} attempt(s)")]
    SendTimeout {
        topic: String,
        budget: Duration,
        attempts: u32,
    },

    #[error("sending to topic {topic:?} failed after {attempts} attempt(s): {last}")]
    SendFailed {
        topic: String,
        attempts: u32,
        #[source]
        last: Box<ClientError>,
    },

    #[error("group {group:?} is already registered in client instance {client_id}")]
    GroupAlreadyRegistered { group: String, client_id: String },

    #[error("{what} is shut down")]
    Shutdown { what: &'static str },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("offset file {path} is not valid: {source}")]
    OffsetFile {
        path: PathBuf,
        #[source]
        source: ProtocolError,
    },
}

impl ClientError {
    pub(crate) fn remoting(addr: &str, source: RemotingError) -> Self {
        Self::Remoting {
            addr: addr.to_owned(),
            source,
        }
    }

    pub(crate) fn from_response(
        addr: &str,
        request: &RemotingCommand,
        response: &RemotingCommand,
    ) -> Self {
        Self::from_response_to(addr, request.request_code(), response)
    }

    /// The one mapping from a broker or NameServer error response to an error. Takes the
    /// request code alone so that a caller can hand the request itself to the transport.
    pub(crate) fn from_response_to(
        addr: &str,
        request: RequestCode,
        response: &RemotingCommand,
    ) -> Self {
        Self::Broker {
            addr: addr.to_owned(),
            request: request.to_string(),
            code: response.response_code(),
            remark: response.remark.clone().unwrap_or_default(),
        }
    }

    pub(crate) fn decode(addr: &str, what: &'static str, source: ProtocolError) -> Self {
        Self::Decode {
            addr: addr.to_owned(),
            what,
            source,
        }
    }

    /// The response code, when a broker or NameServer answered with an error.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Self::Broker { code, .. } => Some(*code),
            Self::SendFailed { last, .. } => last.response_code(),
            _ => None,
        }
    }

    /// Whether a sync send retries after this error (spec semantics.md §4): client and
    /// transport errors always; broker errors only for the codes Java retries.
    pub fn is_retryable_send(&self) -> bool {
        match self {
            Self::Broker { code, .. } => matches!(
                code,
                ResponseCode::TopicNotExist
                    | ResponseCode::ServiceNotAvailable
                    | ResponseCode::SystemError
                    | ResponseCode::SystemBusy
                    | ResponseCode::NoPermission
                    | ResponseCode::NoBuyerId
                    | ResponseCode::NotInCurrentUnit
                    | ResponseCode::GoAway
            ),
            Self::Remoting { .. } | Self::BrokerNotFound { .. } | Self::NoRoute { .. } => true,
            Self::Decode { .. } => true,
            _ => false,
        }
    }

    /// Whether latency fault tolerance isolates the broker after this error: transport and
    /// broker errors do; a message refused before sending says nothing about the broker.
    pub(crate) fn isolates_broker(&self) -> bool {
        matches!(self, Self::Remoting { .. } | Self::Broker { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_error_names_the_code_request_and_broker() {
        let request = RemotingCommand::request(RequestCode::SendMessageV2);
        let response = RemotingCommand::response(ResponseCode::SystemBusy).with_remark("busy");
        let error = ClientError::from_response("10.0.0.1:10911", &request, &response);
        assert_eq!(
            error.to_string(),
            "10.0.0.1:10911 answered SEND_MESSAGE_V2(310) with SYSTEM_BUSY(2): busy"
        );
        assert!(error.is_retryable_send());
        assert_eq!(error.response_code(), Some(ResponseCode::SystemBusy));
    }

    #[test]
    fn message_illegal_is_not_retried() {
        let request = RemotingCommand::request(RequestCode::SendMessageV2);
        let response = RemotingCommand::response(ResponseCode::MessageIllegal);
        assert!(!ClientError::from_response("b", &request, &response).is_retryable_send());
    }
}
