//! Metric names recorded by herald-raft (the `metrics` facade; herald-node installs the exporter).

/// Counter: WAL fsyncs performed by the syncer thread.
pub const WAL_SYNCS: &str = "herald_raft_wal_syncs_total";
/// Histogram: log appends completed by one WAL fsync (the group-commit factor).
pub const WAL_SYNC_BATCH: &str = "herald_raft_wal_sync_batch";
/// Histogram: seconds one WAL write-out and fsync took (the disk's share of every acknowledgement).
pub const WAL_SYNC_SECONDS: &str = "herald_raft_wal_sync_seconds";
/// Counter: snapshots cut from a group's state for a replica that needed one.
pub const SNAPSHOTS_CUT: &str = "herald_raft_snapshots_cut_total";
/// Counter: requests for a snapshot answered with the kept cut instead of a new one.
pub const SNAPSHOT_CUTS_REUSED: &str = "herald_raft_snapshot_cuts_reused_total";
/// Counter: snapshots installed from a leader (this replica was too far behind for the log).
pub const SNAPSHOTS_INSTALLED: &str = "herald_raft_snapshots_installed_total";
/// Counter: Raft RPCs sent, labelled by `rpc`.
pub const RPCS_SENT: &str = "herald_raft_rpcs_sent_total";
/// Counter: Raft RPCs that failed to reach their target, labelled by `rpc`.
pub const RPC_FAILURES: &str = "herald_raft_rpc_failures_total";
/// Counter: commit-only AppendEntries acknowledged locally and held for a later request.
pub const COMMITS_HELD: &str = "herald_raft_commits_held_total";
/// Counter: held commit notices that went out on their own (no later request replaced them).
pub const COMMITS_HELD_SENT: &str = "herald_raft_commits_held_sent_total";
/// Histogram: heartbeats (of different groups) sent to one peer in one message.
pub const HEARTBEAT_BATCH: &str = "herald_raft_heartbeat_batch";
