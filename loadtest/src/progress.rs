//! Live progress on stderr: one indicatif line redrawn in place on a terminal, or one plain line
//! per second when stderr is redirected (CI logs stay readable).

use std::io::IsTerminal;
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use crate::config::Progress;
use crate::stats::{new_histogram, record_latency, Sample};

enum Output {
    Off,
    Bar(ProgressBar),
    Lines,
}

/// Per-second rate, error count and p99 over the last second (warmup included, and labelled).
pub struct ProgressDisplay {
    output: Output,
    start: Instant,
    measure_start: Instant,
    last_tick: Instant,
    interval: Histogram<u64>,
    interval_ok: u64,
    interval_errors: u64,
    total_ok: u64,
    total_errors: u64,
}

impl ProgressDisplay {
    pub fn new(mode: Progress, start: Instant, warmup: Duration) -> Self {
        let output = match mode {
            Progress::Off => Output::Off,
            Progress::Auto if std::io::stderr().is_terminal() => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                Output::Bar(bar)
            }
            Progress::Auto => Output::Lines,
        };
        Self {
            output,
            start,
            measure_start: start + warmup,
            last_tick: start,
            interval: new_histogram(2),
            interval_ok: 0,
            interval_errors: 0,
            total_ok: 0,
            total_errors: 0,
        }
    }

    pub fn record(&mut self, sample: &Sample) {
        match sample.outcome {
            Ok(_) => {
                record_latency(&mut self.interval, sample.latency());
                self.interval_ok += 1;
                self.total_ok += 1;
            }
            Err(_) => {
                self.interval_errors += 1;
                self.total_errors += 1;
            }
        }
    }

    pub fn tick(&mut self) {
        let now = Instant::now();
        let secs = now
            .saturating_duration_since(self.last_tick)
            .as_secs_f64()
            .max(1e-3);
        self.last_tick = now;
        let phase = if now < self.measure_start {
            " warmup"
        } else {
            ""
        };
        let p99 = if self.interval.is_empty() {
            0.0
        } else {
            self.interval.value_at_quantile(0.99) as f64 / 1000.0
        };
        let line = format!(
            "[{:>4}s{phase}] {:>8.0} req/s  errors {:>6} (total {})  p99 {:>8.2} ms  ok total {}",
            now.saturating_duration_since(self.start).as_secs(),
            self.interval_ok as f64 / secs,
            self.interval_errors,
            self.total_errors,
            p99,
            self.total_ok,
        );
        match &self.output {
            Output::Off => {}
            Output::Bar(bar) => bar.set_message(line),
            Output::Lines => eprintln!("{line}"),
        }
        self.interval.reset();
        self.interval_ok = 0;
        self.interval_errors = 0;
    }

    pub fn finish(&mut self) {
        if let Output::Bar(bar) = &self.output {
            bar.finish_and_clear();
        }
    }
}
