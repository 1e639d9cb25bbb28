//! The remoting client: one connection per address, shared by every caller, re-dialled
//! after it fails. Requests the server sends back over the connection (transaction
//! checks, rebalance notifications) reach the client's own processors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use karman_protocol::RemotingCommand;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channel::{Channel, ConnectionContext};
use crate::config::ClientConfig;
use crate::error::RemotingError;
use crate::processor::Dispatcher;

type Slot = Arc<tokio::sync::Mutex<Option<Channel>>>;

#[derive(Debug)]
pub struct RemotingClient {
    ctx: ConnectionContext,
    connect_timeout: Duration,
    slots: Mutex<HashMap<String, Slot>>,
    shut_down: CancellationToken,
}

impl std::fmt::Debug for ConnectionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionContext")
            .field("dispatcher", &self.dispatcher)
            .finish_non_exhaustive()
    }
}

impl RemotingClient {
    /// A client whose connections serve server-initiated requests with `dispatcher`.
    pub fn new(config: ClientConfig, dispatcher: Dispatcher) -> Self {
        let shut_down = CancellationToken::new();
        Self {
            ctx: ConnectionContext {
                dispatcher: Arc::new(dispatcher),
                config: config.connection.clone(),
                originate_type: config.request_serialize_type,
                close_all: shut_down.child_token(),
                draining: shut_down.child_token(),
                requests: TaskTracker::new(),
                connections: TaskTracker::new(),
            },
            connect_timeout: config.connect_timeout,
            slots: Mutex::new(HashMap::new()),
            shut_down,
        }
    }

    /// The live connection to `addr`, dialling it if there is none. Concurrent callers
    /// share one dial.
    pub async fn channel(&self, addr: &str) -> Result<Channel, RemotingError> {
        if self.shut_down.is_cancelled() {
            return Err(RemotingError::Shutdown);
        }
        if let Some(channel) = self.live_channel(addr) {
            return Ok(channel);
        }
        let slot = self
            .slots
            .lock()
            .entry(addr.to_owned())
            .or_default()
            .clone();
        let mut current = slot.lock().await;
        if let Some(channel) = current.as_ref().filter(|c| !c.is_closed()) {
            return Ok(channel.clone());
        }
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| RemotingError::ConnectTimeout {
                addr: addr.to_owned(),
                timeout: self.connect_timeout,
            })?
            .map_err(|source| RemotingError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let channel =
            Channel::spawn(stream, &self.ctx).map_err(|source| RemotingError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        *current = Some(channel.clone());
        Ok(channel)
    }

    /// The connection to `addr` if it is up and nobody is dialling it: every request of
    /// every sender asks, so this path takes no async lock and allocates nothing (64
    /// senders queueing on the slot's lock cost a task wake-up per request).
    fn live_channel(&self, addr: &str) -> Option<Channel> {
        if self.shut_down.is_cancelled() {
            return None;
        }
        let slot = self.slots.lock().get(addr)?.clone();
        let current = slot.try_lock().ok()?;
        current.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    /// Sends a request to `addr` and waits for the response; `timeout` covers dialling too.
    pub async fn invoke(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        if let Some(channel) = self.live_channel(addr) {
            return channel.invoke(request, timeout).await;
        }
        let started = tokio::time::Instant::now();
        let channel = tokio::time::timeout(timeout, self.channel(addr))
            .await
            .map_err(|_| RemotingError::ConnectTimeout {
                addr: addr.to_owned(),
                timeout,
            })??;
        let remaining = timeout.saturating_sub(started.elapsed());
        channel.invoke(request, remaining).await
    }

    /// Sends a request to `addr` that expects no response.
    pub async fn invoke_oneway(
        &self,
        addr: &str,
        request: RemotingCommand,
    ) -> Result<(), RemotingError> {
        self.channel(addr).await?.invoke_oneway(request).await
    }

    /// Closes the connection to `addr`, if any; the next call dials again.
    pub fn close_channel(&self, addr: &str) {
        let slot = self.slots.lock().remove(addr);
        if let Some(slot) = slot
            && let Ok(current) = slot.try_lock()
            && let Some(channel) = current.as_ref()
        {
            channel.close();
        }
    }

    /// Addresses with a live connection.
    pub fn connected_addrs(&self) -> Vec<String> {
        let slots = self.slots.lock();
        slots
            .iter()
            .filter(|(_, slot)| {
                slot.try_lock()
                    .map(|c| c.as_ref().is_some_and(|c| !c.is_closed()))
                    .unwrap_or(true)
            })
            .map(|(addr, _)| addr.clone())
            .collect()
    }

    /// Closes every connection after in-flight server-initiated requests finish.
    pub async fn shutdown(&self) {
        self.shut_down.cancel();
        self.ctx.requests.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ctx.requests.wait()).await;
        self.ctx.close_all.cancel();
        self.ctx.connections.close();
        self.ctx.connections.wait().await;
        self.slots.lock().clear();
    }
}
