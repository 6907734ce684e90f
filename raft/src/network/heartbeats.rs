//! [`HeartbeatBatches`]: the heartbeats of every group bound for one peer travel as one message.
//!
//! ```text
//!   group 3 ─ heartbeat ─┐
//!   group 9 ─ heartbeat ─┼─► queue for peer P ── after WINDOW ──► one WireRequest::RaftBatch
//!   group 40 ─ heartbeat ┘                                        ◄── one WireReply::RaftBatch
//! ```
//!
//! Each group's leader sends every follower an AppendEntries with nothing in it once per heartbeat
//! interval (250 ms), whether or not anything happens: with 64 groups on 3 nodes that is about 512
//! round trips a second (64 groups x 2 followers x 4), and the cluster spent 0.20-0.22 cores at
//! rest, about an eighth of what it spent under full load
//! (`docs/benchmarks.md`, session 12). Only pure heartbeats are batched: no entries, and nothing
//! the follower has not already acknowledged on that client (the same vote and log position, no
//! higher commit index). They only keep the follower's election timer and lease from expiring
//! (1-2 s), so waiting [`WINDOW`] for the others costs nothing; anything that carries news goes
//! out at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{RaftRpc, RaftRpcReply, WireReply, WireRequest};
use crate::error::Error;
use crate::transport::QuicTransport;
use crate::types::GroupId;

/// How long the first heartbeat for a peer waits for others to join it.
const WINDOW: Duration = Duration::from_millis(20);

type Answer = oneshot::Sender<Result<RaftRpcReply, Error>>;

struct Queued {
    group: GroupId,
    rpc: RaftRpc,
    answer: Answer,
}

/// The node's heartbeat queues, one per peer address. Cheap to clone (shared).
#[derive(Clone)]
pub struct HeartbeatBatches {
    transport: QuicTransport,
    queues: Arc<Mutex<HashMap<SocketAddr, Vec<Queued>>>>,
    counts: Arc<HeartbeatCounts>,
}

/// Heartbeats sent since start, and the messages that carried them.
#[derive(Debug, Default)]
struct HeartbeatCounts {
    heartbeats: AtomicU64,
    messages: AtomicU64,
}

impl HeartbeatBatches {
    pub fn new(transport: QuicTransport) -> Self {
        Self {
            transport,
            queues: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// `(heartbeats, messages)` sent since start.
    pub fn sent(&self) -> (u64, u64) {
        (
            self.counts.heartbeats.load(Ordering::Relaxed),
            self.counts.messages.load(Ordering::Relaxed),
        )
    }

    /// Send `rpc` of `group` to `addr` with the other heartbeats queued for it within [`WINDOW`].
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        group: GroupId,
        rpc: RaftRpc,
        timeout: Duration,
    ) -> Result<RaftRpcReply, Error> {
        let (answer, reply) = oneshot::channel();
        let first = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let queue = queues.entry(addr).or_default();
            queue.push(Queued { group, rpc, answer });
            queue.len() == 1
        };
        if first {
            let batches = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(WINDOW).await;
                batches.flush(addr, timeout).await;
            });
        }
        reply
            .await
            .map_err(|_| Error::Transport("heartbeat batch dropped".into()))?
    }

    /// Send everything queued for `addr` as one request and hand each group its reply.
    async fn flush(&self, addr: SocketAddr, timeout: Duration) {
        let queued = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            queues.remove(&addr).unwrap_or_default()
        };
        if queued.is_empty() {
            return;
        }
        metrics::histogram!(crate::metrics::HEARTBEAT_BATCH).record(queued.len() as f64);
        self.counts
            .heartbeats
            .fetch_add(queued.len() as u64, Ordering::Relaxed);
        self.counts.messages.fetch_add(1, Ordering::Relaxed);
        let (rpcs, answers): (Vec<_>, Vec<_>) = queued
            .into_iter()
            .map(|q| ((q.group, q.rpc), (q.group, q.answer)))
            .unzip();
        let request = WireRequest::RaftBatch(rpcs);
        let replies = match super::call(&self.transport, addr, &request, timeout).await {
            Ok(WireReply::RaftBatch(replies)) if replies.len() == answers.len() => Ok(replies),
            Ok(WireReply::Error(e)) => Err(e),
            Ok(_) => Err("unexpected reply to a heartbeat batch".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match replies {
            Ok(replies) => {
                for ((group, answer), reply) in answers.into_iter().zip(replies) {
                    let _ = answer.send(reply.into_raft(group));
                }
            }
            Err(message) => {
                for (_, answer) in answers {
                    let _ = answer.send(Err(Error::Transport(message.clone())));
                }
            }
        }
    }
}
