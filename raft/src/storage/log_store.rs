//! [`RocksLogStore`]: openraft's `RaftLogStorage` for one group, on the node's shared RocksDB.

// openraft's trait methods return its (large) `StorageError`; the helpers here return it too.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

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
        RocksLogStore { storage, group }
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

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put_state(keys::STATE_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .get_state::<Option<LogId>>(keys::STATE_COMMITTED)?
            .flatten())
    }

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
        for entry in entries {
            let key = keys::log_key(self.group, entry.get_log_id().index);
            batch.put_cf(cf, key, encode(&entry).map_err(write_err)?);
        }
        // Visible to readers now; durable (and acknowledged) once the syncer has synced the WAL.
        self.storage.db().write(batch).map_err(write_err)?;
        self.storage.queue_flush(callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
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
