//! herald-raft's error enum.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("encoding: {0}")]
    Codec(String),
    #[error("io: {0}")]
    Io(String),
    #[error("transport: {0}")]
    Transport(String),
    /// The group is not hosted on the addressed node (yet, or any more).
    #[error("group {0} not hosted here")]
    GroupNotFound(crate::types::GroupId),
    #[error("raft: {0}")]
    Raft(String),
    #[error("shutting down")]
    ShuttingDown,
}

impl Error {
    /// Whether the same call may succeed later (after an election, a reconnect, a placement change).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Transport(_) | Error::GroupNotFound(_) | Error::Raft(_)
        )
    }
}
