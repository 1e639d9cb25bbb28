//! The remoting server: accepts connections on one or more addresses and serves them with
//! one processor table.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::channel::{Channel, ConnectionContext};
use crate::config::ServerConfig;
use crate::error::RemotingError;
use crate::processor::Dispatcher;

/// A running server. Dropping it does not stop it; call [`ServerHandle::shutdown`].
#[derive(Debug)]
pub struct ServerHandle {
    local_addrs: Vec<SocketAddr>,
    stop_accepting: CancellationToken,
    draining: CancellationToken,
    close_all: CancellationToken,
    requests: TaskTracker,
    connections: TaskTracker,
    acceptors: TaskTracker,
    config: ServerConfig,
}

/// Bound listeners that do not accept yet: their addresses are known (useful after binding
/// port 0) before the processors that need them are built.
#[derive(Debug)]
pub struct BoundServer {
    config: ServerConfig,
    listeners: Vec<TcpListener>,
    local_addrs: Vec<SocketAddr>,
}

/// Binds every configured address without serving yet.
pub async fn bind(config: ServerConfig) -> Result<BoundServer, RemotingError> {
    let mut addrs = vec![config.listen_addr];
    addrs.extend(config.extra_listen_addrs.iter().copied());
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RemotingError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        listeners.push(listener);
    }
    let local_addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| RemotingError::Bind {
            addr: config.listen_addr.to_string(),
            source,
        })?;
    Ok(BoundServer {
        config,
        listeners,
        local_addrs,
    })
}

/// Binds every configured address and starts serving.
pub async fn start(
    config: ServerConfig,
    dispatcher: Dispatcher,
) -> Result<ServerHandle, RemotingError> {
    Ok(bind(config).await?.serve(dispatcher))
}

impl BoundServer {
    /// The bound addresses, main address first.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Starts accepting connections and dispatching their requests.
    pub fn serve(self, dispatcher: Dispatcher) -> ServerHandle {
        let BoundServer {
            config,
            listeners,
            local_addrs,
        } = self;
        let handle = ServerHandle {
            local_addrs: local_addrs.clone(),
            stop_accepting: CancellationToken::new(),
            draining: CancellationToken::new(),
            close_all: CancellationToken::new(),
            requests: TaskTracker::new(),
            connections: TaskTracker::new(),
            acceptors: TaskTracker::new(),
            config,
        };
        let ctx = Arc::new(ConnectionContext {
            dispatcher: Arc::new(dispatcher),
            config: handle.config.connection.clone(),
            originate_type: handle.config.connection.serialize_type.unwrap_or_default(),
            close_all: handle.close_all.clone(),
            draining: handle.draining.clone(),
            requests: handle.requests.clone(),
            connections: handle.connections.clone(),
        });
        for (listener, addr) in listeners.into_iter().zip(local_addrs) {
            info!(%addr, "remoting server listening");
            let stop = handle.stop_accepting.clone();
            let ctx = ctx.clone();
            handle
                .acceptors
                .spawn(accept_loop(listener, ctx, stop).instrument(info_span!("accept", %addr)));
        }
        handle
    }
}

async fn accept_loop(listener: TcpListener, ctx: Arc<ConnectionContext>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, remote)) => match Channel::spawn(stream, &ctx) {
                Ok(channel) => debug!(%remote, id = channel.id(), "connection accepted"),
                Err(error) => debug!(%remote, %error, "connection dropped before setup"),
            },
            Err(error) => {
                // Usually EMFILE: back off instead of spinning on the error.
                warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

impl ServerHandle {
    /// The bound addresses, main address first (useful after binding port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Stops accepting, stops reading new requests, waits up to the configured grace for
    /// in-flight requests to be answered, then closes every connection.
    pub async fn shutdown(self) {
        self.stop_accepting.cancel();
        self.acceptors.close();
        self.acceptors.wait().await;
        self.draining.cancel();
        self.requests.close();
        if tokio::time::timeout(self.config.shutdown_grace, self.requests.wait())
            .await
            .is_err()
        {
            warn!(grace = ?self.config.shutdown_grace, "requests still running at the end of the shutdown grace period");
        }
        self.close_all.cancel();
        self.connections.close();
        self.connections.wait().await;
        info!(addrs = ?self.local_addrs, "remoting server stopped");
    }
}
