//! `herald-loadtest` CLI: flags -> [`herald_loadtest::Config`] -> [`herald_loadtest::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use herald_loadtest::config::parse_duration;
use herald_loadtest::{
    Config, LoadModel, Progress, ScenarioKind, SpawnConfig, Target, Targets, UserDistribution,
};
use tokio_util::sync::CancellationToken;

/// The generator shares the machine with the cluster it measures: glibc's malloc was about 6% of
/// its CPU; mimalloc's thread-local heaps cost less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Black-box HTTP load generator for Herald clusters.
///
/// Examples:
///   herald-loadtest --spawn 3 --rate 2000 --duration 30s --warmup 5s --out report.json --plot plots
///   herald-loadtest --targets http://herald-1:7000,http://herald-2:7000 --key sk_... --concurrency 64
///   herald-loadtest --spawn 3 --scenario trigger --recipients 5 --rate 500 --duration 30s
///   herald-loadtest --spawn 1 --scenario webhook --rate 200 --duration 20s --drain 30s --out webhook.json
#[derive(Debug, Parser)]
#[command(name = "herald-loadtest", version, verbatim_doc_comment)]
struct Cli {
    /// Comma-separated node URLs (http://host:port); requests go round-robin over them.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "spawn",
        conflicts_with = "spawn"
    )]
    targets: Vec<String>,
    /// Start a local N-node cluster on 127.0.0.1 and target it.
    #[arg(long, value_name = "N")]
    spawn: Option<usize>,
    /// The herald binary for --spawn (default: `herald` next to this executable).
    #[arg(long, value_name = "PATH", requires = "spawn")]
    herald_bin: Option<PathBuf>,
    /// --shards for the spawned cluster.
    #[arg(long, requires = "spawn")]
    shards: Option<u32>,
    /// --replication for the spawned cluster.
    #[arg(long, requires = "spawn")]
    replication: Option<u32>,
    /// How long each spawned node may take to answer /readyz with 200.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    ready_timeout: Duration,
    /// Secret API key for --targets.
    #[arg(long, env = "HERALD_SECRET_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Service token for --targets (trigger and webhook push their workflow with it).
    #[arg(long, env = "HERALD_SERVICE_TOKEN", hide_env_values = true)]
    service_token: Option<String>,
    /// Request mix.
    #[arg(long, value_enum, default_value = "identify")]
    scenario: ScenarioKind,
    /// Open loop: constant arrival rate in requests per second.
    #[arg(
        long,
        required_unless_present = "concurrency",
        conflicts_with = "concurrency"
    )]
    rate: Option<f64>,
    /// Closed loop: number of concurrent workers.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Measured duration (e.g. 30s, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before measuring, excluded from stats.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Keep-alive connections in total (default: concurrency; for --rate, rate x 20 ms, at least 64).
    #[arg(long)]
    connections: Option<usize>,
    /// Per-request timeout, counted from the intended send time.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Number of distinct recipients.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// trigger, webhook: distinct recipients per trigger.
    #[arg(long, value_name = "K", default_value_t = 1)]
    recipients: usize,
    /// webhook: longest wait after load for outstanding deliveries (stops earlier once all
    /// arrived or none arrived for 2 s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    drain: Duration,
    /// Zipf exponent for recipient popularity (uniform if absent).
    #[arg(long)]
    skew: Option<f64>,
    /// Seed for all random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the JSON report (with per-second series) here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write latency.svg and throughput.svg into this directory.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Exit non-zero if any request failed (webhook: or a delivery was missing or duplicated).
    #[arg(long)]
    fail_on_error: bool,
    /// No live progress.
    #[arg(long)]
    quiet: bool,
}

impl Cli {
    fn into_config(self) -> Result<Config, String> {
        let targets = match self.spawn {
            Some(nodes) => {
                let mut spawn = SpawnConfig::new(nodes);
                if let Some(bin) = self.herald_bin {
                    spawn.herald_bin = bin;
                }
                spawn.shards = self.shards;
                spawn.replication = self.replication;
                spawn.ready_timeout = self.ready_timeout;
                Targets::Spawn(spawn)
            }
            None => Targets::Urls(
                self.targets
                    .iter()
                    .map(|t| Target::parse(t))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?,
            ),
        };
        let load = match (self.rate, self.concurrency) {
            (Some(rate), _) => LoadModel::Open { rate },
            (None, Some(concurrency)) => LoadModel::Closed { concurrency },
            (None, None) => return Err("one of --rate or --concurrency is required".into()),
        };
        let mut config = Config::new(targets, load);
        config.secret_key = self.key;
        config.service_token = self.service_token;
        config.recipients = self.recipients;
        config.drain = self.drain;
        config.scenario = self.scenario;
        config.duration = self.duration;
        config.warmup = self.warmup;
        config.connections = self.connections;
        config.timeout = self.timeout;
        config.users = self.users;
        config.distribution = match self.skew {
            Some(s) => UserDistribution::Zipf { s },
            None => UserDistribution::Uniform,
        };
        config.seed = self.seed;
        config.out = self.out;
        config.plot = self.plot;
        config.progress = if self.quiet {
            Progress::Off
        } else {
            Progress::Auto
        };
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let fail_on_error = cli.fail_on_error;
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("herald-loadtest: {err}");
            return ExitCode::from(2);
        }
    };

    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("herald-loadtest: interrupted, finishing in-flight requests");
            on_ctrl_c.cancel();
        }
    });

    match herald_loadtest::run(config, cancel).await {
        Ok(report) => {
            print!("{}", report.render_table());
            if report.is_empty() {
                eprintln!("herald-loadtest: no request succeeded");
                ExitCode::FAILURE
            } else if fail_on_error && report.summary.errors > 0 {
                eprintln!(
                    "herald-loadtest: {} request(s) failed",
                    report.summary.errors
                );
                ExitCode::FAILURE
            } else if fail_on_error && report.deliveries_incomplete() {
                eprintln!("herald-loadtest: deliveries missing or duplicated");
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("herald-loadtest: {err}");
            ExitCode::from(2)
        }
    }
}
