//! CPU time of the spawned nodes over the measured window, read from `/proc/<pid>/stat`.
//!
//! On a shared two-core machine throughput swings by ±10% from run to run, because it depends on
//! latency as much as on work: a closed loop's rate is its concurrency over the latency, and an
//! open loop's rate is fixed. The CPU the server spends per request moves far less, so it is what
//! a change to the server's efficiency should be compared on. Only known for `--spawn` (the nodes
//! are this process's children) on Linux; the webhook sink's CPU is this process's, not counted.
//!
//! ```text
//!   end of warmup: sample ──── measured window ──── end of load: sample
//!   cores = Δ(utime + stime of every node) / Δwall;  µs per request = cores / throughput
//! ```

use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`: Linux's `USER_HZ`, which is
/// 100 on every architecture (it is part of the user ABI, unlike the kernel's `HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// What the spawned nodes spent over the measured window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerCpu {
    /// Average cores busy in the nodes' processes (all nodes together).
    pub cores: f64,
    /// CPU microseconds per successful request (all nodes together).
    pub us_per_request: f64,
}

/// A reading of the nodes' CPU time at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    cpu_s: f64,
}

/// Reads the CPU time of a fixed set of processes.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    pids: Vec<u32>,
}

impl CpuMeter {
    pub fn new(pids: Vec<u32>) -> Self {
        Self { pids }
    }

    /// The processes' CPU time now; `None` if any of them cannot be read (exited, not Linux).
    pub fn sample(&self) -> Option<CpuSample> {
        let mut cpu_s = 0.0;
        for pid in &self.pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            cpu_s += cpu_seconds(&stat)?;
        }
        Some(CpuSample {
            at: Instant::now(),
            cpu_s,
        })
    }
}

/// The CPU used between two samples, per request at `throughput_rps`. `None` for an empty window
/// or no throughput.
pub fn between(start: CpuSample, end: CpuSample, throughput_rps: f64) -> Option<ServerCpu> {
    let wall_s = end.at.checked_duration_since(start.at)?.as_secs_f64();
    if wall_s <= 0.0 || throughput_rps <= 0.0 {
        return None;
    }
    let cores = (end.cpu_s - start.cpu_s).max(0.0) / wall_s;
    Some(ServerCpu {
        cores,
        us_per_request: cores / throughput_rps * 1e6,
    })
}

/// `utime + stime` in seconds from the text of `/proc/<pid>/stat`. The command name (field 2) is
/// in parentheses and may itself hold spaces and parentheses, so fields are counted after the
/// last `)`: state is field 3, utime field 14 and stime field 15.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fields_are_counted_after_the_command_name() {
        // A name with spaces and parentheses; utime 250 and stime 50 ticks.
        let stat = "4242 (herald (node) 1) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 \
                    9 0 100 1000000 500 18446744073709551615";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("4242 (x) S 1 2"), None);
        assert_eq!(cpu_seconds("no name here"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let meter = CpuMeter::new(vec![std::process::id()]);
        let sample = meter.sample().expect("own /proc/<pid>/stat");
        assert!(sample.cpu_s >= 0.0);
        assert!(CpuMeter::new(vec![u32::MAX]).sample().is_none());
    }

    #[test]
    fn cores_and_cost_per_request() {
        let at = Instant::now();
        let start = CpuSample { at, cpu_s: 10.0 };
        let end = CpuSample {
            at: at + Duration::from_secs(10),
            cpu_s: 25.0,
        };
        let cpu = between(start, end, 3000.0).unwrap();
        assert!((cpu.cores - 1.5).abs() < 1e-9);
        assert!((cpu.us_per_request - 500.0).abs() < 1e-6);
        assert!(between(start, end, 0.0).is_none());
        assert!(between(end, start, 3000.0).is_none());
    }
}
