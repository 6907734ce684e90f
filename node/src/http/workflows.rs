//! `POST /v1/workflows/{key}/trigger` and `POST /v1/workflows/{key}/cancel`.
//!
//! ```text
//! trigger: validate body ─► workflow exists, active, data matches its schema (current version)
//!   ─► Idempotency-Key: claim on the key's home shard (a replay gets the first workflow_run_id)
//!   ─► inline actor/tenant identified on their shards; their properties read
//!   ─► recipients split by shard ─► Backend::trigger per shard, concurrently ─► {workflow_run_id}
//! ```
//!
//! A 200 means every shard committed its runs on a quorum. A failure part-way answers 5xx; the
//! SDKs retry with the same Idempotency-Key, which re-drives every shard under the same
//! workflow_run_id, and run ids derived from it make the shards that already committed skip.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use herald_shard::runs::{RunsCommand, RunsReply};
use herald_shard::{RecipientRef, RecipientUpsert, ShardCommand, ShardReply};
use serde_json::{json, Map, Value};

use super::error::{invalid, ApiError, ApiResult};
use super::extract::{JsonBody, KPath};
use super::recipients::{self, unexpected};
use super::validate;
use crate::backend::Backend;
use crate::error::Error;
use crate::workflows::{ShardTrigger, TriggerRecipient};

type AppState = Arc<dyn Backend>;

/// Most recipients in one trigger (Knock's limit).
pub const MAX_TRIGGER_RECIPIENTS: usize = 1000;
/// Trigger data is copied into every recipient's run and messages: `data` size × recipients is
/// bounded so one request cannot make the shards log and store gigabytes.
pub const MAX_DATA_FANOUT_BYTES: usize = 32 << 20;
/// How long an Idempotency-Key is remembered.
const IDEMPOTENCY_TTL_MS: u64 = 24 * 3600 * 1000;
const MAX_IDEMPOTENCY_KEY: usize = 255;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workflows/{key}/trigger", post(trigger))
        .route("/v1/workflows/{key}/cancel", post(cancel))
}

/// A recipient, actor or tenant of a trigger: a reference plus an inline identify when the body
/// carried more than the id.
struct Party {
    recipient: RecipientRef,
    identify: Option<RecipientUpsert>,
}

/// `"id"` (a user), `{id, ...user}` or `{id, collection, ...object}`.
fn party(what: &str, v: &Value) -> ApiResult<Party> {
    match v {
        Value::String(id) => Ok(Party {
            recipient: validate::user_ref(id)?,
            identify: None,
        }),
        Value::Object(m) => {
            let id = validate::item_id(what, v)?;
            let mut props = m.clone();
            props.remove("id");
            let collection = props.remove("collection");
            let (recipient, identify) = match collection {
                Some(Value::String(c)) => {
                    let r = validate::object_ref(&c, id)?;
                    let up = validate::object_upsert(r.clone(), &Value::Object(props.clone()))?;
                    (r, up)
                }
                Some(_) => return Err(invalid(format!("{what}.collection must be a string"))),
                None => {
                    let r = validate::user_ref(id)?;
                    let up = validate::user_upsert(r.clone(), &Value::Object(props.clone()))?;
                    (r, up)
                }
            };
            Ok(Party {
                recipient,
                identify: (!props.is_empty()).then_some(identify),
            })
        }
        _ => Err(invalid(format!("{what} must be an id or an object"))),
    }
}

fn tenant_party(v: &Value) -> ApiResult<Party> {
    match v {
        Value::String(id) => Ok(Party {
            recipient: validate::tenant_ref(id)?,
            identify: None,
        }),
        Value::Object(m) => {
            let id = validate::item_id("tenant", v)?;
            let r = validate::tenant_ref(id)?;
            let mut props = m.clone();
            props.remove("id");
            let up = validate::tenant_upsert(r.clone(), &Value::Object(props.clone()))?;
            Ok(Party {
                recipient: r,
                identify: (!props.is_empty()).then_some(up),
            })
        }
        _ => Err(invalid("tenant must be an id or an object")),
    }
}

/// The parsed, validated trigger body.
struct TriggerBody {
    recipients: Vec<Party>,
    actor: Option<Party>,
    tenant: Option<Party>,
    data: Map<String, Value>,
    cancellation_key: Option<String>,
    sandbox: bool,
}

fn parse_trigger(body: &Value) -> ApiResult<TriggerBody> {
    let m = body
        .as_object()
        .ok_or_else(|| invalid("body must be a JSON object"))?;
    let recipients = match m.get("recipients") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_TRIGGER_RECIPIENTS {
                return Err(invalid(format!(
                    "recipients: at most {MAX_TRIGGER_RECIPIENTS} per trigger"
                )));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| party(&format!("recipients[{i}]"), v))
                .collect::<ApiResult<_>>()?
        }
        Some(_) => return Err(invalid("recipients must be an array")),
    };
    let actor = match m.get("actor") {
        None | Some(Value::Null) => None,
        Some(v) => Some(party("actor", v)?),
    };
    let tenant = match m.get("tenant") {
        None | Some(Value::Null) => None,
        Some(v) => Some(tenant_party(v)?),
    };
    let data = match m.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(d)) => d.clone(),
        Some(_) => return Err(invalid("data must be an object")),
    };
    let cancellation_key = match m.get("cancellation_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 255 => Some(k.clone()),
        Some(_) => {
            return Err(invalid(
                "cancellation_key must be a string of 1-255 characters",
            ))
        }
    };
    let sandbox = match m.get("settings") {
        None | Some(Value::Null) => false,
        Some(Value::Object(s)) => match s.get("sandbox_mode") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("settings.sandbox_mode must be a boolean")),
        },
        Some(_) => return Err(invalid("settings must be an object")),
    };
    Ok(TriggerBody {
        recipients,
        actor,
        tenant,
        data,
        cancellation_key,
        sandbox,
    })
}

/// Identify an inline party on its shard, or read it; its properties as JSON text.
async fn resolve(state: &AppState, p: &Party) -> ApiResult<Option<String>> {
    let view = match &p.identify {
        Some(up) => Some(recipients::upsert(state, up.clone()).await?),
        None => match recipients::read(
            state,
            &p.recipient,
            herald_shard::ShardQuery::Get {
                recipient: p.recipient.clone(),
                include_preferences: false,
            },
        )
        .await?
        {
            ShardReply::Recipient(v) => v,
            other => return Err(unexpected(other)),
        },
    };
    Ok(view.map(|v| v.properties))
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k = v
                .to_str()
                .map_err(|_| invalid("Idempotency-Key must be visible ASCII"))?;
            if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY {
                return Err(invalid("Idempotency-Key must be 1-255 characters"));
            }
            Ok(Some(k.to_owned()))
        }
    }
}

async fn trigger(
    State(state): State<AppState>,
    KPath(key): KPath<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let parsed = parse_trigger(&body)?;
    let record = state.workflow(&key).ok_or_else(|| {
        ApiError(Error::Refused {
            status: 404,
            code: "workflow_missing",
            message: format!("workflow `{key}` does not exist"),
        })
    })?;
    if !record.active {
        return Err(ApiError(Error::Refused {
            status: 422,
            code: "workflow_inactive",
            message: format!("workflow `{key}` is not active"),
        }));
    }
    let compiled = state
        .compiled_workflow(&key, record.version)
        .ok_or_else(|| {
            ApiError(Error::Internal(format!(
                "workflow `{key}` does not compile"
            )))
        })?;
    let data = Value::Object(parsed.data.clone());
    let data_bytes = data.to_string().len();
    if data_bytes.saturating_mul(parsed.recipients.len()) > MAX_DATA_FANOUT_BYTES {
        return Err(invalid(format!(
            "data ({data_bytes} bytes) times {} recipients exceeds {MAX_DATA_FANOUT_BYTES} bytes; \
             send fewer recipients per trigger",
            parsed.recipients.len()
        )));
    }
    if let Err(problems) = compiled.validate_data(&data) {
        return Err(ApiError(Error::InvalidDetails {
            message: "data does not match the workflow's trigger_data_json_schema".into(),
            problems: problems.into_iter().map(|p| (p.path, p.reason)).collect(),
        }));
    }

    let mut workflow_run_id = uuid::Uuid::now_v7().to_string();
    let mut replayed = false;
    if let Some(idem) = idempotency_key(&headers)? {
        let hash = format!(
            "{:032x}",
            xxhash_rust::xxh3::xxh3_128(format!("{key}\u{0}{body}").as_bytes())
        );
        let home = format!("idempotency/{idem}");
        let claim = RunsCommand::ClaimIdempotency {
            key: idem,
            body_hash: hash,
            workflow_run_id: workflow_run_id.clone(),
            expires_ms: crate::cluster::now_ms() + IDEMPOTENCY_TTL_MS,
        };
        let shard = state.shard_for(&home);
        match state.write(shard, ShardCommand::Runs(claim)).await? {
            ShardReply::Runs(RunsReply::Idempotency {
                workflow_run_id: id,
                replayed: r,
            }) => {
                workflow_run_id = id;
                replayed = r;
            }
            ShardReply::Invalid(m) => {
                return Err(ApiError(Error::Refused {
                    status: 422,
                    code: "idempotency_key_reused",
                    message: m,
                }))
            }
            other => return Err(unexpected(other)),
        }
    }

    let (actor, actor_properties) = match &parsed.actor {
        Some(p) => (Some(p.recipient.clone()), resolve(&state, p).await?),
        None => (None, None),
    };
    let (tenant, tenant_properties) = match &parsed.tenant {
        Some(p) => (Some(p.recipient.id.clone()), resolve(&state, p).await?),
        None => (None, None),
    };
    let mut by_shard: BTreeMap<u32, Vec<TriggerRecipient>> = BTreeMap::new();
    for p in parsed.recipients {
        by_shard
            .entry(state.shard_for(&p.recipient.recipient_key()))
            .or_default()
            .push(TriggerRecipient {
                recipient: p.recipient,
                identify: p.identify,
            });
    }
    let data_json = data.to_string();
    let sends = by_shard.into_iter().map(|(shard, recipients)| {
        let t = ShardTrigger {
            workflow: key.clone(),
            version: record.version,
            workflow_run_id: workflow_run_id.clone(),
            recipients,
            actor: actor.clone(),
            actor_properties: actor_properties.clone(),
            tenant: tenant.clone(),
            tenant_properties: tenant_properties.clone(),
            data: data_json.clone(),
            cancellation_key: parsed.cancellation_key.clone(),
            sandbox: parsed.sandbox,
        };
        let state = state.clone();
        async move { state.trigger(shard, t).await }
    });
    for reply in futures::future::join_all(sends).await {
        match reply? {
            ShardReply::Runs(RunsReply::Recorded(_)) => {}
            ShardReply::Invalid(m) => return Err(invalid(m)),
            other => return Err(unexpected(other)),
        }
    }
    metrics::counter!(crate::metrics::TRIGGERS, "workflow" => key).increment(1);
    let mut resp = Json(json!({ "workflow_run_id": workflow_run_id })).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

async fn cancel(
    State(state): State<AppState>,
    KPath(key): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let m = body
        .as_object()
        .ok_or_else(|| invalid("body must be a JSON object"))?;
    let cancellation_key = match m.get("cancellation_key") {
        Some(Value::String(k)) if !k.is_empty() => k.clone(),
        _ => return Err(invalid("cancellation_key is required")),
    };
    let recipients: Vec<RecipientRef> = match m.get("recipients") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| party(&format!("recipients[{i}]"), v).map(|p| p.recipient))
            .collect::<ApiResult<_>>()?,
        Some(_) => return Err(invalid("recipients must be an array")),
    };
    // Runs live with their recipients: without a recipient list every shard is asked.
    let mut targets: BTreeMap<u32, Vec<RecipientRef>> = BTreeMap::new();
    if recipients.is_empty() {
        for shard in state.shards() {
            targets.insert(shard, Vec::new());
        }
    } else {
        for r in recipients {
            targets
                .entry(state.shard_for(&r.recipient_key()))
                .or_default()
                .push(r);
        }
    }
    let sends = targets.into_iter().map(|(shard, recipients)| {
        let cmd = ShardCommand::Runs(RunsCommand::Cancel {
            workflow: key.clone(),
            cancellation_key: cancellation_key.clone(),
            recipients,
        });
        let state = state.clone();
        async move { state.write(shard, cmd).await }
    });
    for reply in futures::future::join_all(sends).await {
        match reply? {
            ShardReply::Runs(RunsReply::Count(_)) => {}
            other => return Err(unexpected(other)),
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
