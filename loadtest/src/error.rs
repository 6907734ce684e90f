//! The crate's error type. Request failures during a run are *not* errors: they are counted in the
//! report (see [`crate::stats::ErrorKind`]). These are the failures that stop a run.

use std::path::PathBuf;

/// A failure that ends a load-test run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent or a value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The local cluster could not be started; its node logs are kept at `logs`.
    #[error("local cluster failed: {reason} (node logs in {})", logs.display())]
    Spawn { reason: String, logs: PathBuf },
    /// A scenario's setup step failed (the cluster rejected the preparatory calls).
    #[error("scenario setup failed: {0}")]
    Setup(String),
    /// The run was interrupted (Ctrl-C) before load started.
    #[error("interrupted")]
    Interrupted,
    /// Local I/O: temp dirs, log files, report or plot output.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing a chart failed.
    #[error("plot: {0}")]
    Plot(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
