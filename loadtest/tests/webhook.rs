//! The `webhook` scenario against a real 1-node Herald: every acknowledged trigger is delivered to
//! the in-process sink exactly once, and trigger-to-delivery latency is measured.

mod common;

use std::time::Duration;

use common::{run_spawned, spawn_scenario};
use herald_loadtest::deliveries::DrainEnd;
use herald_loadtest::ScenarioKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_match_acknowledged_triggers() {
    let out = tempfile::tempdir().unwrap();
    let mut config = spawn_scenario(ScenarioKind::Webhook);
    config.drain = Duration::from_secs(10);
    config.out = Some(out.path().join("report.json"));
    let report = run_spawned(config).await;

    let s = &report.summary;
    let d = report
        .deliveries
        .as_ref()
        .expect("webhook reports deliveries");
    assert_eq!(d.acknowledged_triggers, s.successes);
    assert_eq!(d.delivered, d.acknowledged_triggers);
    assert_eq!(d.expected, d.acknowledged_triggers);
    assert_eq!(d.duplicates, 0);
    assert_eq!(d.malformed, 0);
    assert_eq!(d.drain_end, DrainEnd::Complete);
    // No warmup: every delivery is a latency sample.
    assert_eq!(d.latency_samples, d.delivered);
    assert!(d.latency_ms.p50 > 0.0 && d.latency_ms.max >= d.latency_ms.p99);
    assert!(d.received_per_s > 0.0);
    assert!(!report.deliveries_incomplete());

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["scenario"], "webhook");
    assert_eq!(json["deliveries"]["delivered"], d.delivered);
    assert_eq!(json["deliveries"]["drain_end"], "complete");
    assert!(json["deliveries"]["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
}
