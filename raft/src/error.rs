//! herald-raft's one error enum: storage, Raft, and the QUIC transport's failures.
//!
//! Callers mostly need one decision: try again later, or give up. [`Error::is_retryable`] answers
//! it; [`Error::code`] is a stable string for logs and metric labels.

use std::net::SocketAddr;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate or key could not be generated or parsed, or a TLS config could not be built.
    #[error("certificate error: {0}")]
    Certificate(String),

    /// The transport configuration is invalid.
    #[error("invalid transport config: {0}")]
    InvalidConfig(String),

    /// The TLS handshake was refused by either side: the peer's certificate does not chain to the
    /// cluster CA, it presented none, or ALPN did not match.
    #[error("TLS handshake with {peer} failed: {reason}")]
    Tls { peer: SocketAddr, reason: String },

    /// No connection could be established (unreachable address, handshake timed out, ...).
    #[error("cannot connect to {peer}: {reason}")]
    Connect { peer: SocketAddr, reason: String },

    /// The call did not complete within its deadline.
    #[error("call to {peer} timed out after {after:?}")]
    Timeout { peer: SocketAddr, after: Duration },

    /// The connection or stream died mid-call (peer restarted, idle timeout, truncated frame).
    #[error("connection to {peer} closed: {reason}")]
    Closed { peer: SocketAddr, reason: String },

    /// The peer reset the stream with an application code (see `STREAM_*` codes in the module).
    #[error("peer {peer} rejected the request (stream error code {code})")]
    Reset { peer: SocketAddr, code: u64 },

    /// A frame exceeded the configured maximum size.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge { len: u64, max: u32 },

    /// This node (its transport or Raft groups) is shutting down.
    #[error("shutting down")]
    Shutdown,

    /// RocksDB refused a read or write.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),

    /// A stored or received value does not decode (or a value does not encode).
    #[error("encoding: {0}")]
    Codec(String),

    /// A peer answered a Raft or application request with an error, or with an unexpected reply.
    #[error("transport: {0}")]
    Transport(String),

    /// The group is not hosted on the addressed node (yet, or any more).
    #[error("group {0} not hosted here")]
    GroupNotFound(crate::types::GroupId),

    /// openraft refused or failed an operation.
    #[error("raft: {0}")]
    Raft(String),

    /// A file or socket error (a snapshot file, binding the UDP socket, an unclassified stream error).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the same call may succeed if tried again later (possibly after the peer comes back).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Timeout { .. }
                | Self::Closed { .. }
                | Self::Transport(_)
                | Self::GroupNotFound(_)
                | Self::Raft(_)
        )
    }

    /// A stable, machine-readable name for the failure, used as a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Certificate(_) => "certificate",
            Self::InvalidConfig(_) => "invalid_config",
            Self::Tls { .. } => "tls",
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::Closed { .. } => "closed",
            Self::Reset { .. } => "reset",
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::Shutdown => "shutdown",
            Self::Rocks(_) => "rocksdb",
            Self::Codec(_) => "codec",
            Self::Transport(_) => "transport",
            Self::GroupNotFound(_) => "group_not_found",
            Self::Raft(_) => "raft",
            Self::Io(_) => "io",
        }
    }
}

impl From<rcgen::Error> for Error {
    fn from(e: rcgen::Error) -> Self {
        Self::Certificate(e.to_string())
    }
}

impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        Self::Certificate(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(Error::Timeout {
            peer,
            after: Duration::from_secs(1)
        }
        .is_retryable());
        assert!(Error::Closed {
            peer,
            reason: "x".into()
        }
        .is_retryable());
        assert!(!Error::Tls {
            peer,
            reason: "x".into()
        }
        .is_retryable());
        assert!(!Error::FrameTooLarge { len: 10, max: 1 }.is_retryable());
        assert!(!Error::Shutdown.is_retryable());
    }
}
