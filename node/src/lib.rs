//! herald-node: one Herald node. The `herald` binary is a thin CLI over this library; tests start
//! nodes in-process through the same [`server::Node::start`].
//!
//! ```text
//!   HTTP (axum) ── http: Knock v1 API ──► Backend (trait) ◄── cluster::Cluster
//!              └─ ops: healthz, readyz, metrics, /v1/cluster, join      │
//!                                                                        ├─ meta: group 0 (members, keys, CA, records)
//!                                                                        ├─ shard groups: herald-shard apply, group commit
//!                                                                        └─ herald-raft: openraft + RocksDB + QUIC
//! ```
//!
//! Owns: configuration, the HTTP surface (Knock v1 + operator endpoints), auth, routing to shard
//! leaders, membership and placement, the meta group's state. Nothing depends on this crate.

pub mod backend;
pub mod catalog_files;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod delivery;
pub mod error;
pub mod http;
pub mod meta;
pub mod metrics;
pub mod ops;
pub mod server;
pub mod workflows;
