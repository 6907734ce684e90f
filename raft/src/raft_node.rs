//! [`RaftNode`]: every Raft group this process hosts, behind one QUIC endpoint.
//!
//! ```text
//!            QUIC endpoint (mTLS)            RaftNode
//!  peer ---> WireRequest::Raft{group} --> groups[group].raft.append_entries/vote/install_snapshot
//!  peer ---> WireRequest::RaftBatch    --> each (group, rpc) as above, answered together
//!  peer ---> WireRequest::App(bytes)  --> AppHandler (herald-node: forwarded writes/reads)
//! ```
//!
//! Groups are opened and closed at run time (placement moves shard replicas between nodes). A request
//! for a group this node does not host answers `GroupNotFound`, which the sender treats as
//! "unreachable, retry later": the usual state while a new replica is being created.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::network::{
    GroupNetworkFactory, HeartbeatBatches, RaftRpc, RaftRpcReply, WireReply, WireRequest,
};
use crate::storage::{decode, encode, GroupReader, RocksStorage, StateMachineLogic};
use crate::transport::{NodeIdentity, QuicTransport, RpcHandler};
use crate::types::{GroupId, NodeId, Raft};

/// Handles application requests that arrive over QUIC (the payload is the application's encoding).
pub trait AppHandler: Send + Sync + 'static {
    fn handle(&self, request: Vec<u8>) -> BoxFuture<'static, Vec<u8>>;
}

/// A hosted group: its Raft handle and a reader over its applied state.
#[derive(Clone)]
pub struct GroupHandle {
    pub raft: Raft,
    pub reader: GroupReader,
}

/// Raft timing shared by all groups.
#[derive(Debug, Clone)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot (and purge the log before it) after this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, so a briefly lagging follower catches up from
    /// the log instead of a full snapshot.
    pub keep_after_snapshot: u64,
    /// Snapshots travel to followers in chunks of this size.
    pub snapshot_chunk_bytes: u64,
    /// How long a shard group's leader may hold a commit-only AppendEntries for a later request
    /// to carry (`network::commit_hold`); 0 sends each at once. The meta group never holds.
    pub commit_hold_ms: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_ms: 250,
            election_min_ms: 1000,
            election_max_ms: 2000,
            snapshot_every: 20_000,
            keep_after_snapshot: 1000,
            snapshot_chunk_bytes: 4 << 20,
            commit_hold_ms: 50,
        }
    }
}

struct Inner {
    node_id: NodeId,
    storage: Arc<RocksStorage>,
    config: Arc<openraft::Config>,
    commit_hold: Duration,
    groups: RwLock<BTreeMap<GroupId, GroupHandle>>,
    /// Set in `start` once the endpoint is bound (the endpoint's handler needs `Inner` first).
    wire: OnceLock<Wire>,
    app: OnceLock<Arc<dyn AppHandler>>,
    /// Serializes group creation: two Raft instances must never run on one group's storage.
    open_lock: tokio::sync::Mutex<()>,
}

/// The node's QUIC endpoint and what every group's network shares over it.
struct Wire {
    transport: QuicTransport,
    /// Shared by every group's network, so heartbeats to a peer batch.
    heartbeats: HeartbeatBatches,
}

#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

struct Dispatch(Weak<Inner>);

impl RpcHandler for Dispatch {
    fn handle(&self, request: Bytes) -> BoxFuture<'static, Bytes> {
        let inner = self.0.upgrade();
        Box::pin(async move {
            let reply = match inner {
                Some(inner) => dispatch(&inner, &request).await,
                None => WireReply::Error("node shutting down".into()),
            };
            encode(&reply)
                .unwrap_or_else(|e| encode(&WireReply::Error(e.to_string())).unwrap_or_default())
                .into()
        })
    }
}

async fn dispatch(inner: &Inner, request: &[u8]) -> WireReply {
    let request: WireRequest = match decode(request) {
        Ok(r) => r,
        Err(e) => return WireReply::Error(format!("bad request: {e}")),
    };
    match request {
        WireRequest::App(bytes) => match inner.app.get() {
            Some(app) => WireReply::App(app.handle(bytes).await),
            None => WireReply::Error("node not ready for application requests".into()),
        },
        WireRequest::Raft { group, rpc } => raft_rpc(inner, group, rpc).await,
        WireRequest::RaftBatch(rpcs) => WireReply::RaftBatch(
            futures::future::join_all(
                rpcs.into_iter()
                    .map(|(group, rpc)| raft_rpc(inner, group, rpc)),
            )
            .await,
        ),
    }
}

/// Hand `rpc` to `group`'s Raft on this node.
async fn raft_rpc(inner: &Inner, group: GroupId, rpc: RaftRpc) -> WireReply {
    let raft = match inner.groups.read() {
        Ok(groups) => groups.get(&group).map(|g| g.raft.clone()),
        Err(_) => None,
    };
    let Some(raft) = raft else {
        return WireReply::GroupNotFound;
    };
    WireReply::Raft(Box::new(match rpc {
        RaftRpc::AppendEntries(r) => RaftRpcReply::AppendEntries(raft.append_entries(r).await),
        RaftRpc::Vote(r) => RaftRpcReply::Vote(raft.vote(r).await),
        RaftRpc::InstallSnapshot(r) => {
            RaftRpcReply::InstallSnapshot(raft.install_snapshot(r).await)
        }
    }))
}

impl RaftNode {
    /// Bind the node's QUIC endpoint on `peer_addr` and start serving RPCs for the groups opened later.
    pub async fn start(
        node_id: NodeId,
        storage: Arc<RocksStorage>,
        peer_addr: SocketAddr,
        identity: &NodeIdentity,
        timing: RaftTiming,
    ) -> Result<Self> {
        let config = openraft::Config {
            cluster_name: "herald".into(),
            heartbeat_interval: timing.heartbeat_ms,
            election_timeout_min: timing.election_min_ms,
            election_timeout_max: timing.election_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(timing.snapshot_every),
            max_in_snapshot_log_to_keep: timing.keep_after_snapshot,
            max_payload_entries: 256,
            snapshot_max_chunk_size: timing.snapshot_chunk_bytes,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Raft(e.to_string()))?;
        let inner = Arc::new(Inner {
            node_id,
            storage,
            config: Arc::new(config),
            commit_hold: Duration::from_millis(timing.commit_hold_ms),
            groups: RwLock::new(BTreeMap::new()),
            wire: OnceLock::new(),
            app: OnceLock::new(),
            open_lock: tokio::sync::Mutex::new(()),
        });
        let handler = Arc::new(Dispatch(Arc::downgrade(&inner)));
        let transport = QuicTransport::bind(peer_addr, identity, handler)
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let _ = inner.wire.set(Wire {
            heartbeats: HeartbeatBatches::new(transport.clone()),
            transport,
        });
        Ok(RaftNode { inner })
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    pub fn storage(&self) -> &Arc<RocksStorage> {
        &self.inner.storage
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.transport().local_addr()
    }

    /// Peers this node's last call could not reach (see [`QuicTransport::unreachable_peers`]).
    pub fn unreachable_peers(&self) -> Vec<SocketAddr> {
        self.transport().unreachable_peers()
    }

    /// `(heartbeats, messages)` this node has sent: heartbeats of all groups to one peer share a
    /// message (`network::heartbeats`).
    pub fn heartbeats_sent(&self) -> (u64, u64) {
        self.wire().heartbeats.sent()
    }

    fn wire(&self) -> &Wire {
        // Set in `start` before the node is returned.
        self.inner.wire.get().expect("transport bound in start")
    }

    fn transport(&self) -> &QuicTransport {
        &self.wire().transport
    }

    /// Route application requests arriving over QUIC to `handler` (set once).
    pub fn set_app_handler(&self, handler: Arc<dyn AppHandler>) {
        let _ = self.inner.app.set(handler);
    }

    /// Send an application request to `peer` and wait for its reply.
    pub async fn call_app(
        &self,
        peer: SocketAddr,
        request: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let request = encode(&WireRequest::App(request))?;
        let reply = self
            .transport()
            .call(peer, request.into(), timeout)
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        match decode::<WireReply>(&reply)? {
            WireReply::App(bytes) => Ok(bytes),
            WireReply::Error(e) => Err(Error::Transport(e)),
            _ => Err(Error::Transport(
                "unexpected reply to an application request".into(),
            )),
        }
    }

    /// Open (or return the already open) `group`, recovering its persisted state.
    pub async fn open_group(
        &self,
        group: GroupId,
        logic: Arc<dyn StateMachineLogic>,
    ) -> Result<GroupHandle> {
        let _creating = self.inner.open_lock.lock().await;
        if let Some(handle) = self.group(group) {
            return Ok(handle);
        }
        let storage = &self.inner.storage;
        let log_store = storage.log_store(group);
        let state_machine = storage.state_machine(group, logic)?;
        let network = GroupNetworkFactory {
            group,
            transport: self.transport().clone(),
            // Meta reads are local on every node (the catalog): its followers hear of commits
            // at once. Shard reads go to leaders.
            commit_hold: if group == GroupId::META {
                Duration::ZERO
            } else {
                self.inner.commit_hold
            },
            heartbeats: self.wire().heartbeats.clone(),
        };
        let raft = Raft::new(
            self.inner.node_id,
            self.inner.config.clone(),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
        let handle = GroupHandle {
            raft,
            reader: storage.reader(group),
        };
        self.inner
            .groups
            .write()
            .map_err(|_| Error::Shutdown)?
            .insert(group, handle.clone());
        Ok(handle)
    }

    pub fn group(&self, group: GroupId) -> Option<GroupHandle> {
        self.inner.groups.read().ok()?.get(&group).cloned()
    }

    pub fn groups(&self) -> Vec<(GroupId, GroupHandle)> {
        match self.inner.groups.read() {
            Ok(g) => g.iter().map(|(k, v)| (*k, v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Stop hosting `group`; with `destroy`, delete its log and state from disk too.
    pub async fn close_group(&self, group: GroupId, destroy: bool) -> Result<()> {
        let handle = self
            .inner
            .groups
            .write()
            .map_err(|_| Error::Shutdown)?
            .remove(&group);
        if let Some(handle) = handle {
            handle
                .raft
                .shutdown()
                .await
                .map_err(|e| Error::Raft(e.to_string()))?;
        }
        if destroy {
            self.inner.storage.destroy_group(group)?;
        }
        Ok(())
    }

    /// Stop every group, then the transport.
    pub async fn shutdown(&self) {
        let groups: Vec<GroupHandle> = match self.inner.groups.write() {
            Ok(mut g) => std::mem::take(&mut *g).into_values().collect(),
            Err(_) => Vec::new(),
        };
        for g in groups {
            let _ = g.raft.shutdown().await;
        }
        if let Some(wire) = self.inner.wire.get() {
            wire.transport.shutdown().await;
        }
    }
}
