//! What the workflow scenarios share: a run-unique workflow key, pushing the workflow through the
//! management API until every target serves it, and building trigger requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request};
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{bearer, json_request, ScenarioParams, UserPicker};
use crate::client::Pool;
use crate::error::{Error, Result};

/// How long setup waits for the pushed workflow to be readable on every target.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of each setup call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `loadtest-<name>-<unix ms>-<random>`: a fresh workflow per run, so runs against a long-lived
/// cluster never trigger a workflow another run changed.
pub(super) fn unique_key(name: &str) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let nonce: u32 = rand::rng().random();
    format!("loadtest-{name}-{ms}-{nonce:08x}")
}

/// The management-API bearer header; the service token is required for workflow scenarios.
pub(super) fn service_auth(params: &ScenarioParams) -> Result<HeaderValue> {
    let token = params.service_token.as_deref().ok_or_else(|| {
        Error::Config("this scenario needs the service token (--service-token)".into())
    })?;
    bearer(token, "service token")
}

/// `PUT /v1/workflows/{key}` on the first target, then `GET` it on every target until each answers
/// 200: the catalog is replicated, and a trigger reaching a node that has not applied it yet would
/// fail with 404 and be counted against the cluster.
pub(super) async fn push_workflow(
    pool: &Pool,
    service: &HeaderValue,
    key: &str,
    workflow: Value,
) -> Result<()> {
    let path = format!("/v1/workflows/{key}");
    let body = json!({ "workflow": workflow });
    let request = json_request(Method::PUT, &path, service, body.to_string());
    let response = pool
        .send_to(0, request, Instant::now() + CALL_TIMEOUT)
        .await
        .map_err(|e| Error::Setup(format!("PUT {path}: {e}")))?;
    if !response.status().is_success() {
        return Err(Error::Setup(format!(
            "PUT {path}: status {}: {}",
            response.status(),
            String::from_utf8_lossy(response.body())
        )));
    }
    let deadline = Instant::now() + VISIBLE_TIMEOUT;
    for target in 0..pool.len() {
        loop {
            let request = json_request(Method::GET, &path, service, String::new());
            let answer = pool
                .send_to(target, request, Instant::now() + CALL_TIMEOUT)
                .await;
            if matches!(&answer, Ok(r) if r.status().is_success()) {
                break;
            }
            if Instant::now() >= deadline {
                let last = match answer {
                    Ok(r) => format!("status {}", r.status()),
                    Err(e) => e.to_string(),
                };
                return Err(Error::Setup(format!(
                    "workflow {key} not readable on target {} within {VISIBLE_TIMEOUT:?} ({last})",
                    target + 1
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Builds `POST /v1/workflows/{key}/trigger` requests for `recipients` distinct users each.
pub(super) struct TriggerRequests {
    path: hyper::Uri,
    auth: HeaderValue,
    users: UserPicker,
    recipients: usize,
    /// `data.n`, so consecutive messages differ.
    sequence: AtomicU64,
}

impl TriggerRequests {
    pub(super) fn new(params: &ScenarioParams, key: &str) -> Result<Self> {
        Ok(Self {
            path: format!("/v1/workflows/{key}/trigger")
                .parse()
                .map_err(|_| Error::Config(format!("workflow key {key:?} is not a path")))?,
            auth: bearer(&params.secret_key, "secret key")?,
            users: params.users.clone(),
            recipients: params.recipients,
            sequence: AtomicU64::new(0),
        })
    }

    /// A trigger for the next recipients with `data` (plus `n`, a per-run sequence number).
    pub(super) fn request(&self, rng: &mut SmallRng, mut data: Value) -> Request<Bytes> {
        let recipients: Vec<String> = self
            .users
            .sample_distinct(rng, self.recipients)
            .into_iter()
            .map(UserPicker::user_id)
            .collect();
        data["n"] = self.sequence.fetch_add(1, Ordering::Relaxed).into();
        let body = json!({ "recipients": recipients, "data": data });
        let mut request = Request::new(Bytes::from(body.to_string()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.path.clone();
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, self.auth.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }
}
