//! Three real `herald` processes: bootstrap + two joins, kill -9 of a shard leader, restart,
//! and no acknowledged write lost.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const SHARDS: u32 = 16;

fn leader_of(cluster: &serde_json::Value, shard: u32) -> Option<u64> {
    cluster["shards"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == shard)?["leader"]
        .as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_kill9_of_a_shard_leader() {
    let root = tempfile::tempdir().unwrap();
    let client = Client::new();
    tracing_phase("bootstrap node 1, join nodes 2 and 3");
    let mut nodes = start_cluster_placed(root.path(), 3, SHARDS, &[]).await;
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let ids: Vec<u64> = nodes.iter().map(|n| n.id).collect();

    tracing_phase("node 1 created every shard; leadership spreads while users are written");
    let writer = {
        let (client, urls) = (client.clone(), urls.clone());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut written = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let user = format!("spread-{}", written.len());
                let url = &urls[written.len() % urls.len()];
                let body = Some(json!({"seq": written.len()}));
                let r = client
                    .call("PUT", &format!("{url}/v1/users/{user}"), body)
                    .await
                    .unwrap();
                assert_eq!(r.status, 200, "{user} during hand-offs: {:?}", r.body);
                written.push(user);
            }
            written
        });
        (stop, task)
    };
    eventually(
        Duration::from_secs(30),
        "each node leads its share of the shards",
        || async { leaders_spread_evenly(&client.cluster(&urls[2]).await?, &ids).then_some(()) },
    )
    .await;
    writer.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.1.await.unwrap();
    eprintln!("{} users written while leadership spread", written.len());
    assert_users_readable(&client, &urls[1..], &written, "written during hand-offs").await;

    tracing_phase("identify through node 1, read through node 3");
    let r = client
        .call(
            "PUT",
            &format!("{}/v1/users/alice", urls[0]),
            Some(json!({"name": "Alice", "plan": "pro"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = client
        .call("GET", &format!("{}/v1/users/alice", urls[2]), None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "Alice");
    assert_eq!(r.body["plan"], "pro");

    tracing_phase("kill -9 the leader of alice's shard");
    let shard = shard_of_user("alice", SHARDS);
    let status = client.cluster(&urls[0]).await.unwrap();
    let leader = leader_of(&status, shard).expect("shard has a leader");
    let victim = nodes.iter().position(|n| n.id == leader).unwrap();
    nodes[victim].kill9();
    let killed_at = Instant::now();
    let survivors = live_urls(&nodes);

    // Writes and reads through the survivors succeed within 10 s.
    let mut i = 0;
    loop {
        let url = &survivors[i % survivors.len()];
        i += 1;
        let w = client
            .call(
                "PUT",
                &format!("{url}/v1/users/alice"),
                Some(json!({"plan": "enterprise"})),
            )
            .await;
        if matches!(&w, Ok(r) if r.status == 200) {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no write succeeded within 10 s: {:?}",
            w.map(|r| r.body)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for url in &survivors {
        let r = client
            .call("GET", &format!("{url}/v1/users/alice"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body["plan"], "enterprise");
    }
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "took {:?}",
        killed_at.elapsed()
    );
    let victim_id = nodes[victim].id;
    let reachable = |c: &serde_json::Value| {
        c["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["id"] == victim_id))
            .and_then(|n| n["reachable"].as_bool())
    };
    eventually(
        Duration::from_secs(10),
        "a survivor reports the killed node unreachable",
        || async { (!reachable(&client.cluster(&survivors[0]).await?)?).then_some(()) },
    )
    .await;

    tracing_phase("write while the node is down, restart it, read through it");
    let r = client
        .call(
            "PUT",
            &format!("{}/v1/users/bob-while-down", survivors[0]),
            Some(json!({"name": "Bob"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let bob = restart_and_read(&mut nodes[victim], &client, "bob-while-down").await;
    let restarted = nodes[victim].url();
    assert_eq!(bob["name"], "Bob");
    eventually(
        Duration::from_secs(60),
        "all shards back to 3 voters with leaders",
        || async {
            let c = client.cluster(&restarted).await?;
            all_shards_have_voters(&c, 3).then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the survivor reaches the restarted node again",
        || async { reachable(&client.cluster(&survivors[0]).await?)?.then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the restarted node leads its share again",
        || async { leaders_spread_evenly(&client.cluster(&restarted).await?, &ids).then_some(()) },
    )
    .await;
    let r = client
        .call("GET", &format!("{restarted}/v1/users/alice"), None)
        .await
        .unwrap();
    assert_eq!(r.body["plan"], "enterprise", "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_when_a_leader_dies_mid_stream() {
    let root = tempfile::tempdir().unwrap();
    let client = Client::new();
    let mut nodes = start_cluster(root.path(), 3, SHARDS).await;
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();

    tracing_phase("1000 writes; after 300, kill -9 the node leading the most shards");
    let status = client.cluster(&urls[0]).await.unwrap();
    let mut counts = std::collections::BTreeMap::<u64, usize>::new();
    for s in status["shards"].as_array().unwrap() {
        *counts.entry(s["leader"].as_u64().unwrap()).or_default() += 1;
    }
    let busiest = counts
        .iter()
        .max_by_key(|(_, c)| **c)
        .map(|(id, _)| *id)
        .unwrap();
    let victim = nodes.iter().position(|n| n.id == busiest).unwrap();

    let mut acked = BTreeSet::new();
    let mut failed = 0;
    for i in 0..1000u32 {
        if i == 300 {
            nodes[victim].kill9();
        }
        let live = live_urls(&nodes);
        let url = &live[i as usize % live.len()];
        let user = format!("user-{i}");
        match client
            .call(
                "PUT",
                &format!("{url}/v1/users/{user}"),
                Some(json!({"seq": i})),
            )
            .await
        {
            Ok(r) if r.status == 200 => {
                acked.insert(user);
            }
            _ => failed += 1,
        }
    }
    eprintln!("acknowledged {} writes, {failed} failed", acked.len());
    assert!(
        acked.len() >= 900,
        "too few writes acknowledged: {}",
        acked.len()
    );

    tracing_phase("every acknowledged write is readable through the survivors");
    let acked: Vec<String> = acked.into_iter().collect();
    assert_users_readable(&client, &live_urls(&nodes), &acked, "acknowledged").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_gets_exactly_the_replicas_placement_assigns_it() {
    let root = tempfile::tempdir().unwrap();
    let client = Client::new();
    let mut nodes = start_cluster(root.path(), 3, SHARDS).await;
    let first = nodes[0].url();
    for i in 0..50 {
        let r = client
            .call(
                "PUT",
                &format!("{first}/v1/users/early-{i}"),
                Some(json!({"n": i})),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    tracing_phase("join node 4: replicas move to match rendezvous placement over 4 nodes");
    let fourth = HeraldProcess::spawn(root.path(), 4, Some(first.clone()), SHARDS);
    let url4 = fourth.url();
    nodes.push(fourth);
    let expected: Vec<Vec<u64>> = (0..SHARDS)
        .map(|s| {
            let mut v = herald_shard::rendezvous_replicas(s, &[1, 2, 3, 4], 3);
            v.sort();
            v
        })
        .collect();
    assert!(
        expected.iter().any(|v| v.contains(&4)),
        "placement gives node 4 nothing"
    );
    assert!(
        expected.iter().any(|v| !v.contains(&4)),
        "placement gives node 4 everything"
    );
    let converged = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            if let Some(c) = client.cluster(&url4).await {
                let shards = c["shards"].as_array().cloned().unwrap_or_default();
                let matches = shards.len() == SHARDS as usize
                    && shards.iter().all(|s| {
                        let id = s["id"].as_u64().unwrap() as usize;
                        let mut voters: Vec<u64> = s["voters"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_u64().unwrap())
                            .collect();
                        voters.sort();
                        s["leader"].is_u64()
                            && voters == expected[id]
                            && s["learners"].as_array().unwrap().is_empty()
                    });
                if matches {
                    return c;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    if converged.is_err() {
        for n in &nodes {
            eprintln!("--- node {} log ---\n{}", n.id, n.log_tail());
        }
        panic!(
            "placement did not converge: {:?}",
            client.cluster(&url4).await
        );
    }
    let status = converged.unwrap();
    assert_eq!(status["nodes"].as_array().unwrap().len(), 4);

    tracing_phase("data written before the join reads back through node 4");
    for i in 0..50 {
        let r = client
            .call("GET", &format!("{url4}/v1/users/early-{i}"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "early-{i}: {:?}", r.body);
        assert_eq!(r.body["n"], i);
    }

    tracing_phase("operator views: herald cluster status and /metrics");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["cluster", "status", "--addr", &url4, "--token", SERVICE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NODE") && text.contains("LEADS") && text.contains("SHARD"),
        "{text}"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 4 + SHARDS as usize);
    // Each node row counts the shards it leads (a shard mid-election is led by none).
    let led: usize = rows[..4]
        .iter()
        .map(|l| {
            l.split_whitespace()
                .nth(3)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert!((1..=SHARDS as usize).contains(&led), "{text}");
    let metrics = reqwest::get(format!("{url4}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("herald_raft_wal_syncs_total"), "{metrics}");
    assert!(
        metrics.contains("herald_raft_wal_sync_seconds{quantile=\"0.99\"}"),
        "{metrics}"
    );
    // RocksDB's write-stall counts, one series per column family.
    for cf in herald_raft::storage::keys::ALL_CFS {
        for name in [
            "herald_rocksdb_write_stops_total",
            "herald_rocksdb_write_delays_total",
        ] {
            let series = format!("{name}{{cf=\"{cf}\"}} ");
            assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_a_restart_keeps_the_data() {
    let root = tempfile::tempdir().unwrap();
    let client = Client::new();
    let mut nodes = start_cluster(root.path(), 1, SHARDS).await;
    let url = nodes[0].url();
    let r = client
        .call(
            "PUT",
            &format!("{url}/v1/users/carol"),
            Some(json!({"name": "Carol"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);

    tracing_phase("SIGTERM: ordered shutdown, exit status 0");
    let status = nodes[0].terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        nodes[0].log_tail()
    );

    tracing_phase("restart from the same data dir");
    let carol = restart_and_read(&mut nodes[0], &client, "carol").await;
    assert_eq!(carol["name"], "Carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_down_past_a_snapshot_catches_up_by_installing_it() {
    let root = tempfile::tempdir().unwrap();
    let client = Client::new();
    // Snapshots every 10 entries, 10 kept behind: a replica that misses ~50 entries per shard
    // cannot be fed from the log.
    let mut nodes = start_cluster_with(root.path(), 3, 4, &[("HERALD_SNAPSHOT_EVERY", "10")]).await;
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();

    tracing_phase("node 3 down; 200 users written through node 1");
    nodes[2].kill9();
    let users: Vec<String> = (0..200).map(|i| format!("snap-{i}")).collect();
    // One at a time, so each write is an entry of its own: concurrent writes share entries (group
    // commit), and a fast run then made so few that the log was not purged past node 3's position,
    // node 3 caught up from the log, and no snapshot was ever installed.
    for u in &users {
        let url = format!("{}/v1/users/{u}", urls[0]);
        let r = client
            .call("PUT", &url, Some(json!({"name": u})))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    tracing_phase("node 3 restarts and installs snapshots");
    nodes[2].start();
    eventually_or_logs(
        Duration::from_secs(60),
        "node 3 installed snapshots",
        &nodes,
        || async {
            let n = client
                .counter(&urls[2], "herald_raft_snapshots_installed_total")
                .await?;
            (n > 0.0).then_some(())
        },
    )
    .await;

    tracing_phase("node 1 dies: shards now led by node 2 or 3 serve every user");
    nodes[0].kill9();
    for u in &users {
        let r = eventually(Duration::from_secs(30), "read after failover", || async {
            let r = client
                .call("GET", &format!("{}/v1/users/{u}", urls[2]), None)
                .await
                .ok()?;
            (r.status != 503 && r.status != 500).then_some(r)
        })
        .await;
        assert_eq!(r.status, 200, "{u}: {:?}", r.body);
        assert_eq!(r.body["name"], u.as_str());
    }
}

/// Read every one of `users` back, through `urls` in turn: each must answer 200.
async fn assert_users_readable(client: &Client, urls: &[String], users: &[String], what: &str) {
    for (k, user) in users.iter().enumerate() {
        let url = &urls[k % urls.len()];
        let r = client
            .call("GET", &format!("{url}/v1/users/{user}"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{what} {user} is missing: {:?}", r.body);
    }
}

/// The URLs of the nodes still running.
fn live_urls(nodes: &[HeraldProcess]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| n.url())
        .collect()
}

fn tracing_phase(name: &str) {
    eprintln!("=== phase: {name}");
}
