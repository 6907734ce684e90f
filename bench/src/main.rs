//! `herald-bench` CLI: flags -> configs -> [`herald_bench::ceilings::run`] /
//! [`herald_bench::compare::run`] -> table on stdout, JSON with `--out`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use herald_bench::ceilings::{self, CeilingsConfig};
use herald_bench::compare::{self, CompareConfig};
use herald_bench::loadtest::{default_herald_bin, default_loadtest_bin};
use herald_bench::{parse_duration, report};

/// Hardware ceilings measured in the same run as Herald, so Herald's numbers read as ratios.
///
/// Examples:
///   herald-bench ceilings --duration 10s --out ceilings.json
///   herald-bench compare --scenario identify --spawn 3 --duration 30s --concurrency 64
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure the HTTP, RocksDB synced-write and QUIC ceilings of this machine.
    Ceilings {
        #[command(flatten)]
        common: Common,
    },
    /// Measure the ceilings, then Herald (a local cluster), and print Herald / ceiling ratios.
    Compare {
        /// herald-loadtest scenario.
        #[arg(long, default_value = "identify")]
        scenario: String,
        /// Nodes of the local Herald cluster herald-loadtest starts.
        #[arg(long, value_name = "N")]
        spawn: usize,
        /// The herald binary (default: `herald` next to this executable).
        #[arg(long, value_name = "PATH")]
        herald_bin: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// Measured window of each measurement (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Closed-loop concurrency (HTTP load and concurrent QUIC callers).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Parent directory of the temporary RocksDB; put it on the filesystem of Herald's data.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Writer threads in the batched RocksDB measurement.
    #[arg(long, default_value_t = 4)]
    rocksdb_writers: usize,
    /// The herald-loadtest binary (default: next to this executable).
    #[arg(long, value_name = "PATH")]
    herald_loadtest: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

impl Common {
    fn ceilings_config(&self) -> CeilingsConfig {
        CeilingsConfig {
            duration: self.duration,
            concurrency: self.concurrency,
            dir: self.dir.clone().unwrap_or_else(std::env::temp_dir),
            loadtest_bin: self
                .herald_loadtest
                .clone()
                .unwrap_or_else(default_loadtest_bin),
            rocksdb_writers: self.rocksdb_writers,
            progress: !self.quiet,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ceilings { common } => {
            let config = common.ceilings_config();
            if config.progress {
                eprintln!(
                    "[herald-bench] measuring ceilings, about {:?}",
                    config.expected_length()
                );
            }
            let ceilings = ceilings::run(&config).await.context("ceilings")?;
            print!("{}", ceilings.render_table());
            if let Some(out) = &common.out {
                report::write_json(&ceilings, out)?;
            }
        }
        Command::Compare {
            scenario,
            spawn,
            herald_bin,
            common,
        } => {
            let config = CompareConfig {
                ceilings: common.ceilings_config(),
                scenario,
                nodes: spawn,
                herald_bin: herald_bin.unwrap_or_else(default_herald_bin),
            };
            let comparison = compare::run(&config).await.context("compare")?;
            print!("{}", comparison.render_table());
            if let Some(out) = &common.out {
                report::write_json(&comparison, out)?;
            }
        }
    }
    Ok(())
}
