//! Merges of application values: `GroupBatch::merge` writes an operand without reading the value,
//! and every reader — the same batch, later applies, queries, compaction, snapshots, a restart —
//! sees the storage's merge rule folded over the value in log order.

use std::sync::Arc;

use herald_raft::storage::{keys, GroupBatch, GroupState, RocksStateMachine, StateMachineLogic};
use herald_raft::types::{Entry, GroupId, LogId, Payload};
use herald_raft::{RocksStorage, StorageConfig};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload};
use tokio::io::AsyncWriteExt;

/// Appends the operands: not commutative, so a fold out of order would show.
fn append(existing: Option<&[u8]>, operands: &mut dyn Iterator<Item = &[u8]>) -> Vec<u8> {
    let mut v = existing.unwrap_or_default().to_vec();
    for op in operands {
        v.extend_from_slice(op);
    }
    v
}

/// Payloads are `;`-separated commands: `p k v` put, `d k` delete, `m k v` merge, `g k` get (the
/// value joins the reply), `s` scan everything (`k=v,` pairs join the reply).
struct Script;

impl StateMachineLogic for Script {
    fn apply(&self, state: &mut GroupBatch<'_>, payload: &[u8]) -> Vec<u8> {
        let mut reply = Vec::new();
        for cmd in std::str::from_utf8(payload).unwrap().split(';') {
            let parts: Vec<&str> = cmd.split(' ').collect();
            match parts[..] {
                ["p", k, v] => state.put(k.as_bytes(), v.as_bytes()),
                ["d", k] => state.delete(k.as_bytes()),
                ["m", k, v] => state.merge(k.as_bytes(), v.as_bytes()),
                ["g", k] => reply.extend(state.get(k.as_bytes()).unwrap().unwrap_or(b"-".to_vec())),
                ["s"] => reply.extend(scan_all(&*state)),
                _ => panic!("bad command {cmd}"),
            }
        }
        reply
    }
}

fn scan_all(state: &dyn GroupState) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in state.scan(b"", b"\xff", 100, false).unwrap() {
        out.extend(k);
        out.push(b'=');
        out.extend(v);
        out.push(b',');
    }
    out
}

const GROUP: GroupId = GroupId(3);

fn open(dir: &tempfile::TempDir) -> (Arc<RocksStorage>, RocksStateMachine) {
    let config = StorageConfig {
        merge_rule: append,
        ..StorageConfig::default()
    };
    let storage = RocksStorage::open(dir.path(), config).expect("open");
    let sm = storage.state_machine(GROUP, Arc::new(Script)).expect("sm");
    (storage, sm)
}

/// Applies one entry per payload, from `first` on, and returns the replies as text.
async fn run(sm: &mut RocksStateMachine, first: u64, payloads: &[&str]) -> Vec<String> {
    let entries = payloads.iter().enumerate().map(|(i, p)| Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), first + i as u64),
        payload: EntryPayload::Normal(Payload(p.as_bytes().to_vec())),
    });
    let replies = sm.apply(entries.collect::<Vec<_>>()).await.unwrap();
    replies
        .into_iter()
        .map(|p| String::from_utf8(p.0).unwrap())
        .collect()
}

fn get(storage: &Arc<RocksStorage>, key: &str) -> Option<String> {
    let v = storage.reader(GROUP).get(key.as_bytes()).unwrap();
    v.map(|v| String::from_utf8(v).unwrap())
}

#[tokio::test]
async fn merges_fold_in_log_order_for_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, mut sm) = open(&dir);
    assert!(sm.get_current_snapshot().await.unwrap().is_none());

    // Operands on a missing key, one apply each: RocksDB folds them on read.
    run(&mut sm, 1, &["m a 1"]).await;
    run(&mut sm, 2, &["m a 2"]).await;
    assert_eq!(get(&storage, "a").as_deref(), Some("12"));

    // Inside one batch: merges over a put, over a delete, over merges, over committed state, and
    // reads of each before the batch is written.
    let replies = run(
        &mut sm,
        3,
        &[
            "p b x;m b y;g b",
            "d a;m a z;g a",
            "m c 1;m c 2;g c",
            "m d 1",
            "s",
        ],
    )
    .await;
    assert_eq!(replies[..3], ["xy", "z", "12"]);
    assert_eq!(replies[4], "a=z,b=xy,c=12,d=1,");
    // Pending merges over a committed value, read in the batch by get and scan.
    let replies = run(&mut sm, 8, &["m d 2;m d 3;g d;s"]).await;
    assert_eq!(replies[0], "123a=z,b=xy,c=12,d=123,");
    assert_eq!(get(&storage, "d").as_deref(), Some("123"));
    assert_eq!(
        String::from_utf8(scan_all(&storage.reader(GROUP))).unwrap(),
        "a=z,b=xy,c=12,d=123,"
    );

    // Flushed and compacted: RocksDB folds operands into values with the same rule.
    run(&mut sm, 9, &["m d 4"]).await;
    let cf = storage.db().cf_handle(keys::CF_DATA).unwrap();
    storage.db().flush_cf(cf).unwrap();
    run(&mut sm, 10, &["m d 5"]).await;
    storage.db().flush_cf(cf).unwrap();
    storage
        .db()
        .compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
    run(&mut sm, 11, &["m d 6"]).await;
    assert_eq!(get(&storage, "d").as_deref(), Some("123456"));

    // A snapshot carries folded values, and an installed one reads the same.
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut served = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    let other = tempfile::tempdir().unwrap();
    let (replica_storage, mut replica) = open(&other);
    assert!(replica.get_current_snapshot().await.unwrap().is_none());
    // Received into a file of the replica's own, as openraft streams it.
    let mut received = replica.begin_receiving_snapshot().await.unwrap();
    tokio::io::copy(&mut served.snapshot, &mut received)
        .await
        .unwrap();
    received.shutdown().await.unwrap();
    replica
        .install_snapshot(&served.meta, received)
        .await
        .unwrap();
    assert_eq!(get(&replica_storage, "d").as_deref(), Some("123456"));
    run(&mut replica, 12, &["m d 7"]).await;
    assert_eq!(get(&replica_storage, "d").as_deref(), Some("1234567"));

    // After a restart, operands still in the WAL fold the same way.
    run(&mut sm, 12, &["m d 7;m e 1"]).await;
    storage.db().flush_wal(true).unwrap();
    drop(sm);
    drop(storage);
    let (storage, _sm) = open(&dir);
    assert_eq!(get(&storage, "d").as_deref(), Some("1234567"));
    assert_eq!(get(&storage, "e").as_deref(), Some("1"));
}
