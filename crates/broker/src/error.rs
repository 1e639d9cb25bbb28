//! The broker's one error type, for what stops a broker from starting or persisting its
//! tables. Request failures are answered with a response code and a remark instead (see
//! [`crate::processor`]).

use std::path::PathBuf;

use karman_protocol::java_properties::ConfigError;
use karman_remoting::RemotingError;
use karman_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("config file {path}: {source}")]
    ConfigValue {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },

    #[error("the message store could not open: {source}")]
    Store {
        #[source]
        source: StoreError,
    },

    #[error("opening the message store was aborted (the runtime is shutting down)")]
    StoreOpenAborted,

    #[error("cannot start the broker listeners: {source}")]
    Listen {
        #[source]
        source: RemotingError,
    },

    #[error("cannot {action} {path}: {source}")]
    TableIo {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is unreadable ({source}); fix it or restore its .bak copy")]
    TableJson {
        path: PathBuf,
        #[source]
        source: karman_protocol::ProtocolError,
    },
}
