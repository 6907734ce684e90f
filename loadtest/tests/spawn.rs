//! `--spawn` against a fake `herald` (a small Python HTTP server): argument shape, shared keys,
//! readiness, round-robin over nodes, and cleanup. Needs python3 (the fake herald is a script).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use herald_loadtest::{Config, LoadModel, Progress, SpawnConfig, Targets};
use tokio_util::sync::CancellationToken;

const FAKE_HERALD: &str = r#"#!/usr/bin/env python3
import http.server, json, os, sys, threading
args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1] if name in args else None
record = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node-%s.json" % opt("--id"))
env = {k: os.environ.get(k) for k in ("HERALD_SECRET_KEY", "HERALD_PUBLIC_KEY", "HERALD_SERVICE_TOKEN")}
hits = {"put": 0}
lock = threading.Lock()
def save():
    with open(record + ".tmp", "w") as f:
        json.dump({"args": args, "env": env, "puts": hits["put"]}, f)
    os.replace(record + ".tmp", record)
save()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, code, body=b"{}"):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/v1/cluster":
            # Two nodes, every shard on both: what the load tester waits for before measuring.
            ok = self.headers.get("Authorization") == "Bearer " + env["HERALD_SERVICE_TOKEN"]
            shards = [{"id": i, "leader": 1, "voters": [1, 2], "learners": []} for i in range(8)]
            self.reply(200 if ok else 401, json.dumps({"nodes": [], "shards": shards}).encode())
        else:
            self.reply(200 if self.path == "/readyz" else 404)
    def do_PUT(self):
        ok = self.headers.get("Authorization") == "Bearer " + env["HERALD_SECRET_KEY"]
        with lock:
            hits["put"] += 1
            save()
        self.reply(200 if ok else 401)
    def log_message(self, *a):
        pass
host, port = opt("--http").rsplit(":", 1)
http.server.ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
"#;

fn python_available() -> bool {
    std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn read_record(dir: &Path, id: u32) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("node-{id}.json"))).unwrap()).unwrap()
}

fn arg<'a>(record: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    let args = record["args"].as_array().unwrap();
    let at = args.iter().position(|a| a == name)?;
    args[at + 1].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_starts_joins_loads_and_cleans_up() {
    // The suite's own setup installs python3 packages, so a missing python3 is a broken machine.
    assert!(
        python_available(),
        "python3 is needed for the fake herald binary"
    );
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("herald");
    std::fs::write(&bin, FAKE_HERALD).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut spawn = SpawnConfig::new(2);
    spawn.herald_bin = bin.clone();
    spawn.shards = Some(8);
    spawn.ready_timeout = Duration::from_secs(20);
    let mut config = Config::new(Targets::Spawn(spawn), LoadModel::Open { rate: 40.0 });
    config.duration = Duration::from_millis(500);
    config.progress = Progress::Off;
    let report = herald_loadtest::run(config, CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(report.targets.len(), 2);
    assert_eq!(report.spawned_nodes, Some(2));
    assert_eq!(
        report.summary.errors, 0,
        "{:?}",
        report.summary.errors_by_kind
    );
    assert!(report.summary.successes >= 15);
    // The spawned processes' CPU over the measured window (the fake herald's: small, but read).
    let cpu = report.server_cpu.expect("CPU of spawned nodes is measured");
    assert!(cpu.cores >= 0.0 && cpu.us_per_request >= 0.0, "{cpu:?}");

    let (first, second) = (
        read_record(bin_dir.path(), 1),
        read_record(bin_dir.path(), 2),
    );
    assert_eq!(first["args"][0], "start");
    assert_eq!(arg(&first, "--id"), Some("1"));
    assert_eq!(arg(&first, "--shards"), Some("8"));
    assert_eq!(arg(&first, "--join"), None);
    assert!(arg(&first, "--peer").unwrap().starts_with("127.0.0.1:"));
    assert_eq!(arg(&second, "--id"), Some("2"));
    assert_eq!(
        arg(&second, "--join").map(str::to_string),
        Some(format!("http://{}", arg(&first, "--http").unwrap()))
    );
    assert_eq!(first["env"], second["env"]);
    assert!(first["env"]["HERALD_SECRET_KEY"]
        .as_str()
        .unwrap()
        .starts_with("sk_"));
    assert!(first["env"]["HERALD_PUBLIC_KEY"]
        .as_str()
        .unwrap()
        .starts_with("pk_"));
    assert!(!first["env"]["HERALD_SERVICE_TOKEN"]
        .as_str()
        .unwrap()
        .is_empty());

    // Round robin: both nodes got about half of the load.
    let (a, b) = (
        first["puts"].as_u64().unwrap(),
        second["puts"].as_u64().unwrap(),
    );
    assert!(a.abs_diff(b) <= 1, "node 1 got {a}, node 2 got {b}");

    // Nodes are gone and their temp dir removed.
    let data = Path::new(arg(&first, "--data-dir").unwrap());
    assert!(!data.exists());
    assert!(!data.parent().unwrap().parent().unwrap().exists());
    let http = arg(&first, "--http").unwrap();
    assert!(
        std::net::TcpStream::connect(http).is_err(),
        "node 1 still listening"
    );
}
