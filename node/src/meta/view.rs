//! [`MetaView`]: typed local reads of the meta group's applied state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use herald_raft::transport::ClusterCa;
use herald_raft::{GroupReader, GroupState};

use super::{keys, ClusterInfo, Member};
use crate::backend::{ApiKeys, ChannelRecord};

#[derive(Clone)]
pub struct MetaView {
    reader: GroupReader,
    /// Every v1 request checks the API keys: keep the decoded keys for a second instead of reading
    /// and parsing them from RocksDB per request. A key change is seen within `KEYS_TTL`.
    keys: Arc<Mutex<Option<(Instant, ApiKeys)>>>,
    /// Decoded workflow records and channel lists, reused while their stored bytes are unchanged
    /// (every trigger reads them; the read stays, the JSON decoding does not repeat).
    workflows: Arc<Decoded<super::WorkflowRecord>>,
    channels: Arc<Decoded<Vec<ChannelRecord>>>,
    /// Written once at bootstrap and never changed (the shard count routes every request).
    info: Arc<OnceLock<ClusterInfo>>,
}

/// A cache of values decoded from stored bytes: an entry is valid while the bytes are equal, so
/// it never serves stale data. An entry also remembers the meta group's applied index its bytes
/// were read at (when the caller knows it): while that index has not moved, the bytes cannot have
/// changed, and the value is served without reading them.
struct Decoded<T> {
    /// Storage key -> the value and what it was decoded from.
    entries: Mutex<HashMap<Vec<u8>, DecodedEntry<T>>>,
}

/// The meta group's last applied log id, as openraft's metrics report it.
pub type Applied = Option<openraft::LogId<u64>>;

struct DecodedEntry<T> {
    raw: Vec<u8>,
    value: Arc<T>,
    /// The applied index read before `raw` was (so `raw` is at least that new).
    applied: Option<Applied>,
}

impl<T> Default for Decoded<T> {
    fn default() -> Self {
        Decoded {
            entries: Mutex::default(),
        }
    }
}

impl<T> Decoded<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, DecodedEntry<T>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value under `key` if its bytes were read at exactly `applied`.
    fn as_of(&self, key: &[u8], applied: Applied) -> Option<Arc<T>> {
        let entries = self.lock();
        let e = entries.get(key)?;
        (e.applied == Some(applied)).then(|| e.value.clone())
    }

    /// The value of `raw`, the bytes under `key` read after the applied index was `applied` (if
    /// known), decoded once per distinct bytes.
    fn get(
        &self,
        key: &[u8],
        raw: Vec<u8>,
        applied: Option<Applied>,
        decode: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Option<Arc<T>> {
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(key) {
            if e.raw == raw {
                e.applied = applied;
                return Some(e.value.clone());
            }
        }
        let value = Arc::new(decode(&raw)?);
        let entry = DecodedEntry {
            raw,
            value: value.clone(),
            applied,
        };
        entries.insert(key.to_vec(), entry);
        Some(value)
    }
}

const KEYS_TTL: Duration = Duration::from_secs(1);

/// The channel list as of a meta applied index, reloaded only when meta applied more entries: its
/// owner (a shard's executor or dispatcher) reads it for every batch without scanning the table.
#[derive(Default)]
pub struct ChannelCache {
    at: Option<Option<openraft::LogId<u64>>>,
    channels: Arc<Vec<ChannelRecord>>,
}

impl ChannelCache {
    /// The channels, as new as `meta`'s applied index when called.
    pub fn get(&mut self, meta: &herald_raft::Raft, view: &MetaView) -> Arc<Vec<ChannelRecord>> {
        // Read the index before the list: a list read later is at least as new as the index.
        let applied = meta.metrics().borrow().last_applied;
        if self.at != Some(applied) {
            self.channels = Arc::new(view.channels());
            self.at = Some(applied);
        }
        self.channels.clone()
    }
}

impl MetaView {
    pub fn new(reader: GroupReader) -> Self {
        MetaView {
            reader,
            keys: Arc::default(),
            workflows: Arc::default(),
            channels: Arc::default(),
            info: Arc::default(),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Option<T> {
        let raw = self.reader.get(key).ok()??;
        serde_json::from_slice(&raw).ok()
    }

    /// The cluster's fixed settings; `None` until the meta group applied the bootstrap entry.
    pub fn info(&self) -> Option<ClusterInfo> {
        if let Some(info) = self.info.get() {
            return Some(info.clone());
        }
        let info: ClusterInfo = self.json(&keys::info())?;
        Some(self.info.get_or_init(|| info).clone())
    }

    pub fn api_keys(&self) -> Option<ApiKeys> {
        let mut cached = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, keys)) = cached.as_ref() {
            if at.elapsed() < KEYS_TTL {
                return Some(keys.clone());
            }
        }
        let fresh: ApiKeys = self.json(&keys::api_keys())?;
        *cached = Some((Instant::now(), fresh.clone()));
        Some(fresh)
    }

    pub fn ca(&self) -> Option<ClusterCa> {
        self.json(&keys::ca())
    }

    /// Every JSON value in `[lo, hi)` that decodes as `T`, in key order.
    fn scan_json<T: serde::de::DeserializeOwned>(&self, (lo, hi): (Vec<u8>, Vec<u8>)) -> Vec<T> {
        let rows = self
            .reader
            .scan(&lo, &hi, usize::MAX, false)
            .unwrap_or_default();
        rows.iter()
            .filter_map(|(_, v)| serde_json::from_slice(v).ok())
            .collect()
    }

    /// Members ordered by id.
    pub fn members(&self) -> Vec<Member> {
        self.scan_json(keys::member_range())
    }

    pub fn member(&self, id: u64) -> Option<Member> {
        self.json(&keys::member(id))
    }

    pub fn record(&self, table: &str, key: &str) -> Option<serde_json::Value> {
        self.json(&keys::record(table, key))
    }

    /// Every record of `table`, ordered by key.
    pub fn records(&self, table: &str) -> Vec<serde_json::Value> {
        self.scan_json(keys::record_range(table))
    }

    /// Every channel, ordered by key.
    pub fn channels(&self) -> Vec<ChannelRecord> {
        let (lo, hi) = keys::record_range(super::CHANNELS_TABLE);
        let rows = self
            .reader
            .scan(&lo, &hi, usize::MAX, false)
            .unwrap_or_default();
        let raw: Vec<u8> = rows
            .iter()
            .flat_map(|(k, v)| [k.as_slice(), v.as_slice()])
            .flatten()
            .copied()
            .collect();
        let decoded = self.channels.get(&lo, raw, None, |_| {
            Some(
                rows.iter()
                    .filter_map(|(_, v)| serde_json::from_slice(v).ok())
                    .collect(),
            )
        });
        decoded.map(|c| c.as_ref().clone()).unwrap_or_default()
    }

    /// The workflow record under `key`. `applied` is the meta group's applied index read just
    /// before the call: while it stays the same, the record is served without reading RocksDB
    /// (every trigger looks its workflow up).
    pub fn workflow(&self, key: &str, applied: Applied) -> Option<Arc<super::WorkflowRecord>> {
        let k = keys::record(super::WORKFLOWS_TABLE, key);
        if let Some(hit) = self.workflows.as_of(&k, applied) {
            return Some(hit);
        }
        let raw = self.reader.get(&k).ok()??;
        self.workflows.get(&k, raw, Some(applied), |bytes| {
            serde_json::from_slice(bytes).ok()
        })
    }

    /// Every workflow, ordered by key.
    pub fn workflows(&self) -> Vec<super::WorkflowRecord> {
        self.records(super::WORKFLOWS_TABLE)
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect()
    }

    /// The definition of one version of a workflow.
    pub fn workflow_version(&self, key: &str, version: u64) -> Option<serde_json::Value> {
        self.record(
            super::WORKFLOW_VERSIONS_TABLE,
            &super::catalog::version_key(key, version),
        )
    }

    /// The replica set shard `shard` should have: the top-R members by rendezvous hashing.
    pub fn placement(&self, shard: u32) -> Vec<u64> {
        let Some(info) = self.info() else {
            return Vec::new();
        };
        let ids: Vec<u64> = self.members().iter().map(|m| m.id).collect();
        herald_shard::rendezvous_replicas(shard, &ids, info.replication as usize)
    }

    /// The node that should lead each shard (index = shard id): leadership spread evenly over the
    /// members ([`herald_shard::preferred_leaders`]).
    pub fn preferred_leaders(&self) -> Vec<u64> {
        let Some(info) = self.info() else {
            return Vec::new();
        };
        let ids: Vec<u64> = self.members().iter().map(|m| m.id).collect();
        herald_shard::preferred_leaders(info.shards, &ids, info.replication as usize)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId};

    use super::*;

    fn at(index: u64) -> Applied {
        Some(LogId::new(CommittedLeaderId::new(1, 1), index))
    }

    fn parse(bytes: &[u8]) -> Option<String> {
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    #[test]
    fn a_value_is_served_without_its_bytes_only_at_the_applied_index_it_was_read_at() {
        let cache = Decoded::<String>::default();
        assert!(cache.as_of(b"k", at(3)).is_none(), "nothing read yet");
        let v = cache
            .get(b"k", b"one".to_vec(), Some(at(3)), parse)
            .unwrap();
        assert_eq!(*v, "one");
        assert_eq!(
            cache.as_of(b"k", at(3)).as_deref().map(String::as_str),
            Some("one")
        );
        assert!(
            cache.as_of(b"k", at(4)).is_none(),
            "meta applied more: read again"
        );
        assert!(cache.as_of(b"other", at(3)).is_none());
    }

    #[test]
    fn new_bytes_replace_the_value_and_its_stamp() {
        let cache = Decoded::<String>::default();
        cache.get(b"k", b"one".to_vec(), Some(at(3)), parse);
        let same = cache.get(b"k", b"one".to_vec(), Some(at(5)), |_| {
            panic!("not decoded again")
        });
        assert_eq!(same.as_deref().map(String::as_str), Some("one"));
        assert!(
            cache.as_of(b"k", at(5)).is_some(),
            "unchanged bytes move the stamp"
        );
        let two = cache
            .get(b"k", b"two".to_vec(), Some(at(6)), parse)
            .unwrap();
        assert_eq!(*two, "two");
        assert!(cache.as_of(b"k", at(5)).is_none());
        // A read without a known index is never served by `as_of`.
        cache.get(b"k", b"three".to_vec(), None, parse);
        assert!(cache.as_of(b"k", at(6)).is_none());
    }
}
