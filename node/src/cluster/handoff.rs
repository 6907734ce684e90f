//! Leadership hand-off: move a shard's leadership to the node that should lead it
//! ([`crate::meta::MetaView::preferred_leaders`]), so that leader work (evaluation, apply-and-reply,
//! delivery) spreads over the members instead of staying where the shard was first created.
//!
//! openraft 0.9 has no leadership transfer. This one rests on two of its voting rules:
//! - a node refuses votes while its leader lease is live (`election_timeout_max` since its vote was
//!   last refreshed): a follower's lease is refreshed by every append from the leader, but a
//!   leader's own only when it is elected;
//! - a vote needs the candidate's log to be at least as long as the voter's.
//!
//! So a leader that has led for longer than the lease, and stops growing its log, grants its vote
//! to a follower that holds all of that log; with the candidate's own vote that is a majority of
//! two or three voters. With more voters the others' leases would refuse, and the hand-off would
//! turn into an ordinary election, so shards with more than three voters are not handed off.
//!
//! ```text
//! leader L                                  target P                         other voter Q
//! pause the executor (nothing in flight)
//! wait until P holds L's last log index
//! Campaign{shard} ────────────────────────► trigger().elect(): term + 1
//!                 ◄───── vote request ──── (to L and Q)
//! grant (lease over, log not longer), follow                                 refuse (lease live),
//! wait until L no longer leads              P leads                           then follow P
//! resume the executor: queued work is answered NotLeader{P} and routed there
//! ```
//!
//! The leader also waits for its dispatcher to have no provider send in flight (for at most 30 s,
//! see the placement loop): a send whose result cannot commit before leadership moves is sent
//! again by the next leader.
//!
//! If a step fails (P lags, the call fails, a membership entry slipped in), the group falls back
//! to an ordinary election or stays as it was; Raft keeps it safe either way, and the placement
//! loop tries again later.

use std::time::Duration;

use herald_raft::{GroupHandle, GroupId};
use herald_shard::ShardId;
use openraft::RaftMetrics;

use super::rpc::{NodeReply, NodeRequest};
use super::{group_status, Cluster};
use crate::metrics as m;

/// How long the leader waits for the target to hold its whole log.
const CATCH_UP: Duration = Duration::from_millis(500);
/// How long the leader waits for the target to win its election.
const ELECTION: Duration = Duration::from_secs(2);

/// On `g`'s leader: hand leadership of `shard` to `to`, a voter. The caller checks that this node
/// has led `g` for longer than the leader lease. Unless `interrupt_sends`, it gives up while the
/// shard's dispatcher has a provider send in flight: once leadership moved, that send's result
/// could not commit and the next leader would send the message again.
pub(super) async fn hand_over(
    cluster: &Cluster,
    shard: ShardId,
    g: &GroupHandle,
    to: u64,
    interrupt_sends: bool,
) -> Result<(), String> {
    let result: Result<(), String> = async {
        let me = cluster.node_id();
        let _paused = cluster
            .executor(shard, g)
            .pause()
            .await
            .ok_or("executor stopped")?;
        g.raft
            .wait(Some(CATCH_UP))
            .metrics(
                |m| m.current_leader == Some(me) && matched(m, to) == m.last_log_index,
                "hand-off target holds the whole log",
            )
            .await
            .map_err(|e| format!("node {to} did not catch up: {e}"))?;
        // A send started before the pause finishes by committing its result (after the pause).
        if !interrupt_sends && sends_in_flight(cluster, shard) {
            return Err("a provider send is in flight".into());
        }
        match cluster.send(to, &NodeRequest::Campaign { shard }).await {
            NodeReply::Status(Some(_)) => {}
            other => return Err(format!("node {to} did not campaign: {other:?}")),
        }
        g.raft
            .wait(Some(ELECTION))
            .metrics(|m| m.current_leader != Some(me), "leadership moved")
            .await
            .map_err(|e| format!("node {to} did not take over: {e}"))?;
        tracing::info!(shard, to, "shard leadership handed over");
        Ok(())
        // `_paused` drops here: queued work resumes and meets NotLeader.
    }
    .await;
    let outcome = if result.is_ok() { "moved" } else { "failed" };
    metrics::counter!(m::LEADER_HANDOFFS, "result" => outcome).increment(1);
    result
}

/// Whether this node's dispatcher of `shard` has a provider send in flight.
pub(super) fn sends_in_flight(cluster: &Cluster, shard: ShardId) -> bool {
    cluster
        .wakeups(shard)
        .sending
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
}

/// The last log index the leader knows `node` to hold.
pub(super) fn matched(m: &RaftMetrics<u64, openraft::BasicNode>, node: u64) -> Option<u64> {
    let log_id = m.replication.as_ref()?.get(&node)?.as_ref()?;
    Some(log_id.index)
}

/// On the hand-off target: start an election for `shard` at once.
pub(super) async fn campaign(cluster: &Cluster, shard: ShardId) -> NodeReply {
    let Some(g) = cluster.local_group(GroupId::shard(shard)) else {
        return NodeReply::Status(None);
    };
    let status = group_status(&g);
    if !status.voters.contains(&cluster.node_id()) {
        return NodeReply::Failed {
            retryable: false,
            message: format!("node {} is not a voter of shard {shard}", cluster.node_id()),
        };
    }
    match g.raft.trigger().elect().await {
        Ok(()) => NodeReply::Status(Some(status)),
        Err(e) => NodeReply::Failed {
            retryable: true,
            message: e.to_string(),
        },
    }
}
