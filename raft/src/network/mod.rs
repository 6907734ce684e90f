//! Raft RPCs over the node's QUIC transport, for every group.
//!
//! One QUIC connection per peer carries the RPCs of all groups: each request names its group, and the
//! receiving node's [`crate::RaftNode`] routes it to that group's `Raft`. Heartbeats of all groups
//! bound for one peer travel together as [`WireRequest::RaftBatch`] ([`heartbeats`]). Application
//! requests (forwarded writes and reads) share the same connections as [`WireRequest::App`].

mod commit_hold;
mod heartbeats;

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::storage::{decode, encode};
use crate::transport::QuicTransport;
use crate::types::{GroupId, NodeId, TypeConfig};
use commit_hold::{CommitHold, Decision, HeldSlot};
pub use heartbeats::HeartbeatBatches;

#[derive(Serialize, Deserialize)]
pub(crate) enum RaftRpc {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

#[derive(Serialize, Deserialize)]
pub(crate) enum RaftRpcReply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
}

/// Everything that travels between nodes.
#[derive(Serialize, Deserialize)]
pub(crate) enum WireRequest {
    Raft {
        group: GroupId,
        rpc: RaftRpc,
    },
    /// Several groups' requests at once (heartbeats, `heartbeats`): answered in order.
    RaftBatch(Vec<(GroupId, RaftRpc)>),
    App(Vec<u8>),
}

#[derive(Serialize, Deserialize)]
pub(crate) enum WireReply {
    Raft(Box<RaftRpcReply>),
    /// One reply per request of a `RaftBatch`, in order.
    RaftBatch(Vec<WireReply>),
    App(Vec<u8>),
    GroupNotFound,
    Error(String),
}

impl WireReply {
    /// The Raft reply `group`'s request got, or why there is none.
    fn into_raft(self, group: GroupId) -> Result<RaftRpcReply, Error> {
        match self {
            WireReply::Raft(r) => Ok(*r),
            WireReply::GroupNotFound => Err(Error::GroupNotFound(group)),
            WireReply::Error(e) => Err(Error::Transport(e)),
            WireReply::App(_) | WireReply::RaftBatch(_) => {
                Err(Error::Transport("unexpected reply".into()))
            }
        }
    }
}

/// One request to the node at `addr` and its reply.
async fn call(
    transport: &QuicTransport,
    addr: std::net::SocketAddr,
    request: &WireRequest,
    timeout: Duration,
) -> Result<WireReply, Error> {
    let reply = transport
        .call(addr, encode(request)?.into(), timeout)
        .await
        .map_err(|e| Error::Transport(e.to_string()))?;
    decode(&reply)
}

/// Builds per-target clients for one group.
pub struct GroupNetworkFactory {
    pub(crate) group: GroupId,
    pub(crate) transport: QuicTransport,
    /// How long a commit-only AppendEntries may wait for a later request to carry it
    /// ([`commit_hold`]); zero sends every one.
    pub(crate) commit_hold: Duration,
    /// The node's heartbeat queues, shared by every group ([`heartbeats`]).
    pub(crate) heartbeats: HeartbeatBatches,
}

/// One group's client for one follower: the address and a commit notice possibly held back.
pub struct GroupNetwork {
    peer: Peer,
    hold: CommitHold,
}

/// Where a group's RPCs to one node go.
#[derive(Clone)]
struct Peer {
    group: GroupId,
    target: NodeId,
    addr: Option<std::net::SocketAddr>,
    transport: QuicTransport,
    heartbeats: HeartbeatBatches,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> GroupNetwork {
        GroupNetwork {
            peer: Peer {
                group: self.group,
                target,
                addr: node.addr.parse().ok(),
                transport: self.transport.clone(),
                heartbeats: self.heartbeats.clone(),
            },
            hold: CommitHold::new(self.commit_hold),
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Peer {
    /// Send `rpc` on its own, or with `batched` in the next message of heartbeats for this peer.
    async fn send(
        &self,
        rpc: RaftRpc,
        timeout: Duration,
        name: &'static str,
        batched: bool,
    ) -> Result<RaftRpcReply, Unreachable> {
        metrics::counter!(crate::metrics::RPCS_SENT, "rpc" => name).increment(1);
        let result = self.send_inner(rpc, timeout, batched).await;
        if result.is_err() {
            metrics::counter!(crate::metrics::RPC_FAILURES, "rpc" => name).increment(1);
        }
        result.map_err(|e| Unreachable::new(&e))
    }

    async fn send_inner(
        &self,
        rpc: RaftRpc,
        timeout: Duration,
        batched: bool,
    ) -> Result<RaftRpcReply, Error> {
        let addr = self.addr.ok_or_else(|| {
            Error::Transport(format!("node {} has no valid peer address", self.target))
        })?;
        if batched {
            return self.heartbeats.send(addr, self.group, rpc, timeout).await;
        }
        let request = WireRequest::Raft {
            group: self.group,
            rpc,
        };
        call(&self.transport, addr, &request, timeout)
            .await?
            .into_raft(self.group)
    }

    fn unexpected<E: std::error::Error>() -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::Network(NetworkError::new(&Error::Transport(
            "mismatched rpc reply".into(),
        )))
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }

    /// `heartbeat`: a pure heartbeat, sent with every other group's heartbeat for this peer.
    async fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
        timeout: Duration,
        heartbeat: bool,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let name = if heartbeat {
            "heartbeat"
        } else {
            "append_entries"
        };
        let reply = self
            .send(RaftRpc::AppendEntries(rpc), timeout, name, heartbeat)
            .await
            .map_err(RPCError::Unreachable)?;
        match reply {
            RaftRpcReply::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            _ => Err(Self::unexpected()),
        }
    }

    /// Sends the held commit notice, if no request replaced it meanwhile, after `delay`.
    fn send_held_after(&self, slot: HeldSlot, delay: Duration, timeout: Duration) {
        let peer = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(rpc) = slot.take() else { return };
            metrics::counter!(crate::metrics::COMMITS_HELD_SENT).increment(1);
            let commit = rpc.leader_commit;
            // A failure or a higher vote is the replication stream's to find: the slot sends its
            // next request on the wire.
            let reply = peer.append_entries(rpc, timeout, false).await;
            slot.answered(commit, matches!(reply, Ok(AppendEntriesResponse::Success)));
        });
    }
}

impl RaftNetwork<TypeConfig> for GroupNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let timeout = option.hard_ttl();
        if let Decision::Held { schedule } = self.hold.decide(&rpc) {
            metrics::counter!(crate::metrics::COMMITS_HELD).increment(1);
            if schedule {
                self.peer
                    .send_held_after(self.hold.slot(), self.hold.hold_for(), timeout);
            }
            return Ok(AppendEntriesResponse::Success);
        }
        let (vote, commit) = (rpc.vote, rpc.leader_commit);
        let matched = rpc
            .entries
            .last()
            .map(|e| Some(e.log_id))
            .unwrap_or(rpc.prev_log_id);
        let heartbeat = self.hold.is_heartbeat(&rpc);
        let result = self.peer.append_entries(rpc, timeout, heartbeat).await;
        let acked = matches!(result, Ok(AppendEntriesResponse::Success)).then_some(matched);
        self.hold.sent(vote, commit, acked);
        result
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let reply = self
            .peer
            .send(
                RaftRpc::InstallSnapshot(rpc),
                option.hard_ttl(),
                "install_snapshot",
                false,
            )
            .await
            .map_err(RPCError::Unreachable)?;
        match reply {
            RaftRpcReply::InstallSnapshot(r) => r.map_err(|e| self.peer.remote(e)),
            _ => Err(Peer::unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let reply = self
            .peer
            .send(RaftRpc::Vote(rpc), option.hard_ttl(), "vote", false)
            .await
            .map_err(RPCError::Unreachable)?;
        match reply {
            RaftRpcReply::Vote(r) => r.map_err(|e| self.peer.remote(e)),
            _ => Err(Peer::unexpected()),
        }
    }
}
