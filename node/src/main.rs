//! The `herald` binary: parse the CLI, layer the config (herald.toml < HERALD_* env < flags),
//! install tracing and metrics, and run a node until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use herald_node::config::Config;
use herald_node::ops::ClusterStatus;
use herald_node::server::Node;

/// glibc's malloc showed up as ~18% of a trigger benchmark's CPU (arena contention between the
/// tokio workers and RocksDB threads); mimalloc's thread-local heaps avoid most of it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Self-hosted notification infrastructure that speaks Knock's API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One node with embedded defaults: data in ./herald-data, HTTP on 127.0.0.1:7000.
    Dev(DevArgs),
    /// Start a cluster node: the first one (no --join) bootstraps, the others join through any member.
    Start(Box<StartArgs>),
    /// Operator commands against a running cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Workflows as files (one `<key>.json` per workflow) against the management API.
    Workflow {
        #[command(subcommand)]
        command: FilesCommand,
    },
    /// Channels as files (one `<key>.json` per channel) against the management API.
    Channel {
        #[command(subcommand)]
        command: FilesCommand,
    },
}

#[derive(Args)]
struct ManagementArgs {
    /// Directory of `<key>.json` files.
    dir: PathBuf,
    #[arg(long, env = "HERALD_ADDR", default_value = "http://127.0.0.1:7000")]
    addr: String,
    /// The cluster's service token.
    #[arg(long, env = "HERALD_SERVICE_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Subcommand)]
enum FilesCommand {
    /// Create or update each file's resource. Workflows are all validated first (nothing changes
    /// unless all are valid); channels are applied one by one and stop at the first refused file.
    Push(ManagementArgs),
    /// Write every resource on the server to the directory.
    Pull(ManagementArgs),
    /// Validate every file on the server; print every problem (workflows only).
    Validate(ManagementArgs),
}

#[derive(Args)]
struct DevArgs {
    #[arg(long, default_value = "herald-data")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7000")]
    http: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:7001")]
    peer: SocketAddr,
}

#[derive(Args)]
struct StartArgs {
    /// Config file (TOML, fields as in `Config`); read when present.
    #[arg(long, env = "HERALD_CONFIG", default_value = "herald.toml")]
    config: PathBuf,
    #[arg(long, env = "HERALD_ID")]
    id: Option<u64>,
    #[arg(long, env = "HERALD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "HERALD_HTTP")]
    http: Option<SocketAddr>,
    #[arg(long, env = "HERALD_PEER")]
    peer: Option<SocketAddr>,
    #[arg(long, env = "HERALD_ADVERTISE_HTTP")]
    advertise_http: Option<String>,
    #[arg(long, env = "HERALD_JOIN")]
    join: Option<String>,
    #[arg(long, env = "HERALD_SHARDS")]
    shards: Option<u32>,
    #[arg(long, env = "HERALD_REPLICATION")]
    replication: Option<u32>,
    #[arg(long, env = "HERALD_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    #[arg(long, env = "HERALD_PUBLIC_KEY", hide_env_values = true)]
    public_key: Option<String>,
    #[arg(long, env = "HERALD_SERVICE_TOKEN", hide_env_values = true)]
    service_token: Option<String>,
    /// fsync the WAL before acknowledging (default true).
    #[arg(long, env = "HERALD_SYNC_WAL")]
    sync_wal: Option<bool>,
    /// Least microseconds between two WAL syncs under load (default 1000; 0 = sync at once).
    #[arg(long, env = "HERALD_WAL_SYNC_INTERVAL_US")]
    wal_sync_interval_us: Option<u64>,
    #[arg(long, env = "HERALD_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// Applied entries per group between snapshots (default 20000).
    #[arg(long, env = "HERALD_SNAPSHOT_EVERY")]
    snapshot_every: Option<u64>,
    #[arg(long, env = "HERALD_LOG_FORMAT")]
    log_format: Option<String>,
    /// SMTP server of the default `email` channel (set at bootstrap).
    #[arg(long, env = "HERALD_SMTP_HOST")]
    smtp_host: Option<String>,
    #[arg(long, env = "HERALD_SMTP_PORT")]
    smtp_port: Option<u16>,
    #[arg(long, env = "HERALD_EMAIL_FROM")]
    email_from: Option<String>,
    /// Base delay of delivery retries in ms (8 attempts, about 30 minutes with the default).
    #[arg(long, env = "HERALD_RETRY_BASE_MS")]
    retry_base_ms: Option<u64>,
    #[arg(long, env = "HERALD_DELIVERY_CONCURRENCY")]
    delivery_concurrency: Option<usize>,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print nodes and shards (leader, voters, learners) as tables.
    Status {
        #[arg(long, env = "HERALD_ADDR", default_value = "http://127.0.0.1:7000")]
        addr: String,
        /// Service token or secret key.
        #[arg(long, env = "HERALD_SERVICE_TOKEN", hide_env_values = true)]
        token: String,
    },
}

impl StartArgs {
    fn into_config(self) -> Result<Config> {
        let mut c = match std::fs::read_to_string(&self.config) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("parse {}", self.config.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.config.display())),
        };
        macro_rules! layer {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = v; } )* };
        }
        layer!(
            id,
            data_dir,
            http,
            peer,
            shards,
            replication,
            sync_wal,
            wal_sync_interval_us,
            heartbeat_ms,
            snapshot_every,
            log_format,
            smtp_host,
            smtp_port,
            email_from,
            retry_base_ms,
            delivery_concurrency
        );
        macro_rules! layer_opt {
            ($($field:ident),*) => { $( if self.$field.is_some() { c.$field = self.$field; } )* };
        }
        layer_opt!(advertise_http, join, secret_key, public_key, service_token);
        Ok(c)
    }
}

/// Without `RUST_LOG`: info for Herald, warnings for openraft and quinn, but not openraft's line
/// per failed replication RPC (hundreds a second while a node is down). The transport logs a peer
/// becoming unreachable and reachable again once each; `herald_raft_rpc_failures_total` counts the
/// failures.
const DEFAULT_LOG_FILTER: &str = "info,openraft=warn,quinn=warn,openraft::replication=off,\
     openraft::engine::handler::replication_handler=off,openraft::network::snapshot_transport=error";

fn install_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A panic may leave a replica diverged: abort rather than keep serving.
fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}

/// `dev` prints the environment's keys at every start, so a developer can always copy them.
async fn run_node(config: Config, print_keys: bool) -> Result<()> {
    install_tracing(&config.log_format);
    abort_on_panic();
    let _ = herald_node::metrics::prometheus();
    let mut shown = config.clone();
    for secret in [
        &mut shown.secret_key,
        &mut shown.public_key,
        &mut shown.service_token,
    ] {
        if secret.is_some() {
            *secret = Some("<set>".into());
        }
    }
    tracing::info!(config = ?shown, "effective configuration");
    let node = Node::start(config).await.context("start node")?;
    println!(
        "herald: node {} serving http://{}",
        node.cluster.node_id(),
        node.http_addr
    );
    if print_keys {
        if let Some(keys) = node.cluster.view().api_keys() {
            println!("herald: HERALD_SECRET_KEY={}", keys.secret_key);
            println!("herald: HERALD_PUBLIC_KEY={}", keys.public_key);
            println!("herald: HERALD_SERVICE_TOKEN={}", keys.service_token);
        }
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn cluster_status(addr: &str, token: &str) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("{}/v1/cluster", addr.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .context("request")?;
    if !resp.status().is_success() {
        anyhow::bail!(
            "{url}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let status: ClusterStatus = resp.json().await.context("decode cluster status")?;
    println!(
        "{:<6} {:<26} {:<22} {:<7} STATUS",
        "NODE", "HTTP", "PEER", "LEADS"
    );
    for n in &status.nodes {
        let reach = if n.reachable { "" } else { " (unreachable)" };
        let leads = status
            .shards
            .iter()
            .filter(|s| s.leader == Some(n.id))
            .count();
        println!(
            "{:<6} {:<26} {:<22} {:<7} {}{reach}",
            n.id, n.http, n.peer, leads, n.status
        );
    }
    println!();
    println!("{:<6} {:<7} {:<16} LEARNERS", "SHARD", "LEADER", "VOTERS");
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    for s in &status.shards {
        let leader = s
            .leader
            .map(|l| l.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<6} {:<7} {:<16} {}",
            s.id,
            leader,
            ids(&s.voters),
            ids(&s.learners)
        );
    }
    Ok(())
}

async fn files(command: FilesCommand, workflows: bool) -> Result<()> {
    use herald_node::catalog_files::Catalog;
    let what = if workflows { "workflows" } else { "channels" };
    match command {
        FilesCommand::Push(a) => {
            let c = Catalog::new(&a.addr, &a.token)?;
            let keys = if workflows {
                c.push_workflows(&a.dir).await?
            } else {
                c.push_channels(&a.dir).await?
            };
            println!("pushed {} {what}: {}", keys.len(), keys.join(", "));
        }
        FilesCommand::Pull(a) => {
            let c = Catalog::new(&a.addr, &a.token)?;
            let keys = if workflows {
                c.pull_workflows(&a.dir).await?
            } else {
                c.pull_channels(&a.dir).await?
            };
            println!("pulled {} {what} into {}", keys.len(), a.dir.display());
        }
        FilesCommand::Validate(a) => {
            if !workflows {
                anyhow::bail!("only workflows are validated; channels are checked on push");
            }
            let problems = Catalog::new(&a.addr, &a.token)?
                .validate_workflows(&a.dir)
                .await?;
            for p in &problems {
                eprintln!("{p}");
            }
            if !problems.is_empty() {
                anyhow::bail!("{} problem(s)", problems.len());
            }
            println!("all workflows in {} are valid", a.dir.display());
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Dev(a) => {
            let config = Config {
                data_dir: a.data_dir,
                http: a.http,
                peer: a.peer,
                replication: 1,
                secret_key: std::env::var("HERALD_SECRET_KEY").ok(),
                public_key: std::env::var("HERALD_PUBLIC_KEY").ok(),
                service_token: std::env::var("HERALD_SERVICE_TOKEN").ok(),
                ..Config::default()
            };
            run_node(config, true).await
        }
        Command::Start(a) => run_node(a.into_config()?, false).await,
        Command::Cluster {
            command: ClusterCommand::Status { addr, token },
        } => cluster_status(&addr, &token).await,
        Command::Workflow { command } => files(command, true).await,
        Command::Channel { command } => files(command, false).await,
    }
}
