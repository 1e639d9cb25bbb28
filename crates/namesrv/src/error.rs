//! The NameServer's one error type.

use std::path::PathBuf;

use karman_protocol::java_properties::ConfigError;
use karman_remoting::RemotingError;

#[derive(Debug, thiserror::Error)]
pub enum NamesrvError {
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

    #[error("cannot start the NameServer listener: {source}")]
    Listen {
        #[source]
        source: RemotingError,
    },

    #[error("cannot {action} KV config file {path}: {source}")]
    KvConfigIo {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "KV config file {path} is unreadable ({source}); fix or remove it (a .bak copy may exist)"
    )]
    KvConfigJson {
        path: PathBuf,
        #[source]
        source: karman_protocol::ProtocolError,
    },
}
