//! Inter-node transport: request/response RPC over QUIC with mutual TLS.
//!
//! Payloads are opaque bytes; callers encode their own RPC enums (Raft append/vote/snapshot,
//! forwarded proposals, fan-out chunks, ...). This module owns connections, streams, framing and
//! authentication, and must not know about Raft or any message type.
//!
//! # Picture
//!
//! ```text
//!   node A: QuicTransport (one UDP endpoint: server + client)        node B: QuicTransport
//!   ┌──────────────────────────────┐                                 ┌──────────────────────────┐
//!   │ peers: addr -> Connection    │ ── one QUIC connection A→B ───▶ │ accept loop              │
//!   │   (dialled lazily, shared by │    ┌ bidi stream: call #1 ┐     │  └ task per connection   │
//!   │    every call to that peer)  │    ├ bidi stream: call #2 ┤     │     └ task per stream:   │
//!   │ call() = open stream,        │    └ ...  (≤1024 at once) ┘     │        read request,     │
//!   │   write request, finish,     │                                 │        RpcHandler,       │
//!   │   read response              │ ◀── B's own connection B→A ──── │        write response    │
//!   └──────────────────────────────┘                                 └──────────────────────────┘
//! ```
//!
//! * **Connections.** Each node binds one quinn endpoint that both accepts and dials. A caller keeps
//!   at most one outgoing connection per peer address; it is dialled on first use, and re-dialled
//!   when found closed (peer shut down, idle timeout, TLS failure). Concurrent callers that find no
//!   live connection coalesce on one dial. Two nodes calling each other use two connections, one
//!   per direction; that keeps ownership simple and costs one extra handshake per pair.
//! * **Liveness.** Keep-alive pings every ~1 s and a ~4 s idle timeout (see [`TransportConfig`])
//!   make a silently dead peer's connection close on its own; a peer that shuts down cleanly closes
//!   its connections at once. A peer that crashed and restarted on the same address is noticed when
//!   the old connection idles out; calls in between time out.
//! * **Streams.** One call is one bidirectional stream: the request frame, FIN, the response frame.
//!   The server spawns a task per stream, so a slow handler (snapshot install) never blocks votes
//!   or heartbeats on the same connection. Streams are cheap in QUIC; no multiplexing header needed.
//! * **Framing.** A frame is a `u32` big-endian length followed by that many bytes; see
//!   [`frame`](self::frame). Frames above [`TransportConfig::max_frame_len`] (default
//!   [`DEFAULT_MAX_FRAME_LEN`], 64 MiB, enough for a snapshot chunk) are refused: locally with
//!   [`Error::FrameTooLarge`], remotely by resetting the stream with
//!   [`STREAM_ERR_BAD_REQUEST`] / [`STREAM_ERR_RESPONSE_TOO_LARGE`].
//! * **Authentication.** TLS 1.3 with the *ring* provider, ALPN [`ALPN`]. The server requires a
//!   client certificate chaining to the cluster CA (the only root); the client verifies the server
//!   against the same CA under the fixed name [`SERVER_NAME`]. Certificates come from
//!   [`ClusterCa::issue`]. A peer without such a certificate fails the handshake and never gets a
//!   stream: connections are handed to the stream loop only after the handshake, including client
//!   verification, has completed, and 0-RTT is disabled.
//! * **Errors and metrics.** the crate's [`Error`](crate::Error) with `is_retryable()`; metric names in
//!   [`metrics`](self::metrics).

mod ca;
mod config;
mod frame;
mod identity;
pub mod metrics;
mod quic;

use bytes::Bytes;
use futures::future::BoxFuture;

pub use ca::{ClusterCa, NodeKey};
pub use config::{TransportConfig, DEFAULT_MAX_FRAME_LEN};
pub use identity::NodeIdentity;
pub use quic::{QuicTransport, STREAM_ERR_BAD_REQUEST, STREAM_ERR_RESPONSE_TOO_LARGE};

/// DNS name in every node certificate's SAN, and the server name every node dials. Peers are
/// addressed by socket address; the certificate proves cluster membership, not a hostname.
pub const SERVER_NAME: &str = "herald-node";

/// ALPN protocol id; bump when the framing changes incompatibly.
pub const ALPN: &[u8] = b"herald-rpc/1";

/// Serves incoming requests. Called once per request, concurrently; the response is sent back on
/// the request's stream. Errors are the caller's to encode in the response bytes.
pub trait RpcHandler: Send + Sync + 'static {
    fn handle(&self, request: Bytes) -> BoxFuture<'static, Bytes>;
}
