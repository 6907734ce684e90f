//! QUIC ceiling: two [`QuicTransport`] endpoints on 127.0.0.1, mutually authenticated with
//! certificates from one [`ClusterCa`] exactly as nodes are, one serving an echo [`RpcHandler`].
//!
//! * **sequential**: one caller, 100-byte request, echoed: the floor of a Raft round trip (append
//!   + ack) between two nodes on this machine, minus all Raft work.
//! * **concurrent**: `concurrency` callers on the one shared connection, as Raft traffic of many
//!   groups is: how many RPCs per second the transport (TLS, framing, a stream per call) carries.
//! * **throughput**: 1 MiB requests echoed by a few callers: the bulk rate snapshots and large
//!   batches can reach; reported as payload MB/s in each direction.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use herald_raft::transport::{ClusterCa, QuicTransport, RpcHandler};
use herald_raft::Error as TransportError;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Per-call timeout; a loopback echo that takes this long means the run is broken.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What to measure.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// Length of each of the three measurements.
    pub duration: Duration,
    /// Callers in the concurrent measurement.
    pub concurrency: usize,
    /// Request size of the round-trip measurements.
    pub small_payload: usize,
    /// Request size of the throughput measurement.
    pub large_payload: usize,
    /// Callers in the throughput measurement.
    pub large_callers: usize,
}

impl QuicConfig {
    pub fn new(duration: Duration, concurrency: usize) -> Self {
        Self {
            duration,
            concurrency,
            small_payload: 100,
            large_payload: 1 << 20,
            large_callers: 4,
        }
    }
}

/// Calls completed by `callers` concurrent callers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundTrips {
    pub callers: usize,
    pub payload_bytes: usize,
    pub calls: u64,
    pub seconds: f64,
    pub calls_per_s: f64,
    /// `callers / calls_per_s`: the mean round trip, microseconds.
    pub mean_rtt_us: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuicCeiling {
    pub sequential: RoundTrips,
    pub concurrent: RoundTrips,
    pub throughput: RoundTrips,
    /// Request payload megabytes (10^6 bytes) per second; the echo carries as much back.
    pub throughput_mb_per_s: f64,
}

/// Answers every request with its own bytes.
struct Echo;

impl RpcHandler for Echo {
    fn handle(&self, request: Bytes) -> BoxFuture<'static, Bytes> {
        Box::pin(async move { request })
    }
}

/// Binds the two endpoints, runs the three measurements, shuts both down.
pub async fn measure(config: &QuicConfig) -> Result<QuicCeiling> {
    if config.concurrency == 0 || config.large_callers == 0 {
        return Err(Error::Config("QUIC callers must be > 0".into()));
    }
    let ca = ClusterCa::generate()?;
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let server = QuicTransport::bind(loopback, &ca.issue(1)?, Arc::new(Echo)).await?;
    let client = QuicTransport::bind(loopback, &ca.issue(2)?, Arc::new(Echo)).await?;
    let result = run_all(config, &client, server.local_addr()).await;
    client.shutdown().await;
    server.shutdown().await;
    result
}

async fn run_all(
    config: &QuicConfig,
    client: &QuicTransport,
    peer: SocketAddr,
) -> Result<QuicCeiling> {
    let small = Bytes::from(vec![0x42; config.small_payload]);
    let large = Bytes::from(vec![0x42; config.large_payload]);
    // Dial and handshake outside the measured windows.
    let echoed = client.call(peer, small.clone(), CALL_TIMEOUT).await?;
    if echoed != small {
        return Err(
            TransportError::Io(std::io::Error::other("echo returned different bytes")).into(),
        );
    }
    let sequential = hammer(client, peer, &small, 1, config.duration).await?;
    let concurrent = hammer(client, peer, &small, config.concurrency, config.duration).await?;
    let throughput = hammer(client, peer, &large, config.large_callers, config.duration).await?;
    let throughput_mb_per_s = throughput.calls_per_s * config.large_payload as f64 / 1e6;
    Ok(QuicCeiling {
        sequential,
        concurrent,
        throughput,
        throughput_mb_per_s,
    })
}

/// `callers` tasks call back to back until `duration` is over; calls started before the deadline
/// are counted when they finish.
async fn hammer(
    client: &QuicTransport,
    peer: SocketAddr,
    payload: &Bytes,
    callers: usize,
    duration: Duration,
) -> Result<RoundTrips> {
    let calls = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (client, payload, calls) = (client.clone(), payload.clone(), calls.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                client.call(peer, payload.clone(), CALL_TIMEOUT).await?;
                calls.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), TransportError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| Error::io("QUIC caller task", std::io::Error::other(e)))??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let calls = calls.load(Ordering::Relaxed);
    let calls_per_s = calls as f64 / seconds;
    Ok(RoundTrips {
        callers,
        payload_bytes: payload.len(),
        calls,
        seconds,
        calls_per_s,
        mean_rtt_us: if calls == 0 {
            0.0
        } else {
            callers as f64 * 1e6 / calls_per_s
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_run_completes_calls_in_every_mode() {
        let config = QuicConfig {
            duration: Duration::from_millis(300),
            concurrency: 4,
            small_payload: 100,
            large_payload: 64 * 1024,
            large_callers: 2,
        };
        let c = measure(&config).await.unwrap();
        assert!(c.sequential.calls > 0);
        assert!(c.concurrent.calls > 0);
        assert!(c.throughput.calls > 0);
        assert_eq!(c.concurrent.callers, 4);
        assert_eq!(c.throughput.payload_bytes, 64 * 1024);
    }
}
