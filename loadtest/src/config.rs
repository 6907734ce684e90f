//! Typed run configuration. `main.rs` maps CLI flags onto [`Config`]; tests build it directly.
//! [`Config::validate`] is the single place that rejects inconsistent settings.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::scenario::ScenarioKind;
use crate::spawn::SpawnConfig;

/// Most recipients in one trigger (Knock's limit, enforced by Herald too).
pub const MAX_RECIPIENTS: usize = 1000;

/// Where requests go.
#[derive(Debug, Clone)]
pub enum Targets {
    /// An existing cluster: requests are spread round-robin over these nodes.
    Urls(Vec<Target>),
    /// Start a local cluster first and target all of its nodes.
    Spawn(SpawnConfig),
}

/// One node's HTTP endpoint. Only plain `http://host:port` is supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, used both to connect and as the `Host` header.
    pub authority: String,
}

impl Target {
    /// Parses `http://host:port[/]`. A missing port means 80.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url.trim().strip_prefix("http://").ok_or_else(|| {
            Error::Config(format!("target {url:?}: only http:// URLs are supported"))
        })?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(Error::Config(format!(
                "target {url:?}: expected http://host:port without a path"
            )));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self { authority })
    }

    /// The base URL, for display.
    pub fn url(&self) -> String {
        format!("http://{}", self.authority)
    }
}

/// How load is generated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadModel {
    /// Constant arrival rate (requests per second) regardless of how fast the server answers.
    /// Latency is measured from each request's intended send time, so server stalls show up in
    /// the percentiles instead of silently lowering the send rate (no coordinated omission).
    Open { rate: f64 },
    /// `concurrency` workers, each sending its next request as soon as the previous one finished.
    /// Measures what the server sustains; a stall only delays `concurrency` requests.
    Closed { concurrency: usize },
}

/// How recipient ids are picked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UserDistribution {
    /// Every one of `users` ids is equally likely.
    Uniform,
    /// Zipf with exponent `s`: id `user-0` is the hottest.
    Zipf { s: f64 },
}

/// Whether live progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A progress line on a TTY, plain lines once per second otherwise.
    Auto,
    /// Nothing until the final report.
    Off,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Nodes to load, or a local cluster to start.
    pub targets: Targets,
    /// Secret API key (`sk_...`) for `--targets`; generated for `--spawn`.
    pub secret_key: Option<String>,
    /// Service token for the management API (`--targets`; generated for `--spawn`). Scenarios that
    /// push a workflow in their setup need it.
    pub service_token: Option<String>,
    /// Which request mix to send.
    pub scenario: ScenarioKind,
    /// Open or closed loop.
    pub load: LoadModel,
    /// Measured part of the run (after warmup).
    pub duration: Duration,
    /// Load sent before measuring, to warm caches and connections; excluded from stats.
    pub warmup: Duration,
    /// Total keep-alive connections, split evenly over targets. `None`: concurrency for a closed
    /// loop; for an open loop, enough for the rate at [`OPEN_LOOP_MEAN_LATENCY`] (at least
    /// [`OPEN_LOOP_MIN_CONNECTIONS`]).
    pub connections: Option<usize>,
    /// A request that has not completed this long after its intended send time counts as a timeout.
    pub timeout: Duration,
    /// Size of the recipient id space.
    pub users: u64,
    /// Recipient popularity.
    pub distribution: UserDistribution,
    /// Distinct recipients per trigger (`trigger`, `webhook`).
    pub recipients: usize,
    /// `webhook`: longest wait after load stops for deliveries still on their way.
    pub drain: Duration,
    /// Seed for every random choice, so runs are reproducible.
    pub seed: u64,
    /// Write the JSON report here.
    pub out: Option<PathBuf>,
    /// Write SVG charts into this directory.
    pub plot: Option<PathBuf>,
    /// Live progress on stderr.
    pub progress: Progress,
}

/// The mean latency an open loop's default connection count covers without queueing in the
/// generator. By Little's law a server answering in `W` on average holds `rate * W` requests at
/// once; a fixed 32 connections (the default until session 14) made requests wait for a free
/// connection from about 9,000/s at 3.5 ms, and a latency blip then snowballed: the same node at
/// 11,000/s had a p99 of 95 ms with 32 connections and 14 ms with 256 (docs/benchmarks.md,
/// session 14).
pub const OPEN_LOOP_MEAN_LATENCY: Duration = Duration::from_millis(20);
/// The fewest connections an open loop opens by default.
pub const OPEN_LOOP_MIN_CONNECTIONS: usize = 64;

/// Default connections for an open loop at `rate` requests per second.
fn open_loop_connections(rate: f64) -> usize {
    let needed = (rate * OPEN_LOOP_MEAN_LATENCY.as_millis() as f64 / 1000.0).ceil();
    // `as` saturates; validation rejects rates that are not positive and finite.
    (needed as usize).max(OPEN_LOOP_MIN_CONNECTIONS)
}

impl Config {
    /// A configuration with defaults for everything but where to send load.
    pub fn new(targets: Targets, load: LoadModel) -> Self {
        Self {
            targets,
            secret_key: None,
            service_token: None,
            scenario: ScenarioKind::Identify,
            load,
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            connections: None,
            timeout: Duration::from_secs(10),
            users: 100_000,
            distribution: UserDistribution::Uniform,
            recipients: 1,
            drain: Duration::from_secs(30),
            seed: 1,
            out: None,
            plot: None,
            progress: Progress::Auto,
        }
    }

    /// Connections actually opened (at most), after defaults.
    pub fn effective_connections(&self) -> usize {
        self.connections.unwrap_or(match self.load {
            LoadModel::Open { rate } => open_loop_connections(rate),
            LoadModel::Closed { concurrency } => concurrency,
        })
    }

    /// Rejects settings that cannot produce a meaningful run.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        match &self.targets {
            Targets::Urls(urls) if urls.is_empty() => return bad("no targets given"),
            Targets::Urls(_) if self.secret_key.as_deref().unwrap_or("").is_empty() => {
                return bad("a secret key is required with --targets (--key or HERALD_SECRET_KEY)")
            }
            Targets::Urls(_)
                if self.scenario.needs_service_token()
                    && self.service_token.as_deref().unwrap_or("").is_empty() =>
            {
                return Err(Error::Config(format!(
                    "scenario {} pushes a workflow and needs the service token with --targets \
                     (--service-token or HERALD_SERVICE_TOKEN)",
                    self.scenario.name()
                )))
            }
            Targets::Spawn(s) => s.validate()?,
            Targets::Urls(_) => {}
        }
        match self.load {
            LoadModel::Open { rate } if !(rate.is_finite() && rate > 0.0) => {
                return bad("--rate must be a positive number")
            }
            LoadModel::Closed { concurrency: 0 } => return bad("--concurrency must be at least 1"),
            _ => {}
        }
        if self.connections == Some(0) {
            return bad("--connections must be at least 1");
        }
        if self.duration.is_zero() {
            return bad("--duration must be positive");
        }
        if self.timeout.is_zero() {
            return bad("--timeout must be positive");
        }
        if self.users == 0 {
            return bad("--users must be at least 1");
        }
        if !(1..=MAX_RECIPIENTS).contains(&self.recipients) {
            return Err(Error::Config(format!(
                "--recipients must be between 1 and {MAX_RECIPIENTS}"
            )));
        }
        if self.recipients as u64 > self.users {
            return bad(
                "--recipients must not exceed --users (recipients of a trigger are distinct)",
            );
        }
        if let UserDistribution::Zipf { s } = self.distribution {
            if !(s.is_finite() && s > 0.0) {
                return bad("--skew must be a positive number");
            }
        }
        Ok(())
    }
}

/// Parses `10s`, `500ms`, `2m`, `1.5s`, `1h`; a bare number means seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (examples: 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_loop_opens_enough_connections_for_its_rate() {
        let open = |rate| Config::new(Targets::Urls(vec![]), LoadModel::Open { rate });
        assert_eq!(
            open(100.0).effective_connections(),
            OPEN_LOOP_MIN_CONNECTIONS
        );
        assert_eq!(open(11_000.0).effective_connections(), 220);
        assert_eq!(open(11_001.0).effective_connections(), 221);
        let mut fixed = open(11_000.0);
        fixed.connections = Some(32);
        assert_eq!(fixed.effective_connections(), 32);
        let closed = Config::new(Targets::Urls(vec![]), LoadModel::Closed { concurrency: 7 });
        assert_eq!(closed.effective_connections(), 7);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5parsecs").is_err());
    }

    #[test]
    fn targets_parse_and_default_port() {
        assert_eq!(
            Target::parse("http://127.0.0.1:8080/").unwrap().authority,
            "127.0.0.1:8080"
        );
        assert_eq!(
            Target::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        assert!(Target::parse("https://x:1").is_err());
        assert!(Target::parse("http://x:1/v1").is_err());
    }

    #[test]
    fn validation_requires_a_key_for_existing_targets() {
        let targets = Targets::Urls(vec![Target::parse("http://127.0.0.1:1").unwrap()]);
        let mut config = Config::new(targets, LoadModel::Open { rate: 10.0 });
        assert!(config.validate().is_err());
        config.secret_key = Some("sk_test".into());
        config.validate().unwrap();
        config.load = LoadModel::Open { rate: 0.0 };
        assert!(config.validate().is_err());
    }

    #[test]
    fn workflow_scenarios_need_the_service_token_and_sane_recipients() {
        let targets = Targets::Urls(vec![Target::parse("http://127.0.0.1:1").unwrap()]);
        let mut config = Config::new(targets, LoadModel::Open { rate: 10.0 });
        config.secret_key = Some("sk_test".into());
        config.scenario = ScenarioKind::Trigger;
        assert!(config.validate().is_err());
        config.service_token = Some("service".into());
        config.validate().unwrap();
        config.recipients = 0;
        assert!(config.validate().is_err());
        config.recipients = 5;
        config.users = 4;
        assert!(config.validate().is_err());
        config.users = 5;
        config.validate().unwrap();
    }
}
