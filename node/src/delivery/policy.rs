//! Retry timing and the per-provider circuit breaker. Both are pure: they take the jitter and the
//! current instant as inputs, so their tests need no clock, runtime or sleeps.
//!
//! Retry schedule (DESIGN.md: 8 attempts over about 30 minutes, then `undelivered`): the delay after
//! failure `n` is `base·2^(n-1)` with *equal jitter* — half fixed, half random — so retries of many
//! messages failing together spread out, yet no retry comes sooner than half the nominal delay. With
//! [`DEFAULT_RETRY_BASE`] the seven waits between eight attempts total 20–40 minutes, 30 on average.
//!
//! Breaker states:
//!
//! ```text
//!   Closed ──N consecutive failures──► Open ──cool-down elapsed──► HalfOpen (one probe at a time)
//!     ▲                                  ▲                              │
//!     └──────────── probe succeeds ──────┼──────────────────────────────┤
//!                                        └──────── probe fails ─────────┘
//! ```

use std::time::{Duration, Instant};

/// Attempts per message, the first included; after the last failure the message is `undelivered`.
pub const MAX_ATTEMPTS: u32 = 8;

/// Base of the exponential schedule: 19 s gives an expected 30 minutes over [`MAX_ATTEMPTS`]
/// (0.75 · 19 s · (2^7 − 1) ≈ 1810 s).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(19);

/// Exponent cap: keeps out-of-range attempt numbers from overflowing (2^20 · base is already weeks).
const MAX_EXPONENT: u32 = 20;

/// Delay before retry number `attempt` (1-based: the delay after the 1st failure is
/// `retry_delay(1, ..)`). `jitter` is a uniform sample in `[0, 1)`; values outside are clamped and
/// NaN counts as 0. The result lies in `[d/2, d)` for the nominal delay `d = base·2^(attempt-1)`.
pub fn retry_delay(attempt: u32, base: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(MAX_EXPONENT);
    let nominal = base.saturating_mul(1 << exponent);
    let half = nominal / 2;
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    let random = Duration::try_from_secs_f64(half.as_secs_f64() * jitter).unwrap_or(Duration::ZERO);
    half.saturating_add(random.min(half))
}

/// Where a breaker stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; failures are being counted.
    Closed,
    /// Calls are rejected until the cool-down has elapsed.
    Open,
    /// The cool-down has elapsed: one probe call decides whether to close or re-open.
    HalfOpen,
}

/// Per provider: opens after `threshold` consecutive failures, lets one probe through after
/// `cool_down`, closes on the probe's success and re-opens on its failure.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    consecutive_failures: u32,
    /// When the breaker (last) opened; `None` while closed.
    opened_at: Option<Instant>,
    /// When the current half-open probe was let through. A probe whose result never comes back (its
    /// future was dropped) would block the breaker forever, so after another cool-down a new probe
    /// replaces it.
    probe_since: Option<Instant>,
}

impl CircuitBreaker {
    /// `threshold` is clamped to at least 1.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cool_down,
            consecutive_failures: 0,
            opened_at: None,
            probe_since: None,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(opened) if now.saturating_duration_since(opened) < self.cool_down => {
                BreakerState::Open
            }
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go ahead now. In half-open state this admits the probe and marks it in
    /// flight, so callers must report its result with `record_*`.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                let probe_stale = self
                    .probe_since
                    .is_none_or(|since| now.saturating_duration_since(since) >= self.cool_down);
                if probe_stale {
                    self.probe_since = Some(now);
                }
                probe_stale
            }
        }
    }

    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.opened_at = None;
        self.probe_since = None;
    }

    pub fn record_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let probing = self.opened_at.is_some();
        if probing || self.consecutive_failures >= self.threshold {
            self.opened_at = Some(now);
            self.probe_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn eight_attempts_take_about_thirty_minutes() {
        let total = |jitter: f64| -> Duration {
            (1..MAX_ATTEMPTS)
                .map(|n| retry_delay(n, DEFAULT_RETRY_BASE, jitter))
                .sum()
        };
        let expected = total(0.5).as_secs_f64() / 60.0;
        assert!((28.0..=32.0).contains(&expected), "{expected} min");
        assert!(total(0.0) >= Duration::from_secs(20 * 60));
        assert!(total(0.999_999) <= Duration::from_secs(41 * 60));
    }

    #[test]
    fn delays_grow_and_jitter_stays_within_bounds() {
        let base = Duration::from_secs(10);
        let mut previous_mean = Duration::ZERO;
        for n in 1..=MAX_ATTEMPTS {
            let nominal = base * (1 << (n - 1));
            let low = retry_delay(n, base, 0.0);
            let high = retry_delay(n, base, 0.999_999);
            assert_eq!(low, nominal / 2);
            assert!(high < nominal && high > low, "attempt {n}: {high:?}");
            let mean = retry_delay(n, base, 0.5);
            assert!(mean > previous_mean, "attempt {n} not longer on average");
            previous_mean = mean;
        }
    }

    #[test]
    fn odd_inputs_never_panic() {
        let base = Duration::from_secs(19);
        assert_eq!(retry_delay(0, base, 0.0), retry_delay(1, base, 0.0));
        assert_eq!(retry_delay(1, base, f64::NAN), base / 2);
        assert_eq!(retry_delay(1, base, -3.0), base / 2);
        assert!(retry_delay(1, base, 7.0) <= base);
        assert!(retry_delay(u32::MAX, Duration::MAX, f64::INFINITY) >= Duration::from_secs(1));
    }

    #[test]
    fn breaker_opens_after_threshold_and_half_opens_after_cool_down() {
        let t0 = Instant::now();
        let cool = 50 * MS;
        let mut b = CircuitBreaker::new(3, cool);
        for _ in 0..2 {
            assert!(b.try_acquire(t0));
            b.record_failure(t0);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert!(b.try_acquire(t0));
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.try_acquire(t0 + 49 * MS));

        // Cool-down over: exactly one probe goes through.
        let t1 = t0 + cool;
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.try_acquire(t1));
        assert!(!b.try_acquire(t1 + MS), "second concurrent probe admitted");

        // The probe fails: open again for a full cool-down from now.
        b.record_failure(t1 + 2 * MS);
        assert_eq!(b.state(t1 + 3 * MS), BreakerState::Open);
        assert!(!b.try_acquire(t1 + 51 * MS));
        let t2 = t1 + 2 * MS + cool;
        assert!(b.try_acquire(t2));

        // The next probe succeeds: closed, and the failure count starts over.
        b.record_success();
        assert_eq!(b.state(t2), BreakerState::Closed);
        b.record_failure(t2);
        b.record_failure(t2);
        assert_eq!(b.state(t2), BreakerState::Closed);
    }

    #[test]
    fn a_lost_probe_is_replaced_after_another_cool_down() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(1, 10 * MS);
        b.record_failure(t0);
        assert!(b.try_acquire(t0 + 10 * MS)); // probe admitted, result never reported
        assert!(!b.try_acquire(t0 + 15 * MS));
        assert!(b.try_acquire(t0 + 20 * MS));
    }

    #[test]
    fn success_resets_consecutive_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(2, MS);
        b.record_failure(t0);
        b.record_success();
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
    }
}
