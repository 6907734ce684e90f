//! The final report: what was run and what was measured, as a table for people and as JSON
//! (`--out`) for tools. The JSON holds the same numbers plus the per-second series.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::config::{Config, LoadModel, Targets, UserDistribution};
use crate::deliveries::DeliverySummary;
use crate::server_cpu::ServerCpu;
use crate::stats::{Percentiles, Summary};

/// One run's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// `open` or `closed`.
    pub model: String,
    /// Open loop: requests per second attempted.
    pub rate: Option<f64>,
    /// Closed loop: concurrent workers.
    pub concurrency: Option<usize>,
    pub connections: usize,
    /// Requests, warmup included, that found every connection to their target busy and waited
    /// for one. In an open loop that wait is the generator's limit, and it counts in latency.
    pub connection_waits: u64,
    pub targets: Vec<String>,
    /// Set when the cluster was started by `--spawn`.
    pub spawned_nodes: Option<usize>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub timeout_s: f64,
    pub users: u64,
    /// Distinct recipients per trigger (workflow scenarios only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients_per_trigger: Option<usize>,
    /// Zipf exponent, if recipients were skewed.
    pub skew: Option<f64>,
    pub seed: u64,
    /// True if Ctrl-C cut the run short.
    pub interrupted: bool,
    #[serde(flatten)]
    pub summary: Summary,
    /// Webhook deliveries (the `webhook` scenario), measured at the in-process sink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<DeliverySummary>,
    /// CPU of the spawned nodes over the measured window (`--spawn` on Linux only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu: Option<ServerCpu>,
}

impl Report {
    pub(crate) fn new(
        config: &Config,
        scenario: &str,
        targets: Vec<String>,
        interrupted: bool,
        summary: Summary,
    ) -> Self {
        let (model, rate, concurrency) = match config.load {
            LoadModel::Open { rate } => ("open", Some(rate), None),
            LoadModel::Closed { concurrency } => ("closed", None, Some(concurrency)),
        };
        Self {
            scenario: scenario.to_string(),
            model: model.to_string(),
            rate,
            concurrency,
            connections: config.effective_connections(),
            connection_waits: 0,
            targets,
            spawned_nodes: match &config.targets {
                Targets::Spawn(s) => Some(s.nodes),
                Targets::Urls(_) => None,
            },
            duration_s: config.duration.as_secs_f64(),
            warmup_s: config.warmup.as_secs_f64(),
            timeout_s: config.timeout.as_secs_f64(),
            users: config.users,
            recipients_per_trigger: config
                .scenario
                .needs_service_token()
                .then_some(config.recipients),
            skew: match config.distribution {
                UserDistribution::Zipf { s } => Some(s),
                UserDistribution::Uniform => None,
            },
            seed: config.seed,
            interrupted,
            summary,
            deliveries: None,
            server_cpu: None,
        }
    }

    /// No request succeeded: the run measured nothing.
    pub fn is_empty(&self) -> bool {
        self.summary.successes == 0
    }

    /// Human-readable summary table.
    pub fn render_table(&self) -> String {
        let s = &self.summary;
        let mut out = String::new();
        let load = match (self.rate, self.concurrency) {
            (Some(rate), _) => format!("open loop at {rate} req/s"),
            (_, Some(c)) => format!("closed loop, concurrency {c}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "scenario {}  |  {load}  |  {} connections  |  {} target(s)  |  {:.1}s measured after {:.1}s warmup{}",
            self.scenario,
            self.connections,
            self.targets.len(),
            s.window_s,
            self.warmup_s,
            if self.interrupted { "  |  INTERRUPTED" } else { "" },
        );
        let _ = writeln!(out, "  requests     {:>12}", s.requests);
        let _ = writeln!(out, "  successes    {:>12}", s.successes);
        let _ = writeln!(out, "  errors       {:>12}", s.errors);
        for (kind, count) in &s.errors_by_kind {
            let _ = writeln!(out, "    {kind:<12}{count:>10}");
        }
        let _ = writeln!(out, "  throughput   {:>12.1} req/s", s.throughput_rps);
        latency_rows(&mut out, "latency ms", &s.latency_ms);
        if let Some(cpu) = &self.server_cpu {
            let _ = writeln!(
                out,
                "  server cpu   {:>12.2} cores, {:.0} µs per request (spawned nodes)",
                cpu.cores, cpu.us_per_request
            );
        }
        if self.connection_waits > 0 {
            let _ = writeln!(
                out,
                "  waited       {:>12} requests for one of the {} connections (the generator's \
                 limit, counted in latency; raise --connections)",
                self.connection_waits, self.connections
            );
        }
        if let Some(d) = &self.deliveries {
            let _ = writeln!(
                out,
                "deliveries (webhook sink; counts include warmup)  |  drained {:.1}s, {}",
                d.drain_s,
                d.drain_end.as_str()
            );
            let _ = writeln!(out, "  acknowledged {:>12}", d.acknowledged_triggers);
            if d.expected != d.acknowledged_triggers {
                let _ = writeln!(out, "  expected     {:>12}", d.expected);
            }
            let _ = writeln!(out, "  delivered    {:>12}", d.delivered);
            let _ = writeln!(out, "  missing      {:>12}", d.missing());
            let _ = writeln!(out, "  duplicates   {:>12}", d.duplicates);
            if d.malformed > 0 {
                let _ = writeln!(out, "  malformed    {:>12}", d.malformed);
            }
            let _ = writeln!(
                out,
                "  received     {:>12.1} /s (end of warmup to end of drain)",
                d.received_per_s
            );
            latency_rows(&mut out, "delivery ms", &d.latency_ms);
        }
        out
    }

    /// True if the sink saw fewer distinct deliveries than acknowledged triggers call for, or any
    /// duplicate.
    pub fn deliveries_incomplete(&self) -> bool {
        self.deliveries
            .as_ref()
            .is_some_and(|d| d.missing() > 0 || d.duplicates > 0)
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> crate::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("report serializes");
        std::fs::write(path, json)
            .map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))
    }
}

/// A percentile header row and its values, labelled `label` (12 characters wide).
fn latency_rows(out: &mut String, label: &str, l: &Percentiles) {
    let _ = writeln!(
        out,
        "  {label:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    let _ = writeln!(
        out,
        "               {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        l.p50, l.p90, l.p99, l.p999, l.max, l.mean
    );
}
