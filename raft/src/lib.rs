//! herald-raft: generic replication plumbing for Herald. It knows Raft groups, logs, snapshots and
//! peers; it knows nothing about notifications (payloads are opaque bytes, applied by the
//! application's [`StateMachineLogic`]).
//!
//! ```text
//!   RaftNode ── groups: meta (0), shard s (s+1) ── openraft::Raft per group
//!      │                     │
//!      │ QUIC (mTLS)         ├── RocksLogStore   ┐ one RocksDB per node,
//!      └── transport         └── RocksStateMachine┘ column families in storage::keys
//! ```
//!
//! Owns: the openraft type config ([`types`]), the RocksDB layout of logs and group state
//! ([`storage::keys`]), WAL group commit ([`storage`]), the QUIC transport and cluster CA
//! ([`transport`]), and the per-group RPC routing ([`RaftNode`]).
//!
//! Must not depend on herald-shard or herald-node.

pub mod error;
pub mod metrics;
mod network;
mod raft_node;
pub mod storage;
pub mod transport;
pub mod types;

pub use error::{Error, Result};
pub use raft_node::{AppHandler, GroupHandle, RaftNode, RaftTiming};
pub use storage::{
    GroupBatch, GroupReader, GroupState, MergeRule, RocksStorage, StateMachineLogic, StorageConfig,
    WriteStalls, DEFAULT_WAL_SYNC_INTERVAL,
};
pub use types::{GroupId, NodeId, Payload, Raft, TypeConfig};
