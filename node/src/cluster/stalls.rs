//! RocksDB's write stalls as metrics. A stop holds every write of the node until a flush or
//! compaction catches up, and shows only as a latency spike and a line in RocksDB's LOG; this
//! task copies RocksDB's own counts into `/metrics` every few seconds (docs/operations.md).

use std::time::Duration;

use super::Cluster;
use crate::metrics as m;

/// How often the counts are copied. Reading them takes microseconds.
const EVERY: Duration = Duration::from_secs(5);

pub(super) fn spawn(cluster: Cluster) {
    let token = cluster.shutdown_token();
    tokio::spawn(async move {
        loop {
            publish(&cluster);
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    });
}

fn publish(cluster: &Cluster) {
    match cluster.raft().storage().write_stalls() {
        Ok(stalls) => {
            for s in stalls {
                metrics::counter!(m::ROCKSDB_WRITE_STOPS, "cf" => s.column_family)
                    .absolute(s.stops);
                metrics::counter!(m::ROCKSDB_WRITE_DELAYS, "cf" => s.column_family)
                    .absolute(s.delays);
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading RocksDB's write-stall counts"),
    }
}
