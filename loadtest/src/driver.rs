//! Load models: open loop (constant arrival rate) and closed loop (fixed concurrency).
//!
//! ```text
//! open:   scheduler --at start + i/rate--> spawn task(i) --wait for connection--> send --> Sample
//!         latency = completed - intended(i)        (queueing behind a stall is counted)
//! closed: C workers: loop { intended = now; send; Sample }
//!         latency = completed - send time          (a stall delays only C requests)
//! ```
//!
//! Both stop issuing at `start + warmup + duration` (or on cancellation) and then wait for
//! in-flight requests, each bounded by its deadline (`intended + timeout`), so a run always ends.
//!
//! In the open loop every scheduled request is a task from its intended time on, even while it
//! waits for a connection: a stall of `T` seconds at rate `R` holds about `R * T` small tasks
//! (bounded by `R * timeout`). That is the price of charging the wait to latency.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::Pool;
use crate::config::LoadModel;
use crate::scenario::Scenario;
use crate::stats::{ErrorKind, Sample};

/// What the driver needs from the run configuration.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    pub model: LoadModel,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    pub seed: u64,
}

/// When load actually stopped.
#[derive(Debug, Clone, Copy)]
pub struct DriverOutcome {
    /// When the last request was issued or load was cut short (at most `start + warmup + duration`).
    pub stopped: Instant,
    /// True if cancelled before the configured end.
    pub interrupted: bool,
}

/// Generates load from `start` until the configured end or `cancel`, sending one [`Sample`] per
/// request to `samples`. Returns after every request finished.
pub async fn run(
    pool: Arc<Pool>,
    scenario: Arc<dyn Scenario>,
    config: DriverConfig,
    start: Instant,
    samples: UnboundedSender<Sample>,
    cancel: CancellationToken,
) -> DriverOutcome {
    let end = start + config.warmup + config.duration;
    let tracker = TaskTracker::new();
    match config.model {
        LoadModel::Open { rate } => {
            open_loop(
                &tracker, pool, scenario, &config, rate, start, end, samples, &cancel,
            )
            .await
        }
        LoadModel::Closed { concurrency } => {
            for worker in 0..concurrency {
                let (pool, scenario, samples, cancel) = (
                    pool.clone(),
                    scenario.clone(),
                    samples.clone(),
                    cancel.clone(),
                );
                let seed = config.seed.wrapping_add(worker as u64);
                let timeout = config.timeout;
                tracker.spawn(async move {
                    let mut rng = SmallRng::seed_from_u64(seed);
                    while !cancel.is_cancelled() {
                        let intended = Instant::now();
                        if intended >= end {
                            break;
                        }
                        let request = scenario.request(&mut rng);
                        let outcome = classify(pool.send(request, intended + timeout).await);
                        let completed = Instant::now();
                        let _ = samples.send(Sample {
                            intended,
                            completed,
                            outcome,
                        });
                    }
                });
            }
        }
    }
    tracker.close();
    tokio::select! {
        _ = tracker.wait() => {}
        _ = cancel.cancelled() => {}
    }
    let interrupted = cancel.is_cancelled();
    let stopped = Instant::now().min(end);
    // After an interrupt, in-flight requests still finish within their deadline.
    tracker.wait().await;
    DriverOutcome {
        stopped,
        interrupted,
    }
}

#[allow(clippy::too_many_arguments)]
async fn open_loop(
    tracker: &TaskTracker,
    pool: Arc<Pool>,
    scenario: Arc<dyn Scenario>,
    config: &DriverConfig,
    rate: f64,
    start: Instant,
    end: Instant,
    samples: UnboundedSender<Sample>,
    cancel: &CancellationToken,
) {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    for i in 0u64.. {
        // Computed from `i` rather than accumulated, so rounding never drifts the rate.
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        if intended >= end || cancel.is_cancelled() {
            break;
        }
        if intended > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(intended) => {}
                _ = cancel.cancelled() => break,
            }
        }
        // If the scheduler itself fell behind, requests go out immediately but keep their
        // intended time: the delay is charged to latency, as a real client would see it.
        let request = scenario.request(&mut rng);
        let pool = pool.clone();
        let samples = samples.clone();
        let deadline = intended + config.timeout;
        tracker.spawn(async move {
            let outcome = classify(pool.send(request, deadline).await);
            let _ = samples.send(Sample {
                intended,
                completed: Instant::now(),
                outcome,
            });
        });
    }
}

fn classify(result: Result<hyper::Response<bytes::Bytes>, ErrorKind>) -> Result<u16, ErrorKind> {
    let response = result?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(ErrorKind::Status(status.as_u16()))
    }
}
