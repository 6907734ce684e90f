//! `herald-loadtest`: a black-box HTTP load generator for Herald clusters.
//!
//! It speaks only HTTP to the addresses it is given (or to a local cluster it starts from the
//! `herald` binary) and must never link `herald-*` crates: what it measures is what a Knock SDK
//! user would see.
//!
//! ```text
//!  config ──> spawn (optional local cluster, waits for /readyz)
//!               │ targets + secret key
//!               v
//!  scenario::setup ──> driver (open or closed loop) ──> client::Pool ──> nodes, round-robin
//!                         │ one Sample per request
//!                         v
//!                       stats::collect (HDR histograms, overall + per second) ──> progress
//!                         │
//!                         v
//!                       report (table, --out JSON) ──> plot (--plot SVG)
//!
//!  --spawn only: server_cpu samples the nodes' CPU time at the end of warmup and of load
//!
//!  webhook scenario only: Herald ──POST──> sink (in-process, 127.0.0.1) ──> deliveries
//!                         after load: drain the sink ──> report.deliveries
//! ```
//!
//! Invariants:
//! - **No coordinated omission.** In an open loop every request has an intended send time fixed by
//!   the arrival rate; its latency runs from that time, including any wait for a free connection.
//!   A server stall therefore raises the percentiles in proportion to the requests it delayed.
//! - **Bounded.** Every run stops issuing at `warmup + duration` (or Ctrl-C), and every request
//!   gives up at `intended + timeout`, so the process always ends by itself.
//! - **Only the given addresses.** Requests go to `--targets` or to the spawned nodes on 127.0.0.1.
//! - **Reproducible.** All random choices come from `--seed` (except the run-unique workflow key).
//! - **Deliveries are drained, bounded.** After load the webhook sink is awaited until every
//!   acknowledged trigger's deliveries arrived, the count is flat for 2 s, or `--drain` passes.
//!
//! Layout: [`config`] (typed settings), [`spawn`] (local cluster), [`client`] (keep-alive pool),
//! [`driver`] (load models), [`scenario`] (request mixes behind one trait), [`stats`]
//! (histograms), [`server_cpu`] (the spawned nodes' CPU per request), [`sink`] (webhook receiver)
//! and [`deliveries`] (its accounting), [`progress`]
//! (live stderr), [`report`] (table + JSON), [`plot`] (SVG charts).

pub mod client;
pub mod config;
pub mod deliveries;
pub mod driver;
pub mod error;
pub mod plot;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod server_cpu;
pub mod sink;
pub mod spawn;
pub mod stats;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use config::{Config, LoadModel, Progress, Target, Targets, UserDistribution};
pub use error::{Error, Result};
pub use report::Report;
pub use scenario::ScenarioKind;
pub use spawn::SpawnConfig;

use client::Pool;
use driver::DriverConfig;
use progress::ProgressDisplay;
use scenario::{Scenario, ScenarioParams, UserPicker};
use server_cpu::CpuMeter;
use spawn::LocalCluster;
use stats::Recorder;

/// Runs one load test: starts the local cluster if asked, runs the scenario, writes `--out` and
/// `--plot` output, tears the cluster down, and returns the report. Cancelling `cancel` (Ctrl-C)
/// stops load early; the report then covers what ran and is marked interrupted.
pub async fn run(config: Config, cancel: CancellationToken) -> Result<Report> {
    config.validate()?;
    let mut cluster = None;
    let mut meter = None;
    let (targets, keys) = match &config.targets {
        Targets::Urls(targets) => (
            targets.clone(),
            Credentials {
                secret_key: config.secret_key.clone().expect("validated: key present"),
                service_token: config.service_token.clone(),
            },
        ),
        Targets::Spawn(spawn) => {
            if config.progress != Progress::Off {
                eprintln!("herald-loadtest: starting {} local node(s)", spawn.nodes);
            }
            let started = LocalCluster::start(spawn, &cancel).await?;
            if config.progress != Progress::Off {
                let urls: Vec<String> = started.targets().iter().map(Target::url).collect();
                eprintln!("herald-loadtest: cluster ready: {}", urls.join(", "));
            }
            let keys = started.keys();
            let found = (
                started.targets(),
                Credentials {
                    secret_key: keys.secret_key.clone(),
                    service_token: Some(keys.service_token.clone()),
                },
            );
            meter = Some(CpuMeter::new(started.pids()));
            cluster = Some(started);
            found
        }
    };

    let result = run_load(&config, &targets, keys, meter, cancel).await;

    if let Some(mut cluster) = cluster {
        let crashed = cluster.exited_nodes();
        for (id, status) in &crashed {
            eprintln!("herald-loadtest: node {id} exited during the run ({status})");
        }
        let failed = !crashed.is_empty() || !matches!(&result, Ok(report) if !report.is_empty());
        if let Some(logs) = cluster.shutdown(failed) {
            eprintln!("herald-loadtest: node logs kept in {}", logs.display());
        }
    }
    result
}

/// What the scenario authenticates with.
struct Credentials {
    secret_key: String,
    service_token: Option<String>,
}

async fn run_load(
    config: &Config,
    targets: &[Target],
    keys: Credentials,
    meter: Option<CpuMeter>,
    cancel: CancellationToken,
) -> Result<Report> {
    let pool = Arc::new(Pool::new(targets, config.effective_connections()));
    let params = ScenarioParams {
        secret_key: keys.secret_key,
        service_token: keys.service_token,
        users: UserPicker::new(config.users, config.distribution)?,
        recipients: config.recipients,
    };
    let mut scenario = scenario::build(config.scenario, params)?;
    tokio::select! {
        result = scenario.setup(&pool) => result?,
        _ = cancel.cancelled() => return Err(Error::Interrupted),
    }
    let scenario: Arc<dyn Scenario> = Arc::from(scenario);

    let start = Instant::now();
    let measure_start = start + config.warmup;
    if let Some(sink) = scenario.sink() {
        sink.begin(SystemTime::now() + config.warmup);
    }
    let (samples, received) = tokio::sync::mpsc::unbounded_channel();
    let collector = tokio::spawn(stats::collect(
        received,
        Recorder::new(measure_start, config.duration),
        ProgressDisplay::new(config.progress, start, config.warmup),
    ));
    // The nodes' CPU time at the end of warmup, read while the load runs.
    let cpu_at_start = meter.clone().map(|meter| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_start).await;
            meter.sample()
        })
    });
    let driver_config = DriverConfig {
        model: config.load,
        warmup: config.warmup,
        duration: config.duration,
        timeout: config.timeout,
        seed: config.seed,
    };
    let outcome = driver::run(
        pool.clone(),
        scenario.clone(),
        driver_config,
        start,
        samples,
        cancel.clone(),
    )
    .await;
    let cpu_at_end = meter.as_ref().and_then(CpuMeter::sample);
    let recorder = collector.await.expect("stats collector panicked");
    let summary = recorder.finish(outcome.stopped.saturating_duration_since(measure_start));
    // A run stopped during warmup never reached the window: do not wait for its start.
    let cpu_at_start = match cpu_at_start {
        Some(task) if task.is_finished() => task.await.ok().flatten(),
        Some(task) => {
            task.abort();
            None
        }
        None => None,
    };
    let server_cpu = match (cpu_at_start, cpu_at_end) {
        (Some(start), Some(end)) => server_cpu::between(start, end, summary.throughput_rps),
        _ => None,
    };
    let deliveries = match scenario.sink() {
        Some(sink) => {
            if config.progress != Progress::Off {
                eprintln!(
                    "herald-loadtest: waiting up to {:?} for deliveries ({} received so far)",
                    config.drain,
                    sink.delivered()
                );
            }
            let acknowledged = summary.successes + summary.warmup_successes;
            Some(sink.drain(acknowledged, config.drain, &cancel).await)
        }
        None => None,
    };

    let mut report = Report::new(
        config,
        scenario.name(),
        targets.iter().map(Target::url).collect(),
        outcome.interrupted,
        summary,
    );
    report.deliveries = deliveries;
    report.server_cpu = server_cpu;
    report.connection_waits = pool.waits();
    if let Some(path) = &config.out {
        report.write_json(path)?;
    }
    if let Some(dir) = &config.plot {
        plot::write_charts(&report, dir)?;
    }
    Ok(report)
}
