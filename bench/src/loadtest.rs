//! Running `herald-loadtest` as a child process and reading its JSON report.
//!
//! The ceilings and Herald are measured by the very same binary and flags, so the client's own
//! cost (and its share of the cores) is the same on both sides of a ratio. Only the report fields
//! this crate reads are declared below; see `loadtest/src/report.rs` and `stats.rs` for the
//! producer (`Report` with `Summary` flattened into it).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Time allowed on top of warmup + duration before the child is killed (start-up, report).
const SLACK: Duration = Duration::from_secs(60);
/// Extra time per spawned node: each may take up to loadtest's `--ready-timeout` (60 s) to start.
const PER_SPAWNED_NODE: Duration = Duration::from_secs(60);
/// Lines of the child's output kept for an error message.
const OUTPUT_TAIL_LINES: usize = 30;

/// `herald-loadtest` next to the running executable (both land in the same target directory).
pub fn default_loadtest_bin() -> PathBuf {
    sibling_binary("herald-loadtest")
}

/// `herald` next to the running executable.
pub fn default_herald_bin() -> PathBuf {
    sibling_binary("herald")
}

fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub enum LoadtestTarget {
    /// An already running server (`--targets URL --key KEY`).
    Url { url: String, key: String },
    /// A local Herald cluster that `herald-loadtest` starts itself (`--spawn N --herald-bin`).
    Spawn { nodes: usize, herald_bin: PathBuf },
}

/// One closed-loop `herald-loadtest` invocation.
#[derive(Debug, Clone)]
pub struct LoadtestRun {
    pub bin: PathBuf,
    pub target: LoadtestTarget,
    pub scenario: String,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Where the child writes its JSON report.
    pub out: PathBuf,
}

impl LoadtestRun {
    /// The child's arguments.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        match &self.target {
            LoadtestTarget::Url { url, key } => {
                args.extend(["--targets".into(), url.into(), "--key".into(), key.into()]);
            }
            LoadtestTarget::Spawn { nodes, herald_bin } => {
                args.extend([
                    "--spawn".into(),
                    nodes.to_string().into(),
                    "--herald-bin".into(),
                    herald_bin.into(),
                ]);
            }
        }
        args.extend([
            "--scenario".into(),
            self.scenario.clone().into(),
            "--concurrency".into(),
            self.concurrency.to_string().into(),
            "--duration".into(),
            duration_arg(self.duration),
            "--warmup".into(),
            duration_arg(self.warmup),
            "--quiet".into(),
            "--out".into(),
            self.out.clone().into(),
        ]);
        args
    }

    /// How long the child may run before it is killed.
    pub fn time_limit(&self) -> Duration {
        let nodes = match self.target {
            LoadtestTarget::Url { .. } => 0,
            LoadtestTarget::Spawn { nodes, .. } => nodes as u32,
        };
        self.warmup + self.duration + SLACK + PER_SPAWNED_NODE * nodes
    }
}

/// Durations in milliseconds, a form `herald-loadtest`'s parser accepts.
fn duration_arg(d: Duration) -> OsString {
    format!("{}ms", d.as_millis()).into()
}

/// Latency percentiles in milliseconds, as `herald-loadtest` reports them.
pub use herald_loadtest::stats::Percentiles as LatencyMs;

/// The part of `herald-loadtest`'s JSON report this crate uses (unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadtestReport {
    pub scenario: String,
    pub model: String,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub connections: usize,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub spawned_nodes: Option<usize>,
    pub duration_s: f64,
    #[serde(default)]
    pub warmup_s: f64,
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    #[serde(default)]
    pub errors_by_kind: BTreeMap<String, u64>,
    #[serde(default)]
    pub window_s: f64,
    pub throughput_rps: f64,
    pub latency_ms: LatencyMs,
    #[serde(default)]
    pub interrupted: bool,
}

/// Parses a report written by `herald-loadtest --out`.
pub fn parse_report(json: &str) -> Result<LoadtestReport> {
    serde_json::from_str(json).map_err(|source| Error::Json {
        context: "parsing the herald-loadtest report".into(),
        source,
    })
}

/// Reads a report file.
pub fn read_report(path: &Path) -> Result<LoadtestReport> {
    let json = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    parse_report(&json)
}

/// Runs the child to completion (killed after [`LoadtestRun::time_limit`]) and returns its report.
/// Exit code 1 with a report on disk (no successful request) still returns the report: the caller
/// sees `successes == 0`; any other failure is an error carrying the end of the child's output.
pub async fn run(run: &LoadtestRun) -> Result<LoadtestReport> {
    if !run.bin.is_file() {
        return Err(Error::LoadtestMissing(run.bin.clone()));
    }
    let _ = std::fs::remove_file(&run.out);
    let child = tokio::process::Command::new(&run.bin)
        .args(run.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("starting {}", run.bin.display()), e))?;
    let limit = run.time_limit();
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => output.map_err(|e| Error::io("waiting for herald-loadtest", e))?,
        // Dropping the future drops the child, which kills it.
        Err(_) => return Err(Error::LoadtestTimeout(limit)),
    };
    let report_ok = output.status.success() || output.status.code() == Some(1);
    if report_ok && run.out.is_file() {
        return read_report(&run.out);
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(Error::LoadtestFailed {
        status: output.status.to_string(),
        output_tail: tail(&text, OUTPUT_TAIL_LINES),
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like `herald-loadtest --out` output (Report with Summary flattened).
    const SAMPLE: &str = r#"{
      "scenario": "identify", "model": "closed", "rate": null, "concurrency": 64,
      "connections": 64, "targets": ["http://127.0.0.1:41234"], "spawned_nodes": null,
      "duration_s": 10.0, "warmup_s": 2.0, "timeout_s": 10.0, "users": 100000, "skew": null,
      "seed": 1, "interrupted": false,
      "requests": 512345, "successes": 512300, "errors": 45,
      "errors_by_kind": {"status 503": 40, "timeout": 5},
      "warmup_requests": 90000, "window_s": 10.0, "throughput_rps": 51230.0,
      "latency_ms": {"p50": 1.1, "p90": 2.0, "p99": 3.5, "p999": 9.0, "max": 20.0, "mean": 1.2},
      "per_second": [{"second": 0, "requests": 51000, "successes": 51000, "errors": 0,
                      "throughput_rps": 51000.0,
                      "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "p999": 8.0, "max": 9.0, "mean": 1.1}}]
    }"#;

    #[test]
    fn parses_a_loadtest_report() {
        let r = parse_report(SAMPLE).unwrap();
        assert_eq!(r.scenario, "identify");
        assert_eq!(r.concurrency, Some(64));
        assert_eq!(r.successes, 512_300);
        assert_eq!(r.errors_by_kind["status 503"], 40);
        assert_eq!(r.throughput_rps, 51_230.0);
        assert_eq!(r.latency_ms.p99, 3.5);
        assert_eq!(r.spawned_nodes, None);
    }

    #[test]
    fn rejects_a_report_without_throughput() {
        assert!(parse_report(r#"{"scenario": "identify"}"#).is_err());
    }

    #[test]
    fn builds_the_same_flags_herald_is_measured_with() {
        let run = LoadtestRun {
            bin: "herald-loadtest".into(),
            target: LoadtestTarget::Spawn {
                nodes: 3,
                herald_bin: "/x/herald".into(),
            },
            scenario: "identify".into(),
            concurrency: 64,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(15),
            out: "/tmp/r.json".into(),
        };
        let args: Vec<String> = run
            .args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args.join(" "),
            "--spawn 3 --herald-bin /x/herald --scenario identify --concurrency 64 \
             --duration 10000ms --warmup 15000ms --quiet --out /tmp/r.json"
        );
        assert_eq!(run.time_limit(), Duration::from_secs(25 + 60 + 180));
    }
}
