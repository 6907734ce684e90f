//! The official Python SDK (`knockapi`, strict response validation) against a 3-node cluster:
//! runs the pytest suite in `node/tests/sdk/python` with `HERALD_URLS` naming every node, so writes
//! go through one node and reads come back through another.

mod common;

use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knockapi_python_sdk_passes_against_a_three_node_cluster() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_cluster(root.path(), 3, 16).await;
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    // Users on four different shards, for the workflow tests.
    let mut spread: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for i in 0.. {
        let user = format!("spread-user-{i}");
        if seen.insert(shard_of_user(&user, 16)) {
            spread.push(user);
        }
        if spread.len() == 4 {
            break;
        }
    }
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/python");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(std::env::var("HERALD_PYTHON").unwrap_or_else(|_| "python3".into()))
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", suite])
            .env("HERALD_URL", &urls[0])
            .env("HERALD_URLS", urls.join(","))
            .env("HERALD_SECRET_KEY", SECRET)
            .env("HERALD_SERVICE_TOKEN", SERVICE)
            .env("HERALD_SPREAD_USERS", spread.join(","))
            .output()
            .expect("run python3 -m pytest (install node/tests/sdk/python/requirements.txt)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}\n{stderr}");
    if !output.status.success() {
        for n in &nodes {
            eprintln!("--- node {} log ---\n{}", n.id, n.log_tail());
        }
    }
    assert!(output.status.success(), "the knockapi suite failed");
}
