//! `/v1/tenants`: set, get, list (`name`, `tenant_id` filters), delete. Tenants are objects in
//! collection `$tenants` with their own flat Tenant shape.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use herald_shard::TENANTS_COLLECTION;
use serde_json::Value;

use super::error::ApiResult;
use super::extract::{JsonBody, KPath, Query};
use super::paging::{self, ListFilter, PageRequest};
use super::recipients;
use super::render;
use super::validate;
use crate::backend::Backend;

type AppState = Arc<dyn Backend>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", get(list))
        .route("/v1/tenants/{id}", get(get_tenant).put(set).delete(delete))
}

/// `name` and `tenant_id` are exact-match filters.
async fn list(State(b): State<AppState>, Query(q): Query) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&q, false)?;
    let id_equals = q
        .string("tenant_id")?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(id) = &id_equals {
        validate::id("tenant_id", id)?;
    }
    let name_equals = q
        .string("name")?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let filter = ListFilter {
        include_preferences: false,
        id_equals,
        name_equals,
    };
    Ok(Json(
        paging::list_page(&b, TENANTS_COLLECTION, &page, filter, render::tenant).await?,
    ))
}

/// `resolve_full_preference_settings` is accepted and ignored until environment defaults exist.
async fn get_tenant(State(b): State<AppState>, KPath(id): KPath<String>) -> ApiResult<Json<Value>> {
    let r = validate::tenant_ref(&id)?;
    Ok(Json(render::tenant(&recipients::get(&b, &r, false).await?)))
}

async fn set(
    State(b): State<AppState>,
    KPath(id): KPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let up = validate::tenant_upsert(validate::tenant_ref(&id)?, &body)?;
    Ok(Json(render::tenant(&recipients::upsert(&b, up).await?)))
}

async fn delete(State(b): State<AppState>, KPath(id): KPath<String>) -> ApiResult<StatusCode> {
    recipients::delete(&b, &validate::tenant_ref(&id)?).await
}
