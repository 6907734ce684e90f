//! The transport's one error type.
//!
//! Callers (the Raft network adapter, proposal forwarding, fan-out) mostly need a single decision:
//! try again later, or give up. [`TransportError::is_retryable`] answers it; [`TransportError::code`]
//! is a stable string for logs and metric labels.

use std::net::SocketAddr;
use std::time::Duration;

/// `Result` with [`TransportError`] as the default error.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// Everything that can go wrong while setting up the transport or performing a call.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
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

    /// The transport was shut down locally.
    #[error("transport is shut down")]
    Shutdown,

    /// A socket-level error (binding the UDP socket, or an unclassified stream error).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl TransportError {
    /// Whether the same call may succeed if tried again later (possibly after the peer comes back).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Timeout { .. } | Self::Closed { .. }
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
            Self::Io(_) => "io",
        }
    }
}

impl From<rcgen::Error> for TransportError {
    fn from(e: rcgen::Error) -> Self {
        Self::Certificate(e.to_string())
    }
}

impl From<rustls::Error> for TransportError {
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
        assert!(TransportError::Timeout {
            peer,
            after: Duration::from_secs(1)
        }
        .is_retryable());
        assert!(TransportError::Closed {
            peer,
            reason: "x".into()
        }
        .is_retryable());
        assert!(!TransportError::Tls {
            peer,
            reason: "x".into()
        }
        .is_retryable());
        assert!(!TransportError::FrameTooLarge { len: 10, max: 1 }.is_retryable());
        assert!(!TransportError::Shutdown.is_retryable());
    }
}
