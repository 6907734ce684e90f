//! The `webhook` scenario against a real 1-node Herald: every acknowledged trigger is delivered to
//! the in-process sink exactly once, and trigger-to-delivery latency is measured.

mod common;

use std::time::Duration;

use common::spawn_one;
use herald_loadtest::deliveries::DrainEnd;
use herald_loadtest::ScenarioKind;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_match_acknowledged_triggers() {
    let out = tempfile::tempdir().unwrap();
    let mut config = spawn_one(100.0, Duration::from_secs(3));
    config.scenario = ScenarioKind::Webhook;
    config.users = 1000;
    config.drain = Duration::from_secs(10);
    config.out = Some(out.path().join("report.json"));
    let report = herald_loadtest::run(config, CancellationToken::new())
        .await
        .unwrap();
    eprintln!("{}", report.render_table());

    let s = &report.summary;
    assert_eq!(s.errors, 0, "{:?}", s.errors_by_kind);
    assert!(
        (280..=310).contains(&s.successes),
        "successes {}",
        s.successes
    );
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
