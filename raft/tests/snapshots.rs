//! Snapshots of a group are its RocksDB state: building one records only that it exists, and the
//! snapshot served to a replica is cut from the state as it is then, data and meta agreeing.

use std::io::SeekFrom;
use std::sync::Arc;

use herald_raft::storage::{
    keys, GroupBatch, GroupReader, GroupState, RocksStateMachine, StateMachineLogic,
};
use herald_raft::types::{Entry, GroupId, LogId, Payload, Snapshot};
use herald_raft::{RocksStorage, StorageConfig};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, Membership};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

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

/// All the bytes of a snapshot's data, from its start.
async fn bytes(snapshot: &mut Snapshot) -> Vec<u8> {
    snapshot.snapshot.seek(SeekFrom::Start(0)).await.unwrap();
    let mut out = Vec::new();
    snapshot.snapshot.read_to_end(&mut out).await.unwrap();
    out
}

/// A fresh replica (after openraft's start-up read) with `served` received in chunks, as openraft
/// streams it, and installed; and its reader.
async fn install_elsewhere(
    mut served: Snapshot,
) -> (tempfile::TempDir, RocksStateMachine, GroupReader) {
    let dir = tempfile::tempdir().unwrap();
    let (storage, mut replica) = open(&dir);
    assert!(replica.get_current_snapshot().await.unwrap().is_none());
    let body = bytes(&mut served).await;
    let mut received = replica.begin_receiving_snapshot().await.unwrap();
    for (i, chunk) in body.chunks(1000).enumerate() {
        received
            .seek(SeekFrom::Start(i as u64 * 1000))
            .await
            .unwrap();
        received.write_all(chunk).await.unwrap();
    }
    received.shutdown().await.unwrap();
    replica
        .install_snapshot(&served.meta, received)
        .await
        .unwrap();
    let reader = storage.reader(GROUP);
    (dir, replica, reader)
}

/// Files in the snapshot directory of the storage at `dir`.
fn snapshot_files(dir: &tempfile::TempDir) -> Vec<String> {
    std::fs::read_dir(dir.path().join("herald-snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
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
    let mut first = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(first.meta.last_log_id, Some(log_id(2)));

    // A replica that failed to receive it asks again: the same cut, not the newer state. It is
    // still valid: the log is only purged up to the mark it was cut under.
    sm.apply([normal(3, b"c")]).await.unwrap();
    let mut again = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(again.meta, first.meta);
    assert_eq!(bytes(&mut again).await, bytes(&mut first).await);
    // One file for the kept cut, read through a handle per sender.
    assert_eq!(snapshot_files(&dir).len(), 1, "{:?}", snapshot_files(&dir));

    // A newer snapshot mark (the log may now be purged further) means a fresh cut.
    build(&mut sm).await;
    let fresh = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(fresh.meta.last_log_id, Some(log_id(3)));
    // The replaced cut's file is gone with it.
    assert_eq!(snapshot_files(&dir).len(), 1, "{:?}", snapshot_files(&dir));
    let (replica_dir, _replica, reader) = install_elsewhere(fresh).await;
    for key in [&b"a"[..], b"b", b"c"] {
        assert_eq!(reader.get(key).unwrap().as_deref(), Some(key));
    }
    // The received file is removed once installed.
    assert!(snapshot_files(&replica_dir).is_empty());
}

#[tokio::test]
async fn snapshot_files_left_by_an_earlier_process_are_removed_when_the_group_opens() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let leftovers = dir.path().join("herald-snapshots");
    std::fs::write(leftovers.join(format!("g{}-recv-1", GROUP.0)), b"partial").unwrap();
    std::fs::write(leftovers.join(format!("g{}-cut-2", GROUP.0)), b"old cut").unwrap();
    // Another group's files are that group's business.
    std::fs::write(leftovers.join("g8-recv-3"), b"other").unwrap();
    drop(open(&dir));
    assert_eq!(snapshot_files(&dir), vec!["g8-recv-3".to_owned()]);
}
