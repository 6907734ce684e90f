//! Installing a received snapshot: replace a group's state with the rows of a snapshot file, in
//! bounded batches, so that a replica never holds a large group's state in memory, and so that a
//! crash part-way through is finished at the next start instead of leaving half a state.
//!
//! ```text
//!   verify the file (framing, row count)        nothing changed yet: a bad file is refused and removed
//!   batch 0: delete the group's rows, put INSTALLING = (meta, file path)
//!   batches 1..n: the file's rows, at most INSTALL_BATCH_BYTES each
//!   last batch: last_applied, membership, snapshot mark, delete INSTALLING; sync the WAL
//!   remove the file
//! ```
//!
//! While the INSTALLING row exists the group's rows are incomplete and its `last_applied` is stale;
//! [`resume`] (called when the group's state machine opens) runs the install again from the file,
//! which is kept until the end is on disk. A file small enough for one batch (a meta group of usual
//! size, a small shard) is installed in a single atomic batch without the marker.

use std::path::Path;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::snapshot_file::Reader;
use super::state_machine::{put_applied, put_snapshot_mark};
use super::{decode, encode, keys, RocksStorage};
use crate::error::{Error, Result};
use crate::types::{GroupId, SnapshotMeta};

/// Most bytes of keys and values written in one batch of an install.
const INSTALL_BATCH_BYTES: usize = 32 << 20;

/// The INSTALLING row: what was being installed, and from which file of the snapshot directory
/// (a name, not a path, so that a data directory moved elsewhere still finds it).
#[derive(Serialize, Deserialize)]
struct Installing {
    meta: SnapshotMeta,
    file: String,
}

/// Install a received snapshot file: check it whole first, so that a bad file changes nothing and
/// is removed; then [`install`].
pub(super) fn install_received(
    storage: &RocksStorage,
    group: GroupId,
    meta: &SnapshotMeta,
    path: &Path,
) -> Result<()> {
    if let Err(e) = Reader::open(path).and_then(Reader::verify) {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    install(storage, group, meta, path, INSTALL_BATCH_BYTES)
}

/// Replace `group`'s state with the snapshot at `path` (already verified) taken at `meta`, then
/// remove the file.
fn install(
    storage: &RocksStorage,
    group: GroupId,
    meta: &SnapshotMeta,
    path: &Path,
    batch_bytes: usize,
) -> Result<()> {
    let mut rows = Reader::open(path)?;
    let first = rows.next_batch(batch_bytes)?.unwrap_or_default();
    let mut batch = WriteBatch::default();
    delete_rows(storage, group, &mut batch);
    put_rows(storage, group, &mut batch, &first);
    let mut next = rows.next_batch(batch_bytes)?;
    if next.is_some() {
        // More than one batch: mark the install as under way in the first.
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Codec(format!("snapshot file {} has no name", path.display())))?;
        let marker = Installing {
            meta: meta.clone(),
            file,
        };
        batch.put_cf(
            storage.cf(keys::CF_RAFT_STATE),
            installing_key(group),
            encode(&marker)?,
        );
        storage.db().write(std::mem::take(&mut batch))?;
        while let Some(chunk) = next {
            put_rows(storage, group, &mut batch, &chunk);
            storage.db().write(std::mem::take(&mut batch))?;
            next = rows.next_batch(batch_bytes)?;
        }
    }
    put_applied(
        storage,
        group,
        &mut batch,
        &meta.last_log_id,
        Some(&meta.last_membership),
    )?;
    put_snapshot_mark(storage, group, &mut batch, meta)?;
    batch.delete_cf(storage.cf(keys::CF_RAFT_STATE), installing_key(group));
    storage.db().write(batch)?;
    // The file is the only copy of the rows until the end of the install is on disk.
    storage.db().flush_wal(true)?;
    std::fs::remove_file(path)?;
    Ok(())
}

/// Finish an install that a crash interrupted, if `group` has one. Returns whether it did.
pub(super) fn resume(storage: &RocksStorage, group: GroupId) -> Result<bool> {
    let raw = storage
        .db()
        .get_cf(storage.cf(keys::CF_RAFT_STATE), installing_key(group))?;
    let Some(raw) = raw else {
        return Ok(false);
    };
    let marker: Installing = decode(&raw)?;
    let path = storage.snapshot_dir().join(&marker.file);
    if !path.exists() {
        return Err(Error::Codec(format!(
            "group {}: a snapshot install was interrupted and its file {} is gone; \
             the group's state is incomplete and cannot be rebuilt in place: replace this node",
            group.0,
            path.display()
        )));
    }
    // Verified before the marker was written; a file damaged since is refused, and kept.
    Reader::open(&path)?.verify()?;
    install(storage, group, &marker.meta, &path, INSTALL_BATCH_BYTES)?;
    tracing::info!(
        group = group.0,
        "finished a snapshot install interrupted by a restart"
    );
    Ok(true)
}

fn installing_key(group: GroupId) -> [u8; 5] {
    keys::state_key(group, keys::STATE_SM_INSTALLING)
}

fn delete_rows(storage: &RocksStorage, group: GroupId, batch: &mut WriteBatch) {
    batch.delete_range_cf(
        storage.cf(keys::state_cf(group)),
        &keys::group_prefix(group)[..],
        &keys::group_end(group)[..],
    );
}

fn put_rows(
    storage: &RocksStorage,
    group: GroupId,
    batch: &mut WriteBatch,
    rows: &[(Vec<u8>, Vec<u8>)],
) {
    let cf = storage.cf(keys::state_cf(group));
    for (k, v) in rows {
        batch.put_cf(cf, keys::data_key(group, k), v);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::storage::snapshot_file::{self, Rows};
    use crate::storage::{GroupState, StorageConfig};
    use crate::types::{LogId, StoredMembership};
    use openraft::{CommittedLeaderId, Membership};

    const GROUP: GroupId = GroupId(5);

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), index)),
            last_membership: StoredMembership::new(
                Some(LogId::new(CommittedLeaderId::new(1, 1), 1)),
                Membership::new(vec![[1u64].into()], None),
            ),
            snapshot_id: format!("s{index}"),
        }
    }

    fn rows(n: usize) -> Rows {
        (0..n)
            .map(|i| (format!("row{i:05}").into_bytes(), vec![b'v'; 100]))
            .collect()
    }

    /// A storage whose group holds `old`, and a snapshot file of `rows` in its snapshot directory.
    fn setup(
        dir: &tempfile::TempDir,
        rows: &[(Vec<u8>, Vec<u8>)],
    ) -> (std::sync::Arc<RocksStorage>, PathBuf) {
        let storage = RocksStorage::open(dir.path(), StorageConfig::default()).unwrap();
        let mut batch = WriteBatch::default();
        put_rows(
            &storage,
            GROUP,
            &mut batch,
            &[(b"old".to_vec(), b"1".to_vec())],
        );
        storage.db().write(batch).unwrap();
        let path = storage.snapshot_path(GROUP, "recv");
        snapshot_file::write(&path, rows.iter().map(|(k, v)| Ok((k, v)))).unwrap();
        (storage, path)
    }

    fn state(storage: &std::sync::Arc<RocksStorage>) -> Rows {
        storage
            .reader(GROUP)
            .scan(b"", b"\xff", usize::MAX, false)
            .unwrap()
    }

    fn applied(storage: &RocksStorage) -> Option<LogId> {
        storage
            .db()
            .get_cf(
                storage.cf(keys::CF_RAFT_STATE),
                keys::state_key(GROUP, keys::STATE_SM_APPLIED),
            )
            .unwrap()
            .map(|b| decode(&b).unwrap())
            .unwrap_or_default()
    }

    fn marker(storage: &RocksStorage) -> Option<Vec<u8>> {
        storage
            .db()
            .get_cf(storage.cf(keys::CF_RAFT_STATE), installing_key(GROUP))
            .unwrap()
    }

    #[test]
    fn an_install_in_many_batches_replaces_the_state_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, path) = setup(&dir, &rows(500));
        install(&storage, GROUP, &meta(40), &path, 1000).unwrap();
        assert_eq!(
            state(&storage),
            rows(500),
            "the old row is gone, every new one is there"
        );
        assert_eq!(applied(&storage), meta(40).last_log_id);
        assert_eq!(marker(&storage), None);
        assert!(!path.exists());
    }

    #[test]
    fn a_bad_file_is_refused_and_removed_before_anything_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, path) = setup(&dir, &rows(50));
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        assert!(install_received(&storage, GROUP, &meta(40), &path).is_err());
        assert_eq!(state(&storage), vec![(b"old".to_vec(), b"1".to_vec())]);
        assert_eq!(applied(&storage), None);
        assert_eq!(marker(&storage), None);
        assert!(!path.exists(), "a refused file is removed");
    }

    #[test]
    fn an_install_cut_short_by_a_crash_is_finished_when_the_group_opens_again_even_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, path) = setup(&dir, &rows(300));
        // The state a crash after the first two batches leaves: old rows deleted, the marker
        // written, some of the new rows in.
        let mut batch = WriteBatch::default();
        delete_rows(&storage, GROUP, &mut batch);
        let m = Installing {
            meta: meta(40),
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
        };
        let cf = storage.cf(keys::CF_RAFT_STATE);
        batch.put_cf(cf, installing_key(GROUP), encode(&m).unwrap());
        storage.db().write(batch).unwrap();
        let mut batch = WriteBatch::default();
        put_rows(&storage, GROUP, &mut batch, &rows(300)[..120]);
        storage.db().write(batch).unwrap();
        storage.db().flush_wal(true).unwrap();
        drop(storage);

        // The data directory moves (a restore elsewhere): the marker names the file, not its path.
        let moved = tempfile::tempdir().unwrap();
        let moved_db = moved.path().join("db");
        std::fs::rename(dir.path(), &moved_db).unwrap();
        let path = moved_db.join(path.strip_prefix(dir.path()).unwrap());
        let storage = RocksStorage::open(&moved_db, StorageConfig::default()).unwrap();
        // Opening the group's state machine resumes the install.
        let sm = storage
            .state_machine(GROUP, std::sync::Arc::new(Blank))
            .unwrap();
        drop(sm);
        assert_eq!(state(&storage), rows(300));
        assert_eq!(applied(&storage), meta(40).last_log_id);
        assert_eq!(marker(&storage), None);
        assert!(!path.exists());
        // Nothing to resume the next time.
        assert!(!resume(&storage, GROUP).unwrap());
    }

    #[test]
    fn an_interrupted_install_without_its_file_is_reported_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, path) = setup(&dir, &rows(10));
        let m = Installing {
            meta: meta(40),
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
        };
        let mut batch = WriteBatch::default();
        let cf = storage.cf(keys::CF_RAFT_STATE);
        batch.put_cf(cf, installing_key(GROUP), encode(&m).unwrap());
        storage.db().write(batch).unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = resume(&storage, GROUP).unwrap_err().to_string();
        assert!(
            e.contains("interrupted") && e.contains("replace this node"),
            "{e}"
        );
    }

    struct Blank;

    impl crate::storage::StateMachineLogic for Blank {
        fn apply(&self, _: &mut crate::storage::GroupBatch<'_>, _: &[u8]) -> Vec<u8> {
            Vec::new()
        }
    }
}
