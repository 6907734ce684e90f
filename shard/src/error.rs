//! herald-shard's one error enum.
//!
//! Domain outcomes of `apply`/`query` (a recipient that does not exist, an invalid argument) are
//! [`crate::ShardReply`] variants, not errors: they are replicated results. [`Error`] covers the
//! failures below the domain: a store that cannot be read, a stored value that does not decode.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine failed to read (I/O, corruption reported by the engine).
    #[error("store read failed: {0}")]
    Store(String),
    /// A stored key or value does not have the layout this version writes.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl Error {
    /// A stable, machine-readable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Store(_) => "store_read_failed",
            Error::Corrupt(_) => "corrupt_data",
        }
    }
}
