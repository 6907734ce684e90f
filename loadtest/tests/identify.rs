//! The identify scenario against a local stand-in server: request shape, error accounting, and
//! the JSON / SVG outputs.

mod common;

use std::time::Duration;

use common::TestServer;
use herald_loadtest::{LoadModel, UserDistribution};
use hyper::StatusCode;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn identify_sends_knock_shaped_requests() {
    let server = TestServer::start(|_| async { StatusCode::OK }).await;
    let mut config = server.config(
        LoadModel::Closed { concurrency: 2 },
        Duration::from_millis(500),
    );
    config.users = 50;
    let report = herald_loadtest::run(config, CancellationToken::new())
        .await
        .unwrap();

    let requests = server.requests.lock().unwrap().clone();
    assert!(!requests.is_empty());
    assert_eq!(report.summary.successes as usize, requests.len());
    assert_eq!(report.summary.errors, 0);
    for request in &requests {
        assert_eq!(request.method, "PUT");
        let id = request
            .path
            .strip_prefix("/v1/users/")
            .expect("identify path");
        let index: u64 = id.strip_prefix("user-").unwrap().parse().unwrap();
        assert!(index < 50, "user index {index} outside --users");
        assert_eq!(request.headers["authorization"], "Bearer sk_test_123");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.headers["host"], server.addr.to_string());
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert!(body["name"].is_string());
        assert_eq!(body["email"], format!("{id}@loadtest.invalid"));
    }
}

#[tokio::test]
async fn errors_are_counted_by_kind_and_outputs_written() {
    let server = TestServer::start(|captured| async move {
        // Every request for an odd user index fails.
        let index: u64 = captured.path.rsplit('-').next().unwrap().parse().unwrap();
        if index % 2 == 1 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        }
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let mut config = server.config(LoadModel::Open { rate: 100.0 }, Duration::from_millis(1500));
    config.warmup = Duration::from_millis(200);
    config.distribution = UserDistribution::Zipf { s: 1.1 };
    config.users = 1000;
    config.out = Some(out.path().join("report.json"));
    config.plot = Some(out.path().join("plots"));
    let report = herald_loadtest::run(config, CancellationToken::new())
        .await
        .unwrap();

    let s = &report.summary;
    assert!(s.successes > 0 && s.errors > 0);
    assert_eq!(s.errors_by_kind["status 503"], s.errors);
    assert_eq!(s.requests, s.successes + s.errors);
    // 1.5 s at 100/s, warmup excluded.
    assert!((140..=160).contains(&s.requests), "requests {}", s.requests);
    assert!(
        (15..=25).contains(&s.warmup_requests),
        "warmup {}",
        s.warmup_requests
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["scenario"], "identify");
    assert_eq!(json["model"], "open");
    assert_eq!(json["errors_by_kind"]["status 503"], s.errors);
    assert!(json["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(!json["per_second"].as_array().unwrap().is_empty());
    for chart in ["latency.svg", "throughput.svg"] {
        let svg = std::fs::read_to_string(out.path().join("plots").join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("p99") == (chart == "latency.svg"));
    }
}

#[tokio::test]
async fn unreachable_target_gives_an_empty_report_with_connect_errors() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = herald_loadtest::Config::new(
        herald_loadtest::Targets::Urls(vec![herald_loadtest::Target::parse(&format!(
            "http://127.0.0.1:{port}"
        ))
        .unwrap()]),
        LoadModel::Open { rate: 50.0 },
    );
    config.secret_key = Some("sk_test".into());
    config.duration = Duration::from_millis(300);
    config.progress = herald_loadtest::Progress::Off;
    let report = herald_loadtest::run(config, CancellationToken::new())
        .await
        .unwrap();
    assert!(report.is_empty());
    assert!(report.summary.errors_by_kind["connect"] > 0);
}
