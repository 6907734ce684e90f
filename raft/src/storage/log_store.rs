//! [`RocksLogStore`]: openraft's `RaftLogStorage` for one group, on the node's shared RocksDB.

// openraft's trait methods return its (large) `StorageError`; the helpers here return it too.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogId, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use super::{decode, encode, keys, RocksStorage};
use crate::types::{Entry, GroupId, LogId, StorageError, TypeConfig, Vote};

/// One group's Raft log and vote. Clones share the same data (openraft's reader is a clone).
#[derive(Clone)]
pub struct RocksLogStore {
    storage: Arc<RocksStorage>,
    group: GroupId,
    tail: Arc<Mutex<TailCache>>,
}

/// The most recently appended entries, contiguous by index. openraft reads every entry back right
/// after appending it (to replicate and to apply); serving those reads from memory saves a RocksDB
/// iterator and a decode per entry. RocksDB stays the source of truth: a miss reads it.
#[derive(Default)]
struct TailCache {
    entries: VecDeque<Entry>,
}

impl TailCache {
    const CAPACITY: usize = 1024;

    fn push(&mut self, entry: &Entry) {
        let index = entry.get_log_id().index;
        if self
            .entries
            .back()
            .is_some_and(|last| last.get_log_id().index + 1 != index)
        {
            self.entries.clear();
        }
        self.entries.push_back(entry.clone());
        if self.entries.len() > Self::CAPACITY {
            self.entries.pop_front();
        }
    }

    /// Drop entries at and after `index` (log truncation).
    fn truncate(&mut self, index: u64) {
        while self
            .entries
            .back()
            .is_some_and(|e| e.get_log_id().index >= index)
        {
            self.entries.pop_back();
        }
    }

    /// Drop entries up to and including `index` (log purge).
    fn purge(&mut self, index: u64) {
        while self
            .entries
            .front()
            .is_some_and(|e| e.get_log_id().index <= index)
        {
            self.entries.pop_front();
        }
    }

    /// The entries `[start, end)` if all of them are cached.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = self.entries.front()?.get_log_id().index;
        let last = self.entries.back()?.get_log_id().index;
        if start < first || end > last + 1 || start >= end {
            return None;
        }
        let from = (start - first) as usize;
        Some(
            self.entries
                .range(from..from + (end - start) as usize)
                .cloned()
                .collect(),
        )
    }
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

fn read_err(e: impl ToString) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_err(e: impl ToString) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

impl RocksLogStore {
    pub(super) fn new(storage: Arc<RocksStorage>, group: GroupId) -> Self {
        RocksLogStore {
            storage,
            group,
            tail: Arc::default(),
        }
    }

    fn get_state<T: serde::de::DeserializeOwned>(
        &self,
        tag: u8,
    ) -> Result<Option<T>, StorageError> {
        let cf = self.storage.cf(keys::CF_RAFT_STATE);
        match self
            .storage
            .db()
            .get_cf(cf, keys::state_key(self.group, tag))
            .map_err(read_err)?
        {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn put_state<T: serde::Serialize>(
        &self,
        tag: u8,
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let cf = self.storage.cf(keys::CF_RAFT_STATE);
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf,
            keys::state_key(self.group, tag),
            encode(value).map_err(write_err)?,
        );
        self.storage.db().write_opt(batch, &opts).map_err(write_err)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let cf = self.storage.cf(keys::CF_RAFT_LOG);
        let end = keys::group_end(self.group);
        let mut it = self.storage.db().raw_iterator_cf(cf);
        it.seek_for_prev(&end);
        // seek_for_prev lands on `end` itself only if such a key exists; it belongs to the next group.
        while it.valid() {
            let key = it.key().unwrap_or_default();
            if key >= end.as_slice() {
                it.prev();
                continue;
            }
            if !key.starts_with(&keys::group_prefix(self.group)) {
                return Ok(None);
            }
            let entry: Entry = decode(it.value().unwrap_or_default()).map_err(read_err)?;
            return Ok(Some(*entry.get_log_id()));
        }
        it.status().map_err(read_err)?;
        Ok(None)
    }
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.checked_add(1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => None,
        };
        if let Some(end) = end {
            if let Some(hit) = self.tail.lock().ok().and_then(|t| t.get(start, end)) {
                return Ok(hit);
            }
        }
        let cf = self.storage.cf(keys::CF_RAFT_LOG);
        let start_key = keys::log_key(self.group, start);
        let prefix = keys::group_prefix(self.group);
        let mut entries = Vec::new();
        let iter = self
            .storage
            .db()
            .iterator_cf(cf, IteratorMode::From(&start_key, Direction::Forward));
        for item in iter {
            let (key, value) = item.map_err(read_err)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let index = keys::log_index(&key).ok_or_else(|| read_err("bad log key"))?;
            if !range.contains(&index) {
                break;
            }
            entries.push(decode(&value).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_state(keys::STATE_LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_state(keys::STATE_VOTE, vote, true)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_state(keys::STATE_VOTE)
    }

    // `save_committed`/`read_committed` keep openraft's defaults (not persisted): persisting the
    // commit index would cost one more RocksDB write per entry, and after a restart the entries
    // between `last_applied` and the commit index are re-committed by the next leader anyway.

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.storage.cf(keys::CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        for entry in entries {
            tail.push(&entry);
            let key = keys::log_key(self.group, entry.get_log_id().index);
            batch.put_cf(cf, key, encode(&entry).map_err(write_err)?);
        }
        drop(tail);
        // Visible to readers now; durable (and acknowledged) once the syncer has synced the WAL.
        self.storage.db().write(batch).map_err(write_err)?;
        self.storage.queue_flush(callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        if let Ok(mut tail) = self.tail.lock() {
            tail.truncate(log_id.index);
        }
        let cf = self.storage.cf(keys::CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf,
            &keys::log_key(self.group, log_id.index)[..],
            &keys::group_end(self.group)[..],
        );
        self.storage.db().write(batch).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        if let Ok(mut tail) = self.tail.lock() {
            tail.purge(log_id.index);
        }
        let cf = self.storage.cf(keys::CF_RAFT_LOG);
        let state_cf = self.storage.cf(keys::CF_RAFT_STATE);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            state_cf,
            keys::state_key(self.group, keys::STATE_LAST_PURGED),
            encode(&log_id).map_err(write_err)?,
        );
        let end = log_id
            .index
            .checked_add(1)
            .map(|i| keys::log_key(self.group, i).to_vec());
        let end = end.unwrap_or_else(|| keys::group_end(self.group));
        batch.delete_range_cf(cf, &keys::log_key(self.group, 0)[..], &end[..]);
        self.storage.db().write(batch).map_err(write_err)
    }
}
