//! `compare`: the ceilings, then Herald under the same load generator, side by side.

use std::path::PathBuf;
use std::time::Duration;

use crate::ceilings::{self, CeilingsConfig};
use crate::error::{Error, Result};
use crate::loadtest::{self, LoadtestRun, LoadtestTarget};
use crate::report::Comparison;

/// Warmup before Herald is measured: elections, placement and RocksDB's first flushes settle.
pub const HERALD_WARMUP: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The ceilings run first, with the same duration and concurrency.
    pub ceilings: CeilingsConfig,
    /// `herald-loadtest --scenario`.
    pub scenario: String,
    /// Nodes of the local Herald cluster `herald-loadtest --spawn` starts.
    pub nodes: usize,
    /// The `herald` binary.
    pub herald_bin: PathBuf,
}

/// Runs the ceilings, then Herald, and pairs the results.
pub async fn run(config: &CompareConfig) -> Result<Comparison> {
    if config.nodes == 0 {
        return Err(Error::Config("--spawn must be > 0".into()));
    }
    if !config.herald_bin.is_file() {
        return Err(Error::Config(format!(
            "herald binary not found at {} (build it with `bash .ci/cargo build --release -p herald-node`, or pass --herald-bin)",
            config.herald_bin.display()
        )));
    }
    let ceilings = ceilings::run(&config.ceilings).await?;
    let work = tempfile::Builder::new()
        .prefix("herald-bench-compare-")
        .tempdir()
        .map_err(|e| Error::io("creating a temp dir", e))?;
    let c = &config.ceilings;
    if c.progress {
        eprintln!(
            "[herald-bench] Herald: {} on {} spawned node(s), {:?} + {:?} warmup",
            config.scenario, config.nodes, c.duration, HERALD_WARMUP
        );
    }
    let herald = loadtest::run(&LoadtestRun {
        bin: c.loadtest_bin.clone(),
        target: LoadtestTarget::Spawn {
            nodes: config.nodes,
            herald_bin: config.herald_bin.clone(),
        },
        scenario: config.scenario.clone(),
        concurrency: c.concurrency,
        duration: c.duration,
        warmup: HERALD_WARMUP,
        out: work.path().join("herald.json"),
    })
    .await?;
    Ok(Comparison::new(
        config.scenario.clone(),
        config.nodes,
        herald,
        ceilings,
    ))
}
