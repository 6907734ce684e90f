//! The application halves of the shard state machines: decode a [`ShardEntry`], run
//! `herald_shard::apply` for each command over the group's state, encode the replies; once the
//! writes are readable, wake the shard's queue loops for the outbox and timer rows they added.

#[cfg(doc)]
use herald_raft::GroupReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use herald_raft::{GroupBatch, GroupState, StateMachineLogic};
use herald_shard::runs::Sendable;
use herald_shard::{ShardCommand, ShardReply, Store, StoreRead};

use super::executor::ShardEntry;
use super::wakeups::{QueueWake, Wakeups};
use crate::codec;

fn store_err(e: herald_raft::Error) -> herald_shard::Error {
    herald_shard::Error::Store(e.to_string())
}

/// herald-shard's storage traits over a group's state: a [`GroupBatch`] during apply (read-your-
/// writes inside one entry), a [`GroupReader`] for queries.
pub struct ShardStore<T>(pub T);

impl<T> StoreRead for ShardStore<T>
where
    T: std::ops::Deref,
    T::Target: GroupState,
{
    fn get(&self, key: &[u8]) -> herald_shard::Result<Option<Vec<u8>>> {
        self.0.get(key).map_err(store_err)
    }
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> herald_shard::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.scan(start, end, limit, reverse).map_err(store_err)
    }
}

impl Store for ShardStore<&mut GroupBatch<'_>> {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.0.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) {
        self.0.delete(key)
    }
    fn merge(&mut self, key: &[u8], operand: &[u8]) {
        self.0.merge(key, operand)
    }
}

pub struct ShardLogic {
    wakeups: Arc<Wakeups>,
    /// Earliest outbox and timer due times added by payloads applied but not yet written.
    pending_outbox: AtomicU64,
    pending_timers: AtomicU64,
    /// Messages queued for an immediate send by payloads applied but not yet written, and the
    /// earliest entry time among them.
    pending_queued: Mutex<(u64, Vec<Sendable>)>,
}

impl ShardLogic {
    pub fn new(wakeups: Arc<Wakeups>) -> Self {
        ShardLogic {
            wakeups,
            pending_outbox: AtomicU64::new(u64::MAX),
            pending_timers: AtomicU64::new(u64::MAX),
            pending_queued: Mutex::new((u64::MAX, Vec::new())),
        }
    }

    fn note(&self, now_ms: u64, cmd: &ShardCommand) {
        if let ShardCommand::Runs(r) = cmd {
            let mut queued = r.queued_now(now_ms).peekable();
            if queued.peek().is_some() {
                if self.wakeups.outbox.is_full() {
                    // Nobody takes what the wake holds (a follower's), or not yet: leave the rows
                    // to a scan rather than copy messages that would be dropped.
                    self.pending_outbox.fetch_min(now_ms, Ordering::Relaxed);
                } else {
                    let mut pending = self
                        .pending_queued
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    pending.0 = pending.0.min(now_ms);
                    pending.1.extend(queued);
                }
            }
            if let Some(due) = r.retry_at() {
                self.pending_outbox.fetch_min(due, Ordering::Relaxed);
            }
            if let Some(due) = r.timer_low() {
                self.pending_timers.fetch_min(due, Ordering::Relaxed);
            }
        }
    }
}

fn publish(pending: &AtomicU64, wake: &QueueWake) {
    let due = pending.swap(u64::MAX, Ordering::Relaxed);
    if due != u64::MAX {
        wake.added(due);
    }
}

impl StateMachineLogic for ShardLogic {
    fn apply(&self, state: &mut GroupBatch<'_>, payload: &[u8]) -> Vec<u8> {
        let replies: Vec<ShardReply> = match codec::decode::<ShardEntry>(payload) {
            Ok(entry) => {
                let mut store = ShardStore(state);
                entry
                    .cmds
                    .iter()
                    .map(|cmd| {
                        self.note(entry.now_ms, cmd);
                        herald_shard::apply(&mut store, entry.now_ms, cmd)
                    })
                    .collect()
            }
            // Every replica fails the same way on the same bytes, so this stays deterministic.
            Err(_) => Vec::new(),
        };
        codec::encode(&replies).unwrap_or_default()
    }

    fn after_write(&self) {
        let (due, ids) = std::mem::replace(
            &mut *self
                .pending_queued
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            (u64::MAX, Vec::new()),
        );
        if !ids.is_empty() {
            self.wakeups.outbox.hand_over(due, ids);
        }
        publish(&self.pending_outbox, &self.wakeups.outbox);
        publish(&self.pending_timers, &self.wakeups.timers);
    }
}
