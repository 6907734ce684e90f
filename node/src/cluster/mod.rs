//! The cluster as seen from one node: start (bootstrap, join, restart), routing to group leaders,
//! and the [`Backend`] the HTTP API uses.
//!
//! ```text
//!  HTTP handler ──Backend::write(shard, cmd)──► Cluster::call_leader(group, request)
//!        ┌────────────── pick target: leader hint ▸ local leader ▸ placement replicas ──┐
//!        ▼                                                                             ▼
//!   this node leads: ShardExecutor (group commit) ─► Raft      another node: QUIC NodeRequest
//!        NotLeader{hint} / unreachable ─► update hint, back off, retry until the deadline
//! ```
//!
//! Writes are retried after an ambiguous failure (a lost reply), so every shard command must be
//! idempotent or carry its own id; reads go through openraft's linearizable read barrier on the
//! leader, so a read through any node sees every write acknowledged before it.

mod duties;
mod executor;
mod handoff;
mod placement;
pub mod rpc;
mod stalls;
mod start;
mod state_machines;
mod wakeups;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use herald_raft::{AppHandler, GroupHandle, GroupId, Payload, RaftNode};
use herald_shard::{ShardCommand, ShardId, ShardQuery, ShardReply};
use tokio_util::sync::CancellationToken;

use crate::backend::{ApiKeys, Backend, BoxFuture as BackendFuture};
use crate::codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::meta::{MetaCommand, MetaEntry, MetaReply, MetaView};
pub use executor::now_ms;
use executor::{EvalDeps, ProposeError, ShardExecutorHandle, Work};
use rpc::{GroupStatus, NodeReply, NodeRequest};
pub use start::JoinRequest;
pub use state_machines::ShardStore;
pub use wakeups::{QueueFloor, Wakeups};

/// How long a request keeps retrying to reach a group's leader (elections take 1-2 s).
const ROUTE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a shard leader waits for its meta group to apply a trigger's workflow version.
const META_CATCH_UP: Duration = Duration::from_secs(3);
/// One forwarded request's timeout.
const RPC_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct ClusterInner {
    config: Config,
    raft: RaftNode,
    meta: GroupHandle,
    view: MetaView,
    executors: Mutex<HashMap<ShardId, ShardExecutorHandle>>,
    /// Compiled workflow versions, shared by every executor and the HTTP layer.
    workflows: Arc<crate::workflows::WorkflowCache>,
    /// Per shard: poked by the state machine, wakes the dispatcher and the timer loop.
    wakeups: Arc<wakeups::WakeupsByShard>,
    providers: Arc<crate::delivery::Providers>,
    /// Last known leader per group, learnt from NotLeader replies.
    leader_hints: Mutex<HashMap<GroupId, u64>>,
    shutdown: CancellationToken,
}

/// A running node's membership in the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

struct NodeRpc(Weak<ClusterInner>);

impl AppHandler for NodeRpc {
    fn handle(&self, request: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let cluster = self.0.upgrade().map(|inner| Cluster { inner });
        Box::pin(async move {
            let reply = match (cluster, codec::decode::<NodeRequest>(&request)) {
                (Some(c), Ok(req)) => c.handle_local(req).await,
                (None, _) => NodeReply::Failed {
                    retryable: true,
                    message: "shutting down".into(),
                },
                (_, Err(e)) => NodeReply::Failed {
                    retryable: false,
                    message: e.to_string(),
                },
            };
            codec::encode(&reply).unwrap_or_default()
        })
    }
}

impl Cluster {
    pub fn node_id(&self) -> u64 {
        self.inner.config.id
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn view(&self) -> &MetaView {
        &self.inner.view
    }

    pub fn raft(&self) -> &RaftNode {
        &self.inner.raft
    }

    /// Joined, the meta group has a leader and has applied this node's membership.
    pub fn is_ready(&self) -> bool {
        let metrics = self.inner.meta.raft.metrics().borrow().clone();
        metrics.current_leader.is_some()
            && self.inner.view.info().is_some()
            && self.inner.view.member(self.node_id()).is_some()
    }

    /// Stop background work and every Raft group, then the transport.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.raft.shutdown().await;
    }

    fn peer_of(&self, node: u64) -> Option<SocketAddr> {
        self.inner.view.member(node)?.peer.parse().ok()
    }

    fn local_group(&self, group: GroupId) -> Option<GroupHandle> {
        self.inner.raft.group(group)
    }

    fn hint(&self, group: GroupId) -> Option<u64> {
        self.inner.leader_hints.lock().ok()?.get(&group).copied()
    }

    fn set_hint(&self, group: GroupId, leader: Option<u64>) {
        if let Ok(mut hints) = self.inner.leader_hints.lock() {
            match leader {
                Some(l) => hints.insert(group, l),
                None => hints.remove(&group),
            };
        }
    }

    /// Where to send a request for `group` on the `attempt`-th try.
    fn pick_target(&self, group: GroupId, attempt: usize) -> u64 {
        if let Some(h) = self.hint(group) {
            return h;
        }
        if let Some(g) = self.local_group(group) {
            if let Some(l) = g.raft.metrics().borrow().current_leader {
                return l;
            }
        }
        let candidates: Vec<u64> = match group.as_shard() {
            Some(s) => self.inner.view.placement(s),
            None => self.inner.view.members().iter().map(|m| m.id).collect(),
        };
        if candidates.is_empty() {
            self.node_id()
        } else {
            candidates[attempt % candidates.len()]
        }
    }

    /// Send `request` to `group`'s leader, following NotLeader hints and retrying through elections.
    async fn call_leader(&self, group: GroupId, request: NodeRequest) -> Result<NodeReply> {
        let deadline = Instant::now() + ROUTE_DEADLINE;
        let mut last_error = String::from("no attempt");
        for attempt in 0.. {
            let target = self.pick_target(group, attempt);
            let reply = if target == self.node_id() {
                self.handle_local(request.clone()).await
            } else {
                self.send(target, &request).await
            };
            let mut pause = true;
            match reply {
                NodeReply::NotLeader { leader } => {
                    // A fresh hint is worth an immediate retry; "no leader" means an election.
                    let fresh = leader.filter(|l| *l != target);
                    pause = fresh.is_none();
                    self.set_hint(group, fresh);
                    last_error = format!("node {target} is not the leader of {group}");
                }
                NodeReply::Failed {
                    retryable: true,
                    message,
                } => {
                    self.set_hint(group, None);
                    last_error = message;
                }
                other => return Ok(other),
            }
            if Instant::now() >= deadline {
                break;
            }
            if pause {
                let backoff = Duration::from_millis((20 * (attempt as u64 + 1)).min(250));
                tokio::time::sleep(backoff).await;
            }
        }
        metrics::counter!(crate::metrics::ROUTE_FAILURES).increment(1);
        Err(Error::Unavailable {
            shard: group.as_shard().unwrap_or(u32::MAX),
            reason: last_error,
        })
    }

    async fn send(&self, target: u64, request: &NodeRequest) -> NodeReply {
        let Some(addr) = self.peer_of(target) else {
            return NodeReply::Failed {
                retryable: true,
                message: format!("unknown node {target}"),
            };
        };
        let bytes = match codec::encode(request) {
            Ok(b) => b,
            Err(e) => {
                return NodeReply::Failed {
                    retryable: false,
                    message: e.to_string(),
                }
            }
        };
        match self.inner.raft.call_app(addr, bytes, RPC_TIMEOUT).await {
            Ok(reply) => codec::decode(&reply).unwrap_or_else(|e| NodeReply::Failed {
                retryable: false,
                message: e.to_string(),
            }),
            Err(e) => NodeReply::Failed {
                retryable: true,
                message: format!("node {target}: {e}"),
            },
        }
    }

    /// `Some(NotLeader)` unless this node currently leads `g`.
    fn not_leader(&self, g: &GroupHandle) -> Option<NodeReply> {
        let leader = g.raft.metrics().borrow().current_leader;
        (leader != Some(self.node_id())).then_some(NodeReply::NotLeader { leader })
    }

    fn executor(&self, shard: ShardId, g: &GroupHandle) -> ShardExecutorHandle {
        let mut map = self
            .inner
            .executors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match map.get(&shard) {
            Some(e) if !e.is_closed() => e.clone(),
            _ => {
                let deps = EvalDeps {
                    reader: g.reader.clone(),
                    view: self.inner.view.clone(),
                    meta: self.inner.meta.raft.clone(),
                    cache: self.inner.workflows.clone(),
                };
                let e = ShardExecutorHandle::spawn(shard, g.raft.clone(), deps);
                map.insert(shard, e.clone());
                e
            }
        }
    }

    /// Serve a request addressed to this node (from QUIC or from this node's own HTTP handlers).
    async fn handle_local(&self, request: NodeRequest) -> NodeReply {
        match request {
            NodeRequest::ShardWrite { shard, cmd } => {
                self.submit_local(shard, Work::Command(cmd)).await
            }
            NodeRequest::ShardTrigger { shard, trigger } => {
                // A just-pushed version may not be applied here yet: wait for it (bounded).
                let deadline = Instant::now() + META_CATCH_UP;
                while self
                    .inner
                    .workflows
                    .get(&self.inner.view, &trigger.workflow, trigger.version)
                    .is_none()
                {
                    if Instant::now() >= deadline {
                        return NodeReply::Failed {
                            retryable: true,
                            message: format!(
                                "workflow {} version {} not applied on node {}",
                                trigger.workflow,
                                trigger.version,
                                self.node_id()
                            ),
                        };
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                self.submit_local(shard, Work::Trigger(trigger)).await
            }
            NodeRequest::ShardRead { shard, query } => {
                let Some(g) = self.local_group(GroupId::shard(shard)) else {
                    return NodeReply::NotLeader { leader: None };
                };
                if let Some(reply) = read_barrier(&g).await {
                    return reply;
                }
                NodeReply::Shard(herald_shard::query(&ShardStore(&g.reader), &query))
            }
            NodeRequest::MetaWrite { cmd } => {
                let entry = MetaEntry {
                    now_ms: now_ms(),
                    cmd,
                };
                let bytes = match codec::encode(&entry) {
                    Ok(b) => b,
                    Err(e) => {
                        return NodeReply::Failed {
                            retryable: false,
                            message: e.to_string(),
                        }
                    }
                };
                match self.inner.meta.raft.client_write(Payload(bytes)).await {
                    Ok(resp) => match codec::decode::<MetaReply>(&resp.data.0) {
                        Ok(reply) => NodeReply::Meta {
                            reply,
                            index: resp.log_id.index,
                        },
                        Err(e) => NodeReply::Failed {
                            retryable: false,
                            message: e.to_string(),
                        },
                    },
                    Err(e) => match executor::classify_write_error(e) {
                        ProposeError::NotLeader { leader } => NodeReply::NotLeader { leader },
                        ProposeError::Failed { retryable, message } => {
                            NodeReply::Failed { retryable, message }
                        }
                    },
                }
            }
            NodeRequest::MetaRead { table, key } => {
                if let Some(reply) = read_barrier(&self.inner.meta).await {
                    return reply;
                }
                NodeReply::Record(self.inner.view.record(&table, &key).map(|v| v.to_string()))
            }
            NodeRequest::GroupStatus { shard } => NodeReply::Status(
                self.local_group(GroupId::shard(shard))
                    .map(|g| group_status(&g)),
            ),
            NodeRequest::Campaign { shard } => handoff::campaign(self, shard).await,
        }
    }

    /// The wake-ups of `shard`'s dispatcher and timer loop.
    fn wakeups(&self, shard: ShardId) -> Arc<Wakeups> {
        self.inner.wakeups.get(shard)
    }

    /// The state machine logic of `shard`'s group on this node.
    fn shard_logic(&self, shard: ShardId) -> Arc<state_machines::ShardLogic> {
        Arc::new(state_machines::ShardLogic::new(self.wakeups(shard)))
    }

    /// Hand work to this node's executor of `shard`, if this node leads it.
    async fn submit_local(&self, shard: ShardId, work: Work) -> NodeReply {
        let Some(g) = self.local_group(GroupId::shard(shard)) else {
            return NodeReply::NotLeader { leader: None };
        };
        if let Some(not_leader) = self.not_leader(&g) {
            return not_leader;
        }
        match self.executor(shard, &g).submit(work).await {
            Ok(reply) => NodeReply::Shard(reply),
            Err(ProposeError::NotLeader { leader }) => NodeReply::NotLeader { leader },
            Err(ProposeError::Failed { retryable, message }) => {
                NodeReply::Failed { retryable, message }
            }
        }
    }

    /// Stop hosting `shard` and delete its data (after this node left its replica set).
    async fn drop_group(&self, shard: ShardId) -> herald_raft::Result<()> {
        if let Ok(mut executors) = self.inner.executors.lock() {
            executors.remove(&shard);
        }
        self.inner
            .raft
            .close_group(GroupId::shard(shard), true)
            .await
    }

    /// Propose a meta command on the meta leader. Returns once this node has applied it too, so
    /// a local read (MetaView) right after sees the write.
    pub async fn meta_write(&self, cmd: MetaCommand) -> Result<()> {
        let index = match self
            .call_leader(GroupId::META, NodeRequest::MetaWrite { cmd })
            .await?
        {
            NodeReply::Meta {
                reply: MetaReply::Ok,
                index,
            } => index,
            NodeReply::Meta {
                reply: MetaReply::Rejected(m),
                ..
            } => return Err(Error::InvalidParams(m)),
            other => return Err(unexpected(other)),
        };
        self.inner
            .meta
            .raft
            .wait(Some(ROUTE_DEADLINE))
            .applied_index_at_least(Some(index), "meta read-your-writes")
            .await
            .map_err(|e| Error::Unavailable {
                shard: u32::MAX,
                reason: format!("meta entry {index} not applied locally: {e}"),
            })?;
        Ok(())
    }

    /// Every shard's leader and replicas, asking the replicas that should host it.
    pub async fn shard_statuses(&self) -> BTreeMap<ShardId, GroupStatus> {
        let shards = self.inner.view.info().map(|i| i.shards).unwrap_or(0);
        let mut out = BTreeMap::new();
        for shard in 0..shards {
            let mut best = GroupStatus::default();
            let mut candidates = self.inner.view.placement(shard);
            if let Some(g) = self.local_group(GroupId::shard(shard)) {
                best = group_status(&g);
                candidates.retain(|c| *c != self.node_id());
            }
            for node in candidates {
                if best.leader.is_some() {
                    break;
                }
                if let NodeReply::Status(Some(s)) =
                    self.send(node, &NodeRequest::GroupStatus { shard }).await
                {
                    if s.leader.is_some() || best.voters.is_empty() {
                        best = s;
                    }
                }
            }
            out.insert(shard, best);
        }
        out
    }

    /// The meta group as this node sees it.
    pub fn meta_status(&self) -> GroupStatus {
        group_status(&self.inner.meta)
    }
}

fn group_status(g: &GroupHandle) -> GroupStatus {
    let m = g.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    GroupStatus {
        leader: m.current_leader,
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    }
}

/// openraft's linearizable read barrier; `Some(reply)` when this node cannot serve the read.
async fn read_barrier(g: &GroupHandle) -> Option<NodeReply> {
    use openraft::error::{CheckIsLeaderError, RaftError};
    match g.raft.ensure_linearizable().await {
        Ok(_) => None,
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
            Some(NodeReply::NotLeader {
                leader: f.leader_id,
            })
        }
        Err(e) => Some(NodeReply::Failed {
            retryable: true,
            message: e.to_string(),
        }),
    }
}

fn unexpected(reply: NodeReply) -> Error {
    match reply {
        NodeReply::Failed {
            retryable: false,
            message,
        } => Error::Internal(message),
        other => Error::Internal(format!("unexpected reply {other:?}")),
    }
}

impl Cluster {
    /// The shard count fixed at bootstrap (the configured one until meta has been applied).
    fn shard_count(&self) -> u32 {
        self.inner
            .view
            .info()
            .map(|i| i.shards)
            .unwrap_or(self.inner.config.shards)
    }

    /// Send a shard request to the shard's leader and unwrap its reply.
    async fn shard_call(&self, shard: ShardId, request: NodeRequest) -> Result<ShardReply> {
        match self.call_leader(GroupId::shard(shard), request).await? {
            NodeReply::Shard(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}

impl Backend for Cluster {
    fn shard_for(&self, recipient_key: &str) -> ShardId {
        herald_shard::shard_of_slot(herald_shard::slot_of(recipient_key), self.shard_count())
    }

    fn shards(&self) -> Vec<ShardId> {
        (0..self.shard_count()).collect()
    }

    fn write(&self, shard: ShardId, cmd: ShardCommand) -> BackendFuture<'_, Result<ShardReply>> {
        metrics::counter!(crate::metrics::SHARD_WRITES).increment(1);
        Box::pin(self.shard_call(shard, NodeRequest::ShardWrite { shard, cmd }))
    }

    fn read(&self, shard: ShardId, query: ShardQuery) -> BackendFuture<'_, Result<ShardReply>> {
        Box::pin(self.shard_call(shard, NodeRequest::ShardRead { shard, query }))
    }

    fn api_keys(&self) -> Option<ApiKeys> {
        self.inner.view.api_keys()
    }

    fn channels(&self) -> Vec<crate::backend::ChannelRecord> {
        self.inner.view.channels()
    }

    fn workflow(&self, key: &str) -> Option<Arc<crate::meta::WorkflowRecord>> {
        // The applied index before the read: `meta_write` returns only once it has reached the
        // write's index, so a workflow pushed through this node is seen by its next trigger.
        let applied = self.inner.meta.raft.metrics().borrow().last_applied;
        self.inner.view.workflow(key, applied)
    }

    fn workflows(&self) -> Vec<crate::meta::WorkflowRecord> {
        self.inner.view.workflows()
    }

    fn compiled_workflow(
        &self,
        key: &str,
        version: u64,
    ) -> Option<Arc<herald_shard::engine::CompiledWorkflow>> {
        self.inner.workflows.get(&self.inner.view, key, version)
    }

    fn catalog_write(&self, cmd: MetaCommand) -> BackendFuture<'_, Result<()>> {
        Box::pin(self.meta_write(cmd))
    }

    fn trigger(
        &self,
        shard: ShardId,
        trigger: crate::workflows::ShardTrigger,
    ) -> BackendFuture<'_, Result<ShardReply>> {
        metrics::counter!(crate::metrics::SHARD_TRIGGERS).increment(1);
        Box::pin(self.shard_call(shard, NodeRequest::ShardTrigger { shard, trigger }))
    }

    fn meta_put(
        &self,
        table: &str,
        key: &str,
        value: serde_json::Value,
    ) -> BackendFuture<'_, Result<()>> {
        let cmd = MetaCommand::PutRecord {
            table: table.into(),
            key: key.into(),
            value_json: value.to_string(),
        };
        Box::pin(self.meta_write(cmd))
    }

    fn meta_get(
        &self,
        table: &str,
        key: &str,
    ) -> BackendFuture<'_, Result<Option<serde_json::Value>>> {
        let request = NodeRequest::MetaRead {
            table: table.into(),
            key: key.into(),
        };
        Box::pin(async move {
            match self.call_leader(GroupId::META, request).await? {
                NodeReply::Record(r) => Ok(r.and_then(|s| serde_json::from_str(&s).ok())),
                other => Err(unexpected(other)),
            }
        })
    }
}
