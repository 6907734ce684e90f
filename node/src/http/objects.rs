//! `/v1/objects/{collection}`: set, get, list, delete, and an object's channel data and preferences.
//! Object properties are returned nested under `properties`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::error::ApiResult;
use super::extract::{JsonBody, KPath, Query};
use super::paging::{self, ListFilter, PageRequest};
use super::recipients;
use super::render;
use super::users::include_preferences;
use super::validate;
use crate::backend::Backend;

type AppState = Arc<dyn Backend>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/objects/{collection}", get(list))
        .route(
            "/v1/objects/{collection}/{id}",
            get(get_object).put(set).delete(delete),
        )
        .route(
            "/v1/objects/{collection}/{id}/channel_data/{channel_id}",
            get(get_channel_data)
                .put(set_channel_data)
                .delete(unset_channel_data),
        )
        .route(
            "/v1/objects/{collection}/{id}/preferences",
            get(list_preferences),
        )
        .route(
            "/v1/objects/{collection}/{id}/preferences/{set_id}",
            get(get_preferences)
                .put(set_preferences)
                .delete(unset_preferences),
        )
}

async fn list(
    State(b): State<AppState>,
    KPath(collection): KPath<String>,
    Query(q): Query,
) -> ApiResult<Json<Value>> {
    validate::collection(&collection)?;
    let page = PageRequest::from_query(&q, false)?;
    let filter = ListFilter {
        include_preferences: include_preferences(&q)?,
        ..Default::default()
    };
    Ok(Json(
        paging::list_page(&b, &collection, &page, filter, render::object).await?,
    ))
}

async fn get_object(
    State(b): State<AppState>,
    KPath((c, id)): KPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let r = validate::object_ref(&c, &id)?;
    Ok(Json(render::object(&recipients::get(&b, &r, false).await?)))
}

async fn set(
    State(b): State<AppState>,
    KPath((c, id)): KPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let up = validate::object_upsert(validate::object_ref(&c, &id)?, &body)?;
    Ok(Json(render::object(&recipients::upsert(&b, up).await?)))
}

async fn delete(
    State(b): State<AppState>,
    KPath((c, id)): KPath<(String, String)>,
) -> ApiResult<StatusCode> {
    recipients::delete(&b, &validate::object_ref(&c, &id)?).await
}

async fn get_channel_data(
    State(b): State<AppState>,
    KPath((c, id, channel_id)): KPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let r = validate::object_ref(&c, &id)?;
    Ok(Json(
        recipients::get_channel_data(&b, &r, &channel_id).await?,
    ))
}

async fn set_channel_data(
    State(b): State<AppState>,
    KPath((c, id, channel_id)): KPath<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let r = validate::object_ref(&c, &id)?;
    Ok(Json(
        recipients::set_channel_data(&b, &r, &channel_id, &body).await?,
    ))
}

async fn unset_channel_data(
    State(b): State<AppState>,
    KPath((c, id, channel_id)): KPath<(String, String, String)>,
) -> ApiResult<StatusCode> {
    recipients::unset_channel_data(&b, &validate::object_ref(&c, &id)?, &channel_id).await
}

async fn list_preferences(
    State(b): State<AppState>,
    KPath((c, id)): KPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        recipients::list_preferences(&b, &validate::object_ref(&c, &id)?).await?,
    ))
}

async fn get_preferences(
    State(b): State<AppState>,
    KPath((c, id, set_id)): KPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        recipients::get_preferences(&b, &validate::object_ref(&c, &id)?, &set_id).await?,
    ))
}

async fn set_preferences(
    State(b): State<AppState>,
    KPath((c, id, set_id)): KPath<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let r = validate::object_ref(&c, &id)?;
    Ok(Json(
        recipients::set_preferences(&b, &r, &set_id, &body).await?,
    ))
}

async fn unset_preferences(
    State(b): State<AppState>,
    KPath((c, id, set_id)): KPath<(String, String, String)>,
) -> ApiResult<StatusCode> {
    recipients::unset_preferences(&b, &validate::object_ref(&c, &id)?, &set_id).await
}
