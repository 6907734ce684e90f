//! Coordinated omission: a 1 s server stall during an open-loop run must show up in the
//! percentiles; a closed loop against the same stall hides it.

mod common;

use std::time::Duration;

use common::TestServer;
use herald_loadtest::LoadModel;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_reports_a_stall_that_closed_loop_hides() {
    let stall = Duration::from_secs(1);
    let run_for = Duration::from_secs(3);

    let server = TestServer::stalling_once(Duration::from_secs(1), stall).await;
    let mut config = server.config(LoadModel::Open { rate: 200.0 }, run_for);
    config.connections = Some(8);
    let open = herald_loadtest::run(config, CancellationToken::new())
        .await
        .unwrap();
    drop(server);

    let server = TestServer::stalling_once(Duration::from_secs(1), stall).await;
    let config = server.config(LoadModel::Closed { concurrency: 8 }, run_for);
    let closed = herald_loadtest::run(config, CancellationToken::new())
        .await
        .unwrap();
    drop(server);

    let (o, c) = (&open.summary, &closed.summary);
    eprintln!("open:   {}", open.render_table());
    eprintln!("closed: {}", closed.render_table());

    // ~600 requests scheduled, none lost, and about a third of them queued behind the stall.
    assert_eq!(o.errors, 0);
    assert!(
        (560..=620).contains(&o.successes),
        "open-loop successes: {}",
        o.successes
    );
    assert!(
        o.latency_ms.p99 >= 500.0,
        "open-loop p99 {} ms hides the stall",
        o.latency_ms.p99
    );
    assert!(
        o.latency_ms.p90 >= 100.0,
        "open-loop p90 {} ms",
        o.latency_ms.p90
    );

    // The closed loop saw the stall (its max) but only `concurrency` requests waited.
    assert_eq!(c.errors, 0);
    assert!(
        c.latency_ms.max >= 500.0,
        "closed-loop max {} ms",
        c.latency_ms.max
    );
    assert!(
        o.latency_ms.p99 > 4.0 * c.latency_ms.p99,
        "open p99 {} ms vs closed p99 {} ms",
        o.latency_ms.p99,
        c.latency_ms.p99
    );

    // Per-second series cover the run; the stall second has a high p99 in the open loop.
    assert!(o.per_second.len() >= 3);
    assert!(o.per_second.iter().any(|s| s.latency_ms.p99 >= 500.0));
}
