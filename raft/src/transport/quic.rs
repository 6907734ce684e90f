//! [`QuicTransport`]: the quinn endpoint, the per-peer connection cache and the accept loop.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, ConnectionError, Endpoint, Incoming, RecvStream, SendStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::config::TransportConfig;
use super::identity::NodeIdentity;
use super::metrics as m;
use super::{frame, RpcHandler, SERVER_NAME};
use crate::error::{Error, Result};

/// Stream reset code: the request frame was malformed, truncated or above the size limit.
pub const STREAM_ERR_BAD_REQUEST: u32 = 1;
/// Stream reset code: the handler's response was above the size limit.
pub const STREAM_ERR_RESPONSE_TOO_LARGE: u32 = 2;

/// Connection close code sent to peers when the transport shuts down.
const CLOSE_SHUTDOWN: u32 = 0;

/// Longest `shutdown` waits for closed connections to drain once its tasks are done.
const CLOSE_FLUSH: Duration = Duration::from_millis(200);

/// The cached connection to one peer. The async mutex is what coalesces concurrent dials: the
/// first caller to find it empty (or closed) dials while holding it; the others wait, then reuse.
type PeerSlot = tokio::sync::Mutex<Option<Connection>>;

/// A node's QUIC endpoint: serves requests with an [`RpcHandler`] and performs calls to peers.
/// Cheap to clone; all clones share the endpoint and the connections.
#[derive(Clone)]
pub struct QuicTransport {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    local_addr: SocketAddr,
    max_frame_len: u32,
    shutdown_grace: Duration,
    /// Outgoing connections by peer address. Entries are never removed while running: the set of
    /// peers is the cluster membership, which is small.
    peers: Mutex<HashMap<SocketAddr, Arc<PeerSlot>>>,
    /// Peers whose last call failed to reach them: a change is logged once, not per call.
    unreachable: Mutex<HashSet<SocketAddr>>,
    shutdown: CancellationToken,
    /// Accept loop, per-connection and per-stream tasks; `shutdown` waits for them.
    tasks: TaskTracker,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the UDP socket go even if `shutdown` was never called.
        self.shutdown.cancel();
        self.endpoint.close(CLOSE_SHUTDOWN.into(), b"dropped");
    }
}

impl QuicTransport {
    /// Binds a UDP endpoint on `addr` (port 0 picks one) with the default [`TransportConfig`] and
    /// starts serving requests with `handler`. Must be called inside a tokio runtime.
    pub async fn bind(
        addr: SocketAddr,
        identity: &NodeIdentity,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<Self> {
        Self::bind_with_config(addr, identity, handler, TransportConfig::default()).await
    }

    /// [`bind`](Self::bind) with explicit tuning.
    pub async fn bind_with_config(
        addr: SocketAddr,
        identity: &NodeIdentity,
        handler: Arc<dyn RpcHandler>,
        config: TransportConfig,
    ) -> Result<Self> {
        config.validate()?;
        let (server_tls, client_tls) = identity.tls_configs()?;
        let transport = config.quinn_transport()?;

        let server_crypto = QuicServerConfig::try_from(server_tls)
            .map_err(|e| Error::Certificate(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server_config.transport_config(transport.clone());

        let client_crypto = QuicClientConfig::try_from(client_tls)
            .map_err(|e| Error::Certificate(e.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
        client_config.transport_config(transport);

        let mut endpoint = Endpoint::server(server_config, addr)?;
        endpoint.set_default_client_config(client_config);
        let local_addr = endpoint.local_addr()?;

        let inner = Arc::new(Inner {
            endpoint: endpoint.clone(),
            local_addr,
            max_frame_len: config.max_frame_len,
            shutdown_grace: config.shutdown_grace(),
            peers: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(HashSet::new()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let server = Server {
            handler,
            max_frame_len: config.max_frame_len,
            shutdown: inner.shutdown.clone(),
            tasks: inner.tasks.clone(),
        };
        inner.tasks.spawn(server.accept_loop(endpoint));
        debug!(%local_addr, "QUIC transport bound");
        Ok(Self { inner })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Connections currently open on this endpoint, incoming and outgoing.
    pub fn open_connections(&self) -> usize {
        self.inner.endpoint.open_connections()
    }

    /// Sends `request` to `peer` and returns its response, dialling or re-dialling the peer's
    /// connection if needed. `timeout` bounds everything, dial included.
    pub async fn call(&self, peer: SocketAddr, request: Bytes, timeout: Duration) -> Result<Bytes> {
        metrics::counter!(m::CALLS_TOTAL).increment(1);
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, self.call_inner(peer, request)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                peer,
                after: timeout,
            }),
        };
        metrics::histogram!(m::CALL_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            metrics::counter!(m::CALL_FAILURES_TOTAL, "error" => e.code()).increment(1);
        }
        self.note_reachability(peer, &result);
        result
    }

    /// Peers whose most recent call could not reach them (connect, timeout, closed connection).
    pub fn unreachable_peers(&self) -> Vec<SocketAddr> {
        let set = self
            .inner
            .unreachable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut peers: Vec<SocketAddr> = set.iter().copied().collect();
        peers.sort();
        peers
    }

    /// Log a peer going unreachable or coming back once per change: while a node is down, every
    /// group retries it several times a second, and a line per failed call buried the log.
    fn note_reachability(&self, peer: SocketAddr, result: &Result<Bytes>) {
        let mut set = self
            .inner
            .unreachable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => {
                if set.remove(&peer) {
                    info!(%peer, "peer reachable again");
                }
            }
            Err(e @ (Error::Connect { .. } | Error::Timeout { .. } | Error::Closed { .. })) => {
                if set.insert(peer) {
                    warn!(%peer, error = %e, "peer unreachable; further failed calls are counted in herald_transport_call_failures_total");
                }
            }
            // The peer answered (it refused the request), or this node is shutting down.
            Err(_) => {}
        }
    }

    /// Stops accepting, closes every connection (peers see a clean close and re-dial later), and
    /// waits up to the configured grace period for tasks to finish. Idempotent. Calls made
    /// afterwards fail with [`Error::Shutdown`].
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.shutdown.cancel();
        inner.tasks.close();
        inner
            .endpoint
            .close(CLOSE_SHUTDOWN.into(), b"transport shutdown");
        if tokio::time::timeout(inner.shutdown_grace, inner.tasks.wait())
            .await
            .is_err()
        {
            warn!(local_addr = %inner.local_addr, "transport tasks still running after shutdown grace");
        }
        // CONNECTION_CLOSE frames go out immediately; full draining (3 PTOs, over a second for a
        // connection that never finished its handshake) only re-answers lost close packets, so it
        // gets a short, bounded wait. Peers that miss the close notice via their idle timeout.
        let flush = inner.shutdown_grace.min(CLOSE_FLUSH);
        let _ = tokio::time::timeout(flush, inner.endpoint.wait_idle()).await;
        inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    async fn call_inner(&self, peer: SocketAddr, request: Bytes) -> Result<Bytes> {
        let max = self.inner.max_frame_len;
        // Refuse before touching the network: the peer would reset the stream anyway.
        frame::checked_len(request.len(), max)?;
        let conn = self.connection(peer).await?;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| connection_error(peer, &e))?;
        frame::write_frame(&mut send, &request, max)
            .await
            .map_err(|e| stream_error(peer, e))?;
        // Only fails if the stream is already gone, which the read below reports better.
        let _ = send.finish();
        frame::read_frame(&mut recv, max)
            .await
            .map_err(|e| stream_error(peer, e))
    }

    /// The live connection to `peer`, dialling one if there is none or the cached one has closed.
    async fn connection(&self, peer: SocketAddr) -> Result<Connection> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Shutdown);
        }
        let slot = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(peer)
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if let Some(conn) = cached.as_ref() {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
            debug!(%peer, reason = ?conn.close_reason(), "connection closed; re-dialling");
        }
        *cached = None;
        let conn = self.dial(peer).await?;
        *cached = Some(conn.clone());
        Ok(conn)
    }

    async fn dial(&self, peer: SocketAddr) -> Result<Connection> {
        let connecting = self
            .inner
            .endpoint
            .connect(peer, SERVER_NAME)
            .map_err(|e| match e {
                quinn::ConnectError::EndpointStopping => Error::Shutdown,
                other => Error::Connect {
                    peer,
                    reason: other.to_string(),
                },
            })?;
        let conn = connecting
            .await
            .map_err(|e| match connection_error(peer, &e) {
                err @ (Error::Tls { .. } | Error::Shutdown) => err,
                _ => Error::Connect {
                    peer,
                    reason: e.to_string(),
                },
            })?;
        metrics::counter!(m::DIALS_TOTAL).increment(1);
        debug!(%peer, "connected");
        Ok(conn)
    }
}

/// The serving half: everything the accept loop and its tasks need, without a handle on
/// [`Inner`] (so dropping the last `QuicTransport` still releases the endpoint).
#[derive(Clone)]
struct Server {
    handler: Arc<dyn RpcHandler>,
    max_frame_len: u32,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Server {
    async fn accept_loop(self, endpoint: Endpoint) {
        loop {
            let incoming = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                incoming = endpoint.accept() => match incoming {
                    Some(incoming) => incoming,
                    None => break,
                },
            };
            self.tasks.spawn(self.clone().serve_connection(incoming));
        }
    }

    async fn serve_connection(self, incoming: Incoming) {
        let remote = incoming.remote_address();
        // Resolves only once the handshake, client-certificate verification included, is done.
        let handshake = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            handshake = incoming => handshake,
        };
        let conn = match handshake {
            Ok(conn) => conn,
            Err(e) => {
                metrics::counter!(m::INBOUND_REJECTED_TOTAL).increment(1);
                debug!(%remote, error = %e, "inbound handshake failed");
                return;
            }
        };
        metrics::counter!(m::INBOUND_CONNECTIONS_TOTAL).increment(1);
        debug!(%remote, "inbound connection");
        loop {
            let stream = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                stream = conn.accept_bi() => stream,
            };
            match stream {
                Ok((send, recv)) => {
                    let server = self.clone();
                    self.tasks.spawn(async move {
                        tokio::select! {
                            _ = server.shutdown.cancelled() => {}
                            _ = server.serve_stream(send, recv) => {}
                        }
                    });
                }
                Err(e) => {
                    debug!(%remote, error = %e, "inbound connection ended");
                    break;
                }
            }
        }
    }

    async fn serve_stream(&self, mut send: SendStream, mut recv: RecvStream) {
        let max = self.max_frame_len;
        let request = match frame::read_frame(&mut recv, max).await {
            Ok(request) => request,
            Err(e) => {
                metrics::counter!(m::BAD_FRAMES_TOTAL).increment(1);
                debug!(error = %e, "dropping inbound stream with a bad request frame");
                let _ = recv.stop(STREAM_ERR_BAD_REQUEST.into());
                let _ = send.reset(STREAM_ERR_BAD_REQUEST.into());
                return;
            }
        };
        metrics::counter!(m::REQUESTS_SERVED_TOTAL).increment(1);
        let response = self.handler.handle(request).await;
        if frame::checked_len(response.len(), max).is_err() {
            warn!(
                len = response.len(),
                max, "handler response exceeds the frame limit; resetting stream"
            );
            let _ = send.reset(STREAM_ERR_RESPONSE_TOO_LARGE.into());
            return;
        }
        match frame::write_frame(&mut send, &response, max).await {
            Ok(()) => {
                let _ = send.finish();
            }
            Err(e) => debug!(error = %e, "could not send response"),
        }
    }
}

/// Whether a QUIC transport error code carries a TLS alert (RFC 9001 §4.8: 0x100..=0x1ff).
fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

fn connection_error(peer: SocketAddr, e: &ConnectionError) -> Error {
    match e {
        ConnectionError::ConnectionClosed(close) if is_crypto(close.error_code) => Error::Tls {
            peer,
            reason: e.to_string(),
        },
        ConnectionError::TransportError(t) if is_crypto(t.code) => Error::Tls {
            peer,
            reason: e.to_string(),
        },
        ConnectionError::LocallyClosed => Error::Shutdown,
        _ => Error::Closed {
            peer,
            reason: e.to_string(),
        },
    }
}

/// Maps a framing error on a quinn stream back to what happened on the connection.
fn stream_error(peer: SocketAddr, e: Error) -> Error {
    let Error::Io(io) = e else {
        return e;
    };
    if let Some(source) = io.get_ref() {
        if let Some(read) = source.downcast_ref::<quinn::ReadError>() {
            match read {
                quinn::ReadError::Reset(code) => {
                    return Error::Reset {
                        peer,
                        code: code.into_inner(),
                    }
                }
                quinn::ReadError::ConnectionLost(lost) => return connection_error(peer, lost),
                _ => {}
            }
        }
        if let Some(write) = source.downcast_ref::<quinn::WriteError>() {
            match write {
                quinn::WriteError::Stopped(code) => {
                    return Error::Reset {
                        peer,
                        code: code.into_inner(),
                    }
                }
                quinn::WriteError::ConnectionLost(lost) => return connection_error(peer, lost),
                _ => {}
            }
        }
    }
    if io.kind() == io::ErrorKind::UnexpectedEof {
        return Error::Closed {
            peer,
            reason: io.to_string(),
        };
    }
    Error::Io(io)
}
