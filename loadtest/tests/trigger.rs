//! The `trigger` scenario: request shapes against a stand-in server, then a short run against a
//! real 1-node Herald (the workspace's `herald` binary).

mod common;

use std::time::Duration;

use common::{run_spawned, spawn_scenario, TestServer};
use herald_loadtest::{LoadModel, ScenarioKind};
use hyper::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn trigger_pushes_a_workflow_then_triggers_it() {
    let server = TestServer::start(|_| async { StatusCode::OK }).await;
    let mut config = server.config(
        LoadModel::Closed { concurrency: 1 },
        Duration::from_millis(300),
    );
    config.scenario = ScenarioKind::Trigger;
    config.service_token = Some("svc_test".into());
    config.recipients = 3;
    config.users = 10;
    let report = herald_loadtest::run(config, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.recipients_per_trigger, Some(3));

    let requests = server.requests.lock().unwrap().clone();
    let (push, check) = (&requests[0], &requests[1]);
    assert_eq!(push.method, "PUT");
    let key = push.path.strip_prefix("/v1/workflows/").unwrap();
    assert!(key.starts_with("loadtest-trigger-"), "{key}");
    assert_eq!(push.headers["authorization"], "Bearer svc_test");
    let body: Value = serde_json::from_slice(&push.body).unwrap();
    let step = &body["workflow"]["steps"][0];
    assert_eq!(step["channel_type"], "in_app_feed");
    assert_eq!(step["channel_key"], "in-app");
    assert_eq!(
        (check.method.as_str(), check.path.as_str()),
        ("GET", push.path.as_str())
    );

    let triggers = &requests[2..];
    assert_eq!(report.summary.successes as usize, triggers.len());
    for (n, trigger) in triggers.iter().enumerate() {
        assert_eq!(trigger.method, "POST");
        assert_eq!(trigger.path, format!("/v1/workflows/{key}/trigger"));
        assert_eq!(trigger.headers["authorization"], "Bearer sk_test_123");
        let body: Value = serde_json::from_slice(&trigger.body).unwrap();
        let mut recipients: Vec<&str> = body["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        recipients.sort_unstable();
        recipients.dedup();
        assert_eq!(recipients.len(), 3, "distinct recipients: {recipients:?}");
        assert_eq!(body["data"]["n"], n as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_against_a_real_node() {
    let report = run_spawned(spawn_scenario(ScenarioKind::Trigger)).await;
    assert!(report.summary.latency_ms.p50 > 0.0);
    assert!(report.deliveries.is_none());
}
