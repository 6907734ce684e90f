//! Runs every ceiling, one after the other (never two at once: they would share the cores).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::http_ceiling::{self, HttpCeilingConfig};
use crate::quic_ceiling::{self, QuicConfig};
use crate::report::{Ceilings, Machine};
use crate::rocksdb_ceiling::{self, RocksdbConfig};

/// Warmup of the HTTP ceiling's loadtest (a bare server needs little).
pub const HTTP_WARMUP: Duration = Duration::from_secs(2);

/// Settings of a `ceilings` run.
#[derive(Debug, Clone)]
pub struct CeilingsConfig {
    /// Measured window of each measurement (six of them, plus the HTTP warmup).
    pub duration: Duration,
    /// Closed-loop concurrency of the HTTP and concurrent-QUIC measurements.
    pub concurrency: usize,
    /// Parent directory of the temporary RocksDB (same filesystem as Herald's data).
    pub dir: PathBuf,
    /// The `herald-loadtest` binary.
    pub loadtest_bin: PathBuf,
    /// Writer threads of the batched RocksDB measurement.
    pub rocksdb_writers: usize,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl CeilingsConfig {
    pub fn validate(&self) -> Result<()> {
        if self.duration.is_zero() {
            return Err(Error::Config("--duration must be > 0".into()));
        }
        if self.concurrency == 0 || self.rocksdb_writers == 0 {
            return Err(Error::Config(
                "--concurrency and --rocksdb-writers must be > 0".into(),
            ));
        }
        if !self.dir.is_dir() {
            return Err(Error::Config(format!(
                "--dir {} is not a directory",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Upper bound of the run's length, for the progress line.
    pub fn expected_length(&self) -> Duration {
        HTTP_WARMUP + self.duration * 6
    }
}

/// Measures the HTTP, RocksDB and QUIC ceilings on this machine, now.
pub async fn run(config: &CeilingsConfig) -> Result<Ceilings> {
    config.validate()?;
    let machine = Machine::current();
    let work = tempfile::Builder::new()
        .prefix("herald-bench-")
        .tempdir()
        .map_err(|e| Error::io("creating a temp dir", e))?;
    let say = |msg: &str| {
        if config.progress {
            eprintln!("[herald-bench] {msg}");
        }
    };

    say(&format!(
        "HTTP ceiling: bare hyper loaded by herald-loadtest, {:?} + {:?} warmup",
        config.duration, HTTP_WARMUP
    ));
    let http = http_ceiling::measure(
        &HttpCeilingConfig {
            loadtest_bin: config.loadtest_bin.clone(),
            concurrency: config.concurrency,
            duration: config.duration,
            warmup: HTTP_WARMUP,
        },
        work.path(),
    )
    .await?;

    say(&format!(
        "RocksDB ceiling in {}: single synced writes, then {} writers + syncer, {:?} each",
        config.dir.display(),
        config.rocksdb_writers,
        config.duration
    ));
    let mut rocks_config = RocksdbConfig::new(config.dir.clone(), config.duration);
    rocks_config.writers = config.rocksdb_writers;
    let rocksdb = tokio::task::spawn_blocking(move || rocksdb_ceiling::measure(&rocks_config))
        .await
        .map_err(|e| Error::io("RocksDB measurement thread", std::io::Error::other(e)))??;

    say(&format!(
        "QUIC ceiling: sequential, {} callers, 1 MiB echo, {:?} each",
        config.concurrency, config.duration
    ));
    let quic = quic_ceiling::measure(&QuicConfig::new(config.duration, config.concurrency)).await?;

    Ok(Ceilings {
        machine,
        duration_s: config.duration.as_secs_f64(),
        concurrency: config.concurrency,
        http,
        rocksdb,
        quic,
    })
}
