//! Snapshots of a group are its RocksDB state: building one records only that it exists, and the
//! snapshot served to a replica is cut from the state as it is then, data and meta agreeing.

use std::sync::Arc;

use herald_raft::storage::{
    keys, GroupBatch, GroupReader, GroupState, RocksStateMachine, StateMachineLogic,
};
use herald_raft::types::{Entry, GroupId, LogId, Payload, Snapshot};
use herald_raft::{RocksStorage, StorageConfig};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, Membership};

/// Stores each payload under itself.
struct Echo;

impl StateMachineLogic for Echo {
    fn apply(&self, state: &mut GroupBatch<'_>, payload: &[u8]) -> Vec<u8> {
        state.put(payload, payload);
        Vec::new()
    }
}

const GROUP: GroupId = GroupId(7);

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn normal(index: u64, payload: &[u8]) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Payload(payload.to_vec())),
    }
}

fn open(dir: &tempfile::TempDir) -> (Arc<RocksStorage>, RocksStateMachine) {
    let storage = RocksStorage::open(dir.path(), StorageConfig::default()).expect("open");
    let sm = storage.state_machine(GROUP, Arc::new(Echo)).expect("sm");
    (storage, sm)
}

async fn build(sm: &mut RocksStateMachine) -> Snapshot {
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

/// A group past openraft's start-up read, with entries "a" and "b" applied and a snapshot built.
async fn snapshotted(dir: &tempfile::TempDir) -> (Arc<RocksStorage>, RocksStateMachine) {
    let (storage, mut sm) = open(dir);
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
    sm.apply([normal(1, b"a"), normal(2, b"b")]).await.unwrap();
    build(&mut sm).await;
    (storage, sm)
}

/// A fresh replica (after openraft's start-up read) with `served` installed, and its reader.
async fn install_elsewhere(
    served: Snapshot,
) -> (tempfile::TempDir, RocksStateMachine, GroupReader) {
    let dir = tempfile::tempdir().unwrap();
    let (storage, mut replica) = open(&dir);
    assert!(replica.get_current_snapshot().await.unwrap().is_none());
    replica
        .install_snapshot(&served.meta, served.snapshot)
        .await
        .unwrap();
    let reader = storage.reader(GROUP);
    (dir, replica, reader)
}

#[tokio::test]
async fn a_snapshot_is_cut_from_the_state_at_the_time_it_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, mut sm) = open(&dir);
    // openraft's start-up read.
    assert!(sm.get_current_snapshot().await.unwrap().is_none());

    let membership = Entry {
        log_id: log_id(1),
        payload: EntryPayload::Membership(Membership::new(vec![[1u64].into()], None)),
    };
    sm.apply([membership, normal(2, b"a")]).await.unwrap();
    // A big value: building the snapshot must not copy it anywhere.
    let big = vec![b'x'; 1 << 20];
    sm.apply([normal(3, &big)]).await.unwrap();

    let built = build(&mut sm).await;
    assert_eq!(built.meta.last_log_id, Some(log_id(3)));
    let mark = storage
        .db()
        .get_cf(
            storage.db().cf_handle(keys::CF_RAFT_STATE).unwrap(),
            keys::state_key(GROUP, keys::STATE_SNAPSHOT),
        )
        .unwrap()
        .expect("the snapshot is recorded");
    assert!(
        mark.len() < 1024,
        "building copied the state ({} bytes)",
        mark.len()
    );

    // Entries applied after the build are in the snapshot served later, with a meta that says so.
    sm.apply([normal(4, b"b")]).await.unwrap();
    let served = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(served.meta.last_log_id, Some(log_id(4)));
    assert_eq!(served.meta.last_membership.log_id(), &Some(log_id(1)));
    let served_meta = served.meta.clone();

    // Installed elsewhere, it reproduces the state and the applied position.
    let (_dir, mut replica, reader) = install_elsewhere(served).await;
    let (applied, membership) = replica.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(4)));
    assert_eq!(membership.log_id(), &Some(log_id(1)));
    for key in [&b"a"[..], &big[..], b"b"] {
        assert_eq!(reader.get(key).unwrap().as_deref(), Some(key));
    }
    let again = replica
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("installed");
    assert_eq!(again.meta, served_meta);
}

#[tokio::test]
async fn a_restarted_group_answers_the_start_up_read_without_cutting_and_serves_later() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_storage, mut sm) = snapshotted(&dir).await;
        sm.apply([normal(3, b"c")]).await.unwrap();
    }
    let (_storage, mut sm) = open(&dir);
    // Start-up: `None`, so openraft rebuilds (a marker write) instead of reading every key.
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
    let rebuilt = build(&mut sm).await;
    assert_eq!(rebuilt.meta.last_log_id, Some(log_id(3)));
    let served = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(served.meta, rebuilt.meta);
    let (_dir, _replica, reader) = install_elsewhere(served).await;
    for key in [&b"a"[..], b"b", b"c"] {
        assert_eq!(reader.get(key).unwrap().as_deref(), Some(key));
    }
}

#[tokio::test]
async fn a_kept_cut_is_served_again_until_a_newer_snapshot_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let (_storage, mut sm) = snapshotted(&dir).await;
    let first = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(first.meta.last_log_id, Some(log_id(2)));

    // A replica that failed to receive it asks again: the same cut, not the newer state. It is
    // still valid: the log is only purged up to the mark it was cut under.
    sm.apply([normal(3, b"c")]).await.unwrap();
    let again = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(again.meta, first.meta);
    assert_eq!(again.snapshot.bytes(), first.snapshot.bytes());

    // A newer snapshot mark (the log may now be purged further) means a fresh cut.
    build(&mut sm).await;
    let fresh = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(fresh.meta.last_log_id, Some(log_id(3)));
    let (_dir, _replica, reader) = install_elsewhere(fresh).await;
    for key in [&b"a"[..], b"b", b"c"] {
        assert_eq!(reader.get(key).unwrap().as_deref(), Some(key));
    }
}
