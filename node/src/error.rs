//! herald-node's error enum. Only `crate::http` turns these into status codes and Knock's error body
//! `{code, message, status, type}`.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- the client's mistakes (4xx) ----
    /// Missing, malformed or wrong API key.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// The request is well-formed HTTP but its parameters are invalid (Knock: 422 `invalid_params`).
    #[error("{0}")]
    InvalidParams(String),
    /// Invalid parameters with every problem listed (`path` -> `reason`), e.g. a workflow definition.
    #[error("{message}")]
    InvalidDetails {
        message: String,
        problems: Vec<(String, String)>,
    },
    /// A request Knock refuses with a specific code, e.g. 404 `workflow_missing`, 422 `workflow_inactive`.
    #[error("{message}")]
    Refused {
        status: u16,
        code: &'static str,
        message: String,
    },
    /// The body is not valid JSON (or not JSON at all).
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// The named resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The body exceeds the documented limit.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },

    // ---- the cluster's state (5xx, retryable) ----
    /// No leader could be reached for a shard within the deadline (election, partition, shutdown).
    #[error("shard {shard} unavailable: {reason}")]
    Unavailable { shard: u32, reason: String },
    /// The node is not (yet) part of a ready cluster.
    #[error("node not ready: {0}")]
    NotReady(String),
    /// A bug or an I/O failure on this node.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether a caller (or an SDK) may retry the same request.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::NotReady(_))
    }
}
