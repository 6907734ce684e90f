//! Placement: make every group's Raft membership match what the meta group says it should be.
//!
//! Every node runs this loop; each acts only where it can:
//! - a node in a shard's desired replica set opens that shard's group locally (empty, waiting to
//!   be added), and a node that was removed from a group's membership drops it and its data;
//! - the leader of a group adds missing replicas as learners, promotes them to voters once they
//!   have caught up (one `change_membership`, which also removes replicas that left the set).
//!
//! - the leader of a settled shard (voters as desired) that another voter should lead hands its
//!   leadership over ([`super::handoff`]), so leaders spread evenly
//!   ([`crate::meta::MetaView::preferred_leaders`]).
//!
//! Desired sets: meta voters = the first five members by id (the rest are learners); shard `s` =
//! the top-R members by rendezvous hashing ([`crate::meta::MetaView::placement`]), so a join moves only
//! the shards whose top-R now includes the new node.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_raft::{GroupHandle, GroupId};
use herald_shard::ShardId;
use openraft::{BasicNode, RaftMetrics};

use super::{handoff, Cluster};

const PASS_INTERVAL: Duration = Duration::from_millis(300);
/// A learner within this many entries of the leader's log counts as caught up.
const CATCH_UP_SLACK: u64 = 64;
const META_VOTERS: usize = 5;
/// A node starts no hand-off while this many of its groups are busy (hand-offs and membership
/// changes alike; each hand-off pauses its shard's proposals briefly).
const MAX_HANDOFFS: usize = 4;
/// After a failed hand-off, the shard's leader waits this long before trying again.
const HANDOFF_RETRY: Duration = Duration::from_secs(5);
/// How long a hand-off waits for a moment with no provider send in flight before it interrupts
/// one (whose message the next leader then sends again).
const SENDS_DRAIN: Duration = Duration::from_secs(30);

/// Groups with a membership change or hand-off running (one at a time per group).
type Busy = Arc<Mutex<HashSet<GroupId>>>;

/// What the loop remembers between passes about the shards this node leads.
#[derive(Default)]
struct Leading {
    /// When this node was first seen leading the group, in which term.
    since: HashMap<GroupId, (u64, Instant)>,
    /// When the last hand-off of the group was started.
    tried: HashMap<GroupId, Instant>,
    /// Since when a hand-off of the group has been due (it may wait for sends in flight).
    due: HashMap<GroupId, Instant>,
}

pub(super) fn spawn(cluster: Cluster) {
    let token = cluster.shutdown_token();
    let busy: Busy = Arc::default();
    tokio::spawn(async move {
        let mut leading = Leading::default();
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(PASS_INTERVAL) => {}
            }
            pass(&cluster, &busy, &mut leading).await;
        }
    });
}

async fn pass(cluster: &Cluster, busy: &Busy, leading: &mut Leading) {
    let view = cluster.view().clone();
    let Some(info) = view.info() else { return };
    let members: Vec<u64> = view.members().iter().map(|m| m.id).collect();
    if members.is_empty() {
        return;
    }
    let me = cluster.node_id();

    let meta_voters: BTreeSet<u64> = members.iter().copied().take(META_VOTERS).collect();
    if let Some(meta) = cluster.raft().group(GroupId::META) {
        reconcile(cluster, busy, GroupId::META, meta, meta_voters, &members);
    }

    let preferred = view.preferred_leaders();
    for shard in 0..info.shards {
        let group = GroupId::shard(shard);
        let desired: BTreeSet<u64> = view.placement(shard).into_iter().collect();
        match cluster.raft().group(group) {
            None if desired.contains(&me) => {
                if let Err(e) = cluster
                    .raft()
                    .open_group(group, cluster.shard_logic(shard))
                    .await
                {
                    tracing::warn!(%group, error = %e, "could not open assigned shard");
                }
            }
            None => {}
            Some(handle) => {
                let membership = handle.raft.metrics().borrow().membership_config.clone();
                let in_membership = membership.membership().nodes().any(|(id, _)| *id == me);
                if !desired.contains(&me) && !in_membership && membership.log_id().is_some() {
                    tracing::info!(%group, "no longer a replica: dropping the group");
                    if let Err(e) = cluster.drop_group(shard).await {
                        tracing::warn!(%group, error = %e, "could not drop the group");
                    }
                    continue;
                }
                let all: Vec<u64> = desired.iter().copied().collect();
                if let Some(&to) = preferred.get(shard as usize) {
                    spread(cluster, busy, leading, shard, &handle, &desired, to);
                }
                reconcile(cluster, busy, group, handle, desired, &all);
            }
        }
    }
}

/// On the leader of a settled shard that `to` should lead: hand leadership over, once this node has
/// led longer than the leader lease (before that, its vote would be refused by its own lease).
fn spread(
    cluster: &Cluster,
    busy: &Busy,
    leading: &mut Leading,
    shard: ShardId,
    handle: &GroupHandle,
    desired: &BTreeSet<u64>,
    to: u64,
) {
    let me = cluster.node_id();
    let group = GroupId::shard(shard);
    let metrics = handle.raft.metrics().borrow().clone();
    if metrics.current_leader != Some(me) {
        leading.since.remove(&group);
        leading.due.remove(&group);
        return;
    }
    let term = metrics.current_term;
    let since = match leading.since.get(&group) {
        Some(&(t, at)) if t == term => at,
        _ => {
            leading.since.insert(group, (term, Instant::now()));
            return;
        }
    };
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let settled = &voters == desired && membership.learner_ids().next().is_none();
    let lease = cluster.config().election_timeout().end;
    // The old leader's vote and the target's own must be a majority (module docs of `handoff`):
    // with more voters, the others' leases would refuse and the hand-off become an election.
    let majority_of_two = voters.len() <= 3;
    // Last of the checks: it copies the transport's set of unreachable peers.
    let reachable = || {
        cluster
            .peer_of(to)
            .is_some_and(|addr| !cluster.raft().unreachable_peers().contains(&addr))
    };
    let recently_tried = leading
        .tried
        .get(&group)
        .is_some_and(|at| at.elapsed() < HANDOFF_RETRY);
    if to == me
        || !settled
        || !voters.contains(&to)
        || !majority_of_two
        || since.elapsed() <= lease + Duration::from_secs(1)
        || !caught_up(&metrics, to)
        || recently_tried
        || !reachable()
    {
        return;
    }
    let interrupt_sends = leading
        .due
        .entry(group)
        .or_insert_with(Instant::now)
        .elapsed()
        >= SENDS_DRAIN;
    if !interrupt_sends && handoff::sends_in_flight(cluster, shard) {
        return;
    }
    {
        let Ok(mut b) = busy.lock() else { return };
        if b.len() >= MAX_HANDOFFS || !b.insert(group) {
            return;
        }
    }
    leading.tried.insert(group, Instant::now());
    let cluster = cluster.clone();
    let busy = busy.clone();
    let handle = handle.clone();
    tokio::spawn(async move {
        if let Err(e) = handoff::hand_over(&cluster, shard, &handle, to, interrupt_sends).await {
            tracing::debug!(%group, to, error = %e, "leadership hand-off deferred");
        }
        if let Ok(mut b) = busy.lock() {
            b.remove(&group);
        }
    });
}

/// On the group's leader: add every node of `wanted` as a learner, then make `voters` the voter
/// set once they are caught up. Runs as its own task; one at a time per group.
fn reconcile(
    cluster: &Cluster,
    busy: &Busy,
    group: GroupId,
    handle: GroupHandle,
    voters: BTreeSet<u64>,
    wanted: &[u64],
) {
    let metrics = handle.raft.metrics().borrow().clone();
    if metrics.current_leader != Some(cluster.node_id()) {
        return;
    }
    let membership = metrics.membership_config.membership().clone();
    let present: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
    let current_voters: BTreeSet<u64> = membership.voter_ids().collect();
    let missing: Vec<u64> = wanted
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
    if missing.is_empty() && current_voters == voters {
        return;
    }
    if !busy.lock().map(|mut b| b.insert(group)).unwrap_or(false) {
        return;
    }
    let cluster = cluster.clone();
    let busy = busy.clone();
    tokio::spawn(async move {
        let result = change(&cluster, group, &handle, &missing, &voters, &current_voters).await;
        if let Err(e) = result {
            tracing::debug!(%group, error = %e, "placement change deferred");
        }
        if let Ok(mut b) = busy.lock() {
            b.remove(&group);
        }
    });
}

async fn change(
    cluster: &Cluster,
    group: GroupId,
    handle: &GroupHandle,
    missing: &[u64],
    voters: &BTreeSet<u64>,
    current_voters: &BTreeSet<u64>,
) -> Result<(), String> {
    for id in missing {
        let Some(member) = cluster.view().member(*id) else {
            continue;
        };
        handle
            .raft
            .add_learner(*id, BasicNode { addr: member.peer }, false)
            .await
            .map_err(|e| e.to_string())?;
    }
    if voters == current_voters {
        return Ok(());
    }
    let metrics = handle.raft.metrics().borrow().clone();
    let caught_up = voters
        .iter()
        .all(|id| current_voters.contains(id) || caught_up(&metrics, *id));
    if !caught_up {
        return Err("learners still catching up".into());
    }
    handle
        .raft
        .change_membership(voters.clone(), false)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(%group, voters = ?voters, "membership changed");
    Ok(())
}

/// On a group's leader: whether `node` holds the log to within [`CATCH_UP_SLACK`] entries.
fn caught_up(metrics: &RaftMetrics<u64, BasicNode>, node: u64) -> bool {
    let last = metrics.last_log_index.unwrap_or(0);
    handoff::matched(metrics, node).is_some_and(|index| index + CATCH_UP_SLACK >= last)
}
