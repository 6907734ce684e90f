//! `/v1/workflow_recipient_runs`: the run list (every shard, or the recipient's shard when
//! `recipient` is given, merged newest first with the run id as cursor) and one run with its
//! `events[]`.
//!
//! `starting_at` / `ending_at` bound the run's creation time, read from its id (ids start with the
//! time they were minted), so they narrow the scan instead of filtering rows.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use herald_shard::ids::make_id;
use herald_shard::runs::{RunFilter, RunsQuery, RunsReply, StoredRun};
use herald_shard::RecipientRef;
use serde_json::{json, Value};

use super::error::{invalid, not_found, ApiResult};
use super::extract::{KPath, Query};
use super::message_render as mr;
use super::messages::{parse_rows, runs_read, unexpected_runs};
use super::paging::{self, IdBounds, IdPageRequest};
use super::query::QueryParams;
use super::render;
use super::validate;
use crate::backend::Backend;

type AppState = Arc<dyn Backend>;

/// Run statuses Knock defines (Herald records completed, paused and cancelled runs).
const RUN_STATUSES: &[&str] = &["queued", "processing", "paused", "completed", "cancelled"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workflow_recipient_runs", get(list))
        .route("/v1/workflow_recipient_runs/{id}", get(get_run))
}

/// `recipient`: a user id (`recipient=u1`), an object ref (`recipient[id]=..&recipient[collection]=..`
/// or the dot form), or a JSON-encoded ref.
fn recipient(q: &QueryParams) -> ApiResult<Option<RecipientRef>> {
    let bad = || invalid("`recipient` must be a user id or `{id, collection}`");
    let object = |o: &serde_json::Map<String, Value>| {
        let field = |k: &str| o.get(k).and_then(Value::as_str).ok_or_else(bad);
        match o.get("collection") {
            None | Some(Value::Null) => validate::user_ref(field("id")?),
            Some(_) => validate::object_ref(field("collection")?, field("id")?),
        }
    };
    match q.value("recipient") {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.starts_with('{') => {
            match serde_json::from_str::<Value>(s).map_err(|_| bad())? {
                Value::Object(o) => object(&o).map(Some),
                _ => Err(bad()),
            }
        }
        Some(Value::String(s)) => validate::user_ref(s).map(Some),
        Some(Value::Object(o)) => object(o).map(Some),
        Some(_) => Err(bad()),
    }
}

/// Id bounds from `starting_at` (inclusive) and `ending_at` (inclusive).
fn time_bounds(q: &QueryParams) -> ApiResult<IdBounds> {
    let time = |key: &str| -> ApiResult<Option<u64>> {
        match q.string(key)? {
            None | Some("") => Ok(None),
            Some(s) => render::parse_iso(s)
                .map(Some)
                .ok_or_else(|| invalid(format!("`{key}` must be an ISO-8601 timestamp"))),
        }
    };
    Ok(IdBounds {
        // The last id of the previous millisecond, and the first of the next one.
        newer_than: time("starting_at")?
            .and_then(|t| t.checked_sub(1))
            .map(|t| make_id(t, u16::MAX, [0xff; 10])),
        older_than: time("ending_at")?.map(|t| make_id(t.saturating_add(1), 0, [0; 10])),
    })
}

fn run_filter(q: &QueryParams) -> ApiResult<RunFilter> {
    let statuses = q
        .list("status")?
        .into_iter()
        .map(|s| {
            if RUN_STATUSES.contains(&s.as_str()) {
                Ok(s)
            } else {
                Err(invalid(format!(
                    "`{s}` is not a run status (one of: {})",
                    RUN_STATUSES.join(", ")
                )))
            }
        })
        .collect::<ApiResult<_>>()?;
    let text = |k: &str| -> ApiResult<Option<String>> {
        Ok(q.string(k)?.filter(|s| !s.is_empty()).map(str::to_owned))
    };
    Ok(RunFilter {
        workflow: text("workflow")?,
        statuses,
        tenant: text("tenant")?,
        has_errors: q.boolean("has_errors")?,
        recipient: recipient(q)?,
        workflow_run_id: text("workflow_run_id")?,
    })
}

async fn list(State(b): State<AppState>, Query(q): Query) -> ApiResult<Json<Value>> {
    let page = IdPageRequest::from_query(&q)?.herald_ids()?;
    let filter = run_filter(&q)?;
    let bounds = time_bounds(&q)?;
    let shards = match &filter.recipient {
        Some(r) => vec![b.shard_for(&r.recipient_key())],
        None => b.shards(),
    };
    let fetch = |shard, page| {
        let q = RunsQuery::Runs {
            filter: filter.clone(),
            page,
        };
        let b = &b;
        async move {
            match runs_read(b, shard, q).await? {
                RunsReply::Runs(rows) => parse_rows::<StoredRun>(&rows),
                other => Err(unexpected_runs(other)),
            }
        }
    };
    let found = paging::newest_first(&shards, &page, &bounds, fetch, |r| &r.id).await?;
    Ok(Json(json!({
        "items": found.items.iter().map(|r| mr::run(r, false)).collect::<Vec<_>>(),
        "page_info": found.page_info(page.page_size),
    })))
}

async fn get_run(State(b): State<AppState>, KPath(id): KPath<String>) -> ApiResult<Json<Value>> {
    let missing = || not_found(format!("workflow recipient run `{id}` not found"));
    let shard = b.shard_for_id(&id).ok_or_else(missing)?;
    match runs_read(&b, shard, RunsQuery::Run(id.clone())).await? {
        RunsReply::Json(Some(row)) => {
            let run: StoredRun = parse_rows(&[row])?.remove(0);
            Ok(Json(mr::run(&run, true)))
        }
        RunsReply::Json(None) => Err(missing()),
        other => Err(unexpected_runs(other)),
    }
}
