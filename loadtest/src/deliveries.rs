//! Webhook delivery accounting: what the `webhook` scenario's sink received, and when to stop
//! waiting for the rest. Pure: timestamps come in as arguments, so the tests need no runtime.
//!
//! ```text
//!  request built: data.sent_us = wall clock ──► Herald commits, acknowledges, delivers
//!                                                   │ POST, header idempotency-key = message id
//!                                                   v
//!  sink: Arrival { key, sent_us, arrived_us } ──► DeliveryRecorder ──► DeliverySummary
//!  after load:  DrainPolicy::check(delivered, quiet, elapsed) until complete / stalled / limit
//! ```
//!
//! - The first arrival of an idempotency key is a delivery; each later one is a **duplicate**
//!   (Herald re-sent a message the sink had already accepted).
//! - **Trigger-to-delivery latency** is the first arrival's wall-clock time minus `sent_us`, in the
//!   same process and clock. `sent_us` is stamped when the request is built, which in the open loop
//!   is its intended send time, so time spent queued in the client counts, as it does for
//!   acknowledgement latency. Only triggers sent after warmup are in the histogram.
//! - **Counts** (delivered, duplicates) cover the whole run, warmup included, because they are
//!   compared with every acknowledged trigger, warmup included.

use std::collections::HashSet;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::{new_histogram, record_latency, Percentiles};

/// How long the delivered count may stay flat before the drain gives up on the rest.
pub const DRAIN_QUIET: Duration = Duration::from_secs(2);

/// One request the sink received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The `idempotency-key` header (Herald's message id); empty if missing.
    pub key: String,
    /// `sent_us` from the JSON body, if it had one.
    pub sent_us: Option<u64>,
    /// Wall-clock arrival, microseconds since the Unix epoch.
    pub arrived_us: u64,
}

/// Accumulates arrivals; one task owns it (see [`crate::sink`]).
pub struct DeliveryRecorder {
    /// End of warmup, µs since the epoch; `u64::MAX` until load starts.
    measure_start_us: u64,
    // Membership only: its iteration order never reaches the report.
    seen: HashSet<String>,
    duplicates: u64,
    malformed: u64,
    latency: Histogram<u64>,
    /// Distinct deliveries per second since `measure_start_us`.
    per_second: Vec<u64>,
}

impl Default for DeliveryRecorder {
    fn default() -> Self {
        Self {
            measure_start_us: u64::MAX,
            seen: HashSet::new(),
            duplicates: 0,
            malformed: 0,
            latency: new_histogram(3),
            per_second: Vec::new(),
        }
    }
}

impl DeliveryRecorder {
    /// Sets the end of warmup: triggers sent before it stay out of the latency histogram.
    pub fn begin(&mut self, measure_start_us: u64) {
        self.measure_start_us = measure_start_us;
    }

    pub fn record(&mut self, arrival: Arrival) {
        if self.seen.contains(&arrival.key) {
            self.duplicates += 1;
            return;
        }
        self.seen.insert(arrival.key);
        if let Some(second) = arrival.arrived_us.checked_sub(self.measure_start_us) {
            let second = (second / 1_000_000) as usize;
            if self.per_second.len() <= second {
                self.per_second.resize(second + 1, 0);
            }
            self.per_second[second] += 1;
        }
        match arrival.sent_us {
            Some(sent) if sent >= self.measure_start_us => {
                let latency = Duration::from_micros(arrival.arrived_us.saturating_sub(sent));
                record_latency(&mut self.latency, latency);
            }
            Some(_) => {}
            None => self.malformed += 1,
        }
    }

    /// Distinct idempotency keys received so far.
    pub fn delivered(&self) -> u64 {
        self.seen.len() as u64
    }

    /// The summary once the drain ended at `end_us` (µs since the epoch).
    pub fn finish(
        &self,
        acknowledged_triggers: u64,
        recipients_per_trigger: u64,
        drain: Duration,
        drain_end: DrainEnd,
        end_us: u64,
    ) -> DeliverySummary {
        let window_s = end_us.saturating_sub(self.measure_start_us) as f64 / 1e6;
        let measured: u64 = self.per_second.iter().sum();
        DeliverySummary {
            acknowledged_triggers,
            expected: acknowledged_triggers * recipients_per_trigger,
            delivered: self.delivered(),
            duplicates: self.duplicates,
            malformed: self.malformed,
            drain_s: drain.as_secs_f64(),
            drain_end,
            received_per_s: if window_s > 0.0 {
                measured as f64 / window_s
            } else {
                0.0
            },
            latency_samples: self.latency.len(),
            latency_ms: Percentiles::of(&self.latency),
            per_second: self.per_second.clone(),
        }
    }
}

/// Why the wait for deliveries after load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainEnd {
    /// Every expected delivery arrived.
    Complete,
    /// The delivered count did not grow for [`DRAIN_QUIET`].
    Stalled,
    /// `--drain` ran out.
    Limit,
    /// Ctrl-C.
    Interrupted,
}

impl DrainEnd {
    /// The JSON spelling, for the table.
    pub fn as_str(self) -> &'static str {
        match self {
            DrainEnd::Complete => "complete",
            DrainEnd::Stalled => "stalled",
            DrainEnd::Limit => "limit",
            DrainEnd::Interrupted => "interrupted",
        }
    }
}

/// When to stop waiting for deliveries after load stopped.
#[derive(Debug, Clone, Copy)]
pub struct DrainPolicy {
    /// Deliveries the acknowledged triggers should cause.
    pub expected: u64,
    /// `--drain`.
    pub limit: Duration,
}

impl DrainPolicy {
    /// `Some(reason)` once waiting longer is pointless: `delivered` reached `expected`, the count
    /// has been flat for `quiet` >= [`DRAIN_QUIET`], or `elapsed` reached the limit.
    pub fn check(&self, delivered: u64, quiet: Duration, elapsed: Duration) -> Option<DrainEnd> {
        if delivered >= self.expected {
            Some(DrainEnd::Complete)
        } else if elapsed >= self.limit {
            Some(DrainEnd::Limit)
        } else if quiet >= DRAIN_QUIET {
            Some(DrainEnd::Stalled)
        } else {
            None
        }
    }
}

/// What the sink measured, in the report as `deliveries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverySummary {
    /// Triggers answered 2xx, warmup included.
    pub acknowledged_triggers: u64,
    /// Deliveries those triggers should cause: acknowledged × recipients per trigger.
    pub expected: u64,
    /// Distinct idempotency keys received, warmup included.
    pub delivered: u64,
    /// Requests repeating an idempotency key already received.
    pub duplicates: u64,
    /// Deliveries without a numeric `sent_us` in their body (no latency sample).
    pub malformed: u64,
    /// Seconds waited after load stopped.
    pub drain_s: f64,
    pub drain_end: DrainEnd,
    /// Distinct deliveries per second from the end of warmup to the end of the drain.
    pub received_per_s: f64,
    /// Trigger-to-delivery latency samples (triggers sent after warmup).
    pub latency_samples: u64,
    /// Trigger-to-delivery latency: sink arrival − `sent_us`.
    pub latency_ms: Percentiles,
    /// Distinct deliveries received in each second since the end of warmup, drain included.
    pub per_second: Vec<u64>,
}

impl DeliverySummary {
    /// Expected deliveries that never arrived.
    pub fn missing(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000_000;

    fn arrival(key: &str, sent_ms: u64, latency_ms: u64) -> Arrival {
        Arrival {
            key: key.into(),
            sent_us: Some(T0 + sent_ms * 1000),
            arrived_us: T0 + (sent_ms + latency_ms) * 1000,
        }
    }

    #[test]
    fn duplicates_warmup_and_latency_are_told_apart() {
        let mut recorder = DeliveryRecorder::default();
        recorder.record(arrival("warm", 0, 5));
        recorder.begin(T0 + 1_000_000);
        recorder.record(arrival("a", 1_000, 10));
        recorder.record(arrival("b", 1_500, 1_000));
        recorder.record(arrival("a", 1_000, 50));
        recorder.record(Arrival {
            key: "c".into(),
            sent_us: None,
            arrived_us: T0 + 2_100_000,
        });
        assert_eq!(recorder.delivered(), 4);

        let summary = recorder.finish(
            3,
            1,
            Duration::from_millis(700),
            DrainEnd::Complete,
            T0 + 3_000_000,
        );
        assert_eq!(summary.expected, 3);
        assert_eq!(summary.delivered, 4);
        assert_eq!(summary.duplicates, 1);
        assert_eq!(summary.malformed, 1);
        assert_eq!(summary.missing(), 0);
        assert_eq!(summary.latency_samples, 2);
        assert!((summary.latency_ms.p50 - 10.0).abs() < 0.1);
        assert!((summary.latency_ms.max - 1000.0).abs() < 1.0);
        // "warm" arrived before the window; "a" in second 0, "b" and "c" in second 1.
        assert_eq!(summary.per_second, vec![1, 2]);
        assert!((summary.received_per_s - 1.5).abs() < 1e-9);
        assert_eq!(summary.drain_s, 0.7);
    }

    #[test]
    fn drain_stops_when_complete_flat_or_out_of_time() {
        let policy = DrainPolicy {
            expected: 10,
            limit: Duration::from_secs(30),
        };
        let s = Duration::from_secs;
        assert_eq!(policy.check(10, s(0), s(0)), Some(DrainEnd::Complete));
        assert_eq!(policy.check(9, s(1), s(5)), None);
        assert_eq!(policy.check(9, s(2), s(5)), Some(DrainEnd::Stalled));
        assert_eq!(policy.check(9, s(0), s(30)), Some(DrainEnd::Limit));
        let nothing = DrainPolicy {
            expected: 0,
            limit: Duration::ZERO,
        };
        assert_eq!(nothing.check(0, s(0), s(0)), Some(DrainEnd::Complete));
    }
}
