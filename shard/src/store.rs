//! The storage boundary of a shard's state machine.
//!
//! `apply` and `query` see a shard's data only through [`StoreRead`] / [`Store`], over shard-local
//! keys (see [`crate::keys`]); the raft layer prefixes the group id and maps these calls onto
//! RocksDB. [`MemStore`] is the in-memory implementation used by unit tests and by the storage
//! conformance suite.
//!
//! Contract every implementation keeps:
//! - read-your-writes: a `get`/`scan` after a `put`/`delete` on the same store sees it;
//! - `scan(start, end, limit, reverse)` returns keys in `[start, end)`, ascending, or descending when
//!   `reverse`, at most `limit` pairs (`limit == 0` means none);
//! - `merge(key, operand)` leaves the key holding [`merge_rule`]`(old value, operand)`, folded
//!   in order over every earlier write of the key; the engine may fold lazily (RocksDB does, on read
//!   and in compaction), so `merge_rule` is pure and total;
//! - writes are infallible at this level: a failing engine is a fatal condition for the replica.

use std::collections::BTreeMap;

use crate::error::Result;

pub trait StoreRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

pub trait Store: StoreRead {
    fn put(&mut self, key: &[u8], value: &[u8]);
    fn delete(&mut self, key: &[u8]);
    /// Fold `operand` into the key's value with [`merge_rule`], without reading it.
    fn merge(&mut self, key: &[u8], operand: &[u8]);
}

/// How a stored value and merge operands combine, by each operand's first byte (see
/// `herald_raft::MergeRule` for what a rule must keep). Operands of an unknown kind are skipped
/// (total: a fold may run in compaction, where it cannot fail a request).
pub fn merge_rule(existing: Option<&[u8]>, operands: &mut dyn Iterator<Item = &[u8]>) -> Vec<u8> {
    let mut steps = operands
        .filter_map(|op| match op.split_first() {
            Some((&crate::runs::counts::OPERAND_FEED_COUNTS, steps)) => Some(steps),
            _ => None,
        })
        .peekable();
    if steps.peek().is_none() {
        return existing.map(<[u8]>::to_vec).unwrap_or_default();
    }
    crate::runs::counts::fold(existing, steps)
}

/// A [`Store`] over a `BTreeMap`: ordered like RocksDB's default bytewise comparator.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys held (tests use it to prove that nothing leaked).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every pair, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.map.iter()
    }
}

impl StoreRead for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map.get(key).cloned())
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let range = self.map.range::<[u8], _>((
            std::ops::Bound::Included(start),
            std::ops::Bound::Excluded(end),
        ));
        let pick = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(if reverse {
            range.rev().take(limit).map(pick).collect()
        } else {
            range.take(limit).map(pick).collect()
        })
    }
}

impl Store for MemStore {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.map.insert(key.to_vec(), value.to_vec());
    }

    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
    }

    fn merge(&mut self, key: &[u8], operand: &[u8]) {
        let value = merge_rule(
            self.map.get(key).map(Vec::as_slice),
            &mut std::iter::once(operand),
        );
        self.map.insert(key.to_vec(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_is_half_open_ordered_and_limited() {
        let mut s = MemStore::new();
        for k in [b"a", b"b", b"c", b"d"] {
            s.put(k, k);
        }
        let keys = |v: Vec<(Vec<u8>, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(s.scan(b"b", b"d", 10, false).unwrap()),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(
            keys(s.scan(b"a", b"e", 2, true).unwrap()),
            vec![b"d".to_vec(), b"c".to_vec()]
        );
        assert!(s.scan(b"d", b"a", 10, false).unwrap().is_empty());
        assert!(s.scan(b"a", b"e", 0, false).unwrap().is_empty());
        s.delete(b"a");
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.len(), 3);
    }
}
