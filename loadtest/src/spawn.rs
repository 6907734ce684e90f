//! A throwaway local cluster of real `herald` processes on 127.0.0.1.
//!
//! ```text
//! tmp/herald-loadtest-XXXX/
//!   node-1/data   node-1.log      node 1: `herald start --id 1 ...` bootstraps the cluster
//!   node-2/data   node-2.log      node k: same, plus `--join http://127.0.0.1:<node 1 http>`
//! ```
//!
//! Nodes start one after another; each must answer `GET /readyz` with 200 before the next one
//! joins (membership changes go through Raft one at a time); then `GET /v1/cluster` (service token)
//! must show every shard with a leader and its full voter set, so no measurement includes the
//! replicas moving onto joined nodes. Every node gets the same generated
//! `HERALD_SECRET_KEY`, `HERALD_PUBLIC_KEY` and `HERALD_SERVICE_TOKEN`, runs in its node directory
//! (so no stray `herald.toml` applies) without inherited identity/addressing `HERALD_*` variables,
//! and logs stdout and stderr to `node-N.log`. Nodes run in their own
//! process group, so a terminal Ctrl-C reaches only the load tester, which then kills them.
//! Dropping a [`LocalCluster`] kills every node and removes the temp dir;
//! [`LocalCluster::shutdown`] can keep the logs for a post-mortem.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::distr::Alphanumeric;
use rand::Rng;
use tempfile::TempDir;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::get;
use crate::config::Target;
use crate::error::{Error, Result};

/// Environment variables never passed on to spawned nodes (see [`LocalCluster::start`]).
const INHERITED_VARS_REMOVED: [&str; 7] = [
    "HERALD_CONFIG",
    "HERALD_ID",
    "HERALD_DATA_DIR",
    "HERALD_HTTP",
    "HERALD_PEER",
    "HERALD_ADVERTISE_HTTP",
    "HERALD_JOIN",
];

/// Longest wait for shard leadership to spread after placement (hand-offs take a few seconds).
const SPREAD_WAIT: Duration = Duration::from_secs(15);

/// How to start the local cluster.
#[derive(Debug, Clone)]
pub struct SpawnConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Path of the `herald` binary.
    pub herald_bin: PathBuf,
    /// `--shards` for the bootstrapping node, if set.
    pub shards: Option<u32>,
    /// `--replication` for the bootstrapping node, if set.
    pub replication: Option<u32>,
    /// How long each node may take to become ready.
    pub ready_timeout: Duration,
}

impl SpawnConfig {
    /// `nodes` nodes from the `herald` binary next to the running executable.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            herald_bin: default_herald_bin(),
            shards: None,
            replication: None,
            ready_timeout: Duration::from_secs(60),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.nodes == 0 {
            return Err(Error::Config("--spawn needs at least 1 node".into()));
        }
        if !self.herald_bin.is_file() {
            return Err(Error::Config(format!(
                "herald binary not found at {} (build it with `bash .ci/cargo build -p herald-node`, or pass --herald-bin)",
                self.herald_bin.display()
            )));
        }
        Ok(())
    }
}

/// `herald` in the same directory as this executable (cargo puts both in `target/<profile>/`).
pub fn default_herald_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("herald")))
        .unwrap_or_else(|| PathBuf::from("herald"))
}

/// Credentials generated for the spawned cluster.
#[derive(Debug, Clone)]
pub struct Keys {
    pub secret_key: String,
    pub public_key: String,
    pub service_token: String,
}

impl Keys {
    pub fn generate() -> Self {
        let random = |n| -> String {
            rand::rng()
                .sample_iter(&Alphanumeric)
                .take(n)
                .map(char::from)
                .collect()
        };
        Self {
            secret_key: format!("sk_loadtest_{}", random(32)),
            public_key: format!("pk_loadtest_{}", random(32)),
            service_token: random(48),
        }
    }
}

struct Node {
    http: SocketAddr,
    child: Child,
    log: PathBuf,
}

/// Running local cluster; see the module docs.
pub struct LocalCluster {
    root: Option<TempDir>,
    nodes: Vec<Node>,
    keys: Keys,
}

impl LocalCluster {
    /// Starts every node and waits until all are ready. On failure, nodes are killed, data dirs are
    /// removed, and the logs are kept (their directory is in the error).
    pub async fn start(config: &SpawnConfig, cancel: &CancellationToken) -> Result<Self> {
        config.validate()?;
        let root = tempfile::Builder::new()
            .prefix("herald-loadtest-")
            .tempdir()
            .map_err(|e| Error::io("creating temp dir", e))?;
        let mut cluster = Self {
            root: Some(root),
            nodes: Vec::new(),
            keys: Keys::generate(),
        };
        match cluster.start_nodes(config, cancel).await {
            Ok(()) => Ok(cluster),
            Err(Error::Interrupted) => Err(Error::Interrupted),
            Err(err) => {
                let reason = match err {
                    Error::Spawn { reason, .. } => reason,
                    other => other.to_string(),
                };
                let logs = cluster.shutdown(true).unwrap_or_default();
                Err(Error::Spawn { reason, logs })
            }
        }
    }

    async fn start_nodes(
        &mut self,
        config: &SpawnConfig,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let ports = free_ports(config.nodes)?;
        let mut seed_url: Option<String> = None;
        for (i, (http, peer)) in ports.into_iter().enumerate() {
            let id = i + 1;
            let dir = self.root_path().join(format!("node-{id}"));
            let data = dir.join("data");
            std::fs::create_dir_all(&data).map_err(|e| Error::io("creating data dir", e))?;
            let log = self.root_path().join(format!("node-{id}.log"));
            let out = File::create(&log).map_err(|e| Error::io("creating node log", e))?;
            let err = out
                .try_clone()
                .map_err(|e| Error::io("creating node log", e))?;

            let mut command = Command::new(&config.herald_bin);
            // Identity and addressing come only from our flags: an inherited HERALD_JOIN would make
            // node 1 join some other cluster, and a herald.toml in the caller's directory must not
            // apply. Tuning variables (HERALD_SYNC_WAL, RUST_LOG, ...) pass through on purpose.
            for var in INHERITED_VARS_REMOVED {
                command.env_remove(var);
            }
            command
                .current_dir(&dir)
                .arg("start")
                .args(["--id", &id.to_string()])
                .arg("--data-dir")
                .arg(&data)
                .args(["--http", &http.to_string(), "--peer", &peer.to_string()])
                .env("HERALD_SECRET_KEY", &self.keys.secret_key)
                .env("HERALD_PUBLIC_KEY", &self.keys.public_key)
                .env("HERALD_SERVICE_TOKEN", &self.keys.service_token)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            match &seed_url {
                None => {
                    if let Some(shards) = config.shards {
                        command.args(["--shards", &shards.to_string()]);
                    }
                    if let Some(replication) = config.replication {
                        command.args(["--replication", &replication.to_string()]);
                    }
                }
                Some(url) => {
                    command.arg("--join").arg(url);
                }
            }
            let child = command
                .spawn()
                .map_err(|e| Error::io(format!("starting {}", config.herald_bin.display()), e))?;
            self.nodes.push(Node { http, child, log });
            self.wait_ready(i, config.ready_timeout, cancel).await?;
            seed_url.get_or_insert_with(|| format!("http://{http}"));
        }
        let replicas = config.nodes.min(config.replication.unwrap_or(3) as usize);
        self.wait_placed(replicas, config.ready_timeout, cancel)
            .await?;
        // Herald hands off leadership only in shards of at most three voters.
        if replicas > 3 {
            return Ok(());
        }
        self.wait_spread(config.nodes, cancel).await
    }

    /// Wait (at most [`SPREAD_WAIT`]) until no node leads more than its share of the shards plus
    /// one: after placement, leaders hand shards to the nodes that should lead them. A build that
    /// does not spread leadership is measured as it stands, after a note.
    async fn wait_spread(&mut self, nodes: usize, cancel: &CancellationToken) -> Result<()> {
        let spread = |body: &[u8]| leaders_spread(body, nodes);
        if !self.poll_cluster(SPREAD_WAIT, spread, cancel).await? {
            eprintln!("note: shard leadership not spread after {SPREAD_WAIT:?}; measuring anyway");
        }
        Ok(())
    }

    /// Wait until `GET /v1/cluster` shows every shard with a leader and `replicas` voters: joined
    /// nodes receive their shard replicas after they are ready, and a measurement taken meanwhile
    /// would include the data movement.
    async fn wait_placed(
        &mut self,
        replicas: usize,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let placed = |body: &[u8]| shards_placed(body, replicas);
        if self.poll_cluster(timeout, placed, cancel).await? {
            return Ok(());
        }
        Err(not_ready(format!(
            "shards did not reach {replicas} voters within {timeout:?} (see {})",
            self.nodes[0].log.display()
        )))
    }

    /// Poll node 1's `GET /v1/cluster` every 250 ms until `done(body)` or `timeout`; whether it
    /// was done.
    async fn poll_cluster(
        &self,
        timeout: Duration,
        done: impl Fn(&[u8]) -> bool,
        cancel: &CancellationToken,
    ) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let authority = self.nodes[0].http.to_string();
        loop {
            let probe_deadline = (Instant::now() + Duration::from_secs(2)).min(deadline);
            let token = Some(self.keys.service_token.as_str());
            let answer = get(&authority, "/v1/cluster", token, probe_deadline).await;
            if matches!(&answer, Ok((200, body)) if done(body)) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = cancel.cancelled() => return Err(Error::Interrupted),
            }
        }
    }

    async fn wait_ready(
        &mut self,
        index: usize,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let authority = self.nodes[index].http.to_string();
        loop {
            let node = &mut self.nodes[index];
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(not_ready(format!(
                    "node {} exited with {status} before it was ready (see {})",
                    index + 1,
                    node.log.display()
                )));
            }
            let probe_deadline = (Instant::now() + Duration::from_secs(1)).min(deadline);
            if let Ok((200, _)) = get(&authority, "/readyz", None, probe_deadline).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(not_ready(format!(
                    "node {} not ready after {:?} (see {})",
                    index + 1,
                    timeout,
                    node.log.display()
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = cancel.cancelled() => return Err(Error::Interrupted),
            }
        }
    }

    fn root_path(&self) -> &Path {
        self.root
            .as_ref()
            .expect("root exists until shutdown")
            .path()
    }

    /// HTTP endpoints of every node, in id order.
    pub fn targets(&self) -> Vec<Target> {
        self.nodes
            .iter()
            .map(|n| Target {
                authority: n.http.to_string(),
            })
            .collect()
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Directory holding node logs (and data while running).
    pub fn log_dir(&self) -> Option<&Path> {
        self.root.as_ref().map(|r| r.path())
    }

    /// The nodes' process ids, in node order.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.child.id()).collect()
    }

    /// Nodes that have exited by themselves (crashed) so far, as (node id, exit status).
    pub fn exited_nodes(&mut self) -> Vec<(usize, std::process::ExitStatus)> {
        self.nodes
            .iter_mut()
            .enumerate()
            .filter_map(|(i, node)| Some((i + 1, node.child.try_wait().ok()??)))
            .collect()
    }

    /// Kills every node. With `keep_logs`, data dirs are removed but the directory with the logs
    /// is left in place and returned; otherwise everything is removed.
    pub fn shutdown(&mut self, keep_logs: bool) -> Option<PathBuf> {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        self.nodes.clear();
        let root = self.root.take()?;
        if !keep_logs {
            return None;
        }
        let path = root.keep();
        if let Ok(entries) = std::fs::read_dir(&path) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Some(path)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

/// The `shards` of a `/v1/cluster` body.
fn shards_of(body: &[u8]) -> Option<Vec<serde_json::Value>> {
    let mut status = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    match status["shards"].take() {
        serde_json::Value::Array(shards) => Some(shards),
        _ => None,
    }
}

/// Whether a `/v1/cluster` body shows every shard with a leader and exactly `replicas` voters.
fn shards_placed(body: &[u8], replicas: usize) -> bool {
    let Some(shards) = shards_of(body) else {
        return false;
    };
    !shards.is_empty()
        && shards
            .iter()
            .all(|s| s["leader"].is_u64() && s["voters"].as_array().map(Vec::len) == Some(replicas))
}

/// Whether no node in a `/v1/cluster` body leads more than `ceil(shards / nodes) + 1` shards.
fn leaders_spread(body: &[u8], nodes: usize) -> bool {
    let Some(shards) = shards_of(body) else {
        return false;
    };
    let mut led = std::collections::HashMap::<u64, usize>::new();
    for leader in shards.iter().filter_map(|s| s["leader"].as_u64()) {
        *led.entry(leader).or_default() += 1;
    }
    let share = shards.len().div_ceil(nodes.max(1)) + 1;
    led.values().all(|&n| n <= share)
}

/// A start-up failure; [`LocalCluster::start`] fills in where the logs were kept.
fn not_ready(reason: String) -> Error {
    Error::Spawn {
        reason,
        logs: PathBuf::new(),
    }
}

/// `n` pairs of (HTTP TCP port, peer UDP port) on 127.0.0.1, all distinct. The probe sockets stay
/// open until every port is chosen so the OS cannot hand out the same port twice.
fn free_ports(n: usize) -> Result<Vec<(SocketAddr, SocketAddr)>> {
    let io = |e| Error::io("finding free ports", e);
    let mut used = std::collections::HashSet::new();
    let mut held_tcp = Vec::new();
    let mut held_udp = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n {
        // TCP and UDP ports are separate spaces; keeping them all distinct avoids any confusion
        // (and a clash should the peer endpoint ever use TCP).
        let tcp = loop {
            let tcp = TcpListener::bind("127.0.0.1:0").map_err(io)?;
            if used.insert(tcp.local_addr().map_err(io)?.port()) {
                break tcp;
            }
        };
        let udp = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
            if used.insert(udp.local_addr().map_err(io)?.port()) {
                break udp;
            }
        };
        ports.push((tcp.local_addr().map_err(io)?, udp.local_addr().map_err(io)?));
        held_tcp.push(tcp);
        held_udp.push(udp);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(4).unwrap();
        let mut all: Vec<u16> = ports
            .iter()
            .flat_map(|(a, b)| [a.port(), b.port()])
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn spread_means_no_node_leads_more_than_its_share_plus_one() {
        let body = |leaders: &[u64]| {
            let shards: Vec<_> = leaders
                .iter()
                .enumerate()
                .map(|(id, l)| serde_json::json!({"id": id, "leader": l}))
                .collect();
            serde_json::to_vec(&serde_json::json!({ "shards": shards })).unwrap()
        };
        assert!(leaders_spread(&body(&[1, 2, 3, 1, 2, 3, 1]), 3));
        assert!(leaders_spread(&body(&[1, 1, 1, 1, 2, 3, 2]), 3));
        assert!(!leaders_spread(&body(&[1, 1, 1, 1, 1, 3, 2]), 3));
        assert!(!leaders_spread(b"not json", 3));
    }

    #[test]
    fn keys_have_knock_prefixes() {
        let keys = Keys::generate();
        assert!(keys.secret_key.starts_with("sk_"));
        assert!(keys.public_key.starts_with("pk_"));
        assert!(keys.service_token.len() >= 32);
    }
}
