//! `/v1/users`: identify, get, list, delete, merge, and the user's channel data and preferences.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_shard::{ShardCommand, ShardQuery, ShardReply, USERS_COLLECTION};
use serde_json::Value;

use super::error::{invalid, not_found, ApiResult};
use super::extract::{JsonBody, KPath, Query};
use super::paging::{self, ListFilter, PageRequest};
use super::recipients::{self, unexpected};
use super::render;
use super::validate;
use crate::backend::Backend;

type AppState = Arc<dyn Backend>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list))
        .route(
            "/v1/users/{user_id}",
            get(get_user).put(identify).delete(delete),
        )
        .route("/v1/users/{user_id}/merge", post(merge))
        .route(
            "/v1/users/{user_id}/channel_data/{channel_id}",
            get(get_channel_data)
                .put(set_channel_data)
                .delete(unset_channel_data),
        )
        .route("/v1/users/{user_id}/preferences", get(list_preferences))
        .route(
            "/v1/users/{user_id}/preferences/{set_id}",
            get(get_preferences)
                .put(set_preferences)
                .delete(unset_preferences),
        )
}

/// `include[]=preferences` (the only include Knock offers on recipient lists).
pub fn include_preferences(q: &super::query::QueryParams) -> ApiResult<bool> {
    let mut include = false;
    for i in q.list("include")? {
        match i.as_str() {
            "preferences" => include = true,
            other => return Err(invalid(format!("unknown include `{other}`"))),
        }
    }
    Ok(include)
}

async fn list(State(b): State<AppState>, Query(q): Query) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&q, true)?;
    let filter = ListFilter {
        include_preferences: include_preferences(&q)?,
        ..Default::default()
    };
    Ok(Json(
        paging::list_page(&b, USERS_COLLECTION, &page, filter, render::user).await?,
    ))
}

async fn get_user(
    State(b): State<AppState>,
    KPath(user_id): KPath<String>,
) -> ApiResult<Json<Value>> {
    let r = validate::user_ref(&user_id)?;
    Ok(Json(render::user(&recipients::get(&b, &r, false).await?)))
}

async fn identify(
    State(b): State<AppState>,
    KPath(user_id): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let up = validate::user_upsert(validate::user_ref(&user_id)?, &body)?;
    Ok(Json(render::user(&recipients::upsert(&b, up).await?)))
}

async fn delete(State(b): State<AppState>, KPath(user_id): KPath<String>) -> ApiResult<StatusCode> {
    recipients::delete(&b, &validate::user_ref(&user_id)?).await
}

/// Merge `from_user_id` into `user_id`. The two users may live on different shards: read the
/// secondary, merge it into the primary (idempotent), then delete the secondary (idempotent).
async fn merge(
    State(b): State<AppState>,
    KPath(user_id): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let target = validate::user_ref(&user_id)?;
    let from_id = body
        .get("from_user_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("`from_user_id` is required and must be a string"))?;
    let from = validate::user_ref(from_id)?;
    if from == target {
        return Err(invalid(
            "`from_user_id` must differ from the user being merged into",
        ));
    }
    recipients::get(&b, &target, false).await?;
    let snapshot = match recipients::read(&b, &from, ShardQuery::Snapshot(from.clone())).await? {
        ShardReply::Snapshot(Some(s)) => s,
        ShardReply::Snapshot(None) => return Err(not_found(format!("user `{from_id}` not found"))),
        other => return Err(unexpected(other)),
    };
    let merged = match recipients::write(
        &b,
        &target,
        ShardCommand::MergeInto {
            target: target.clone(),
            from: snapshot,
        },
    )
    .await?
    {
        ShardReply::Recipient(Some(v)) => v,
        ShardReply::NotFound => return Err(not_found(format!("user `{user_id}` not found"))),
        other => return Err(unexpected(other)),
    };
    recipients::delete(&b, &from).await?;
    Ok(Json(render::user(&merged)))
}

async fn get_channel_data(
    State(b): State<AppState>,
    KPath((user_id, channel_id)): KPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let r = validate::user_ref(&user_id)?;
    Ok(Json(
        recipients::get_channel_data(&b, &r, &channel_id).await?,
    ))
}

async fn set_channel_data(
    State(b): State<AppState>,
    KPath((user_id, channel_id)): KPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let r = validate::user_ref(&user_id)?;
    Ok(Json(
        recipients::set_channel_data(&b, &r, &channel_id, &body).await?,
    ))
}

async fn unset_channel_data(
    State(b): State<AppState>,
    KPath((user_id, channel_id)): KPath<(String, String)>,
) -> ApiResult<StatusCode> {
    recipients::unset_channel_data(&b, &validate::user_ref(&user_id)?, &channel_id).await
}

async fn list_preferences(
    State(b): State<AppState>,
    KPath(user_id): KPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        recipients::list_preferences(&b, &validate::user_ref(&user_id)?).await?,
    ))
}

async fn get_preferences(
    State(b): State<AppState>,
    KPath((user_id, set_id)): KPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        recipients::get_preferences(&b, &validate::user_ref(&user_id)?, &set_id).await?,
    ))
}

async fn set_preferences(
    State(b): State<AppState>,
    KPath((user_id, set_id)): KPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let r = validate::user_ref(&user_id)?;
    Ok(Json(
        recipients::set_preferences(&b, &r, &set_id, &body).await?,
    ))
}

async fn unset_preferences(
    State(b): State<AppState>,
    KPath((user_id, set_id)): KPath<(String, String)>,
) -> ApiResult<StatusCode> {
    recipients::unset_preferences(&b, &validate::user_ref(&user_id)?, &set_id).await
}
