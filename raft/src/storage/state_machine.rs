//! [`RocksStateMachine`]: openraft's `RaftStateMachine` for one group. It owns the bookkeeping
//! (last applied log id, membership, snapshots) and hands each application payload to a
//! [`StateMachineLogic`], which reads and writes the group's keys through a [`GroupBatch`].
//!
//! # Correctness
//! - Apply is deterministic as long as the logic is: the logic sees only the payload and the group's
//!   applied state, never a clock or RNG (time travels inside payloads, stamped by the leader).
//! - All writes of one `apply` call (data, `last_applied`, membership) go into one atomic RocksDB
//!   write batch, so a crash leaves either all of them or none; the log is re-applied from
//!   `last_applied`.
//! - The group's state in RocksDB *is* its snapshot: building one only records that it exists (so
//!   openraft may purge the log), and `get_current_snapshot` cuts the data, `last_applied` and
//!   membership from one RocksDB snapshot, so they agree. Nothing copies the whole state except
//!   sending it to a replica that needs it.
//! - A cut is written to a file in the node's snapshot directory, row by row, never held in
//!   memory. It is kept and handed to every sender until the group builds a newer snapshot or
//!   [`CUT_REUSE`] passes: a replica that keeps failing to receive it (a node that is down; its
//!   leader retries about twice a second) costs an `open` per attempt instead of a walk of the
//!   whole state, during which this group's applies wait. A kept cut is always valid: its
//!   `last_log_id` is at or after the snapshot mark it was cut under, and the log is only purged
//!   up to a mark.
//! - A received snapshot goes to a file too, and is installed from it in bounded batches; a crash
//!   part-way is finished when the group opens again (`install`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogId, StorageIOError};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use super::snapshot_data::SnapshotFile;
use super::{decode, encode, install, keys, snapshot_file, MergeRule, RocksStorage, SnapshotData};
use crate::error::{Error, Result};
use crate::types::{
    Entry, GroupId, LogId, Payload, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};

/// The application's part of a state machine.
pub trait StateMachineLogic: Send + Sync + 'static {
    /// Apply one committed payload to the group's state and return the reply for the proposer.
    /// Must be deterministic: the same payload on the same state yields the same writes and reply.
    fn apply(&self, state: &mut GroupBatch<'_>, payload: &[u8]) -> Vec<u8>;

    /// Called after the writes of the payloads applied since the last call are visible to
    /// readers ([`GroupReader`]): the place to tell local watchers about what changed, so that
    /// what they then read includes it. Not called for state installed from a snapshot.
    fn after_write(&self) {}
}

fn sm_err(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(
        ErrorSubject::StateMachine,
        verb,
        openraft::AnyError::error(e.to_string()),
    )
    .into()
}

fn snap_err(meta: Option<&SnapshotMeta>, verb: ErrorVerb, e: impl ToString) -> StorageError {
    let subject = match meta {
        Some(m) => ErrorSubject::Snapshot(Some(m.signature())),
        None => ErrorSubject::Snapshot(None),
    };
    StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

/// A write of the current batch, not yet in RocksDB.
#[derive(Debug)]
enum Pending {
    Put(Vec<u8>),
    Delete,
    /// Operands to fold, in order, over whatever value the key has in RocksDB.
    Merge(Vec<Vec<u8>>),
}

impl Pending {
    /// The value a reader sees: `committed` (RocksDB's value) with this write on top.
    fn resolve(&self, rule: MergeRule, committed: Option<&[u8]>) -> Option<Vec<u8>> {
        match self {
            Pending::Put(v) => Some(v.clone()),
            Pending::Delete => None,
            Pending::Merge(ops) => Some(rule(committed, &mut ops.iter().map(Vec::as_slice))),
        }
    }
}

type Overlay = BTreeMap<Vec<u8>, Pending>;
type OverlayIter<'a> = Box<dyn Iterator<Item = (&'a Vec<u8>, &'a Pending)> + 'a>;

/// Ordered scan over `[start, end)` of a group's application keys, merging committed state with an
/// overlay of uncommitted writes. Keys are returned without the group prefix.
fn merged_scan(
    storage: &RocksStorage,
    group: GroupId,
    overlay: &Overlay,
    start: &[u8],
    end: &[u8],
    limit: usize,
    reverse: bool,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    if limit == 0 || start >= end {
        return Ok(out);
    }
    let cf = storage.cf(keys::state_cf(group));
    let (lo, hi) = (keys::data_key(group, start), keys::data_key(group, end));
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(lo.clone());
    opts.set_iterate_upper_bound(hi.clone());
    let mode = if reverse {
        IteratorMode::End
    } else {
        IteratorMode::From(&lo, Direction::Forward)
    };
    let mut db_iter = storage.db().iterator_cf_opt(cf, opts, mode).peekable();
    let range = overlay.range::<[u8], _>((
        std::ops::Bound::Included(start),
        std::ops::Bound::Excluded(end),
    ));
    let mut ov: OverlayIter<'_> = if reverse {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    let mut ov_next = ov.next();
    let mut db_next = match db_iter.next() {
        Some(item) => Some(item?),
        None => None,
    };
    while out.len() < limit {
        // Which side comes next in scan order; on a tie the overlay shadows (or merges onto) the
        // committed value.
        let (take_overlay, tie) = match (&db_next, &ov_next) {
            (None, None) => break,
            (Some(_), None) => (false, false),
            (None, Some(_)) => (true, false),
            (Some((dk, _)), Some((ok, _))) => match keys::strip_group(dk).cmp(ok.as_slice()) {
                std::cmp::Ordering::Equal => (true, true),
                std::cmp::Ordering::Less => (reverse, false),
                std::cmp::Ordering::Greater => (!reverse, false),
            },
        };
        if take_overlay {
            let committed = if tie {
                let shadowed = db_next.take().map(|(_, v)| v);
                db_next = match db_iter.next() {
                    Some(item) => Some(item?),
                    None => None,
                };
                shadowed
            } else {
                None
            };
            if let Some((k, pending)) = ov_next.take() {
                if let Some(v) = pending.resolve(storage.merge_rule(), committed.as_deref()) {
                    out.push((k.clone(), v));
                }
            }
            ov_next = ov.next();
        } else if let Some((k, v)) = db_next.take() {
            out.push((keys::strip_group(&k).to_vec(), v.to_vec()));
            db_next = match db_iter.next() {
                Some(item) => Some(item?),
                None => None,
            };
        }
    }
    Ok(out)
}

/// A group's committed value for `key`.
fn committed_get(storage: &RocksStorage, group: GroupId, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let cf = storage.cf(keys::state_cf(group));
    Ok(storage.db().get_cf(cf, keys::data_key(group, key))?)
}

/// Reads of one group's application keys (without the group prefix), whether during `apply`
/// ([`GroupBatch`]) or afterwards ([`GroupReader`]).
pub trait GroupState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Keys in `[start, end)`, ascending (or descending with `reverse`), at most `limit`.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// The application's view of a group during `apply`: reads see committed state plus this batch's own
/// writes; writes are buffered and committed atomically with `last_applied`.
pub struct GroupBatch<'a> {
    storage: &'a RocksStorage,
    group: GroupId,
    overlay: Overlay,
}

impl<'a> GroupBatch<'a> {
    fn new(storage: &'a RocksStorage, group: GroupId) -> Self {
        GroupBatch {
            storage,
            group,
            overlay: BTreeMap::new(),
        }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.overlay
            .insert(key.to_vec(), Pending::Put(value.to_vec()));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.overlay.insert(key.to_vec(), Pending::Delete);
    }

    /// Fold `operand` into the key's value with the storage's [`MergeRule`], without reading it:
    /// RocksDB folds it on read or during compaction. A value this batch already wrote is folded
    /// here and stays a put.
    pub fn merge(&mut self, key: &[u8], operand: &[u8]) {
        let rule = self.storage.merge_rule();
        match self.overlay.get_mut(key) {
            Some(Pending::Put(v)) => *v = rule(Some(v), &mut std::iter::once(operand)),
            Some(p @ Pending::Delete) => {
                *p = Pending::Put(rule(None, &mut std::iter::once(operand)))
            }
            Some(Pending::Merge(ops)) => ops.push(operand.to_vec()),
            None => {
                self.overlay
                    .insert(key.to_vec(), Pending::Merge(vec![operand.to_vec()]));
            }
        }
    }

    fn write_into(self, batch: &mut WriteBatch) {
        let cf = self.storage.cf(keys::state_cf(self.group));
        for (k, pending) in self.overlay {
            let key = keys::data_key(self.group, &k);
            match pending {
                Pending::Put(v) => batch.put_cf(cf, key, v),
                Pending::Delete => batch.delete_cf(cf, key),
                Pending::Merge(ops) => {
                    for op in ops {
                        batch.merge_cf(cf, &key, op);
                    }
                }
            }
        }
    }
}

impl GroupState for GroupBatch<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.overlay.get(key) {
            Some(p) => {
                // Only a merge folds over the committed value; a put or delete hides it.
                let committed = match p {
                    Pending::Merge(_) => committed_get(self.storage, self.group, key)?,
                    _ => None,
                };
                Ok(p.resolve(self.storage.merge_rule(), committed.as_deref()))
            }
            None => committed_get(self.storage, self.group, key),
        }
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        merged_scan(
            self.storage,
            self.group,
            &self.overlay,
            start,
            end,
            limit,
            reverse,
        )
    }
}

/// Read access to a group's applied state (for queries after a linearizable read barrier).
#[derive(Clone)]
pub struct GroupReader {
    storage: Arc<RocksStorage>,
    group: GroupId,
}

impl GroupReader {
    pub(super) fn new(storage: Arc<RocksStorage>, group: GroupId) -> Self {
        GroupReader { storage, group }
    }
}

impl GroupState for GroupReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        committed_get(&self.storage, self.group, key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        merged_scan(
            &self.storage,
            self.group,
            &Overlay::new(),
            start,
            end,
            limit,
            reverse,
        )
    }
}

pub struct RocksStateMachine {
    storage: Arc<RocksStorage>,
    group: GroupId,
    logic: Arc<dyn StateMachineLogic>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// Whether openraft's start-up read of the current snapshot has been answered (see
    /// `get_current_snapshot`).
    started: bool,
    /// The last cut, handed to every sender while it is valid (module docs).
    cut: Option<Cut>,
}

/// How long a cut is handed out before the next request cuts afresh. The first apply after that
/// frees it.
const CUT_REUSE: Duration = Duration::from_secs(30);

/// A cut of the group's state and the snapshot mark it was cut under.
struct Cut {
    mark: Vec<u8>,
    at: Instant,
    meta: SnapshotMeta,
    /// Removed when the cut is dropped; senders still reading it keep their handles.
    file: SnapshotFile,
}

impl Cut {
    /// The cut for one sender, reading the file through a handle of its own.
    fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(SnapshotData::open(self.file.path())?),
        })
    }
}

/// A row key without its group prefix, as a snapshot file holds it.
struct AppKey(Box<[u8]>);

impl AsRef<[u8]> for AppKey {
    fn as_ref(&self) -> &[u8] {
        keys::strip_group(&self.0)
    }
}

impl RocksStateMachine {
    pub(super) fn open(
        storage: Arc<RocksStorage>,
        group: GroupId,
        logic: Arc<dyn StateMachineLogic>,
    ) -> Result<Self> {
        install::resume(&storage, group)?;
        storage.remove_snapshot_files(group)?;
        let meta = snapshot_meta(&storage, group, &storage.db().snapshot())?;
        Ok(RocksStateMachine {
            storage,
            group,
            logic,
            last_applied: meta.last_log_id,
            membership: meta.last_membership,
            started: false,
            cut: None,
        })
    }

    /// Record `last_applied`, and the membership when it changed.
    fn put_bookkeeping(&self, batch: &mut WriteBatch, membership_changed: bool) -> Result<()> {
        put_applied(
            &self.storage,
            self.group,
            batch,
            &self.last_applied,
            membership_changed.then_some(&self.membership),
        )
    }
}

impl RaftStateMachine<TypeConfig> for RocksStateMachine {
    type SnapshotBuilder = RocksSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Payload>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        if self
            .cut
            .as_ref()
            .is_some_and(|c| c.at.elapsed() > CUT_REUSE)
        {
            self.cut = None;
        }
        let storage = self.storage.clone();
        let mut state = GroupBatch::new(&storage, self.group);
        let mut replies = Vec::new();
        let mut membership_changed = false;
        for entry in entries {
            let log_id = *entry.get_log_id();
            match entry.payload {
                EntryPayload::Blank => replies.push(Payload::default()),
                EntryPayload::Normal(p) => {
                    replies.push(Payload(self.logic.apply(&mut state, &p.0)))
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m);
                    membership_changed = true;
                    replies.push(Payload::default());
                }
            }
            self.last_applied = Some(log_id);
        }
        let mut batch = WriteBatch::default();
        state.write_into(&mut batch);
        self.put_bookkeeping(&mut batch, membership_changed)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        storage
            .db()
            .write(batch)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.logic.after_write();
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        RocksSnapshotBuilder {
            storage: self.storage.clone(),
            group: self.group,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        let path = self.storage.snapshot_path(self.group, "recv");
        let data = SnapshotData::create(path)
            .await
            .map_err(|e| snap_err(None, ErrorVerb::Write, e))?;
        Ok(Box::new(data))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        let err = |verb, e: Error| snap_err(Some(meta), verb, e);
        let (storage, group) = (self.storage.clone(), self.group);
        let (file, path) = snapshot
            .into_received(|| storage.snapshot_path(group, "recv"))
            .await
            .map_err(|e| err(ErrorVerb::Write, e.into()))?;
        file.sync_all()
            .await
            .map_err(|e| err(ErrorVerb::Write, e.into()))?;
        drop(file);
        // From here the install owns the file: it stays on disk until the install is (see `install`).
        let path = path.keep();
        // The state it was cut from is gone (and the new mark would not match it anyway).
        self.cut = None;
        // Bounded batches, but a large group still takes a while: keep it off the async workers.
        let at = meta.clone();
        tokio::task::spawn_blocking(move || install::install_received(&storage, group, &at, &path))
            .await
            .map_err(|e| snap_err(Some(meta), ErrorVerb::Write, e))?
            .map_err(|e| err(ErrorVerb::Write, e))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        metrics::counter!(crate::metrics::SNAPSHOTS_INSTALLED).increment(1);
        Ok(())
    }

    /// The first call comes from `Raft::new`, which only wants the meta. It is answered `None`:
    /// openraft then "rebuilds" the snapshot if it purged log (a marker write, see
    /// `build_snapshot`), where cutting would read the group's whole state at every restart. Later
    /// calls (a replica needs the snapshot) cut it.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        if !std::mem::replace(&mut self.started, true) {
            return Ok(None);
        }
        let err = |e: crate::error::Error| snap_err(None, ErrorVerb::Read, e);
        let mark = snapshot_mark(&self.storage, self.group).map_err(err)?;
        let Some(mark) = mark else {
            return Ok(None);
        };
        if let Some(cut) = &self.cut {
            if cut.mark == mark && cut.at.elapsed() <= CUT_REUSE {
                metrics::counter!(crate::metrics::SNAPSHOT_CUTS_REUSED).increment(1);
                return cut.snapshot().map(Some).map_err(err);
            }
        }
        // Reading a whole group blocks: keep it off the async workers (this group's applies wait
        // for it either way; openraft's state machine worker runs one command at a time).
        let (storage, group) = (self.storage.clone(), self.group);
        let cut = tokio::task::spawn_blocking(move || cut_snapshot(&storage, group))
            .await
            .map_err(|e| snap_err(None, ErrorVerb::Read, e))?
            .map_err(err)?;
        let snapshot = cut.as_ref().map(Cut::snapshot).transpose().map_err(err)?;
        self.cut = cut;
        Ok(snapshot)
    }
}

pub struct RocksSnapshotBuilder {
    storage: Arc<RocksStorage>,
    group: GroupId,
}

impl RaftSnapshotBuilder<TypeConfig> for RocksSnapshotBuilder {
    /// Records that a snapshot exists as of the last applied entry, so openraft may purge the log
    /// before it. The returned snapshot carries the meta only (all openraft reads of a built
    /// snapshot): its data is the group's state itself, cut by `get_current_snapshot` when a
    /// replica needs it.
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let err = |e: crate::error::Error| snap_err(None, ErrorVerb::Read, e);
        let view = self.storage.db().snapshot();
        let meta = snapshot_meta(&self.storage, self.group, &view).map_err(err)?;
        drop(view);
        let mut batch = WriteBatch::default();
        put_snapshot_mark(&self.storage, self.group, &mut batch, &meta)
            .map_err(|e| snap_err(Some(&meta), ErrorVerb::Write, e))?;
        self.storage
            .db()
            .write(batch)
            .map_err(|e| snap_err(Some(&meta), ErrorVerb::Write, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::empty()),
        })
    }
}

/// Record `last_applied` of `group`'s state machine, and its membership when given (it changed).
pub(super) fn put_applied(
    storage: &RocksStorage,
    group: GroupId,
    batch: &mut WriteBatch,
    last_applied: &Option<LogId>,
    membership: Option<&StoredMembership>,
) -> Result<()> {
    let cf = storage.cf(keys::CF_RAFT_STATE);
    batch.put_cf(
        cf,
        keys::state_key(group, keys::STATE_SM_APPLIED),
        encode(last_applied)?,
    );
    if let Some(membership) = membership {
        batch.put_cf(
            cf,
            keys::state_key(group, keys::STATE_SM_MEMBERSHIP),
            encode(membership)?,
        );
    }
    Ok(())
}

/// Mark that the group has a snapshot (built or installed). The row holds the meta of that moment,
/// for inspection; the snapshot served later is cut from the state as it is then.
pub(super) fn put_snapshot_mark(
    storage: &RocksStorage,
    group: GroupId,
    batch: &mut WriteBatch,
    meta: &SnapshotMeta,
) -> Result<()> {
    batch.put_cf(
        storage.cf(keys::CF_RAFT_STATE),
        keys::state_key(group, keys::STATE_SNAPSHOT),
        encode(meta)?,
    );
    Ok(())
}

/// The group's current snapshot: `None` until one was built or installed; otherwise the whole
/// application state and the `last_applied` and membership it reflects, all read from one RocksDB
/// snapshot so they agree. Its `last_log_id` is at or after the one built, which is what openraft
/// needs: the log it purged is covered either way.
fn cut_snapshot(storage: &RocksStorage, group: GroupId) -> Result<Option<Cut>> {
    let db = storage.db();
    let view = db.snapshot();
    let mark = view.get_cf(
        storage.cf(keys::CF_RAFT_STATE),
        keys::state_key(group, keys::STATE_SNAPSHOT),
    )?;
    let Some(mark) = mark else {
        return Ok(None);
    };
    let cf = storage.cf(keys::state_cf(group));
    let prefix = keys::group_prefix(group);
    let rows = view
        .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
        .map(|item| item.map_err(Error::from))
        .take_while(|item| item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
        .map(|item| item.map(|(k, v)| (AppKey(k), v)));
    // Owned before it is written, so that a failed write removes it.
    let file = SnapshotFile::new(storage.snapshot_path(group, "cut"));
    snapshot_file::write(file.path(), rows)?;
    let meta = snapshot_meta(storage, group, &view)?;
    metrics::counter!(crate::metrics::SNAPSHOTS_CUT).increment(1);
    Ok(Some(Cut {
        mark,
        at: Instant::now(),
        meta,
        file,
    }))
}

/// The group's snapshot mark as it is now (`None`: no snapshot built or installed yet).
fn snapshot_mark(storage: &RocksStorage, group: GroupId) -> Result<Option<Vec<u8>>> {
    Ok(storage.db().get_cf(
        storage.cf(keys::CF_RAFT_STATE),
        keys::state_key(group, keys::STATE_SNAPSHOT),
    )?)
}

/// The snapshot meta of the state seen by `view` (also the applied state a state machine opens
/// with). Apply is deterministic, so the last applied log id names the content: every cut at that
/// id carries the same state.
fn snapshot_meta(
    storage: &RocksStorage,
    group: GroupId,
    view: &rocksdb::Snapshot<'_>,
) -> Result<SnapshotMeta> {
    let state_cf = storage.cf(keys::CF_RAFT_STATE);
    let last_applied: Option<LogId> =
        match view.get_cf(state_cf, keys::state_key(group, keys::STATE_SM_APPLIED))? {
            Some(b) => decode(&b)?,
            None => None,
        };
    let last_membership: StoredMembership =
        match view.get_cf(state_cf, keys::state_key(group, keys::STATE_SM_MEMBERSHIP))? {
            Some(b) => decode(&b)?,
            None => StoredMembership::default(),
        };
    let snapshot_id = match last_applied {
        Some(l) => format!("{}-{}", l.leader_id, l.index),
        None => "none".to_owned(),
    };
    Ok(SnapshotMeta {
        last_log_id: last_applied,
        last_membership,
        snapshot_id,
    })
}
