//! Workflows on a real 3-process cluster, delivering to a local webhook sink:
//! - kill -9 of a shard leader right after triggers are acknowledged loses no message, and every
//!   delivery carries a stable idempotency id (duplicates are detectable);
//! - a receiver that fails 3 times then succeeds gives one delivered message with 4 delivery logs;
//!   one that always fails ends `undelivered` after 8 attempts (retries are shortened to ~2 s by
//!   the harness's HERALD_RETRY_BASE_MS).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::*;
use serde_json::{json, Value};

/// What the sink received: per path, the (idempotency key, body) of every request.
struct Sink {
    received: Mutex<BTreeMap<String, Vec<(String, String)>>>,
    /// Per idempotency key: how many requests were answered so far (for the flaky path).
    attempts: Mutex<HashMap<String, u32>>,
    /// Requests to `/held` wait until this is true.
    open: tokio::sync::watch::Sender<bool>,
    /// Requests to `/held` that arrived (held or not).
    arrived_held: std::sync::atomic::AtomicUsize,
}

async fn receive(
    State(sink): State<Arc<Sink>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    if path == "held" {
        sink.arrived_held
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut open = sink.open.subscribe();
        let _ = open.wait_for(|o| *o).await;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    sink.received
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default()
        .push((key.clone(), body));
    let n = {
        let mut a = sink.attempts.lock().unwrap();
        let n = a.entry(key).or_default();
        *n += 1;
        *n
    };
    match path.as_str() {
        "flaky" if n <= 3 => StatusCode::SERVICE_UNAVAILABLE,
        "down" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    }
}

async fn start_sink() -> (SocketAddr, Arc<Sink>) {
    let sink = Arc::new(Sink {
        received: Mutex::default(),
        attempts: Mutex::default(),
        open: tokio::sync::watch::channel(false).0,
        arrived_held: Default::default(),
    });
    let app = Router::new()
        .route("/{path}", post(receive))
        .with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, sink)
}

/// Trigger `workflow` through `node` for one `user` with data `{"n": n}`; it must be accepted.
async fn trigger_for(client: &Client, node: &str, workflow: &str, user: &str, n: usize) {
    let r = client
        .call(
            "POST",
            &format!("{node}/v1/workflows/{workflow}/trigger"),
            Some(json!({ "recipients": [user], "data": { "n": n } })),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn push_webhook_workflow(client: &Client, node: &str, key: &str, url: &str) {
    let workflow = json!({ "workflow": {
        "name": key,
        "steps": [{
            "ref": "hook",
            "type": "channel",
            "channel_key": "webhook",
            "channel_type": "http",
            "template": {
                "method": "post",
                "url": url,
                "headers": [{"key": "content-type", "value": "application/json"}],
                "body": "{\"user\":\"{{ recipient.id }}\",\"n\":{{ n }}}"
            }
        }]
    }});
    let r = client
        .call_as(
            SERVICE,
            "PUT",
            &format!("{node}/v1/workflows/{key}"),
            Some(workflow),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_triggers_survive_a_leader_kill() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster(root.path(), 3, 16).await;
    let client = Client::new();
    let (sink_addr, sink) = start_sink().await;
    let entry = nodes[0].url();
    push_webhook_workflow(
        &client,
        &entry,
        "failover",
        &format!("http://{sink_addr}/held"),
    )
    .await;

    // Acknowledged triggers for users spread over every shard; the sink holds every delivery, so
    // the messages are queued or in flight when...
    let users: Vec<String> = (0..120).map(|i| format!("fo-{i}")).collect();
    for (i, u) in users.iter().enumerate() {
        trigger_for(&client, &entry, "failover", u, i).await;
    }
    // ...the leader of the first user's shard is killed (-9).
    let status = client.cluster(&entry).await.unwrap();
    let shard = shard_of_user(&users[0], 16);
    let leader = status["shards"][shard as usize]["leader"].as_u64().unwrap();
    let victim = nodes.iter().position(|n| n.id == leader).unwrap();
    nodes[victim].kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sink.open.send_replace(true);

    let expected: BTreeSet<String> = users.iter().cloned().collect();
    let delivered = eventually(Duration::from_secs(60), "every trigger delivered", || {
        let sink = sink.clone();
        let expected = expected.clone();
        async move {
            let received = sink.received.lock().unwrap();
            let by_user: BTreeMap<String, BTreeSet<String>> = received
                .get("held")?
                .iter()
                .map(|(key, body)| {
                    let v: Value = serde_json::from_str(body).unwrap();
                    (v["user"].as_str().unwrap().to_owned(), key.clone())
                })
                .fold(BTreeMap::new(), |mut m, (user, key)| {
                    m.entry(user).or_default().insert(key);
                    m
                });
            let users: BTreeSet<String> = by_user.keys().cloned().collect();
            (users == expected).then_some(by_user)
        }
    })
    .await;
    // Every user's deliveries (a resend after failover included) carry one stable message id,
    // and no two users share one.
    let ids: BTreeSet<&String> = delivered
        .values()
        .map(|keys| {
            assert_eq!(
                keys.len(),
                1,
                "one stable idempotency id per message: {keys:?}"
            );
            keys.iter().next().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), users.len());
    assert!(ids.iter().all(|id| !id.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leadership_hand_off_waits_for_the_send_in_flight() {
    const SHARDS: u32 = 4;
    let root = tempfile::tempdir().unwrap();
    let client = Client::new();
    let (sink_addr, sink) = start_sink().await;
    let arrived = || sink.arrived_held.load(std::sync::atomic::Ordering::SeqCst);
    // One node leads every shard; a user whose shard node 2 or 3 should lead once they join.
    let mut nodes = start_cluster(root.path(), 1, SHARDS).await;
    let url = nodes[0].url();
    let preferred = herald_shard::preferred_leaders(SHARDS, &[1, 2, 3], 3);
    let user = (0..)
        .map(|i| format!("inflight-{i}"))
        .find(|u| preferred[shard_of_user(u, SHARDS) as usize] != 1)
        .unwrap();
    let shard = shard_of_user(&user, SHARDS) as usize;
    push_webhook_workflow(&client, &url, "slow", &format!("http://{sink_addr}/held")).await;
    trigger_for(&client, &url, "slow", &user, 1).await;
    eventually(Duration::from_secs(10), "the send is in flight", || async {
        (arrived() == 1).then_some(())
    })
    .await;

    // Two nodes join; every other shard moves to its preferred leader, this one waits.
    for id in [2, 3] {
        nodes.push(HeraldProcess::spawn(
            root.path(),
            id,
            Some(url.clone()),
            SHARDS,
        ));
    }
    let leaders = || async {
        let c = client.cluster(&url).await?;
        let leaders: Vec<u64> = c["shards"]
            .as_array()?
            .iter()
            .map(|s| s["leader"].as_u64())
            .collect::<Option<_>>()?;
        all_shards_have_voters(&c, 3).then_some(leaders)
    };
    eventually(
        Duration::from_secs(60),
        "the other shards moved",
        || async {
            let l = leaders().await?;
            (0..SHARDS as usize)
                .all(|s| s == shard || l[s] == preferred[s])
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        leaders().await.unwrap()[shard],
        1,
        "moved with a send in flight"
    );
    assert_eq!(arrived(), 1, "the message was sent again");

    // Once the send completes and its result commits, the shard moves too; nothing is resent.
    sink.open.send_replace(true);
    eventually(
        Duration::from_secs(30),
        "the shard moved after the send",
        || async { (leaders().await?[shard] == preferred[shard]).then_some(()) },
    )
    .await;
    message_with_status(&client, &url, &user, "delivered").await;
    assert_eq!(arrived(), 1, "the message was sent again");
}

/// The user's only message, once it reached `status`.
async fn message_with_status(client: &Client, node: &str, user: &str, status: &str) -> Value {
    eventually(
        Duration::from_secs(30),
        &format!("{user}'s message {status}"),
        || async {
            let r = client
                .call("GET", &format!("{node}/v1/users/{user}/messages"), None)
                .await
                .ok()?;
            let m = r.body["items"].as_array()?.first()?.clone();
            (m["status"] == status).then_some(m)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receivers_are_retried_then_given_up() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_cluster(root.path(), 3, 16).await;
    let client = Client::new();
    let (sink_addr, sink) = start_sink().await;
    let node = nodes[1].url();
    push_webhook_workflow(
        &client,
        &node,
        "flaky",
        &format!("http://{sink_addr}/flaky"),
    )
    .await;
    push_webhook_workflow(&client, &node, "down", &format!("http://{sink_addr}/down")).await;
    for (wf, user) in [("flaky", "retry-a"), ("down", "retry-b")] {
        trigger_for(&client, &node, wf, user, 1).await;
    }

    let read = nodes[2].url();
    let delivered = message_with_status(&client, &read, "retry-a", "delivered").await;
    let logs = client
        .call(
            "GET",
            &format!(
                "{read}/v1/messages/{}/delivery_logs",
                delivered["id"].as_str().unwrap()
            ),
            None,
        )
        .await
        .unwrap();
    let statuses: Vec<u64> = logs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["response"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![503, 503, 503, 200], "{}", logs.body);

    let undelivered = message_with_status(&client, &read, "retry-b", "undelivered").await;
    let logs = client
        .call(
            "GET",
            &format!(
                "{read}/v1/messages/{}/delivery_logs",
                undelivered["id"].as_str().unwrap()
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        logs.body["items"].as_array().unwrap().len(),
        8,
        "{}",
        logs.body
    );
    assert_eq!(sink.received.lock().unwrap()["down"].len(), 8);

    // The node that took the triggers counts them; the shard leaders count runs, messages and
    // delivery attempts by outcome.
    let mut all = String::new();
    for n in &nodes {
        all += &reqwest::get(format!("{}/metrics", n.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    for name in [
        "herald_triggers_total{workflow=\"flaky\"}",
        "herald_runs_total",
        "herald_messages_total{channel_type=\"http\",status=\"queued\"}",
        "herald_delivery_attempts_total{provider=\"webhook\",outcome=\"retry\"}",
        "herald_delivery_attempts_total{provider=\"webhook\",outcome=\"undelivered\"}",
        "herald_provider_latency_seconds",
        "herald_executor_queue_depth",
        "herald_proposal_batch_commands",
    ] {
        assert!(all.contains(name), "{name} missing from /metrics:\n{all}");
    }
}

fn herald_cli(args: &[&str], addr: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .args(["--addr", addr, "--token", SERVICE])
        .output()
        .expect("run herald")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_and_channel_files_push_pull_and_validate() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_cluster(root.path(), 1, 4).await;
    let client = Client::new();
    let url = nodes[0].url();
    let dir = root.path().join("workflows");
    std::fs::create_dir_all(&dir).unwrap();
    let good = json!({"name": "Welcome", "steps": [{"ref": "feed", "type": "channel",
        "channel_key": "in-app", "channel_type": "in_app_feed",
        "template": {"markdown_body": "Hi {{ recipient.name }}"}}]});
    let bad = json!({"name": "Broken", "steps": [{"ref": "mail", "type": "channel",
        "channel_key": "no-such-channel", "channel_type": "email", "template": {"subject": "x"},
        "conditions": {"all": [{"variable": "data.x", "operator": "resembles", "argument": 1}]}}]});
    std::fs::write(dir.join("welcome.json"), good.to_string()).unwrap();
    std::fs::write(dir.join("broken.json"), bad.to_string()).unwrap();
    let d = dir.to_str().unwrap();

    let out = herald_cli(&["workflow", "validate", d], &url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("broken.json: steps[0].channel_key"),
        "{stderr}"
    );
    assert!(
        stderr.contains("broken.json: steps[0].conditions"),
        "{stderr}"
    );
    assert!(!stderr.contains("welcome.json"), "{stderr}");

    // An invalid file in the directory: push changes nothing.
    assert!(!herald_cli(&["workflow", "push", d], &url).status.success());
    let get = |key: &'static str| {
        let client = &client;
        let url = url.clone();
        async move {
            client
                .call_as(SERVICE, "GET", &format!("{url}/v1/workflows/{key}"), None)
                .await
                .unwrap()
        }
    };
    assert_eq!(get("welcome").await.status, 404);

    std::fs::remove_file(dir.join("broken.json")).unwrap();
    let out = herald_cli(&["workflow", "push", d], &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = get("welcome").await;
    assert_eq!(
        (pushed.status, pushed.body["version"].clone()),
        (200, json!(1))
    );
    // Pushing the same files again makes no new version.
    assert!(herald_cli(&["workflow", "push", d], &url).status.success());
    assert_eq!(get("welcome").await.body["version"], json!(1));

    let pulled = root.path().join("pulled");
    let out = herald_cli(&["workflow", "pull", pulled.to_str().unwrap()], &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(pulled.join("welcome.json")).unwrap())
            .unwrap();
    assert_eq!(file["name"], "Welcome");
    assert!(file.get("sha").is_none() && file.get("active").is_none());

    let channels = root.path().join("channels");
    std::fs::create_dir_all(&channels).unwrap();
    let sms = json!({"type": "sms", "provider": "twilio", "name": "SMS",
        "settings": {"account_sid": "AC1", "auth_token": "secret", "from_number": "+15550001"}});
    std::fs::write(channels.join("sms.json"), sms.to_string()).unwrap();
    let out = herald_cli(&["channel", "push", channels.to_str().unwrap()], &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = client
        .call_as(SERVICE, "GET", &format!("{url}/v1/channels"), None)
        .await
        .unwrap();
    let keys: Vec<&str> = listed.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["email", "in-app", "sms", "webhook"]);
    assert!(
        !listed.body.to_string().contains("secret"),
        "secrets are never rendered"
    );
}
