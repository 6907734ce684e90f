//! Durable storage for every Raft group of a node: one RocksDB, four column families
//! (layout in [`keys`]).
//!
//! ```text
//!   RaftCore(g1) --append--> RocksLogStore(g1) --write (no sync)--+
//!   RaftCore(g2) --append--> RocksLogStore(g2) --write (no sync)--+--> RocksDB WAL
//!                                 | callback                       |
//!                                 v                                |
//!                           WalSyncer thread: drain callbacks, one fdatasync of the WAL,
//!                           then complete them all
//! ```
//!
//! # Durability and group commit
//! `append` writes entries without syncing (so they are readable at once, as openraft requires) and
//! hands its completion callback to one [`WalSyncer`] thread per node. The syncer takes every callback
//! queued meanwhile, syncs the WAL once, and completes them together: openraft only counts an entry
//! towards a quorum once its callback ran, so nothing is acknowledged before it is on disk, and many
//! appends of many groups share one fsync. Votes are written with a synchronous write.
//! State-machine writes are not synced: after a crash the log (synced) is re-applied from the
//! persisted `last_applied`, which is written atomically with the data it covers.
//!
//! Under load the syncer also waits until [`StorageConfig::wal_sync_interval`] has passed since its
//! previous sync began (a commit delay, as PostgreSQL's `commit_delay`): an idle node syncs at once,
//! a busy one syncs at most once per interval, and every sync carries more entries. On a VM an
//! fdatasync cost about 85 µs of CPU in the guest besides its wait (virtio notifications, inode write);
//! at 1 ms, one node acknowledged 20% more identifies/s with a lower p99 than with none; at 2 ms (the
//! default since session 9) another 9%, and 10% more on three nodes sharing a machine, for about
//! 1.7 ms more median latency at half load on one node (docs/benchmarks.md).

mod install;
pub mod keys;
mod log_store;
mod snapshot_data;
mod snapshot_file;
mod state_machine;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

pub use log_store::RocksLogStore;
pub use snapshot_data::SnapshotData;
pub use state_machine::{
    GroupBatch, GroupReader, GroupState, RocksStateMachine, StateMachineLogic,
};

use crate::error::{Error, Result};
use crate::types::{GroupId, TypeConfig};

/// How a group's application value and merge operands ([`GroupBatch::merge`]) combine into the new
/// value: `operands` in log order over `existing` (`None` when the key has no value). RocksDB folds
/// operands lazily (on read, during compaction), at different times on every replica and in
/// different runs, so the rule must be pure and total, and folding in one call or several must
/// agree: `rule(rule(v, a), b) == rule(v, a ++ b)`. Operands are only ever folded over the full
/// value (no partial merges), so the rule need not be associative.
pub type MergeRule =
    fn(existing: Option<&[u8]>, operands: &mut dyn Iterator<Item = &[u8]>) -> Vec<u8>;

/// The default [`MergeRule`]: the last operand replaces the value (a merge is then a blind put).
pub fn replace_rule(existing: Option<&[u8]>, operands: &mut dyn Iterator<Item = &[u8]>) -> Vec<u8> {
    operands
        .last()
        .or(existing)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// Name of the merge operator registered on the application CFs (RocksDB records it in OPTIONS).
const MERGE_OPERATOR: &str = "herald-merge-rule";

/// Storage tuning.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `false` trades durability for speed (benchmarks only).
    pub sync_wal: bool,
    /// Least time between the starts of two WAL syncs (see the module docs). Zero: sync as soon as
    /// anything is queued.
    pub wal_sync_interval: Duration,
    /// How merges of application values combine ([`MergeRule`]); the application sets it.
    pub merge_rule: MergeRule,
}

/// Default of [`StorageConfig::wal_sync_interval`].
pub const DEFAULT_WAL_SYNC_INTERVAL: Duration = Duration::from_millis(2);

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            sync_wal: true,
            wal_sync_interval: DEFAULT_WAL_SYNC_INTERVAL,
            merge_rule: replace_rule,
        }
    }
}

/// Directory under the DB's for snapshot files: cuts being sent and snapshots being received.
const SNAPSHOT_DIR: &str = "herald-snapshots";

/// The node's RocksDB, shared by the log stores and state machines of all its groups.
pub struct RocksStorage {
    db: Arc<DB>,
    merge_rule: MergeRule,
    snapshot_dir: PathBuf,
    /// Makes snapshot file names unique (seeded from the clock: names outlive a process).
    snapshot_seq: AtomicU64,
    /// `None` only while dropping: closing the channel stops the syncer thread.
    syncer: Option<mpsc::Sender<openraft::storage::LogFlushed<TypeConfig>>>,
    syncer_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RocksStorage {
    fn drop(&mut self) {
        // Stop the syncer before the DB closes, so no fsync races RocksDB's teardown.
        self.syncer.take();
        if let Some(t) = self.syncer_thread.take() {
            let _ = t.join();
        }
    }
}

/// Memtables a column family may hold, the one taking writes included. With RocksDB's default, 2,
/// every write of the node stopped about every 9 s at 11,000 triggers/s, and the p99 of those
/// seconds went to 86-119 ms: when the WAL
/// reaches [`MAX_TOTAL_WAL_BYTES`], every column family is switched to a new memtable at once, and
/// `raft_log`, whose previous memtable was still waiting for the one flush thread, then had two
/// unflushed memtables, RocksDB's limit ("Stopping writes because we have 2 immutable
/// memtables"). With 4, none of the runs checked stopped (docs/benchmarks.md, session 14). Worst case,
/// every column family holds 4 full 64 MiB memtables: 1 GiB.
const MAX_WRITE_BUFFERS: i32 = 4;

/// Shared block cache of the node's RocksDB.
const BLOCK_CACHE_BYTES: usize = 256 << 20;

/// WAL kept before RocksDB flushes the CF holding its oldest file. `raft_state` takes a few small
/// rows per apply and fills its memtable slowly, so without a cap it pinned every WAL file for
/// minutes: 1.5 GB of WAL after 40 s of triggers, replayed for 3.0 s after a kill -9. With it:
/// 224 MB and 0.6 s, for about 2% of trigger throughput (docs/benchmarks.md, session 8).
const MAX_TOTAL_WAL_BYTES: u64 = 256 << 20;

impl RocksStorage {
    pub fn open(path: &Path, config: StorageConfig) -> Result<Arc<Self>> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        opts.increase_parallelism(2);
        // Flushes and compactions run at the lowest CPU priority (nice 19): on a small machine a
        // 64 MiB flush or an L0 compaction otherwise takes a core from request handling for
        // 0.1-1 s and shows up as the p99 of that second. They still get every idle cycle.
        let mut env = rocksdb::Env::new()?;
        env.lower_thread_pool_cpu_priority();
        env.lower_high_priority_thread_pool_cpu_priority();
        opts.set_env(&env);
        // WAL records stay in RocksDB's buffer until the syncer flushes them: one write(2)+fsync per
        // group commit instead of a write(2) per batch. Nothing is acknowledged before that flush.
        opts.set_manual_wal_flush(true);
        opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        // One block cache for every CF; SST bloom filters (10 bits/key) let point reads of missing
        // keys (a new run, a new message's counters) skip the data blocks of every level.
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        let cfs = keys::ALL_CFS
            .iter()
            .map(|name| {
                let cf = cf_options(name, &table, config.merge_rule)?;
                Ok(ColumnFamilyDescriptor::new(*name, cf))
            })
            .collect::<Result<Vec<_>>>()?;
        let db = Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?);
        let snapshot_dir = path.join(SNAPSHOT_DIR);
        std::fs::create_dir_all(&snapshot_dir)?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let merge_rule = config.merge_rule;
        let (syncer, thread) = WalSyncer::spawn(db.clone(), config)?;
        Ok(Arc::new(RocksStorage {
            db,
            merge_rule,
            snapshot_dir,
            snapshot_seq: AtomicU64::new(seed),
            syncer: Some(syncer),
            syncer_thread: Some(thread),
        }))
    }

    pub fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn merge_rule(&self) -> MergeRule {
        self.merge_rule
    }

    /// Where snapshot files live: cuts being sent and snapshots being received.
    pub(crate) fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// A new, unique path for a snapshot file of `group`; `kind` says what it holds (`cut`, `recv`).
    /// Every name starts with [`Self::snapshot_file_prefix`].
    pub(crate) fn snapshot_path(&self, group: GroupId, kind: &str) -> PathBuf {
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        self.snapshot_dir.join(format!(
            "{}{kind}-{seq:x}",
            Self::snapshot_file_prefix(group)
        ))
    }

    fn snapshot_file_prefix(group: GroupId) -> String {
        format!("g{}-", group.0)
    }

    /// Remove `group`'s snapshot files: cuts and partial receives left by an earlier process.
    pub(crate) fn remove_snapshot_files(&self, group: GroupId) -> Result<()> {
        let prefix = Self::snapshot_file_prefix(group);
        for entry in std::fs::read_dir(&self.snapshot_dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        // The four CFs are created at open; a missing one is a bug, not an input error.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// A log store for `group`. Cheap: stores share the DB.
    pub fn log_store(self: &Arc<Self>, group: GroupId) -> RocksLogStore {
        RocksLogStore::new(self.clone(), group)
    }

    /// A state machine for `group`, applying payloads with `logic`.
    pub fn state_machine(
        self: &Arc<Self>,
        group: GroupId,
        logic: Arc<dyn StateMachineLogic>,
    ) -> Result<RocksStateMachine> {
        RocksStateMachine::open(self.clone(), group, logic)
    }

    /// A read handle on `group`'s applied state.
    pub fn reader(self: &Arc<Self>, group: GroupId) -> GroupReader {
        GroupReader::new(self.clone(), group)
    }

    /// How often RocksDB stopped or slowed down writes to each column family since the DB opened
    /// (its `rocksdb.cf-write-stall-stats` property). A stop holds every write of the node.
    pub fn write_stalls(&self) -> Result<Vec<WriteStalls>> {
        keys::ALL_CFS
            .iter()
            .map(|&column_family| {
                let text = self
                    .db
                    .property_value_cf(self.cf(column_family), STALL_STATS)?
                    .unwrap_or_default();
                let (stops, delays) = parse_stall_stats(&text).ok_or_else(|| {
                    Error::Codec(format!(
                        "unexpected {STALL_STATS} of {column_family}: {text}"
                    ))
                })?;
                Ok(WriteStalls {
                    column_family,
                    stops,
                    delays,
                })
            })
            .collect()
    }

    /// Whether anything of `group` was ever stored here (a restarted node reopens such groups).
    pub fn has_group(&self, group: GroupId) -> Result<bool> {
        let vote = self.db.get_cf(
            self.cf(keys::CF_RAFT_STATE),
            keys::state_key(group, keys::STATE_VOTE),
        )?;
        Ok(vote.is_some())
    }

    /// Every group with a persisted vote, in order.
    pub fn stored_groups(&self) -> Result<Vec<GroupId>> {
        let mut groups = Vec::new();
        let cf = self.cf(keys::CF_RAFT_STATE);
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, _) = item?;
            if k.len() == 5 && k[4] == keys::STATE_VOTE {
                groups.push(GroupId(u32::from_be_bytes([k[0], k[1], k[2], k[3]])));
            }
        }
        Ok(groups)
    }

    /// Delete everything stored for `group` (after the node left its replica set).
    pub fn destroy_group(&self, group: GroupId) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        let (start, end) = (keys::group_prefix(group), keys::group_end(group));
        for cf in keys::ALL_CFS {
            batch.delete_range_cf(self.cf(cf), &start[..], &end[..]);
        }
        self.db.write(batch)?;
        Ok(())
    }

    pub(crate) fn queue_flush(&self, callback: openraft::storage::LogFlushed<TypeConfig>) {
        let sent = match &self.syncer {
            Some(tx) => tx.send(callback).map_err(|mpsc::SendError(cb)| cb),
            None => Err(callback),
        };
        if let Err(callback) = sent {
            callback.log_io_completed(Err(std::io::Error::other("wal syncer stopped")));
        }
    }
}

/// Options of the column family `name`.
fn cf_options(name: &str, table: &rocksdb::BlockBasedOptions, rule: MergeRule) -> Result<Options> {
    let mut cf = Options::default();
    cf.set_max_write_buffer_number(MAX_WRITE_BUFFERS);
    cf.set_block_based_table_factory(table);
    cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // Most point reads during apply look for keys that do not exist yet (a new user's record): a
    // memtable bloom filter answers those without walking the skip list.
    cf.set_memtable_whole_key_filtering(true);
    cf.set_memtable_prefix_bloom_ratio(0.05);
    if name == keys::CF_DATA || name == keys::CF_META {
        cf.set_merge_operator(
            MERGE_OPERATOR,
            move |_key: &[u8], existing: Option<&[u8]>, ops: &rocksdb::MergeOperands| {
                Some(rule(existing, &mut ops.iter()))
            },
            // Never combine operands without the value under them: the rule need not be
            // associative (saturating counters are not). RocksDB keeps them as they are.
            |_key: &[u8], _existing: Option<&[u8]>, _ops: &rocksdb::MergeOperands| None,
        );
    }
    // Skip-list inserts start at the last position written under the key's prefix
    // (`keys::insert_hint_prefix_len`). Not in the C API: set through an options string, which
    // yields a copy of `cf` with it added.
    Ok(cf.get_options_from_string(format!(
        "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.{}",
        keys::insert_hint_prefix_len(name)
    ))?)
}

/// RocksDB's per-CF count of write stalls by cause, as text.
const STALL_STATS: &str = "rocksdb.cf-write-stall-stats";

/// Write stalls of one column family since the DB opened ([`RocksStorage::write_stalls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteStalls {
    pub column_family: &'static str,
    /// Times every write waited until a flush or compaction caught up.
    pub stops: u64,
    /// Times writes were slowed to RocksDB's delayed write rate.
    pub delays: u64,
}

/// `(total-stops, total-delays)` from [`STALL_STATS`] text, e.g. `Write Stall (count): ...,
/// total-delays: 0, total-stops: 2`.
fn parse_stall_stats(text: &str) -> Option<(u64, u64)> {
    let body = text.trim().strip_prefix("Write Stall (count):")?;
    let count = |name: &str| {
        body.split(',')
            .filter_map(|field| field.split_once(':'))
            .find(|(key, _)| key.trim() == name)
            .and_then(|(_, value)| value.trim().parse().ok())
    };
    Some((count("total-stops")?, count("total-delays")?))
}

/// The thread that turns many appends into one WAL fsync (see the module docs).
struct WalSyncer;

impl WalSyncer {
    fn spawn(
        db: Arc<DB>,
        config: StorageConfig,
    ) -> Result<(
        mpsc::Sender<openraft::storage::LogFlushed<TypeConfig>>,
        std::thread::JoinHandle<()>,
    )> {
        let (tx, rx) = mpsc::channel::<openraft::storage::LogFlushed<TypeConfig>>();
        let thread = std::thread::Builder::new()
            .name("herald-wal-sync".into())
            .spawn(move || {
                let mut last_sync: Option<Instant> = None;
                while let Ok(first) = rx.recv() {
                    if let Some(wait) =
                        sync_wait(last_sync.map(|t| t.elapsed()), config.wal_sync_interval)
                    {
                        std::thread::sleep(wait);
                    }
                    let started = Instant::now();
                    last_sync = Some(started);
                    let mut pending = vec![first];
                    pending.extend(rx.try_iter());
                    let result = db.flush_wal(config.sync_wal);
                    metrics::histogram!(crate::metrics::WAL_SYNC_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!(crate::metrics::WAL_SYNCS).increment(1);
                    metrics::histogram!(crate::metrics::WAL_SYNC_BATCH)
                        .record(pending.len() as f64);
                    for cb in pending {
                        let r = result
                            .as_ref()
                            .map(|_| ())
                            .map_err(|e| std::io::Error::other(e.to_string()));
                        cb.log_io_completed(r);
                    }
                }
            })?;
        Ok((tx, thread))
    }
}

/// How long the syncer waits before its next sync, given the time since the previous one began.
fn sync_wait(since_last: Option<Duration>, interval: Duration) -> Option<Duration> {
    let wait = interval.saturating_sub(since_last?);
    (!wait.is_zero()).then_some(wait)
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::Codec(e.to_string()))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| Error::Codec(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_capped_and_every_column_family_keeps_insert_hints_and_spare_memtables() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RocksStorage::open(dir.path(), StorageConfig::default()).unwrap();
        drop(storage);
        // RocksDB records the options each CF was opened with; the hint is an immutable option, so
        // it is there only if it reached the CF at open.
        let options = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("OPTIONS-")
            })
            .max()
            .unwrap();
        let text = std::fs::read_to_string(options).unwrap();
        assert!(text.contains(&format!("max_total_wal_size={MAX_TOTAL_WAL_BYTES}\n")));
        for cf in keys::ALL_CFS {
            let section = text
                .split("[CFOptions \"")
                .find(|s| s.starts_with(&format!("{cf}\"")))
                .unwrap_or_else(|| panic!("no options for {cf}"));
            let expected = format!(
                "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.{}",
                keys::insert_hint_prefix_len(cf)
            );
            assert!(section.contains(&expected), "{cf}: {expected} missing");
            let buffers = format!("max_write_buffer_number={MAX_WRITE_BUFFERS}\n");
            assert!(section.contains(&buffers), "{cf}: {buffers} missing");
        }
    }

    #[test]
    fn stall_counts_are_read_from_rocksdb_text() {
        let text =
            "Write Stall (count): cf-l0-file-count-limit-delays-with-ongoing-compaction: 0, \
            l0-file-count-limit-stops: 1, memtable-limit-delays: 3, memtable-limit-stops: 2, \
            total-delays: 3, total-stops: 3\n";
        assert_eq!(parse_stall_stats(text), Some((3, 3)));
        assert_eq!(
            parse_stall_stats("Write Stall (count): total-stops: 1"),
            None
        );
        assert_eq!(parse_stall_stats("total-delays: 0, total-stops: 0"), None);
        assert_eq!(parse_stall_stats(""), None);
    }

    #[test]
    fn a_fresh_db_reports_no_write_stalls_for_any_column_family() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RocksStorage::open(dir.path(), StorageConfig::default()).unwrap();
        let stalls = storage.write_stalls().unwrap();
        let names: Vec<_> = stalls.iter().map(|s| s.column_family).collect();
        assert_eq!(names, keys::ALL_CFS);
        assert!(stalls.iter().all(|s| s.stops == 0 && s.delays == 0));
    }

    #[test]
    fn the_syncer_waits_only_for_the_rest_of_the_interval() {
        let ms = Duration::from_millis;
        // First sync, or the previous one long ago: at once.
        assert_eq!(sync_wait(None, ms(1)), None);
        assert_eq!(sync_wait(Some(ms(5)), ms(1)), None);
        assert_eq!(sync_wait(Some(ms(1)), ms(1)), None);
        // Busy: the rest of the interval.
        assert_eq!(
            sync_wait(Some(Duration::from_micros(300)), ms(1)),
            Some(Duration::from_micros(700))
        );
        // Interval zero: never waits.
        assert_eq!(sync_wait(Some(Duration::ZERO), Duration::ZERO), None);
    }
}
