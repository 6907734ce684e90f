//! Latency and outcome accounting.
//!
//! Every finished request becomes a [`Sample`] sent over a channel to one collector task, which owns
//! all histograms (no locks on the request path). Latencies are recorded in microseconds into
//! HDR histograms: one overall (3 significant digits) and one per second of the measured window
//! (2 significant digits, to keep long runs small). Only 2xx responses contribute latencies;
//! everything else is counted by [`ErrorKind`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::progress::ProgressDisplay;

/// Why a request did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The server answered with a non-2xx status.
    Status(u16),
    /// TCP connect or HTTP handshake failed.
    Connect,
    /// No complete response before the deadline (counted from the intended send time).
    Timeout,
    /// The connection failed while the request or response was in flight.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Status(code) => write!(f, "status {code}"),
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Io => f.write_str("io"),
        }
    }
}

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the load model meant to send it (open loop: the schedule; closed loop: actual send).
    pub intended: Instant,
    /// When the response was complete or the request failed.
    pub completed: Instant,
    /// `Ok(status)` for a 2xx response.
    pub outcome: Result<u16, ErrorKind>,
}

impl Sample {
    /// Latency as the client's user experienced it: from intended send to completion.
    pub fn latency(&self) -> Duration {
        self.completed.saturating_duration_since(self.intended)
    }
}

/// Histogram bounds: 1 µs .. 1 h.
const MAX_MICROS: u64 = 3_600_000_000;

pub(crate) fn new_histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, sigfig).expect("static histogram bounds are valid")
}

pub(crate) fn record_latency(hist: &mut Histogram<u64>, latency: Duration) {
    let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
    hist.record(micros).expect("value is clamped into bounds");
}

/// Latency percentiles in milliseconds. Deserializable so tools reading `--out` reports
/// (herald-bench) use this type rather than a copy of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub(crate) fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            p50: ms(hist.value_at_quantile(0.50)),
            p90: ms(hist.value_at_quantile(0.90)),
            p99: ms(hist.value_at_quantile(0.99)),
            p999: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
            mean: hist.mean() / 1000.0,
        }
    }
}

/// Outcomes of one second of the measured window (by completion time).
#[derive(Debug, Clone, Serialize)]
pub struct SecondSummary {
    /// Seconds since the end of warmup.
    pub second: u64,
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    /// Successful responses completed in this second.
    pub throughput_rps: f64,
    pub latency_ms: Percentiles,
}

/// Everything measured after warmup.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Requests that completed during warmup (not counted anywhere else).
    pub warmup_requests: u64,
    /// Of those, the 2xx ones (a trigger acknowledged in warmup still delivers).
    pub warmup_successes: u64,
    /// Length of the measured window in seconds (shorter than configured if interrupted).
    pub window_s: f64,
    /// Successful responses per second over the measured window.
    pub throughput_rps: f64,
    pub latency_ms: Percentiles,
    pub per_second: Vec<SecondSummary>,
}

struct Bucket {
    hist: Histogram<u64>,
    successes: u64,
    errors: u64,
}

/// Accumulates samples; see the module docs.
pub struct Recorder {
    measure_start: Instant,
    last_second: usize,
    overall: Histogram<u64>,
    seconds: Vec<Bucket>,
    successes: u64,
    errors: BTreeMap<ErrorKind, u64>,
    warmup_requests: u64,
    warmup_successes: u64,
}

impl Recorder {
    /// Samples intended before `measure_start` (the end of warmup) are ignored. Requests that
    /// complete after `duration` (drained in-flight ones) count in the last second, so the series
    /// does not end with a misleading partial second.
    pub fn new(measure_start: Instant, duration: Duration) -> Self {
        Self {
            measure_start,
            last_second: (duration.as_secs_f64().ceil() as usize).saturating_sub(1),
            overall: new_histogram(3),
            seconds: Vec::new(),
            successes: 0,
            errors: BTreeMap::new(),
            warmup_requests: 0,
            warmup_successes: 0,
        }
    }

    pub fn record(&mut self, sample: &Sample) {
        if sample.intended < self.measure_start {
            self.warmup_requests += 1;
            self.warmup_successes += u64::from(sample.outcome.is_ok());
            return;
        }
        let second = sample
            .completed
            .saturating_duration_since(self.measure_start)
            .as_secs() as usize;
        let second = second.min(self.last_second);
        while self.seconds.len() <= second {
            self.seconds.push(Bucket {
                hist: new_histogram(2),
                successes: 0,
                errors: 0,
            });
        }
        let bucket = &mut self.seconds[second];
        match sample.outcome {
            Ok(_) => {
                record_latency(&mut self.overall, sample.latency());
                record_latency(&mut bucket.hist, sample.latency());
                self.successes += 1;
                bucket.successes += 1;
            }
            Err(kind) => {
                *self.errors.entry(kind).or_default() += 1;
                bucket.errors += 1;
            }
        }
    }

    /// Summarises the run; `window` is the measured time the load model actually ran.
    pub fn finish(self, window: Duration) -> Summary {
        let errors: u64 = self.errors.values().sum();
        let window_s = window.as_secs_f64();
        Summary {
            requests: self.successes + errors,
            successes: self.successes,
            errors,
            errors_by_kind: self
                .errors
                .iter()
                .map(|(kind, count)| (kind.to_string(), *count))
                .collect(),
            warmup_requests: self.warmup_requests,
            warmup_successes: self.warmup_successes,
            window_s,
            throughput_rps: if window_s > 0.0 {
                self.successes as f64 / window_s
            } else {
                0.0
            },
            latency_ms: Percentiles::of(&self.overall),
            per_second: self
                .seconds
                .iter()
                .enumerate()
                .map(|(second, b)| SecondSummary {
                    second: second as u64,
                    requests: b.successes + b.errors,
                    successes: b.successes,
                    errors: b.errors,
                    throughput_rps: b.successes as f64,
                    latency_ms: Percentiles::of(&b.hist),
                })
                .collect(),
        }
    }
}

/// The collector task: drains samples until every sender is gone, updating live progress once a
/// second. Returns the recorder for [`Recorder::finish`].
pub async fn collect(
    mut samples: UnboundedReceiver<Sample>,
    mut recorder: Recorder,
    mut progress: ProgressDisplay,
) -> Recorder {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tokio::select! {
            sample = samples.recv() => match sample {
                Some(sample) => {
                    recorder.record(&sample);
                    progress.record(&sample);
                }
                None => break,
            },
            _ = tick.tick() => progress.tick(),
        }
    }
    progress.finish();
    recorder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        start: Instant,
        intended_ms: u64,
        latency_ms: u64,
        outcome: Result<u16, ErrorKind>,
    ) -> Sample {
        let intended = start + Duration::from_millis(intended_ms);
        Sample {
            intended,
            completed: intended + Duration::from_millis(latency_ms),
            outcome,
        }
    }

    #[test]
    fn warmup_is_excluded_and_seconds_bucket_by_completion() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start + Duration::from_secs(1), Duration::from_secs(2));
        recorder.record(&sample(start, 500, 10, Ok(200)));
        recorder.record(&sample(start, 1_000, 10, Ok(200)));
        recorder.record(&sample(start, 1_100, 1_000, Ok(201)));
        recorder.record(&sample(start, 1_200, 5, Err(ErrorKind::Status(503))));
        recorder.record(&sample(start, 1_300, 5, Err(ErrorKind::Timeout)));
        // Intended inside the window, completed after it: lands in the last second.
        recorder.record(&sample(start, 2_900, 500, Ok(200)));
        let summary = recorder.finish(Duration::from_secs(2));
        assert_eq!(summary.warmup_requests, 1);
        assert_eq!(summary.warmup_successes, 1);
        assert_eq!(summary.requests, 5);
        assert_eq!(summary.successes, 3);
        assert_eq!(summary.errors, 2);
        assert_eq!(summary.errors_by_kind["status 503"], 1);
        assert_eq!(summary.errors_by_kind["timeout"], 1);
        assert_eq!(summary.throughput_rps, 1.5);
        assert_eq!(summary.per_second.len(), 2);
        assert_eq!(summary.per_second[0].successes, 1);
        assert_eq!(summary.per_second[0].errors, 2);
        assert_eq!(summary.per_second[1].successes, 2);
        assert!((summary.latency_ms.max - 1000.0).abs() < 1.0);
        assert!((summary.latency_ms.p50 - 500.0).abs() < 1.0);
    }

    #[test]
    fn empty_percentiles_are_zero() {
        assert_eq!(Percentiles::of(&new_histogram(3)), Percentiles::default());
    }
}
