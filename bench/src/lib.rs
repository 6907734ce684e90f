//! herald-bench: hardware ceilings measured in the same run as Herald, so Herald's numbers can be
//! read as ratios, plus criterion micro-benchmarks of Herald's pure cores (`benches/`).
//!
//! # Why ceilings, and why in the same run
//! "12,000 identifies/s" says little on its own: the same build gives other numbers on a laptop,
//! a 2-core CI box or a cloud VM with a network disk. A ceiling is the most a layer Herald stands
//! on can do on *this* machine, *now*; dividing by it makes a number comparable across machines
//! ("Herald reaches 0.25 of a bare hyper server"). Measuring it in the same run, just before
//! Herald, keeps the noisy neighbours, CPU governor, disk cache state and thermal state the same on
//! both sides of the ratio. The numbers are meant to be read as ratios, not as absolutes.
//!
//! | ceiling | module | what it bounds |
//! |---|---|---|
//! | HTTP | [`http_ceiling`] | a bare hyper 1 server answering `200` + small JSON, loaded by **the same `herald-loadtest` binary and flags**: Herald's request rate can not exceed it |
//! | RocksDB synced writes | [`rocksdb_ceiling`] | Herald's own storage ([`herald_raft::RocksStorage`]) writing log entries with `flush_wal(true)`: one at a time (the latency floor of an acknowledged write) and with a syncer loop under concurrent writers (the group-commit rate) |
//! | QUIC | [`quic_ceiling`] | two [`herald_raft::transport::QuicTransport`]s with cluster-CA certificates and an echo handler: round trips/s (the floor of a Raft round trip) and bulk MB/s |
//!
//! # Layout
//! ```text
//! main.rs (CLI) ─► ceilings::run ─► http_ceiling ─► loadtest (child process herald-loadtest)
//!               │                 ├► rocksdb_ceiling (blocking threads, temp dir)
//!               │                 └► quic_ceiling (127.0.0.1)
//!               └► compare::run ─► ceilings::run, then loadtest --spawn N (Herald)
//!                                        └► report (tables, JSON)
//! ```
//!
//! # Invariants
//! - Every measurement is bounded in time (the loadtest child is killed past its limit) and only
//!   touches 127.0.0.1 and temporary directories, which are removed afterwards.
//! - Measurements run one after another, never concurrently: they would share the cores.
//! - Tests assert counts, never speeds.
//!
//! Must not depend on herald-node (it may use herald-raft and herald-shard): a ceiling measures
//! what Herald is built from, never Herald itself; Herald is measured as a black box through
//! `herald-loadtest`.

pub mod ceilings;
pub mod compare;
pub mod error;
pub mod http_ceiling;
pub mod loadtest;
pub mod quic_ceiling;
pub mod report;
pub mod rocksdb_ceiling;

pub use error::{Error, Result};

/// The same duration syntax as `herald-loadtest` (`10s`, `500ms`, `2m`, ...).
pub use herald_loadtest::config::parse_duration;
