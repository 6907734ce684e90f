//! The RocksDB key layout of herald-raft: the one place that knows how keys are built.
//!
//! ```text
//! CF raft_log    group u32 BE | index u64 BE                -> bincode(Entry)
//! CF raft_state  group u32 BE | tag u8                      -> bincode(value)   (tags below)
//! CF data        group u32 BE | application key             -> application value (shard groups)
//! CF meta        group u32 BE | application key             -> application value (meta group)
//! ```
//!
//! Big-endian fixed-width integers make byte order equal numeric order, so a group's log is one
//! contiguous, index-ordered range and a group's state is one prefix (snapshots iterate it, group
//! removal deletes it as a range). Application keys (herald-shard's `keys` module) are opaque here.

use crate::types::GroupId;

pub const CF_RAFT_LOG: &str = "raft_log";
pub const CF_RAFT_STATE: &str = "raft_state";
pub const CF_DATA: &str = "data";
pub const CF_META: &str = "meta";
pub const ALL_CFS: [&str; 4] = [CF_RAFT_LOG, CF_RAFT_STATE, CF_DATA, CF_META];

/// `raft_state` tags.
pub const STATE_VOTE: u8 = 1;
pub const STATE_LAST_PURGED: u8 = 3;
pub const STATE_SNAPSHOT: u8 = 4;
pub const STATE_SM_APPLIED: u8 = 5;
pub const STATE_SM_MEMBERSHIP: u8 = 6;
/// Present while a snapshot is installed in several batches (`install`): the group's rows are
/// incomplete until it is gone.
pub const STATE_SM_INSTALLING: u8 = 7;

/// Length of the key prefix under which RocksDB keeps a memtable insert hint for `cf` (the skip-list
/// position of the last key written with that prefix). Rows are mostly written in key order within
/// these prefixes: a group's log by index; a group's bookkeeping row by tag; a shard's runs, messages,
/// outbox and timers by time-ordered id or due time (the application key's first byte is its table
/// tag). An insert next to the previous one then starts its search there, not at the top.
pub fn insert_hint_prefix_len(cf: &str) -> usize {
    if cf == CF_RAFT_LOG {
        4
    } else {
        5
    }
}

/// The column family holding a group's application state.
pub fn state_cf(group: GroupId) -> &'static str {
    if group == GroupId::META {
        CF_META
    } else {
        CF_DATA
    }
}

pub fn group_prefix(group: GroupId) -> [u8; 4] {
    group.0.to_be_bytes()
}

/// The first key after every key of `group` (exclusive upper bound of its prefix).
pub fn group_end(group: GroupId) -> Vec<u8> {
    match group.0.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        // Group ids are small (shard count + 1); u32::MAX is never used.
        None => vec![0xff; 5],
    }
}

pub fn log_key(group: GroupId, index: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&group.0.to_be_bytes());
    k[4..].copy_from_slice(&index.to_be_bytes());
    k
}

pub fn log_index(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(4..12)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

pub fn state_key(group: GroupId, tag: u8) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[..4].copy_from_slice(&group.0.to_be_bytes());
    k[4] = tag;
    k
}

/// A group-scoped application key.
pub fn data_key(group: GroupId, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len());
    k.extend_from_slice(&group.0.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The application key inside a group-scoped key.
pub fn strip_group(key: &[u8]) -> &[u8] {
    key.get(4..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_round_trip_and_sort_numerically() {
        let g = GroupId(7);
        for i in [0u64, 1, 255, 256, u64::MAX] {
            assert_eq!(log_index(&log_key(g, i)), Some(i));
        }
        assert!(log_key(g, 255) < log_key(g, 256));
        assert!(log_key(g, u64::MAX) < log_key(GroupId(8), 0));
    }

    #[test]
    fn data_keys_stay_inside_their_group_range() {
        let g = GroupId(3);
        let k = data_key(g, b"\xff\xff");
        assert!(k.as_slice() >= group_prefix(g).as_slice());
        assert!(k < group_end(g));
        assert_eq!(strip_group(&k), b"\xff\xff");
    }

    #[test]
    fn state_cf_separates_meta_from_shards() {
        assert_eq!(state_cf(GroupId::META), CF_META);
        assert_eq!(state_cf(GroupId::shard(0)), CF_DATA);
    }
}
