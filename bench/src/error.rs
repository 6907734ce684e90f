//! The crate's one error type.

use std::path::PathBuf;

/// Why a ceiling or a comparison could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Flags that cannot produce a meaningful run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A local file, socket or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Herald's RocksDB storage or QUIC transport failed (open, write, bind, call).
    #[error("herald-raft: {0}")]
    Raft(#[from] herald_raft::Error),
    /// `herald-loadtest` is not where it was looked for.
    #[error("herald-loadtest not found at {0} (build it with `bash .ci/cargo build --release -p herald-loadtest`, or pass --herald-loadtest)")]
    LoadtestMissing(PathBuf),
    /// `herald-loadtest` exited without a usable report.
    #[error("herald-loadtest failed ({status}); last output:\n{output_tail}")]
    LoadtestFailed { status: String, output_tail: String },
    /// `herald-loadtest` ran longer than its duration allows.
    #[error("herald-loadtest did not finish within {0:?}; killed")]
    LoadtestTimeout(std::time::Duration),
    /// A JSON report could not be read or written.
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A stable short code, for scripts reading stderr.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Io { .. } => "io",
            Error::Raft(e) => e.code(),
            Error::LoadtestMissing(_) => "loadtest_missing",
            Error::LoadtestFailed { .. } => "loadtest_failed",
            Error::LoadtestTimeout(_) => "loadtest_timeout",
            Error::Json { .. } => "json",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
