//! Node configuration, layered: `herald.toml` < `HERALD_*` environment < command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Everything a node needs to start. Built by `main` from the layers; tests build it directly.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's id: unique in the cluster, never reused for another machine.
    pub id: u64,
    /// Where RocksDB and the node's identity live.
    pub data_dir: PathBuf,
    /// HTTP listen address (Knock API, operator endpoints).
    pub http: SocketAddr,
    /// QUIC listen address for Raft and forwarding; other nodes dial it.
    pub peer: SocketAddr,
    /// Address other nodes and clients should use for HTTP, if not `http` (e.g. behind NAT).
    pub advertise_http: Option<String>,
    /// HTTP URL of any member to join; absent on the bootstrap node.
    pub join: Option<String>,
    /// Shard count, fixed at bootstrap. Choose >= 4x the largest node count you expect.
    pub shards: u32,
    /// Replicas per shard (capped by the node count).
    pub replication: u32,
    /// Bootstrap keys; generated and printed once when absent.
    pub secret_key: Option<String>,
    pub public_key: Option<String>,
    /// Authenticates joins and operator calls. Required to join.
    pub service_token: Option<String>,
    /// fsync the WAL before acknowledging writes. Turn off only for benchmarks of the non-durable case.
    pub sync_wal: bool,
    /// Least microseconds between the starts of two WAL syncs: a busy node makes each fsync cover
    /// more writes, at up to this much added latency; an idle node syncs at once. 0 turns it off.
    pub wal_sync_interval_us: u64,
    /// Raft heartbeat interval; elections time out after 4-8 heartbeats.
    pub heartbeat_ms: u64,
    /// Applied entries per group between snapshots. A snapshot only marks the group's state, after
    /// which the log before it is purged, keeping `min(snapshot_every, 1000)` entries for slow
    /// replicas; a replica further behind receives the group's state instead.
    pub snapshot_every: u64,
    /// Log format: "text" or "json".
    pub log_format: String,
    /// SMTP server of the default `email` channel created at bootstrap.
    pub smtp_host: String,
    pub smtp_port: u16,
    /// Sender address of the default `email` channel.
    pub email_from: String,
    /// Base delay of delivery retries: 8 attempts with exponential backoff and jitter, about 30
    /// minutes in all with the default (tests shorten it).
    pub retry_base_ms: u64,
    /// Provider sends in flight per shard leader.
    pub delivery_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 1,
            data_dir: PathBuf::from("herald-data"),
            http: SocketAddr::from(([127, 0, 0, 1], 7000)),
            peer: SocketAddr::from(([127, 0, 0, 1], 7001)),
            advertise_http: None,
            join: None,
            shards: 64,
            replication: 3,
            secret_key: None,
            public_key: None,
            service_token: None,
            sync_wal: true,
            wal_sync_interval_us: herald_raft::DEFAULT_WAL_SYNC_INTERVAL.as_micros() as u64,
            heartbeat_ms: 250,
            snapshot_every: herald_raft::RaftTiming::default().snapshot_every,
            log_format: "text".into(),
            smtp_host: "127.0.0.1".into(),
            smtp_port: 1025,
            email_from: "herald@localhost".into(),
            retry_base_ms: crate::delivery::policy::DEFAULT_RETRY_BASE.as_millis() as u64,
            delivery_concurrency: 256,
        }
    }
}

impl Config {
    /// Raft's election timeout range, derived from the heartbeat. Its upper end is also the leader
    /// lease: how long a node refuses votes after last hearing from (or becoming) the leader.
    pub fn election_timeout(&self) -> std::ops::Range<Duration> {
        Duration::from_millis(self.heartbeat_ms * 4)..Duration::from_millis(self.heartbeat_ms * 8)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidParams(format!("config: {m}")));
        if self.id == 0 {
            return bad("id must be >= 1");
        }
        if !(1..=4096).contains(&self.shards) {
            return bad("shards must be in 1..=4096");
        }
        if !(1..=7).contains(&self.replication) {
            return bad("replication must be in 1..=7");
        }
        if self.wal_sync_interval_us > 100_000 {
            return bad("wal_sync_interval_us must be <= 100000 (100 ms)");
        }
        if self.heartbeat_ms < 10 {
            return bad("heartbeat_ms must be >= 10");
        }
        if self.snapshot_every < 10 {
            return bad("snapshot_every must be >= 10");
        }
        if self.retry_base_ms == 0 || self.delivery_concurrency == 0 {
            return bad("retry_base_ms and delivery_concurrency must be >= 1");
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return bad("log_format must be text or json");
        }
        if let Some(k) = &self.secret_key {
            if !k.starts_with("sk_") {
                return bad("secret_key must start with sk_");
            }
        }
        if let Some(k) = &self.public_key {
            if !k.starts_with("pk_") {
                return bad("public_key must start with pk_");
            }
        }
        Ok(())
    }

    /// The HTTP address other nodes and clients reach this node at.
    pub fn http_url(&self) -> String {
        match &self.advertise_http {
            Some(a) => a.clone(),
            None => format!("http://{}", self.http),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_keeps_defaults_for_the_rest() {
        let c: Config = toml::from_str("id = 3\nshards = 16\nhttp = \"0.0.0.0:9000\"\n").unwrap();
        assert_eq!((c.id, c.shards, c.http.port()), (3, 16, 9000));
        assert_eq!(c.replication, Config::default().replication);
        assert!(c.sync_wal);
        c.validate().unwrap();
    }

    #[test]
    fn wal_sync_interval_is_bounded() {
        let mut c = Config::default();
        assert_eq!(c.wal_sync_interval_us, 2_000);
        c.wal_sync_interval_us = 0;
        c.validate().unwrap();
        c.wal_sync_interval_us = 100_001;
        assert!(c.validate().is_err());
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        assert!(toml::from_str::<Config>("shard = 16\n").is_err());
    }

    #[test]
    fn validate_rejects_impossible_settings() {
        let bad = [
            Config {
                id: 0,
                ..Config::default()
            },
            Config {
                shards: 0,
                ..Config::default()
            },
            Config {
                replication: 0,
                ..Config::default()
            },
            Config {
                secret_key: Some("pk_wrong".into()),
                ..Config::default()
            },
            Config {
                log_format: "xml".into(),
                ..Config::default()
            },
            Config {
                snapshot_every: 9,
                ..Config::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
