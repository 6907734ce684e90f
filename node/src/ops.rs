//! Operator endpoints: liveness, readiness, metrics, cluster status, and the join endpoint new
//! nodes call. Names are stable: tests, `herald cluster status` and the load tester depend on them.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /healthz` | none | 200 while the process runs |
//! | `GET /readyz` | none | 200 once joined and meta caught up, else 503 |
//! | `GET /metrics` | none | Prometheus text |
//! | `GET /v1/cluster` | secret key or service token | nodes and shards |
//! | `POST /internal/v1/join` | service token | the joining node's certificate |

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, JoinRequest};
use crate::error::Error;
use crate::http::error::ApiError;

pub fn router(cluster: Cluster) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/cluster", get(cluster_status))
        .route("/internal/v1/join", post(join))
        .with_state(cluster)
}

async fn readyz(State(cluster): State<Cluster>) -> Response {
    if cluster.is_ready() {
        (StatusCode::OK, Json(serde_json::json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false})),
        )
            .into_response()
    }
}

async fn metrics_text() -> Response {
    match crate::metrics::prometheus() {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
        )
            .into_response(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Accept the service token, and with `allow_secret` the secret key too.
fn authorize(cluster: &Cluster, headers: &HeaderMap, allow_secret: bool) -> Result<(), ApiError> {
    let keys = cluster
        .view()
        .api_keys()
        .ok_or_else(|| ApiError(Error::NotReady("meta not caught up".into())))?;
    match bearer(headers) {
        None => Err(ApiError(Error::Unauthorized {
            code: "api_key_missing",
            message: "The API key is missing: send Authorization: Bearer <key>".into(),
        })),
        Some(t) if t == keys.service_token || (allow_secret && t == keys.secret_key) => Ok(()),
        Some(_) => Err(ApiError(Error::Unauthorized {
            code: "invalid_api_key",
            message: "The API key is not valid for this endpoint".into(),
        })),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    pub http: String,
    pub peer: String,
    /// `voter` or `learner` of the meta group, or `joining` before it has been added.
    pub status: String,
    /// Whether the answering node's last call to this node reached it (always true for itself).
    /// Herald's addition to the status; absent from older nodes' answers.
    #[serde(default = "reached")]
    pub reachable: bool,
}

fn reached() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ShardStatus {
    pub id: u32,
    pub leader: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeStatus>,
    pub shards: Vec<ShardStatus>,
}

async fn cluster_status(
    State(cluster): State<Cluster>,
    headers: HeaderMap,
) -> Result<Json<ClusterStatus>, ApiError> {
    authorize(&cluster, &headers, true)?;
    let meta = cluster.meta_status();
    let unreachable = cluster.raft().unreachable_peers();
    let nodes = cluster
        .view()
        .members()
        .into_iter()
        .map(|m| {
            let status = if meta.voters.contains(&m.id) {
                "voter"
            } else if meta.learners.contains(&m.id) {
                "learner"
            } else {
                "joining"
            };
            let reachable = !m
                .peer
                .parse()
                .is_ok_and(|peer: std::net::SocketAddr| unreachable.contains(&peer));
            NodeStatus {
                id: m.id,
                http: m.http,
                peer: m.peer,
                status: status.into(),
                reachable,
            }
        })
        .collect();
    let shards = cluster
        .shard_statuses()
        .await
        .into_iter()
        .map(|(id, s)| ShardStatus {
            id,
            leader: s.leader,
            voters: s.voters,
            learners: s.learners,
        })
        .collect();
    Ok(Json(ClusterStatus { nodes, shards }))
}

async fn join(
    State(cluster): State<Cluster>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&cluster, &headers, false)?;
    let request: JoinRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError(Error::InvalidParams(format!("join body: {e}"))))?;
    let reply = cluster.admit(request).await?;
    Ok(Json(reply).into_response())
}
