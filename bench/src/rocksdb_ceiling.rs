//! RocksDB synced-write ceiling, on Herald's own storage.
//!
//! The database is opened exactly as a node opens it ([`RocksStorage::open`] with
//! [`StorageConfig::default`]: manual WAL flush, so a write stays in RocksDB's buffer until
//! `flush_wal(true)` writes and fdatasyncs it). Entries go to the `raft_log` column family under
//! real log keys, one group per writer.
//!
//! * **single**: write one entry, `flush_wal(true)`, repeat. One fsync per write: what a node could
//!   acknowledge if nothing were batched, and the latency floor of every acknowledged write.
//! * **batched**: `writers` threads append entries back to back while one thread flushes and syncs
//!   in a loop, like the node's WAL syncer. Entries/s is what the WAL absorbs while being synced
//!   continuously; syncs/s is how often an acknowledgement can go out; entries per sync is the
//!   group-commit factor.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use herald_raft::storage::keys;
use herald_raft::{GroupId, RocksStorage, StorageConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What to measure.
#[derive(Debug, Clone)]
pub struct RocksdbConfig {
    /// Parent of the throw-away database directory (same filesystem as Herald's data).
    pub dir: PathBuf,
    /// Length of each of the two measurements.
    pub duration: Duration,
    /// Writer threads in the batched measurement.
    pub writers: usize,
    /// Bytes per entry (an identify entry is about this size).
    pub entry_bytes: usize,
}

impl RocksdbConfig {
    pub fn new(dir: PathBuf, duration: Duration) -> Self {
        Self {
            dir,
            duration,
            writers: 4,
            entry_bytes: 200,
        }
    }
}

/// One write + fdatasync at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SingleSync {
    pub writes: u64,
    pub seconds: f64,
    pub writes_per_s: f64,
    /// Latency of write + `flush_wal(true)`, microseconds.
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Concurrent writers, one syncer looping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchedSync {
    pub writers: usize,
    pub entries: u64,
    pub syncs: u64,
    pub seconds: f64,
    pub entries_per_s: f64,
    pub syncs_per_s: f64,
    pub entries_per_sync: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RocksdbCeiling {
    /// The directory the temporary database lived in.
    pub dir: String,
    pub entry_bytes: usize,
    pub single: SingleSync,
    pub batched: BatchedSync,
}

/// Runs both measurements in a fresh temporary database under `config.dir`, deleted afterwards.
/// Blocking: call from a plain thread or `spawn_blocking`.
pub fn measure(config: &RocksdbConfig) -> Result<RocksdbCeiling> {
    if config.writers == 0 || config.entry_bytes == 0 {
        return Err(Error::Config("writers and entry_bytes must be > 0".into()));
    }
    let tmp = tempfile::Builder::new()
        .prefix("herald-bench-rocksdb-")
        .tempdir_in(&config.dir)
        .map_err(|e| Error::io(format!("temp dir in {}", config.dir.display()), e))?;
    let storage = RocksStorage::open(tmp.path(), StorageConfig::default())?;
    let entry = vec![0x5a_u8; config.entry_bytes];
    let single = single_sync(&storage, &entry, config.duration)?;
    let batched = batched_sync(&storage, &entry, config.writers, config.duration)?;
    drop(storage);
    Ok(RocksdbCeiling {
        dir: display_dir(&config.dir),
        entry_bytes: config.entry_bytes,
        single,
        batched,
    })
}

fn display_dir(dir: &Path) -> String {
    dir.canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

fn single_sync(storage: &RocksStorage, entry: &[u8], duration: Duration) -> Result<SingleSync> {
    let db = storage.db();
    let cf = db.cf_handle(keys::CF_RAFT_LOG).ok_or_else(|| {
        herald_raft::Error::Io(std::io::Error::other("raft_log column family missing"))
    })?;
    let group = GroupId(1);
    let mut latencies_us = Vec::new();
    let start = Instant::now();
    let mut index = 0u64;
    while start.elapsed() < duration {
        index += 1;
        let t = Instant::now();
        db.put_cf(cf, keys::log_key(group, index), entry)
            .map_err(herald_raft::Error::from)?;
        db.flush_wal(true).map_err(herald_raft::Error::from)?;
        latencies_us.push(t.elapsed().as_micros() as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Ok(SingleSync {
        writes: index,
        seconds,
        writes_per_s: index as f64 / seconds,
        p50_us: quantile(&latencies_us, 0.50),
        p99_us: quantile(&latencies_us, 0.99),
        max_us: latencies_us.last().copied().unwrap_or(0),
    })
}

fn batched_sync(
    storage: &RocksStorage,
    entry: &[u8],
    writers: usize,
    duration: Duration,
) -> Result<BatchedSync> {
    let db = storage.db();
    let cf = db.cf_handle(keys::CF_RAFT_LOG).ok_or_else(|| {
        herald_raft::Error::Io(std::io::Error::other("raft_log column family missing"))
    })?;
    let stop = AtomicBool::new(false);
    let entries = AtomicU64::new(0);
    let start = Instant::now();
    let (syncs, results) = std::thread::scope(|scope| {
        let writer_threads: Vec<_> = (0..writers)
            .map(|w| {
                let (stop, entries) = (&stop, &entries);
                scope.spawn(move || -> Result<()> {
                    // Groups 100.. so the single-sync entries (group 1) are never overwritten.
                    let group = GroupId(100 + w as u32);
                    let mut index = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        index += 1;
                        db.put_cf(cf, keys::log_key(group, index), entry)
                            .map_err(herald_raft::Error::from)?;
                        entries.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        let syncer = scope.spawn(|| -> Result<u64> {
            let mut syncs = 0u64;
            while !stop.load(Ordering::Relaxed) {
                db.flush_wal(true).map_err(herald_raft::Error::from)?;
                syncs += 1;
            }
            Ok(syncs)
        });
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let results: Vec<Result<()>> = writer_threads
            .into_iter()
            .map(|t| t.join().expect("writer thread panicked"))
            .collect();
        (syncer.join().expect("syncer thread panicked"), results)
    });
    let seconds = start.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let syncs = syncs?;
    let entries = entries.into_inner();
    Ok(BatchedSync {
        writers,
        entries,
        syncs,
        seconds,
        entries_per_s: entries as f64 / seconds,
        syncs_per_s: syncs as f64 / seconds,
        entries_per_sync: if syncs == 0 {
            0.0
        } else {
            entries as f64 / syncs as f64
        },
    })
}

/// The `q` quantile of sorted `values` (0 when empty).
pub(crate) fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_sorted_values() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn short_run_counts_writes_and_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = RocksdbConfig::new(dir.path().to_path_buf(), Duration::from_millis(200));
        config.writers = 2;
        let c = measure(&config).unwrap();
        assert!(c.single.writes > 0);
        assert!(c.batched.entries > 0);
        assert!(c.batched.syncs > 0);
        // The temporary database is gone; only the parent remains.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
