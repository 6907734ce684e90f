//! Bulk endpoints and `GET /v1/bulk_operations/{id}`.
//!
//! A bulk request is validated whole, then split by shard: one batch command per shard (written
//! concurrently), so 1000 users cost at most one log entry per shard. They run synchronously: the
//! returned BulkOperation is already `completed` with exact counts, and is recorded in the meta
//! group (table `bulk_operations`) for later `GET`s. A shard failure after others succeeded leaves
//! those shards' part applied; every batch command is idempotent, so retrying the request is safe.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_shard::{
    RecipientRef, RecipientUpsert, ShardCommand, ShardId, ShardReply, TENANTS_COLLECTION,
};
use serde_json::{json, Value};

use super::error::{invalid, not_found, ApiError, ApiResult};
use super::extract::{JsonBody, KPath, Query};
use super::recipients::unexpected;
use super::render;
use super::validate::{self, MAX_BULK_ITEMS};
use crate::backend::Backend;

type AppState = Arc<dyn Backend>;

/// Meta table holding BulkOperation records.
pub const BULK_OPERATIONS_TABLE: &str = "bulk_operations";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users/bulk/identify", post(users_identify))
        .route("/v1/users/bulk/delete", post(users_delete))
        .route("/v1/users/bulk/preferences", post(users_preferences))
        .route("/v1/objects/{collection}/bulk/set", post(objects_set))
        .route("/v1/objects/{collection}/bulk/delete", post(objects_delete))
        .route("/v1/tenants/bulk/set", post(tenants_set))
        .route("/v1/tenants/bulk/delete", post(tenants_delete))
        .route("/v1/bulk_operations/{id}", get(get_operation))
}

/// Group `items` by the shard of their recipient, keeping input order inside each group.
fn by_shard<T>(backend: &AppState, items: Vec<(RecipientRef, T)>) -> BTreeMap<ShardId, Vec<T>> {
    let mut groups: BTreeMap<ShardId, Vec<T>> = BTreeMap::new();
    for (r, item) in items {
        groups
            .entry(backend.shard_for(&r.recipient_key()))
            .or_default()
            .push(item);
    }
    groups
}

/// One write per shard, concurrently; every reply must be the expected kind.
async fn write_groups<T>(
    backend: &AppState,
    items: Vec<(RecipientRef, T)>,
    make: impl Fn(Vec<T>) -> ShardCommand,
    ok: fn(&ShardReply) -> bool,
) -> ApiResult<()> {
    let writes = by_shard(backend, items)
        .into_iter()
        .map(|(shard, group)| backend.write(shard, make(group)));
    for reply in futures::future::join_all(writes).await {
        let reply = reply.map_err(ApiError)?;
        if !ok(&reply) {
            return Err(unexpected(reply));
        }
    }
    Ok(())
}

fn is_recipients(r: &ShardReply) -> bool {
    matches!(r, ShardReply::Recipients(_))
}
fn is_deleted(r: &ShardReply) -> bool {
    matches!(r, ShardReply::Deleted(_))
}
fn is_preference_sets(r: &ShardReply) -> bool {
    matches!(r, ShardReply::PreferenceSets(_))
}

fn new_operation_id() -> String {
    let mut b = rand::random::<u128>().to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Record a completed operation in the meta group and return its BulkOperation JSON.
pub(super) async fn completed(
    backend: &AppState,
    name: &str,
    rows: usize,
    started_ms: u64,
) -> ApiResult<Json<Value>> {
    let id = new_operation_id();
    let done = render::iso(now_ms());
    let started = render::iso(started_ms);
    let op = json!({
        "__typename": "BulkOperation",
        "id": id,
        "name": name,
        "status": "completed",
        "estimated_total_rows": rows,
        "processed_rows": rows,
        "success_count": rows,
        "error_count": 0,
        "error_items": [],
        "progress_path": format!("/v1/bulk_operations/{id}"),
        "started_at": started,
        "completed_at": done,
        "failed_at": null,
        "inserted_at": started,
        "updated_at": done,
    });
    backend
        .meta_put(BULK_OPERATIONS_TABLE, &id, op.clone())
        .await
        .map_err(ApiError)?;
    Ok(Json(op))
}

async fn get_operation(
    State(b): State<AppState>,
    KPath(id): KPath<String>,
) -> ApiResult<Json<Value>> {
    validate::id("bulk operation id", &id)?;
    match b
        .meta_get(BULK_OPERATIONS_TABLE, &id)
        .await
        .map_err(ApiError)?
    {
        Some(op) => Ok(Json(op)),
        None => Err(not_found(format!("bulk operation `{id}` not found"))),
    }
}

// ---- users ----

async fn users_identify(
    State(b): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let started = now_ms();
    let items = validate::bulk_list(&body, "users")?
        .iter()
        .map(|u| {
            let r = validate::user_ref(validate::item_id("user", u)?)?;
            Ok((r.clone(), validate::user_upsert(r, u)?))
        })
        .collect::<ApiResult<Vec<(RecipientRef, RecipientUpsert)>>>()?;
    let n = items.len();
    write_groups(&b, items, ShardCommand::Upsert, is_recipients).await?;
    completed(&b, "users.identify", n, started).await
}

async fn delete_refs(b: &AppState, refs: Vec<RecipientRef>, name: &str) -> ApiResult<Json<Value>> {
    let started = now_ms();
    let n = refs.len();
    let items = refs.into_iter().map(|r| (r.clone(), r)).collect();
    write_groups(b, items, ShardCommand::Delete, is_deleted).await?;
    completed(b, name, n, started).await
}

async fn users_delete(
    State(b): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let ids = validate::id_list("user id", validate::bulk_list(&body, "user_ids")?)?;
    let refs = ids
        .iter()
        .map(|id| herald_shard::RecipientRef::user(id.as_str()))
        .collect();
    delete_refs(&b, refs, "users.delete").await
}

/// `{user_ids, preferences{id?, ...}}`: always replaces set `preferences.id` (default `default`).
async fn users_preferences(
    State(b): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let started = now_ms();
    let ids = validate::id_list("user id", validate::bulk_list(&body, "user_ids")?)?;
    let prefs = body
        .get("preferences")
        .ok_or_else(|| invalid("`preferences` is required"))?;
    let set_id = match prefs.get("id") {
        None | Some(Value::Null) => "default".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("`preferences.id` must be a string")),
    };
    validate::id("preference set id", &set_id)?;
    let (doc, _) = validate::preference_set("preferences", prefs)?;
    let set = Value::Object(doc).to_string();
    let n = ids.len();
    let items = ids
        .into_iter()
        .map(|id| (RecipientRef::user(id.as_str()), RecipientRef::user(id)))
        .collect();
    let make = |recipients| ShardCommand::SetPreferences {
        recipients,
        set_id: set_id.clone(),
        set: set.clone(),
        merge: false,
    };
    write_groups(&b, items, make, is_preference_sets).await?;
    completed(&b, "users.set_preferences", n, started).await
}

// ---- objects ----

async fn objects_set(
    State(b): State<AppState>,
    KPath(collection): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let started = now_ms();
    validate::collection(&collection)?;
    let items = validate::bulk_list(&body, "objects")?
        .iter()
        .map(|o| {
            let r = validate::object_ref(&collection, validate::item_id("object", o)?)?;
            Ok((r.clone(), validate::object_upsert(r, o)?))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let n = items.len();
    write_groups(&b, items, ShardCommand::Upsert, is_recipients).await?;
    completed(&b, "objects.set", n, started).await
}

async fn objects_delete(
    State(b): State<AppState>,
    KPath(collection): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    validate::collection(&collection)?;
    let ids = validate::id_list("object id", validate::bulk_list(&body, "object_ids")?)?;
    let refs = ids
        .iter()
        .map(|id| RecipientRef::object(collection.as_str(), id.as_str()))
        .collect();
    delete_refs(&b, refs, "objects.delete").await
}

// ---- tenants ----

/// `tenants[]`: a bare tenant id or a TenantRequest `{id, name?, settings?, channel_data?, preferences?}`.
async fn tenants_set(
    State(b): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let started = now_ms();
    let items = validate::bulk_list(&body, "tenants")?
        .iter()
        .map(|t| {
            let (id, doc) = match t {
                Value::String(id) => (id.as_str(), json!({})),
                Value::Object(_) => (validate::item_id("tenant", t)?, t.clone()),
                _ => {
                    return Err(invalid(
                        "each tenant must be an id or an object with an `id`",
                    ))
                }
            };
            let r = validate::tenant_ref(id)?;
            Ok((r.clone(), validate::tenant_upsert(r, &doc)?))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let n = items.len();
    write_groups(&b, items, ShardCommand::Upsert, is_recipients).await?;
    completed(&b, "tenants.set", n, started).await
}

/// Ids come in the query: `tenant_ids[]=a&tenant_ids[]=b`.
async fn tenants_delete(State(b): State<AppState>, Query(q): Query) -> ApiResult<Json<Value>> {
    let ids = q.list("tenant_ids")?;
    if ids.is_empty() || ids.len() > MAX_BULK_ITEMS {
        return Err(invalid(format!(
            "`tenant_ids[]` must hold 1 to {MAX_BULK_ITEMS} ids"
        )));
    }
    for id in &ids {
        validate::id("tenant id", id)?;
    }
    let refs = ids
        .iter()
        .map(|id| RecipientRef::object(TENANTS_COLLECTION, id.as_str()))
        .collect();
    delete_refs(&b, refs, "tenants.delete").await
}
