//! The management API (`@knocklabs/mgmt`, knock-api.md §5.5) for workflows and channels, behind
//! the service token.
//!
//! - `GET /v1/workflows`, `GET /v1/workflows/{key}`: the current version (bare object).
//! - `PUT /v1/workflows/{key}` (`{workflow:{...}}`): validate, then store as the next version.
//! - `PUT /v1/workflows/{key}/validate`: validate only. `PUT /v1/workflows/{key}/activate` (`{status}`).
//! - `GET /v1/channels`, `GET /v1/channels/{id or key}`; `PUT /v1/channels/{key}` (`{channel:{...}}`)
//!   is Herald's own (Knock manages channels in its dashboard): it defines a channel with its
//!   provider settings. Secrets are never rendered.
//!
//! The `environment`, `branch`, `commit` and `commit_message` query parameters are accepted and
//! ignored: a Herald cluster is one environment whose upserts are live at once.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, put};
use axum::{Json, Router};
use herald_shard::engine::{self, Problem};
use serde_json::{json, Value};

use super::error::{invalid, not_found, ApiError, ApiResult};
use super::extract::{JsonBody, KPath};
use super::render::iso;
use crate::backend::{Backend, ChannelRecord};
use crate::error::Error;
use crate::meta::{MetaCommand, WorkflowRecord};
use crate::workflows::channel_infos;

type AppState = Arc<dyn Backend>;

const CHANNEL_TYPES: [&str; 6] = ["email", "sms", "push", "chat", "in_app_feed", "http"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workflows", get(list_workflows))
        .route(
            "/v1/workflows/{key}",
            get(get_workflow).put(upsert_workflow),
        )
        .route("/v1/workflows/{key}/validate", put(validate_workflow))
        .route("/v1/workflows/{key}/activate", put(activate_workflow))
        .route("/v1/channels", get(list_channels))
        .route(
            "/v1/channels/{channel_id}",
            get(get_channel).put(put_channel),
        )
}

fn render_workflow(r: &WorkflowRecord) -> Value {
    let mut w = r.definition.clone();
    if let Value::Object(m) = &mut w {
        m.insert("key".into(), json!(r.key));
        m.insert("active".into(), json!(r.active));
        m.insert("valid".into(), json!(true));
        m.insert("sha".into(), json!(r.sha));
        m.insert("version".into(), json!(r.version));
        m.insert("environment".into(), json!("development"));
        m.insert("created_at".into(), json!(iso(r.created_ms)));
        m.insert("updated_at".into(), json!(iso(r.updated_ms)));
    }
    w
}

fn render_channel(c: &ChannelRecord) -> Value {
    json!({
        "__typename": "Channel",
        "id": c.id,
        "key": c.key,
        "name": c.name,
        "type": c.channel_type,
        "provider": c.provider,
        "sandbox": c.sandbox,
        "created_at": iso(c.created_ms),
        "updated_at": iso(c.updated_ms),
    })
}

fn entries(items: Vec<Value>) -> Json<Value> {
    let n = items.len();
    Json(json!({
        "entries": items,
        "page_info": { "__typename": "PageInfo", "after": null, "before": null, "page_size": n },
    }))
}

async fn list_workflows(State(b): State<AppState>) -> Json<Value> {
    entries(b.workflows().iter().map(render_workflow).collect())
}

async fn get_workflow(
    State(b): State<AppState>,
    KPath(key): KPath<String>,
) -> ApiResult<Json<Value>> {
    b.workflow(&key)
        .map(|r| Json(render_workflow(&r)))
        .ok_or_else(|| not_found(format!("workflow `{key}` not found")))
}

fn problems_error(problems: Vec<Problem>) -> ApiError {
    let summary = problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.reason))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError(Error::InvalidDetails {
        message: format!("invalid workflow: {summary}"),
        problems: problems.into_iter().map(|p| (p.path, p.reason)).collect(),
    })
}

/// Parse and validate the body's `workflow`; the normalized definition to store.
fn checked_definition(b: &AppState, key: &str, body: &Value) -> ApiResult<Value> {
    let w = body
        .get("workflow")
        .ok_or_else(|| invalid("body must be {\"workflow\": {...}}"))?;
    let channels = channel_infos(&b.channels());
    let parsed = engine::parse_workflow(key, w, &channels).map_err(problems_error)?;
    let definition = engine::workflow_to_json(&parsed);
    engine::compile(parsed).map_err(problems_error)?;
    Ok(definition)
}

async fn upsert_workflow(
    State(b): State<AppState>,
    KPath(key): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let definition = checked_definition(&b, &key, &body)?;
    b.catalog_write(MetaCommand::PutWorkflow {
        key: key.clone(),
        definition_json: definition.to_string(),
    })
    .await?;
    let record = b
        .workflow(&key)
        .ok_or_else(|| ApiError(Error::Internal("workflow not visible after write".into())))?;
    Ok(Json(json!({ "workflow": render_workflow(&record) })))
}

async fn validate_workflow(
    State(b): State<AppState>,
    KPath(key): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut definition = checked_definition(&b, &key, &body)?;
    if let Value::Object(m) = &mut definition {
        m.insert("key".into(), json!(key));
        m.insert("valid".into(), json!(true));
        m.insert(
            "active".into(),
            json!(b.workflow(&key).is_some_and(|r| r.active)),
        );
        m.insert("environment".into(), json!("development"));
    }
    Ok(Json(json!({ "workflow": definition })))
}

async fn activate_workflow(
    State(b): State<AppState>,
    KPath(key): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let active = body
        .get("status")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid("status must be a boolean"))?;
    if b.workflow(&key).is_none() {
        return Err(not_found(format!("workflow `{key}` not found")));
    }
    b.catalog_write(MetaCommand::ActivateWorkflow {
        key: key.clone(),
        active,
    })
    .await?;
    let record = b
        .workflow(&key)
        .ok_or_else(|| ApiError(Error::Internal("workflow not visible after write".into())))?;
    Ok(Json(json!({ "workflow": render_workflow(&record) })))
}

async fn list_channels(State(b): State<AppState>) -> Json<Value> {
    entries(b.channels().iter().map(render_channel).collect())
}

async fn get_channel(
    State(b): State<AppState>,
    KPath(id): KPath<String>,
) -> ApiResult<Json<Value>> {
    b.channel(&id)
        .map(|c| Json(render_channel(&c)))
        .ok_or_else(|| not_found(format!("channel `{id}` not found")))
}

async fn put_channel(
    State(b): State<AppState>,
    KPath(key): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let c = body
        .get("channel")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("body must be {\"channel\": {...}}"))?;
    super::validate::id("channel key", &key)?;
    let text = |f: &str| c.get(f).and_then(Value::as_str).map(str::to_owned);
    let channel_type = text("type").ok_or_else(|| invalid("channel.type is required"))?;
    if !CHANNEL_TYPES.contains(&channel_type.as_str()) {
        return Err(invalid(format!(
            "channel.type must be one of {}",
            CHANNEL_TYPES.join(", ")
        )));
    }
    let provider = text("provider").ok_or_else(|| invalid("channel.provider is required"))?;
    let serving = crate::delivery::providers_for(&channel_type);
    if !serving.contains(&provider.as_str()) {
        return Err(invalid(format!(
            "channel.provider `{provider}` cannot serve a {channel_type} channel (one of: {})",
            serving.join(", ")
        )));
    }
    let existing = b.channel(&key).filter(|e| e.key == key);
    // Absent settings keep the stored ones: a pulled file (which never holds settings) pushes back
    // without wiping the channel's credentials.
    let settings = match c.get("settings") {
        None => existing
            .as_ref()
            .map(|e| e.settings.clone())
            .unwrap_or_else(|| json!({})),
        Some(s) if s.is_object() => s.clone(),
        Some(_) => return Err(invalid("channel.settings must be an object")),
    };
    let sandbox = match c.get("sandbox") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(s)) => *s,
        Some(_) => return Err(invalid("channel.sandbox must be a boolean")),
    };
    if let Some(e) = &existing {
        if e.channel_type != channel_type {
            return Err(invalid("a channel's type cannot change"));
        }
    }
    let record = ChannelRecord {
        id: existing
            .as_ref()
            .map(|e| e.id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        key: key.clone(),
        name: text("name").unwrap_or_else(|| key.clone()),
        channel_type,
        provider,
        settings,
        sandbox,
        created_ms: 0,
        updated_ms: 0,
    };
    let channel_json =
        serde_json::to_string(&record).map_err(|e| ApiError(Error::Internal(e.to_string())))?;
    b.catalog_write(MetaCommand::PutChannel { channel_json })
        .await?;
    let stored = b
        .channel(&key)
        .ok_or_else(|| ApiError(Error::Internal("channel not visible after write".into())))?;
    Ok(Json(json!({ "channel": render_channel(&stored) })))
}
