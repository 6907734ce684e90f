//! What a run measured: [`Ceilings`] and [`Comparison`], as tables for people and JSON for tools
//! (the JSON holds every number the tables show, and more).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http_ceiling::HttpCeiling;
use crate::loadtest::LoadtestReport;
use crate::quic_ceiling::QuicCeiling;
use crate::rocksdb_ceiling::RocksdbCeiling;

/// The machine the numbers belong to: ceilings from another machine mean nothing here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub os: String,
    pub arch: String,
    /// Cores available to this process.
    pub cpus: usize,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: u64,
}

impl Machine {
    pub fn current() -> Self {
        Self {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            started_unix_s: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// Every ceiling of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ceilings {
    pub machine: Machine,
    /// Measured window of each measurement, seconds.
    pub duration_s: f64,
    /// Closed-loop concurrency of the HTTP and concurrent-QUIC measurements.
    pub concurrency: usize,
    pub http: HttpCeiling,
    pub rocksdb: RocksdbCeiling,
    pub quic: QuicCeiling,
}

impl Ceilings {
    /// The human-readable table.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "hardware ceilings  |  {} {}, {} cpus  |  {:.0}s per measurement  |  concurrency {}",
            m.os, m.arch, m.cpus, self.duration_s, self.concurrency
        );
        let h = &self.http.loadtest;
        let _ = writeln!(out, "{:<46}  {:>18}  detail", "ceiling", "rate");
        row(
            &mut out,
            "HTTP  bare hyper, identify shape (loadtest)",
            &format!("{:.0} req/s", h.throughput_rps),
            &format!(
                "p50 {:.2} p99 {:.2} ms, {} errors",
                h.latency_ms.p50, h.latency_ms.p99, h.errors
            ),
        );
        let r = &self.rocksdb;
        row(
            &mut out,
            &format!(
                "RocksDB  write {}B + fdatasync, one at a time",
                r.entry_bytes
            ),
            &format!("{:.0} syncs/s", r.single.writes_per_s),
            &format!(
                "p50 {} p99 {} max {} us",
                r.single.p50_us, r.single.p99_us, r.single.max_us
            ),
        );
        row(
            &mut out,
            &format!("RocksDB  {} writers + 1 syncer loop", r.batched.writers),
            &format!("{:.0} entries/s", r.batched.entries_per_s),
            &format!(
                "{:.0} syncs/s, {:.1} entries/sync",
                r.batched.syncs_per_s, r.batched.entries_per_sync
            ),
        );
        let q = &self.quic;
        row(
            &mut out,
            &format!("QUIC  sequential echo, {} B", q.sequential.payload_bytes),
            &format!("{:.0} rtt/s", q.sequential.calls_per_s),
            &format!("mean rtt {:.0} us", q.sequential.mean_rtt_us),
        );
        row(
            &mut out,
            &format!(
                "QUIC  {} concurrent callers, {} B",
                q.concurrent.callers, q.concurrent.payload_bytes
            ),
            &format!("{:.0} rtt/s", q.concurrent.calls_per_s),
            &format!("mean rtt {:.0} us", q.concurrent.mean_rtt_us),
        );
        row(
            &mut out,
            &format!(
                "QUIC  {} callers, {} KiB echo",
                q.throughput.callers,
                q.throughput.payload_bytes / 1024
            ),
            &format!("{:.0} MB/s", q.throughput_mb_per_s),
            &format!(
                "each way; {:.0} calls/s, mean rtt {:.0} us",
                q.throughput.calls_per_s, q.throughput.mean_rtt_us
            ),
        );
        let _ = writeln!(out, "RocksDB dir: {}", r.dir);
        out
    }
}

fn row(out: &mut String, name: &str, rate: &str, detail: &str) {
    let _ = writeln!(out, "{name:<46}  {rate:>18}  {detail}");
}

/// Herald next to the ceilings of the same run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub scenario: String,
    /// Nodes of the spawned Herald cluster.
    pub nodes: usize,
    pub herald: LoadtestReport,
    pub ceilings: Ceilings,
    /// Herald throughput / bare hyper throughput.
    pub throughput_ratio: f64,
    /// Herald p99 / bare hyper p99 (how many times slower the tail is).
    pub p99_ratio: f64,
}

impl Comparison {
    pub fn new(scenario: String, nodes: usize, herald: LoadtestReport, ceilings: Ceilings) -> Self {
        let bare = &ceilings.http.loadtest;
        let throughput_ratio = ratio(herald.throughput_rps, bare.throughput_rps);
        let p99_ratio = ratio(herald.latency_ms.p99, bare.latency_ms.p99);
        Self {
            scenario,
            nodes,
            herald,
            ceilings,
            throughput_ratio,
            p99_ratio,
        }
    }

    pub fn render_table(&self) -> String {
        let mut out = self.ceilings.render_table();
        let (h, b) = (&self.herald, &self.ceilings.http.loadtest);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} on {} node(s), concurrency {}",
            self.scenario,
            self.nodes,
            h.concurrency.unwrap_or(0)
        );
        let _ = writeln!(
            out,
            "{:<22} {:>14} {:>10} {:>10} {:>10}",
            "", "req/s", "p50 ms", "p99 ms", "errors"
        );
        for (name, r) in [("Herald", h), ("bare hyper (ceiling)", b)] {
            let _ = writeln!(
                out,
                "{:<22} {:>14.0} {:>10.2} {:>10.2} {:>10}",
                name, r.throughput_rps, r.latency_ms.p50, r.latency_ms.p99, r.errors
            );
        }
        let _ = writeln!(
            out,
            "{:<22} {:>14.3} {:>10} {:>10.1}x",
            "Herald / bare", self.throughput_ratio, "", self.p99_ratio
        );
        let r = &self.ceilings.rocksdb;
        let _ = writeln!(
            out,
            "context: {:.0} synced writes/s one at a time, {:.0} syncs/s under {} writers; \
             QUIC {:.0} rtt/s sequential, {:.0} rtt/s with {} callers",
            r.single.writes_per_s,
            r.batched.syncs_per_s,
            r.batched.writers,
            self.ceilings.quic.sequential.calls_per_s,
            self.ceilings.quic.concurrent.calls_per_s,
            self.ceilings.quic.concurrent.callers,
        );
        out
    }
}

/// `a / b`, 0 when `b` is 0 (a ceiling that measured nothing gives no ratio).
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Writes any report as pretty JSON.
pub fn write_json<T: Serialize>(value: &T, path: &Path) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        context: "serializing the report".into(),
        source,
    })?;
    std::fs::write(path, json).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::LatencyMs;
    use crate::quic_ceiling::RoundTrips;
    use crate::rocksdb_ceiling::{BatchedSync, SingleSync};

    fn loadtest(rps: f64, p99: f64) -> LoadtestReport {
        LoadtestReport {
            scenario: "identify".into(),
            model: "closed".into(),
            concurrency: Some(64),
            connections: 64,
            targets: vec![],
            spawned_nodes: None,
            duration_s: 10.0,
            warmup_s: 2.0,
            requests: 100,
            successes: 100,
            errors: 0,
            errors_by_kind: Default::default(),
            window_s: 10.0,
            throughput_rps: rps,
            latency_ms: LatencyMs {
                p50: 1.0,
                p99,
                ..Default::default()
            },
            interrupted: false,
        }
    }

    fn trips(callers: usize, payload_bytes: usize, calls_per_s: f64) -> RoundTrips {
        RoundTrips {
            callers,
            payload_bytes,
            calls: 10,
            seconds: 1.0,
            calls_per_s,
            mean_rtt_us: 100.0,
        }
    }

    fn sample() -> Ceilings {
        Ceilings {
            machine: Machine {
                os: "linux".into(),
                arch: "x86_64".into(),
                cpus: 2,
                started_unix_s: 0,
            },
            duration_s: 10.0,
            concurrency: 64,
            http: HttpCeiling {
                target: "http://127.0.0.1:1".into(),
                server_requests: 100,
                loadtest: loadtest(50_000.0, 4.0),
            },
            rocksdb: RocksdbCeiling {
                dir: "/tmp".into(),
                entry_bytes: 200,
                single: SingleSync {
                    writes: 10,
                    seconds: 1.0,
                    writes_per_s: 1234.0,
                    p50_us: 700,
                    p99_us: 2000,
                    max_us: 5000,
                },
                batched: BatchedSync {
                    writers: 4,
                    entries: 100,
                    syncs: 10,
                    seconds: 1.0,
                    entries_per_s: 300_000.0,
                    syncs_per_s: 900.0,
                    entries_per_sync: 333.3,
                },
            },
            quic: QuicCeiling {
                sequential: trips(1, 100, 9000.0),
                concurrent: trips(64, 100, 40_000.0),
                throughput: trips(4, 1 << 20, 500.0),
                throughput_mb_per_s: 524.3,
            },
        }
    }

    #[test]
    fn ceilings_table_shows_every_ceiling() {
        let table = sample().render_table();
        for needle in [
            "50000 req/s",
            "1234 syncs/s",
            "300000 entries/s",
            "333.3 entries/sync",
            "9000 rtt/s",
            "64 concurrent callers",
            "524 MB/s",
            "1024 KiB",
        ] {
            assert!(table.contains(needle), "{needle:?} missing from\n{table}");
        }
    }

    #[test]
    fn comparison_ratios_are_herald_over_bare() {
        let c = Comparison::new("identify".into(), 3, loadtest(5_000.0, 40.0), sample());
        assert!((c.throughput_ratio - 0.1).abs() < 1e-9);
        assert!((c.p99_ratio - 10.0).abs() < 1e-9);
        let table = c.render_table();
        assert!(table.contains("Herald / bare"));
        assert!(table.contains("0.100"));
        assert!(table.contains("10.0x"));
    }

    #[test]
    fn ceilings_survive_json_round_trip() {
        let json = serde_json::to_string(&sample()).unwrap();
        let back: Ceilings = serde_json::from_str(&json).unwrap();
        assert_eq!(back.http.loadtest, sample().http.loadtest);
        assert_eq!(back.machine, sample().machine);
    }

    #[test]
    fn ratio_of_nothing_is_zero() {
        assert_eq!(ratio(5.0, 0.0), 0.0);
    }
}
