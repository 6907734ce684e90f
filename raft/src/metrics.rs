//! Metric names recorded by herald-raft (the `metrics` facade; herald-node installs the exporter).

/// Counter: WAL fsyncs performed by the syncer thread.
pub const WAL_SYNCS: &str = "herald_raft_wal_syncs_total";
/// Histogram: log appends completed by one WAL fsync (the group-commit factor).
pub const WAL_SYNC_BATCH: &str = "herald_raft_wal_sync_batch";
/// Counter: Raft RPCs sent, labelled by `rpc`.
pub const RPCS_SENT: &str = "herald_raft_rpcs_sent_total";
/// Counter: Raft RPCs that failed to reach their target, labelled by `rpc`.
pub const RPC_FAILURES: &str = "herald_raft_rpc_failures_total";
