//! Tuning knobs of the QUIC transport.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default maximum frame size: 64 MiB, so that a snapshot chunk fits in one request.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 64 * 1024 * 1024;

/// Transport configuration. `Default` is what a production node uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Largest request or response payload in bytes (the u32 length prefix excluded). Bigger
    /// requests fail locally with `FrameTooLarge`; a peer announcing a bigger frame gets its stream
    /// reset, so one bad frame never makes us allocate without bound.
    pub max_frame_len: u32,
    /// Concurrent request streams one peer may have open on a connection. Raft traffic of every
    /// group to that peer shares the connection, so this is the in-flight RPC limit per peer.
    pub max_concurrent_streams: u32,
    /// Interval of QUIC keep-alive pings; keeps NAT/conntrack state warm and lets the idle timer
    /// detect a dead peer even when no call is in flight.
    pub keep_alive_ms: u64,
    /// A connection with no packet from the peer for this long is considered dead; the next call
    /// dials a fresh one. Also bounds how long a handshake to a silent address can take. Kept
    /// short (4 s, four keep-alives) because a peer that crashed and restarted on the same address
    /// cannot reset the old connection: until this fires, calls to it time out.
    pub idle_timeout_ms: u64,
    /// How long `shutdown` waits for in-flight streams and connection close to drain.
    pub shutdown_grace_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_concurrent_streams: 1024,
            keep_alive_ms: 1_000,
            idle_timeout_ms: 4_000,
            shutdown_grace_ms: 2_000,
        }
    }
}

impl TransportConfig {
    /// Checks the invariants `bind` relies on.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: &str| Err(Error::InvalidConfig(msg.to_string()));
        if self.max_frame_len == 0 {
            return invalid("max_frame_len must be > 0");
        }
        if self.max_concurrent_streams == 0 {
            return invalid("max_concurrent_streams must be > 0");
        }
        if self.idle_timeout_ms == 0 {
            return invalid("idle_timeout_ms must be > 0");
        }
        if self.keep_alive_ms == 0 || self.keep_alive_ms >= self.idle_timeout_ms {
            return invalid("keep_alive_ms must be > 0 and < idle_timeout_ms");
        }
        if quinn::IdleTimeout::try_from(self.idle_timeout()).is_err() {
            return invalid("idle_timeout_ms is too large");
        }
        Ok(())
    }

    pub(crate) fn keep_alive(&self) -> Duration {
        Duration::from_millis(self.keep_alive_ms)
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub(crate) fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The quinn transport parameters shared by the server and client side of the endpoint.
    pub(crate) fn quinn_transport(&self) -> Result<Arc<quinn::TransportConfig>> {
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout())
            .map_err(|_| Error::InvalidConfig("idle_timeout_ms is too large".into()))?;
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(self.max_concurrent_streams.into())
            // Every exchange is a bidirectional stream; refuse unidirectional ones outright.
            .max_concurrent_uni_streams(0u32.into())
            .keep_alive_interval(Some(self.keep_alive()))
            .max_idle_timeout(Some(idle));
        Ok(Arc::new(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        TransportConfig::default().validate().unwrap();
    }

    #[test]
    fn rejects_keep_alive_not_below_idle_timeout() {
        let config = TransportConfig {
            keep_alive_ms: 10_000,
            ..TransportConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn rejects_zero_frame_len() {
        let config = TransportConfig {
            max_frame_len: 0,
            ..TransportConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
