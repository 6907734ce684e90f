//! Two in-process `RaftNode`s over real QUIC and RocksDB: a late replica is brought up to date by a
//! snapshot streamed in chunks, because the leader purged the log behind its snapshots.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald_raft::storage::{GroupBatch, GroupState, StateMachineLogic};
use herald_raft::transport::ClusterCa;
use herald_raft::{GroupId, Payload, RaftNode, RaftTiming, RocksStorage, StorageConfig};
use openraft::storage::RaftLogStorage;
use openraft::BasicNode;

/// Stores each payload under itself.
struct Echo;

impl StateMachineLogic for Echo {
    fn apply(&self, state: &mut GroupBatch<'_>, payload: &[u8]) -> Vec<u8> {
        state.put(payload, payload);
        payload.to_vec()
    }
}

async fn node(ca: &ClusterCa, id: u64, dir: &std::path::Path) -> RaftNode {
    // After an in-process shutdown openraft's tasks release their storage handles a moment later,
    // and RocksDB's LOCK with them: wait for it (a restarted process never has to).
    let path = dir.join(format!("n{id}"));
    let mut attempts = 0;
    let storage = loop {
        match RocksStorage::open(&path, StorageConfig::default()) {
            Ok(s) => break s,
            Err(_) if attempts < 100 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("open {}: {e}", path.display()),
        }
    };
    let timing = RaftTiming {
        heartbeat_ms: 100,
        election_min_ms: 400,
        election_max_ms: 800,
        snapshot_every: 100,
        keep_after_snapshot: 10,
        // ~20 KB of state: many chunks.
        snapshot_chunk_bytes: 1024,
        ..RaftTiming::default()
    };
    let identity = ca.issue(id).unwrap();
    RaftNode::start(
        id,
        storage,
        "127.0.0.1:0".parse().unwrap(),
        &identity,
        timing,
    )
    .await
    .unwrap()
}

/// Nodes 1 and 2 with data under the returned directory (keep it alive).
async fn two_nodes() -> (tempfile::TempDir, RaftNode, RaftNode) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::generate().unwrap();
    let n1 = node(&ca, 1, dir.path()).await;
    let n2 = node(&ca, 2, dir.path()).await;
    (dir, n1, n2)
}

/// How `node` is named in a group's membership.
fn member(node: &RaftNode) -> BasicNode {
    BasicNode {
        addr: node.peer_addr().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_replica_catches_up_from_a_chunked_snapshot() {
    let (_dir, n1, n2) = two_nodes().await;
    let group = GroupId::shard(3);

    let g1 = n1.open_group(group, Arc::new(Echo)).await.unwrap();
    let members = BTreeMap::from([(1, member(&n1))]);
    g1.raft.initialize(members).await.unwrap();
    g1.raft
        .wait(Some(Duration::from_secs(10)))
        .current_leader(1, "leader")
        .await
        .unwrap();

    for i in 0..1000u32 {
        let key = format!("key-{i:05}");
        let reply = g1
            .raft
            .client_write(Payload(key.clone().into_bytes()))
            .await
            .unwrap();
        assert_eq!(reply.data.0, key.as_bytes());
    }
    // The leader snapshots and purges its log in the background: a new replica then cannot be fed
    // from the log alone.
    let mut purged = None;
    for _ in 0..100 {
        let state = n1.storage().log_store(group).get_log_state().await.unwrap();
        purged = state.last_purged_log_id;
        if purged.is_some_and(|p| p.index > 500) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        purged.is_some_and(|p| p.index > 500),
        "log was not purged: {purged:?}"
    );

    let g2 = n2.open_group(group, Arc::new(Echo)).await.unwrap();
    g1.raft.add_learner(2, member(&n2), true).await.unwrap();
    let last = g1.raft.metrics().borrow().last_applied.unwrap().index;
    g2.raft
        .wait(Some(Duration::from_secs(20)))
        .applied_index_at_least(Some(last), "learner caught up")
        .await
        .unwrap();
    let snapshot = g2.raft.metrics().borrow().snapshot;
    assert!(
        snapshot.is_some(),
        "the learner caught up without installing a snapshot"
    );

    let rows = g2.reader.scan(b"key-", b"key.", usize::MAX, false).unwrap();
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[0].0, b"key-00000");
    assert_eq!(rows[999].0, b"key-00999");

    n1.shutdown().await;
    n2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_recovers_its_applied_state_from_disk() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::generate().unwrap();
    let group = GroupId::shard(0);
    {
        let n1 = node(&ca, 1, dir.path()).await;
        let g = n1.open_group(group, Arc::new(Echo)).await.unwrap();
        let members = BTreeMap::from([(1, member(&n1))]);
        g.raft.initialize(members).await.unwrap();
        g.raft
            .wait(Some(Duration::from_secs(10)))
            .current_leader(1, "leader")
            .await
            .unwrap();
        for i in 0..250u32 {
            g.raft
                .client_write(Payload(format!("k{i:04}").into_bytes()))
                .await
                .unwrap();
        }
        n1.shutdown().await;
    }
    let n1 = node(&ca, 1, dir.path()).await;
    assert_eq!(n1.storage().stored_groups().unwrap(), vec![group]);
    let g = n1.open_group(group, Arc::new(Echo)).await.unwrap();
    g.raft
        .wait(Some(Duration::from_secs(10)))
        .current_leader(1, "re-elected")
        .await
        .unwrap();
    g.raft
        .client_write(Payload(b"k9999".to_vec()))
        .await
        .unwrap();
    let rows = g.reader.scan(b"k", b"l", usize::MAX, false).unwrap();
    assert_eq!(rows.len(), 251);
    n1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_groups_keep_their_leaders_on_heartbeats_shared_per_peer() {
    let (_dir, n1, n2) = two_nodes().await;
    let members = BTreeMap::from([(1, member(&n1)), (2, member(&n2))]);
    let mut leaders = Vec::new();
    for shard in 0..16 {
        let group = GroupId::shard(shard);
        let g1 = n1.open_group(group, Arc::new(Echo)).await.unwrap();
        n2.open_group(group, Arc::new(Echo)).await.unwrap();
        g1.raft.initialize(members.clone()).await.unwrap();
        g1.raft
            .wait(Some(Duration::from_secs(10)))
            .current_leader(1, "leader")
            .await
            .unwrap();
        g1.raft.client_write(Payload(b"x".to_vec())).await.unwrap();
        leaders.push(g1);
    }
    let terms: Vec<u64> = leaders
        .iter()
        .map(|g| g.raft.metrics().borrow().current_term)
        .collect();
    let before = n1.heartbeats_sent();
    // Ten heartbeat intervals, more than twice the longest election timeout: a follower that
    // missed its heartbeats would have started an election.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (heartbeats, messages) = n1.heartbeats_sent();
    let (heartbeats, messages) = (heartbeats - before.0, messages - before.1);
    for (shard, (g, term)) in leaders.iter().zip(terms).enumerate() {
        let m = g.raft.metrics().borrow().clone();
        assert_eq!(m.current_term, term, "shard {shard} held an election");
        assert_eq!(m.current_leader, Some(1));
    }
    // 16 groups, all with node 2 as follower, their timers spread over the interval: a message
    // carries the heartbeats due within the batching window (without batching: one each).
    assert!(heartbeats >= 48, "{heartbeats} heartbeats in 1 s");
    assert!(
        messages * 3 <= heartbeats * 2,
        "{heartbeats} heartbeats in {messages} messages"
    );

    n1.shutdown().await;
    n2.shutdown().await;
}
