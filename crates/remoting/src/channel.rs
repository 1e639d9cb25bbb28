//! One TCP connection, from either side: a reader task that splits frames and dispatches
//! requests, a writer task that owns the socket's write half, and the [`Channel`] handle
//! every other part of the process uses to send requests over the connection.
//!
//! Both peers may send requests on the same connection (a broker asks a producer to check
//! a transaction over the producer's own connection), so server-side and client-side
//! connections run the same code.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use karman_protocol::command::{FLAG_ONEWAY, FLAG_RESPONSE};
use karman_protocol::{FrameDecoder, ProtocolError, RemotingCommand, ResponseCode, SerializeType};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span, warn};

use crate::config::ConnectionConfig;
use crate::error::RemotingError;
use crate::processor::{Dispatcher, not_supported};

/// Bodies up to this size are copied next to their header; larger ones are written from
/// their own buffers (commit-log slices go to the socket without a copy).
const INLINE_BODY_BYTES_MAX: usize = 16 * 1024;
/// How much the writer gathers before one vectored write.
const WRITE_BATCH_BYTES_MAX: usize = 1024 * 1024;
/// Below this many queued commands the writer yields once to gather more into one write.
const COALESCE_COUNT_TARGET: usize = 16;
/// How many times it yields for that, at most.
const COALESCE_YIELDS_MAX: usize = 2;
/// IoSlices per `write_vectored` call (Linux caps iovecs at 1024).
const IOVECS_MAX: usize = 256;
/// Read buffer growth step.
const READ_CHUNK_BYTES: usize = 64 * 1024;

static NEXT_CHANNEL_ID: AtomicU64 = AtomicU64::new(1);

struct Outbound {
    command: RemotingCommand,
    serialize_type: SerializeType,
}

struct Inner {
    id: u64,
    remote_addr: SocketAddr,
    local_addr: SocketAddr,
    outbound: mpsc::Sender<Outbound>,
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    next_opaque: AtomicI32,
    /// Cancelled when this connection closes.
    closed: CancellationToken,
    /// Cancelled when the owning server or client begins shutting down.
    draining: CancellationToken,
    originate_type: SerializeType,
    response_type: Option<SerializeType>,
    activity: AtomicU64,
}

/// A handle to one connection. Cheap to clone; equal handles refer to the same connection.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.inner.id)
            .field("remote", &self.inner.remote_addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl PartialEq for Channel {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for Channel {}

impl std::hash::Hash for Channel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

/// Everything a connection needs from the server or client that owns it.
pub(crate) struct ConnectionContext {
    pub dispatcher: Arc<Dispatcher>,
    pub config: ConnectionConfig,
    pub originate_type: SerializeType,
    /// Parent of every connection's `closed` token: cancelling it closes them all.
    pub close_all: CancellationToken,
    pub draining: CancellationToken,
    /// Tracks request tasks, so shutdown can wait for them.
    pub requests: TaskTracker,
    /// Tracks connection tasks, so shutdown can wait for sockets to be released.
    pub connections: TaskTracker,
}

impl Channel {
    /// Starts the reader and writer tasks of a freshly connected stream.
    pub(crate) fn spawn(stream: TcpStream, ctx: &ConnectionContext) -> std::io::Result<Channel> {
        stream.set_nodelay(true)?;
        let remote_addr = stream.peer_addr()?;
        let local_addr = stream.local_addr()?;
        let (read_half, write_half) = stream.into_split();
        let (outbound, outbound_rx) = mpsc::channel(ctx.config.write_queue_max.max(1));
        let channel = Channel {
            inner: Arc::new(Inner {
                id: NEXT_CHANNEL_ID.fetch_add(1, Ordering::Relaxed),
                remote_addr,
                local_addr,
                outbound,
                pending: Mutex::new(HashMap::new()),
                next_opaque: AtomicI32::new(0),
                closed: ctx.close_all.child_token(),
                draining: ctx.draining.clone(),
                originate_type: ctx.config.serialize_type.unwrap_or(ctx.originate_type),
                response_type: ctx.config.serialize_type,
                activity: AtomicU64::new(0),
            }),
        };
        let span = info_span!("conn", id = channel.inner.id, remote = %remote_addr);
        let reader = Reader {
            channel: channel.clone(),
            dispatcher: ctx.dispatcher.clone(),
            decoder: FrameDecoder::new(ctx.config.frame_bytes_max),
            in_flight: Arc::new(Semaphore::new(ctx.config.in_flight_requests_max.max(1))),
            refused: AtomicU64::new(0),
            idle_timeout: ctx.config.idle_timeout,
            requests: ctx.requests.clone(),
        };
        ctx.dispatcher.notify_connect(&channel);
        ctx.connections
            .spawn(reader.run(read_half).instrument(span.clone()));
        let writer_channel = channel.clone();
        let dispatcher = ctx.dispatcher.clone();
        ctx.connections.spawn(
            async move {
                writer_channel.write_loop(write_half, outbound_rx).await;
                writer_channel.finish(&dispatcher);
            }
            .instrument(span),
        );
        Ok(channel)
    }

    /// Unique within the process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_addr
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Closes the connection; pending requests fail with [`RemotingError::ChannelClosed`].
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Resolves when the connection has closed.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await;
    }

    /// Resolves when the connection closes or its owner starts shutting down: a processor
    /// holding a request (a long poll) should answer then.
    pub async fn closing(&self) {
        tokio::select! {
            _ = self.inner.closed.cancelled() => {}
            _ = self.inner.draining.cancelled() => {}
        }
    }

    fn closed_error(&self) -> RemotingError {
        RemotingError::ChannelClosed {
            addr: self.inner.remote_addr.to_string(),
        }
    }

    fn next_opaque(&self) -> i32 {
        self.inner.next_opaque.fetch_add(1, Ordering::Relaxed)
    }

    async fn enqueue(
        &self,
        command: RemotingCommand,
        serialize_type: SerializeType,
    ) -> Result<(), RemotingError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.inner
            .outbound
            .send(Outbound {
                command,
                serialize_type,
            })
            .await
            .map_err(|_| self.closed_error())
    }

    /// Sends a request and waits for its response, for at most `timeout` in all.
    pub async fn invoke(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let opaque = self.next_opaque();
        request.opaque = opaque;
        request.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        let code = request.code;
        let (tx, rx) = oneshot::channel();
        self.inner.pending.lock().insert(opaque, tx);
        let _forget = PendingGuard {
            channel: self,
            opaque,
        };
        let exchange = async {
            self.enqueue(request, self.inner.originate_type).await?;
            rx.await.map_err(|_| self.closed_error())
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(RemotingError::Timeout {
                addr: self.inner.remote_addr.to_string(),
                code,
                opaque,
                timeout,
            }),
        }
    }

    /// Sends a request that expects no response.
    pub async fn invoke_oneway(&self, mut request: RemotingCommand) -> Result<(), RemotingError> {
        request.opaque = self.next_opaque();
        request.flag = (request.flag & !FLAG_RESPONSE) | FLAG_ONEWAY;
        self.enqueue(request, self.inner.originate_type).await
    }

    async fn send_response(&self, response: RemotingCommand, request_type: SerializeType) {
        let serialize_type = self.inner.response_type.unwrap_or(request_type);
        // A closed connection has nobody left to answer.
        let _ = self.enqueue(response, serialize_type).await;
    }

    async fn write_loop(&self, mut socket: OwnedWriteHalf, mut outbound: mpsc::Receiver<Outbound>) {
        let mut staging = BytesMut::with_capacity(READ_CHUNK_BYTES);
        let mut chunks: VecDeque<Bytes> = VecDeque::new();
        // Once the connection is closing, whatever is already queued still gets a bounded
        // chance to reach the peer: responses finished during a graceful shutdown.
        let mut closing = false;
        loop {
            let first = if closing {
                outbound.try_recv().ok()
            } else {
                tokio::select! {
                    biased;
                    next = outbound.recv() => next,
                    _ = self.inner.closed.cancelled() => {
                        closing = true;
                        outbound.try_recv().ok()
                    }
                }
            };
            let Some(first) = first else { break };
            let mut batched_bytes = stage(first, &mut staging, &mut chunks);
            let mut staged_count = 1usize;
            let mut yields = 0;
            while batched_bytes < WRITE_BATCH_BYTES_MAX {
                match outbound.try_recv() {
                    Ok(next) => {
                        batched_bytes += stage(next, &mut staging, &mut chunks);
                        staged_count += 1;
                    }
                    // One write syscall on loopback costs about as much as handling a
                    // whole request: when other commands are being prepared right now,
                    // let them finish once so they share this write.
                    Err(_)
                        if yields < COALESCE_YIELDS_MAX && staged_count < COALESCE_COUNT_TARGET =>
                    {
                        yields += 1;
                        tokio::task::yield_now().await;
                    }
                    Err(_) => break,
                }
            }
            if !staging.is_empty() {
                chunks.push_back(staging.split().freeze());
            }
            let written = if closing {
                final_flush(&mut socket, &mut chunks).await
            } else {
                tokio::select! {
                    result = write_all_chunks(&mut socket, &mut chunks) => result,
                    _ = self.inner.closed.cancelled() => {
                        closing = true;
                        final_flush(&mut socket, &mut chunks).await
                    }
                }
            };
            if let Err(error) = written {
                debug!(%error, "write failed; closing");
                break;
            }
            self.inner.activity.fetch_add(1, Ordering::Relaxed);
        }
        let _ = socket.shutdown().await;
    }

    /// Runs once when the connection ends: fails waiters and tells listeners.
    fn finish(&self, dispatcher: &Dispatcher) {
        self.inner.closed.cancel();
        // Dropping the senders wakes every waiter with "closed".
        self.inner.pending.lock().clear();
        dispatcher.notify_close(self);
    }

    fn complete(&self, response: RemotingCommand) {
        let waiter = self.inner.pending.lock().remove(&response.opaque);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(response);
            }
            None => debug!(
                opaque = response.opaque,
                "response for no waiting request (late or unknown)"
            ),
        }
    }
}

/// Removes a request's waiter when the caller stops waiting (timeout or cancellation).
struct PendingGuard<'a> {
    channel: &'a Channel,
    opaque: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.channel.inner.pending.lock().remove(&self.opaque);
    }
}

/// Encodes one command into the staging buffer (and large bodies as their own chunks);
/// returns the bytes staged.
fn stage(outbound: Outbound, staging: &mut BytesMut, chunks: &mut VecDeque<Bytes>) -> usize {
    let Outbound {
        command,
        serialize_type,
    } = outbound;
    let before = staging.len();
    if let Err(error) = command.encode_head(serialize_type, staging) {
        warn!(%error, code = command.code, "cannot encode command; dropped");
        staging.truncate(before);
        return 0;
    }
    let mut staged = staging.len() - before;
    for part in command.body.parts() {
        staged += part.len();
        if part.len() <= INLINE_BODY_BYTES_MAX {
            staging.extend_from_slice(part);
        } else {
            if !staging.is_empty() {
                chunks.push_back(staging.split().freeze());
            }
            chunks.push_back(part.clone());
        }
    }
    staged
}

/// A peer that stopped reading cannot hold a closing connection open for longer than this.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

async fn final_flush(
    socket: &mut OwnedWriteHalf,
    chunks: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    tokio::time::timeout(FINAL_FLUSH_TIMEOUT, write_all_chunks(socket, chunks))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

// Cancel-safe: `chunks` only advances past bytes a completed write reported.
async fn write_all_chunks(
    socket: &mut OwnedWriteHalf,
    chunks: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    while !chunks.is_empty() {
        let slices: Vec<IoSlice<'_>> = chunks
            .iter()
            .take(IOVECS_MAX)
            .map(|c| IoSlice::new(c))
            .collect();
        let mut written = socket.write_vectored(&slices).await?;
        drop(slices);
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(front) = chunks.front_mut() else {
                break;
            };
            if written >= front.len() {
                written -= front.len();
                chunks.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
    Ok(())
}

struct Reader {
    channel: Channel,
    dispatcher: Arc<Dispatcher>,
    decoder: FrameDecoder,
    in_flight: Arc<Semaphore>,
    /// Requests refused since the last one taken: an overload is logged when it starts and
    /// when it ends, not once per refused request (a oneway flood refuses thousands).
    refused: AtomicU64,
    idle_timeout: Duration,
    requests: TaskTracker,
}

impl Reader {
    async fn run(self, mut socket: OwnedReadHalf) {
        let inner = self.channel.inner.clone();
        let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        let idle = tokio::time::sleep(self.idle_timeout);
        tokio::pin!(idle);
        let mut activity_seen = inner.activity.load(Ordering::Relaxed);
        loop {
            if let Err(error) = self.drain_frames(&mut buf) {
                warn!(%error, "malformed input; closing connection");
                break;
            }
            if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 4 {
                buf.reserve(READ_CHUNK_BYTES);
            }
            tokio::select! {
                read = socket.read_buf(&mut buf) => match read {
                    Ok(0) => {
                        if !buf.is_empty() {
                            warn!(pending_bytes = buf.len(), "connection closed in the middle of a frame");
                        }
                        break;
                    }
                    Ok(_) => {
                        inner.activity.fetch_add(1, Ordering::Relaxed);
                        idle.as_mut().reset(tokio::time::Instant::now() + self.idle_timeout);
                    }
                    Err(error) => {
                        debug!(%error, "read failed; closing");
                        break;
                    }
                },
                _ = &mut idle => {
                    let activity = inner.activity.load(Ordering::Relaxed);
                    if activity == activity_seen {
                        debug!(idle = ?self.idle_timeout, "connection idle; closing");
                        break;
                    }
                    activity_seen = activity;
                    idle.as_mut().reset(tokio::time::Instant::now() + self.idle_timeout);
                }
                _ = inner.closed.cancelled() => return,
                // While draining, stop taking new requests but keep answering the old ones.
                _ = inner.draining.cancelled() => {
                    inner.closed.cancelled().await;
                    return;
                }
            }
        }
        self.channel.close();
    }

    /// Handles every whole frame in `buf`. An error means the stream cannot be trusted.
    fn drain_frames(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        while let Some(frame) = self.decoder.decode(buf)? {
            match RemotingCommand::decode(frame) {
                Ok(command) if command.is_response() => self.channel.complete(command),
                Ok(command) => self.dispatch(command),
                Err(ProtocolError::HeaderRejected {
                    code,
                    opaque,
                    flag,
                    reason,
                }) => {
                    warn!(code, opaque, %reason, "request header rejected");
                    if flag & (FLAG_ONEWAY | FLAG_RESPONSE) == 0 {
                        let mut response = RemotingCommand::response(ResponseCode::SystemError)
                            .with_remark(reason);
                        response.opaque = opaque;
                        self.respond_later(response, SerializeType::Json);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn respond_later(&self, response: RemotingCommand, request_type: SerializeType) {
        let channel = self.channel.clone();
        self.requests
            .spawn(async move { channel.send_response(response, request_type).await });
    }

    fn dispatch(&self, request: RemotingCommand) {
        let oneway = request.is_oneway();
        let Some(processor) = self.dispatcher.processor(request.code).cloned() else {
            debug!(code = request.code, "request code not supported");
            if !oneway {
                self.respond_later(not_supported(&request), request.serialize_type);
            }
            return;
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            if self.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                warn!(
                    code = request.code,
                    "too many requests in flight on this connection; refusing new ones \
                     (SYSTEM_BUSY, oneway dropped) until some finish"
                );
            }
            if !oneway {
                let busy = RemotingCommand::response_to(&request, ResponseCode::SystemBusy)
                    .with_remark("[OVERLOAD]system busy, start flow control for a while");
                self.respond_later(busy, request.serialize_type);
            }
            return;
        };
        if self.refused.load(Ordering::Relaxed) > 0 {
            let refused = self.refused.swap(0, Ordering::Relaxed);
            warn!(refused, "taking requests on this connection again");
        }
        let channel = self.channel.clone();
        let span = tracing::debug_span!("req", code = request.code, opaque = request.opaque);
        self.requests.spawn(
            async move {
                let _permit = permit;
                let (opaque, request_type) = (request.opaque, request.serialize_type);
                let result = processor.process(&channel, request).await;
                if oneway {
                    return;
                }
                let mut response = match result {
                    Ok(Some(response)) => response,
                    Ok(None) => return,
                    Err(error) => RemotingCommand::response(error.code).with_remark(error.remark),
                };
                response.opaque = opaque;
                response.flag |= FLAG_RESPONSE;
                channel.send_response(response, request_type).await;
            }
            .instrument(span),
        );
    }
}
