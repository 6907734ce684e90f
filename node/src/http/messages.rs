//! `/v1/messages`, the user and object message lists, and the channel bulk status endpoint.
//!
//! ```text
//! GET  /v1/messages                   -> every shard (Messages{filter, page}) -> merge newest first
//! GET  /v1/users/{id}/messages        -> the recipient's shard only
//! GET  /v1/messages/{id}[/...]        -> Backend::shard_for_id(id) (the id carries its slot)
//! PUT|DELETE /v1/messages/{id}/{s}    -> SetEngagement on the id's shard
//! POST /v1/messages/batch/{action}    -> ids grouped by shard, one SetEngagement per shard
//! POST /v1/channels/{c}/messages/bulk/{action}
//!                                     -> one BulkEngagement per (recipient, workflow) on its shard
//! ```
//!
//! Lists are newest first; the cursor is the message id (`after` = older, `before` = newer), see
//! [`paging::newest_first`]. A malformed message id is a 404, like an unknown one. In batch
//! requests unknown ids are left out of the answer.
//!
//! Channel bulk updates work on the recipient's in-app feed index, so they need an `in_app_feed`
//! channel and a recipient list (`user_ids[]` or `recipient_ids[]`): without one they are a 422
//! (Knock would update every recipient's messages; the shard keeps no per-channel index for that).
//! The `delete` action is a 422: Herald does not delete messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use herald_shard::runs::{
    ArchivedFilter, Engagement, MessageFilter, RunsCommand, RunsQuery, RunsReply, StoredMessage,
};
use herald_shard::{RecipientRef, ShardCommand, ShardId, ShardQuery, ShardReply};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::bulk;
use super::error::{internal, invalid, not_found, route_not_found, ApiError, ApiResult};
use super::extract::{JsonBody, KPath, Query};
use super::message_render as mr;
use super::paging::{self, IdBounds, IdPageRequest};
use super::query::QueryParams;
use super::recipients::unexpected;
use super::render;
use super::validate::{self, MAX_BULK_ITEMS};
use crate::backend::Backend;

type AppState = Arc<dyn Backend>;

/// Delivery statuses a filter may name (knock-api.md §7).
const DELIVERY_STATUSES: &[&str] = &[
    "queued",
    "sent",
    "delivered",
    "delivery_attempted",
    "undelivered",
    "not_sent",
    "bounced",
];
/// Engagement statuses a filter may name, with their negations; `link_clicked` stays last (see
/// `BATCH_ACTIONS`).
const ENGAGEMENT_STATUSES: &[&str] = &[
    "seen",
    "unseen",
    "read",
    "unread",
    "archived",
    "unarchived",
    "interacted",
    "link_clicked",
];
/// Engagement changes a batch request may name: the statuses above but the last, `link_clicked`.
/// A channel bulk request also takes the aliases `archive` and `unarchive`.
const BATCH_ACTIONS: &[&str] = ENGAGEMENT_STATUSES.split_last().unwrap().1;
/// Most metadata keys an `interacted` change may carry.
const MAX_METADATA_KEYS: usize = 5;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/messages", get(list))
        .route("/v1/messages/batch/content", get(batch_content))
        .route("/v1/messages/batch/{action}", post(batch))
        .route("/v1/messages/{id}", get(get_message))
        .route("/v1/messages/{id}/content", get(content))
        .route("/v1/messages/{id}/events", get(events))
        .route("/v1/messages/{id}/delivery_logs", get(delivery_logs))
        .route("/v1/messages/{id}/activities", get(activities))
        .route(
            "/v1/messages/{id}/{status}",
            put(set_status).delete(unset_status),
        )
        .route("/v1/users/{user_id}/messages", get(user_messages))
        .route(
            "/v1/objects/{collection}/{id}/messages",
            get(object_messages),
        )
        .route(
            "/v1/channels/{channel_id}/messages/bulk/{action}",
            post(channel_bulk),
        )
}

// ---- shard plumbing shared with feeds.rs and runs.rs ----

pub(super) async fn runs_read(b: &AppState, shard: ShardId, q: RunsQuery) -> ApiResult<RunsReply> {
    match b.read(shard, ShardQuery::Runs(q)).await.map_err(ApiError)? {
        ShardReply::Runs(r) => Ok(r),
        other => Err(unexpected(other)),
    }
}

async fn runs_write(b: &AppState, shard: ShardId, c: RunsCommand) -> ApiResult<RunsReply> {
    match b
        .write(shard, ShardCommand::Runs(c))
        .await
        .map_err(ApiError)?
    {
        ShardReply::Runs(r) => Ok(r),
        other => Err(unexpected(other)),
    }
}

/// Stored rows (JSON strings) back into their structs.
pub(super) fn parse_rows<T: DeserializeOwned>(rows: &[String]) -> ApiResult<Vec<T>> {
    rows.iter()
        .map(|r| serde_json::from_str(r).map_err(|e| internal(format!("corrupt stored row: {e}"))))
        .collect()
}

pub(super) fn unexpected_runs(r: RunsReply) -> ApiError {
    internal(format!("unexpected shard reply: {r:?}"))
}

// ---- filters shared with feeds.rs ----

fn one_of(what: &str, value: &str, allowed: &[&str]) -> ApiResult<String> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(invalid(format!(
            "`{value}` is not a valid {what} (one of: {})",
            allowed.join(", ")
        )))
    }
}

/// `trigger_data`: a JSON object of flat pairs, sent as a JSON string (or, in bodies, an object).
fn trigger_data(v: &Value) -> ApiResult<String> {
    let bad = || invalid("`trigger_data` must be a JSON object of flat key/value pairs");
    let parsed;
    let obj = match v {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|_| bad())?;
            parsed.as_object().ok_or_else(bad)?
        }
        Value::Object(o) => o,
        _ => return Err(bad()),
    };
    if obj.values().any(|v| v.is_object() || v.is_array()) {
        return Err(bad());
    }
    Ok(Value::Object(obj.clone()).to_string())
}

/// A timestamp parameter in ms.
fn timestamp(what: &str, v: &Value) -> ApiResult<u64> {
    v.as_str()
        .and_then(render::parse_iso)
        .ok_or_else(|| invalid(format!("`{what}` must be an ISO-8601 timestamp")))
}

/// `inserted_at[gte|gt|lte|lt]` (or `inserted_at.gte`, ...) as `[gte_ms, lt_ms)`.
fn inserted_at(q: &QueryParams) -> ApiResult<(Option<u64>, Option<u64>)> {
    let Some(range) = q.object("inserted_at")? else {
        return Ok((None, None));
    };
    let (mut lower, mut upper): (Option<u64>, Option<u64>) = (None, None);
    for (op, v) in range {
        let t = timestamp(&format!("inserted_at.{op}"), v)?;
        match op.as_str() {
            "gte" => lower = lower.max(Some(t)),
            "gt" => lower = lower.max(Some(t + 1)),
            "lt" => upper = Some(upper.map_or(t, |u| u.min(t))),
            "lte" => upper = Some(upper.map_or(t + 1, |u| u.min(t + 1))),
            _ => {
                return Err(invalid(format!(
                    "unknown operator `inserted_at.{op}` (gt, gte, lt, lte)"
                )))
            }
        }
    }
    Ok((lower, upper))
}

/// The filters message lists and feeds share: `source tenant has_tenant workflow_categories[]
/// trigger_data inserted_at.*`.
pub(super) fn common_filter(q: &QueryParams) -> ApiResult<MessageFilter> {
    let source = q.string("source")?.filter(|s| !s.is_empty());
    let tenant = q.string("tenant")?.filter(|s| !s.is_empty());
    for (what, v) in [("source", source), ("tenant", tenant)] {
        if let Some(v) = v {
            validate::id(what, v)?;
        }
    }
    let (inserted_gte_ms, inserted_lt_ms) = inserted_at(q)?;
    Ok(MessageFilter {
        workflow: source.map(str::to_owned),
        tenants: tenant.map(str::to_owned).into_iter().collect(),
        has_tenant: q.boolean("has_tenant")?,
        workflow_categories: q.list("workflow_categories")?,
        trigger_data: match q.value("trigger_data") {
            None => None,
            Some(v) => Some(trigger_data(v)?),
        },
        inserted_gte_ms,
        inserted_lt_ms,
        ..Default::default()
    })
}

/// A channel id filter: a channel key is read as its id; an unknown one matches nothing.
fn channel_id(b: &AppState, id_or_key: &str) -> String {
    b.channel(id_or_key)
        .map_or_else(|| id_or_key.to_owned(), |c| c.id)
}

/// Knock's MsgFilter (knock-api.md §2).
fn list_filter(b: &AppState, q: &QueryParams) -> ApiResult<MessageFilter> {
    let mut f = common_filter(q)?;
    f.channel_id = q
        .string("channel_id")?
        .filter(|s| !s.is_empty())
        .map(|c| channel_id(b, c));
    f.statuses = q
        .list("status")?
        .iter()
        .map(|s| one_of("status", s, DELIVERY_STATUSES))
        .collect::<ApiResult<_>>()?;
    f.engagement = q
        .list("engagement_status")?
        .iter()
        .map(|s| one_of("engagement_status", s, ENGAGEMENT_STATUSES))
        .collect::<ApiResult<_>>()?;
    f.message_ids = q.list("message_ids")?;
    f.workflow_run_id = q.string("workflow_run_id")?.map(str::to_owned);
    f.run_id = q.string("workflow_recipient_run_id")?.map(str::to_owned);
    Ok(f)
}

// ---- lists ----

async fn list_messages(
    b: &AppState,
    q: &QueryParams,
    recipient: Option<RecipientRef>,
) -> ApiResult<Json<Value>> {
    let page = IdPageRequest::from_query(q)?.herald_ids()?;
    let mut filter = list_filter(b, q)?;
    // Only the shards that can hold a match: the recipient's, or those of the named ids.
    let shards: Vec<ShardId> = match &recipient {
        Some(r) => vec![b.shard_for(&r.recipient_key())],
        None if !filter.message_ids.is_empty() => {
            let mut s: Vec<ShardId> = filter
                .message_ids
                .iter()
                .filter_map(|id| b.shard_for_id(id))
                .collect();
            s.sort_unstable();
            s.dedup();
            s
        }
        None => b.shards(),
    };
    filter.recipient = recipient;
    let fetch = |shard, page| {
        let q = RunsQuery::Messages {
            filter: filter.clone(),
            page,
        };
        async move {
            match runs_read(b, shard, q).await? {
                RunsReply::Messages(rows) => parse_rows::<StoredMessage>(&rows),
                other => Err(unexpected_runs(other)),
            }
        }
    };
    let found =
        paging::newest_first(&shards, &page, &IdBounds::default(), fetch, |m| &m.id).await?;
    let channels = b.channels();
    Ok(Json(json!({
        "items": found.items.iter().map(|m| mr::message(m, &channels)).collect::<Vec<_>>(),
        "page_info": found.page_info(page.page_size),
    })))
}

async fn list(State(b): State<AppState>, Query(q): Query) -> ApiResult<Json<Value>> {
    list_messages(&b, &q, None).await
}

async fn user_messages(
    State(b): State<AppState>,
    KPath(user_id): KPath<String>,
    Query(q): Query,
) -> ApiResult<Json<Value>> {
    let r = validate::user_ref(&user_id)?;
    list_messages(&b, &q, Some(r)).await
}

async fn object_messages(
    State(b): State<AppState>,
    KPath((collection, id)): KPath<(String, String)>,
    Query(q): Query,
) -> ApiResult<Json<Value>> {
    let r = validate::object_ref(&collection, &id)?;
    list_messages(&b, &q, Some(r)).await
}

// ---- one message ----

fn missing(id: &str) -> ApiError {
    not_found(format!("message `{id}` not found"))
}

/// The message `id`; 404 when unknown or not a Herald id.
async fn load(b: &AppState, id: &str) -> ApiResult<StoredMessage> {
    let shard = b.shard_for_id(id).ok_or_else(|| missing(id))?;
    match runs_read(b, shard, RunsQuery::Message(id.to_owned())).await? {
        RunsReply::Message(Some(row)) => Ok(parse_rows(&[row])?.remove(0)),
        RunsReply::Message(None) => Err(missing(id)),
        other => Err(unexpected_runs(other)),
    }
}

async fn get_message(
    State(b): State<AppState>,
    KPath(id): KPath<String>,
) -> ApiResult<Json<Value>> {
    let m = load(&b, &id).await?;
    Ok(Json(mr::message(&m, &b.channels())))
}

async fn content(State(b): State<AppState>, KPath(id): KPath<String>) -> ApiResult<Json<Value>> {
    Ok(Json(mr::contents(&load(&b, &id).await?)))
}

/// Rows of message `m` (events, delivery logs), oldest first, as one ItemsPage.
async fn message_rows(
    b: &AppState,
    m: &StoredMessage,
    q: &QueryParams,
    query: fn(String) -> RunsQuery,
    render_row: impl Fn(&Value) -> Value,
) -> ApiResult<Json<Value>> {
    let page = IdPageRequest::from_query(q)?;
    let shard = b.shard_for_id(&m.id).ok_or_else(|| missing(&m.id))?;
    let rows = match runs_read(b, shard, query(m.id.clone())).await? {
        RunsReply::Rows(rows) => parse_rows::<Value>(&rows)?,
        other => return Err(unexpected_runs(other)),
    };
    let found = paging::page_in_memory(rows, &page, row_id)?;
    Ok(Json(json!({
        "items": found.items.iter().map(render_row).collect::<Vec<_>>(),
        "page_info": found.page_info(page.page_size),
    })))
}

fn row_id(row: &Value) -> &str {
    row["id"].as_str().unwrap_or_default()
}

async fn events(
    State(b): State<AppState>,
    KPath(id): KPath<String>,
    Query(q): Query,
) -> ApiResult<Json<Value>> {
    let m = load(&b, &id).await?;
    message_rows(&b, &m, &q, RunsQuery::Events, mr::event).await
}

async fn delivery_logs(
    State(b): State<AppState>,
    KPath(id): KPath<String>,
    Query(q): Query,
) -> ApiResult<Json<Value>> {
    let m = load(&b, &id).await?;
    let provider = b.channel(&m.channel_id).map(|c| c.provider);
    let render_row = |row: &Value| mr::delivery_log(row, provider.as_deref());
    message_rows(&b, &m, &q, RunsQuery::DeliveryLogs, render_row).await
}

/// One activity per message (Herald has no batch step); `trigger_data` filters it.
async fn activities(
    State(b): State<AppState>,
    KPath(id): KPath<String>,
    Query(q): Query,
) -> ApiResult<Json<Value>> {
    let page = IdPageRequest::from_query(&q)?;
    let filter = match q.value("trigger_data") {
        None => None,
        Some(v) => Some(trigger_data(v)?),
    };
    let m = load(&b, &id).await?;
    let pairs: Map<String, Value> = filter
        .and_then(|f| serde_json::from_str(&f).ok())
        .unwrap_or_default();
    let data = m.data_json();
    let rows: Vec<Value> = if pairs.iter().all(|(k, v)| data.get(k) == Some(v)) {
        vec![mr::activity(&m)]
    } else {
        vec![]
    };
    let found = paging::page_in_memory(rows, &page, row_id)?;
    Ok(Json(json!({
        "items": found.items,
        "page_info": found.page_info(page.page_size),
    })))
}

// ---- engagement ----

/// `metadata` of an `interacted` change: absent, or an object of at most 5 flat pairs.
fn metadata(body: &Value) -> ApiResult<String> {
    match body.get("metadata") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::Object(m)) => {
            if m.len() > MAX_METADATA_KEYS {
                return Err(invalid(format!(
                    "`metadata` may hold at most {MAX_METADATA_KEYS} keys"
                )));
            }
            if m.values().any(|v| v.is_object() || v.is_array()) {
                return Err(invalid(
                    "`metadata` values must be flat (no objects or lists)",
                ));
            }
            Ok(Value::Object(m.clone()).to_string())
        }
        Some(_) => Err(invalid("`metadata` must be an object")),
    }
}

/// The change an action names, among `allowed`; `interacted` takes the body's metadata.
fn change(action: &str, allowed: &[&str], body: &Value) -> ApiResult<Option<Engagement>> {
    if !allowed.contains(&action) {
        return Ok(None);
    }
    Ok(match Engagement::parse(action) {
        Some(Engagement::Interacted { .. }) => Some(Engagement::Interacted {
            metadata: metadata(body)?,
        }),
        other => other,
    })
}

/// Apply `change` to `ids` (any shards); returns the messages found, keyed by id.
async fn engage(
    b: &AppState,
    ids: &[String],
    change: &Engagement,
) -> ApiResult<BTreeMap<String, StoredMessage>> {
    let mut groups: BTreeMap<ShardId, Vec<String>> = BTreeMap::new();
    for id in ids {
        if let Some(shard) = b.shard_for_id(id) {
            groups.entry(shard).or_default().push(id.clone());
        }
    }
    let writes = groups.into_iter().map(|(shard, message_ids)| {
        let cmd = RunsCommand::SetEngagement {
            message_ids,
            change: change.clone(),
        };
        runs_write(b, shard, cmd)
    });
    let mut found = BTreeMap::new();
    for reply in futures::future::join_all(writes).await {
        match reply? {
            RunsReply::Messages(rows) => {
                for m in parse_rows::<StoredMessage>(&rows)? {
                    found.insert(m.id.clone(), m);
                }
            }
            other => return Err(unexpected_runs(other)),
        }
    }
    Ok(found)
}

async fn engage_one(b: &AppState, id: &str, change: Engagement) -> ApiResult<Response> {
    if b.shard_for_id(id).is_none() {
        return Err(missing(id));
    }
    let found = engage(b, &[id.to_owned()], &change).await?;
    let m = found.get(id).ok_or_else(|| missing(id))?;
    Ok(Json(mr::message(m, &b.channels())).into_response())
}

/// `PUT /v1/messages/{id}/{seen|read|archived|interacted}`.
async fn set_status(
    State(b): State<AppState>,
    KPath((id, status)): KPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    match change(&status, &["seen", "read", "archived", "interacted"], &body)? {
        Some(c) => engage_one(&b, &id, c).await,
        None => Ok(route_not_found().await),
    }
}

/// `DELETE /v1/messages/{id}/{seen|read|archived}` and the aliases `unseen|unread|unarchived`.
async fn unset_status(
    State(b): State<AppState>,
    KPath((id, status)): KPath<(String, String)>,
) -> ApiResult<Response> {
    let c = match status.as_str() {
        "seen" | "unseen" => Engagement::Unseen,
        "read" | "unread" => Engagement::Unread,
        "archived" | "unarchived" => Engagement::Unarchived,
        _ => return Ok(route_not_found().await),
    };
    engage_one(&b, &id, c).await
}

/// `message_ids[]` of a batch request: 1 to 1000 ids, duplicates dropped (first one kept).
fn batch_ids(ids: Vec<String>) -> ApiResult<Vec<String>> {
    if ids.is_empty() || ids.len() > MAX_BULK_ITEMS {
        return Err(invalid(format!(
            "`message_ids` must hold 1 to {MAX_BULK_ITEMS} ids"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    Ok(ids
        .into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect())
}

/// `POST /v1/messages/batch/{action}` with `{message_ids[], metadata?}` -> Message[] (in request
/// order; unknown ids left out).
async fn batch(
    State(b): State<AppState>,
    KPath(action): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let Some(c) = change(&action, BATCH_ACTIONS, &body)? else {
        return Ok(route_not_found().await);
    };
    let ids = validate::id_list("message id", validate::bulk_list(&body, "message_ids")?)?;
    let ids = batch_ids(ids)?;
    let found = engage(&b, &ids, &c).await?;
    let channels = b.channels();
    let out: Vec<Value> = ids
        .iter()
        .filter_map(|id| found.get(id))
        .map(|m| mr::message(m, &channels))
        .collect();
    Ok(Json(Value::Array(out)).into_response())
}

/// `GET /v1/messages/batch/content?message_ids[]=...` -> MessageContents[] (unknown ids left out).
async fn batch_content(State(b): State<AppState>, Query(q): Query) -> ApiResult<Json<Value>> {
    let ids = batch_ids(q.list("message_ids")?)?;
    let reads = ids.iter().map(|id| load(&b, id));
    let mut out = Vec::new();
    for m in futures::future::join_all(reads).await {
        match m {
            Ok(m) => out.push(mr::contents(&m)),
            Err(ApiError(crate::error::Error::NotFound(_))) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Json(Value::Array(out)))
}

// ---- channel bulk ----

/// `recipient_ids[]` (RecipientRefs) and/or `user_ids[]` (strings) of a bulk body.
fn bulk_recipients(body: &Value) -> ApiResult<Vec<RecipientRef>> {
    let mut out = Vec::new();
    if let Some(v) = body.get("user_ids").filter(|v| !v.is_null()) {
        let list = v
            .as_array()
            .ok_or_else(|| invalid("`user_ids` must be a list"))?;
        for id in validate::id_list("user id", list)? {
            out.push(RecipientRef::user(id));
        }
    }
    if let Some(v) = body.get("recipient_ids").filter(|v| !v.is_null()) {
        let list = v
            .as_array()
            .ok_or_else(|| invalid("`recipient_ids` must be a list"))?;
        for r in list {
            out.push(match r {
                Value::String(id) => validate::user_ref(id)?,
                Value::Object(o) => {
                    let field = |k: &str| {
                        o.get(k).and_then(Value::as_str).ok_or_else(|| {
                            invalid("each recipient must be a user id or `{id, collection}`")
                        })
                    };
                    validate::object_ref(field("collection")?, field("id")?)?
                }
                _ => {
                    return Err(invalid(
                        "each recipient must be a user id or `{id, collection}`",
                    ))
                }
            });
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() || out.len() > MAX_BULK_ITEMS {
        return Err(invalid(format!(
            "`user_ids` or `recipient_ids` must name 1 to {MAX_BULK_ITEMS} recipients \
             (Herald does not update every recipient of a channel at once)"
        )));
    }
    Ok(out)
}

fn optional_str<'a>(body: &'a Value, key: &str) -> ApiResult<Option<&'a str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("`{key}` must be a string"))),
    }
}

fn string_list(body: &Value, key: &str) -> ApiResult<Vec<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => validate::id_list(key, a),
        Some(_) => Err(invalid(format!("`{key}` must be a list of strings"))),
    }
}

/// The message filter of a channel bulk body (without the recipient and workflow).
fn bulk_filter(channel_id: &str, body: &Value) -> ApiResult<MessageFilter> {
    let archived = match optional_str(body, "archived")? {
        None | Some("include") => ArchivedFilter::Include,
        Some("exclude") => ArchivedFilter::Exclude,
        Some("only") => ArchivedFilter::Only,
        Some(_) => return Err(invalid("`archived` must be `exclude`, `include` or `only`")),
    };
    let has_tenant = match body.get("has_tenant") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(invalid("`has_tenant` must be a boolean")),
    };
    let time = |key: &str| -> ApiResult<Option<u64>> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => timestamp(key, v).map(Some),
        }
    };
    Ok(MessageFilter {
        channel_id: Some(channel_id.to_owned()),
        statuses: optional_str(body, "delivery_status")?
            .map(|s| one_of("delivery_status", s, DELIVERY_STATUSES))
            .transpose()?
            .into_iter()
            .collect(),
        engagement: optional_str(body, "engagement_status")?
            .map(|s| one_of("engagement_status", s, ENGAGEMENT_STATUSES))
            .transpose()?
            .into_iter()
            .collect(),
        tenants: string_list(body, "tenants")?,
        has_tenant,
        trigger_data: match body.get("trigger_data") {
            None | Some(Value::Null) => None,
            Some(v) => Some(trigger_data(v)?),
        },
        inserted_gte_ms: time("newer_than")?.map(|t| t + 1),
        inserted_lt_ms: time("older_than")?,
        archived,
        ..Default::default()
    })
}

/// `POST /v1/channels/{channel_id}/messages/bulk/{action}` -> BulkOperation (completed).
async fn channel_bulk(
    State(b): State<AppState>,
    KPath((channel_id, action)): KPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let started = bulk::now_ms();
    if action == "delete" {
        return Err(invalid("bulk delete of messages is not supported"));
    }
    let actions = [BATCH_ACTIONS, &["archive", "unarchive"]].concat();
    let Some(c) = change(&action, &actions, &body)? else {
        return Ok(route_not_found().await);
    };
    let channel = b
        .channel(&channel_id)
        .ok_or_else(|| not_found(format!("channel `{channel_id}` not found")))?;
    if channel.channel_type != herald_shard::runs::IN_APP_FEED {
        return Err(invalid(format!(
            "channel `{channel_id}` is not an in_app_feed channel: bulk status updates work on feeds"
        )));
    }
    let recipients = bulk_recipients(&body)?;
    let filter = bulk_filter(&channel.id, &body)?;
    let workflows: Vec<Option<String>> = match string_list(&body, "workflows")? {
        w if w.is_empty() => vec![None],
        w => w.into_iter().map(Some).collect(),
    };
    // A message has one workflow, so one command per workflow never counts a message twice.
    let writes = recipients.iter().flat_map(|r| {
        let (b, c, channel, filter) = (&b, &c, &channel, &filter);
        workflows.iter().map(move |w| {
            let cmd = RunsCommand::BulkEngagement {
                channel_id: channel.id.clone(),
                filter: MessageFilter {
                    recipient: Some(r.clone()),
                    workflow: w.clone(),
                    ..filter.clone()
                },
                change: c.clone(),
            };
            runs_write(b, b.shard_for(&r.recipient_key()), cmd)
        })
    });
    let mut changed = 0u64;
    for reply in futures::future::join_all(writes).await {
        match reply? {
            RunsReply::Count(n) => changed += n,
            other => return Err(unexpected_runs(other)),
        }
    }
    let name = format!("channel.messages.bulk_{action}");
    let op = bulk::completed(&b, &name, changed as usize, started).await?;
    Ok(op.into_response())
}
