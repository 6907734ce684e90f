//! Multi-process test harness: real `herald` binaries on 127.0.0.1, killed with SIGKILL.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const SECRET: &str = "sk_test_herald_secret";
pub const PUBLIC: &str = "pk_test_herald_public";
pub const SERVICE: &str = "st_test_herald_service";

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct HeraldProcess {
    pub id: u64,
    pub http: SocketAddr,
    pub peer: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    join: Option<String>,
    shards: u32,
    /// Extra `HERALD_*` settings of this node, on every start.
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl HeraldProcess {
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn spawn(
        root: &std::path::Path,
        id: u64,
        join: Option<String>,
        shards: u32,
    ) -> HeraldProcess {
        Self::spawn_with(root, id, join, shards, &[])
    }

    /// [`spawn`](Self::spawn) with extra environment settings.
    pub fn spawn_with(
        root: &std::path::Path,
        id: u64,
        join: Option<String>,
        shards: u32,
        env: &[(&str, &str)],
    ) -> HeraldProcess {
        let mut p = HeraldProcess {
            id,
            http: SocketAddr::from(([127, 0, 0, 1], free_tcp_port())),
            peer: SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
            data_dir: root.join(format!("node-{id}")),
            log: root.join(format!("node-{id}.log")),
            join,
            shards,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        p.start();
        p
    }

    /// (Re)start the process on the same ports and data dir.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("start")
            .args(["--id", &self.id.to_string()])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "--http",
                &self.http.to_string(),
                "--peer",
                &self.peer.to_string(),
            ])
            .args(["--shards", &self.shards.to_string(), "--replication", "3"])
            .args(["--heartbeat-ms", "150"])
            .env("HERALD_SECRET_KEY", SECRET)
            .env("HERALD_PUBLIC_KEY", PUBLIC)
            .env("HERALD_SERVICE_TOKEN", SERVICE)
            .env("HERALD_CONFIG", "/nonexistent/herald.toml")
            // Shortened delivery retries: 8 attempts take about two seconds.
            .env("HERALD_RETRY_BASE_MS", "20")
            // The node's own default log filter, whatever the test runner has.
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(j) = &self.join {
            cmd.args(["--join", j]);
        }
        self.child = Some(cmd.spawn().expect("spawn herald"));
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then wait (bounded) for the process to exit; returns its exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("node running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > timeout {
                child.kill().unwrap();
                panic!(
                    "node {} did not exit within {timeout:?} of SIGTERM",
                    self.id
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new() -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        }
    }

    pub async fn call(&self, method: &str, url: &str, body: Option<Value>) -> Result<Resp, String> {
        self.call_as(SECRET, method, url, body).await
    }

    /// A call with another key (e.g. [`SERVICE`] for the management API).
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        url: &str,
        body: Option<Value>,
    ) -> Result<Resp, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Resp { status, body })
    }

    pub async fn ready(&self, base: &str) -> bool {
        matches!(self.http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status().is_success())
    }

    /// The value of an unlabelled counter on `base`'s `/metrics` (0 when not yet recorded).
    pub async fn counter(&self, base: &str, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let value = text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok())?
        });
        Some(value.unwrap_or(0.0))
    }

    pub async fn cluster(&self, base: &str) -> Option<Value> {
        let r = self
            .call("GET", &format!("{base}/v1/cluster"), None)
            .await
            .ok()?;
        (r.status == 200).then_some(r.body)
    }
}

/// Poll `check` every 200 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_or_logs(timeout, what, &[], check).await
}

/// [`eventually`], printing the end of every node's log before it fails.
pub async fn eventually_or_logs<T, F, Fut>(
    timeout: Duration,
    what: &str,
    nodes: &[HeraldProcess],
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() >= timeout {
            for p in nodes {
                eprintln!("--- node {} log ---\n{}", p.id, p.log_tail());
            }
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether every shard in a `/v1/cluster` answer has a leader and exactly `n` voters.
pub fn all_shards_have_voters(cluster: &Value, n: usize) -> bool {
    let Some(shards) = cluster["shards"].as_array() else {
        return false;
    };
    !shards.is_empty()
        && shards
            .iter()
            .all(|s| s["leader"].is_u64() && s["voters"].as_array().map(|v| v.len()) == Some(n))
}

/// Every shard has a leader and each of `nodes` leads its even share of them (counts differ by at
/// most one), as leadership hand-offs leave a cluster whose nodes hold every shard.
pub fn leaders_spread_evenly(cluster: &Value, nodes: &[u64]) -> bool {
    let Some(shards) = cluster["shards"].as_array() else {
        return false;
    };
    let led = |id: u64| shards.iter().filter(|s| s["leader"] == id).count();
    let floor = shards.len() / nodes.len().max(1);
    shards.iter().all(|s| s["leader"].is_u64())
        && nodes
            .iter()
            .all(|&id| (floor..=floor + 1).contains(&led(id)))
}

/// The shard (0-based) that owns a user id, as the cluster computes it.
pub fn shard_of_user(user: &str, shards: u32) -> u32 {
    herald_shard::shard_of_slot(herald_shard::slot_of(user), shards)
}

/// Bootstrap one node, join the others through it, wait until every shard has `n` voters (at most
/// 3) and each node leads its share of the shards: tests start from settled leadership, since a
/// leader change may repeat a provider send that was in flight.
pub async fn start_cluster(root: &std::path::Path, n: u64, shards: u32) -> Vec<HeraldProcess> {
    start_cluster_with(root, n, shards, &[]).await
}

/// [`start_cluster`] with extra environment settings on every node.
pub async fn start_cluster_with(
    root: &std::path::Path,
    n: u64,
    shards: u32,
    env: &[(&str, &str)],
) -> Vec<HeraldProcess> {
    let nodes = start_cluster_placed(root, n, shards, env).await;
    let (client, url) = (Client::new(), nodes[0].url());
    let ids: Vec<u64> = nodes.iter().map(|n| n.id).collect();
    eventually(
        Duration::from_secs(30),
        "each node leads its share of the shards",
        || async { leaders_spread_evenly(&client.cluster(&url).await?, &ids).then_some(()) },
    )
    .await;
    nodes
}

/// [`start_cluster_with`] without waiting for leadership to spread: returns once every shard has
/// its voters, while the first node may still lead them all.
pub async fn start_cluster_placed(
    root: &std::path::Path,
    n: u64,
    shards: u32,
    env: &[(&str, &str)],
) -> Vec<HeraldProcess> {
    let client = Client::new();
    let first = HeraldProcess::spawn_with(root, 1, None, shards, env);
    let url = first.url();
    let mut nodes = vec![first];
    eventually(Duration::from_secs(60), "node 1 ready", || {
        client_ready(&client, &url)
    })
    .await;
    for id in 2..=n {
        let p = HeraldProcess::spawn_with(root, id, Some(url.clone()), shards, env);
        let u = p.url();
        nodes.push(p);
        eventually(Duration::from_secs(60), "joined node ready", || {
            client_ready(&client, &u)
        })
        .await;
    }
    let voters = n.min(3) as usize;
    let status = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            if let Some(c) = client.cluster(&url).await {
                if all_shards_have_voters(&c, voters) {
                    return c;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    if status.is_err() {
        for p in &nodes {
            eprintln!("--- node {} log ---\n{}", p.id, p.log_tail());
        }
        panic!(
            "shards did not reach {voters} voters: {:?}",
            client.cluster(&url).await
        );
    }
    nodes
}

async fn client_ready(client: &Client, url: &str) -> Option<()> {
    client.ready(url).await.then_some(())
}

/// (Re)start `node`, wait until it is ready, then read `user` through it (retrying while it
/// catches up) and return the user.
pub async fn restart_and_read(node: &mut HeraldProcess, client: &Client, user: &str) -> Value {
    node.start();
    let url = node.url();
    eventually(Duration::from_secs(60), "restarted node ready", || async {
        client.ready(&url).await.then_some(())
    })
    .await;
    let r = eventually(
        Duration::from_secs(30),
        "read through the restarted node",
        || async {
            let r = client
                .call("GET", &format!("{url}/v1/users/{user}"), None)
                .await
                .ok()?;
            (r.status == 200).then_some(r)
        },
    )
    .await;
    r.body
}
