//! Operations shared by users, objects and tenants: routing a recipient's command to its shard,
//! reading it back, and the channel-data and preference-set endpoints (same shapes for users and
//! objects).

use std::sync::Arc;

use axum::http::StatusCode;
use herald_shard::{
    RecipientRef, RecipientUpsert, RecipientView, ShardCommand, ShardQuery, ShardReply,
    TENANTS_COLLECTION,
};
use serde_json::Value;

use super::error::{internal, invalid, not_found, ApiError, ApiResult};
use super::render;
use super::validate::{self, Persistence};
use crate::backend::Backend;

/// How a recipient is named in messages ("user `u1`").
pub fn describe(r: &RecipientRef) -> String {
    if r.is_user() {
        format!("user `{}`", r.id)
    } else if r.collection == TENANTS_COLLECTION {
        format!("tenant `{}`", r.id)
    } else {
        format!("object `{}` in collection `{}`", r.id, r.collection)
    }
}

/// A reply variant no handler expects: the shard refused or failed.
pub fn unexpected(reply: ShardReply) -> ApiError {
    match reply {
        // The HTTP layer validates first, so this means the two validations disagree.
        ShardReply::Invalid(msg) => invalid(msg),
        ShardReply::StoreError(msg) => internal(format!("shard store failed: {msg}")),
        other => internal(format!("unexpected shard reply: {other:?}")),
    }
}

pub async fn write(
    backend: &Arc<dyn Backend>,
    r: &RecipientRef,
    cmd: ShardCommand,
) -> ApiResult<ShardReply> {
    let shard = backend.shard_for(&r.recipient_key());
    backend.write(shard, cmd).await.map_err(ApiError)
}

pub async fn read(
    backend: &Arc<dyn Backend>,
    r: &RecipientRef,
    q: ShardQuery,
) -> ApiResult<ShardReply> {
    let shard = backend.shard_for(&r.recipient_key());
    backend.read(shard, q).await.map_err(ApiError)
}

pub async fn upsert(backend: &Arc<dyn Backend>, up: RecipientUpsert) -> ApiResult<RecipientView> {
    let r = up.recipient.clone();
    match write(backend, &r, ShardCommand::Upsert(vec![up])).await? {
        ShardReply::Recipients(mut v) if v.len() == 1 => Ok(v.remove(0)),
        other => Err(unexpected(other)),
    }
}

pub async fn get(
    backend: &Arc<dyn Backend>,
    r: &RecipientRef,
    include_preferences: bool,
) -> ApiResult<RecipientView> {
    let q = ShardQuery::Get {
        recipient: r.clone(),
        include_preferences,
    };
    match read(backend, r, q).await? {
        ShardReply::Recipient(Some(v)) => Ok(v),
        ShardReply::Recipient(None) => Err(not_found(format!("{} not found", describe(r)))),
        other => Err(unexpected(other)),
    }
}

/// Delete a recipient (and its channel data and preferences). Idempotent: deleting a missing
/// recipient is also a 204, so a retried delete never fails.
pub async fn delete(backend: &Arc<dyn Backend>, r: &RecipientRef) -> ApiResult<StatusCode> {
    match write(backend, r, ShardCommand::Delete(vec![r.clone()])).await? {
        ShardReply::Deleted(_) => Ok(StatusCode::NO_CONTENT),
        other => Err(unexpected(other)),
    }
}

// ---- channel data ----

pub async fn get_channel_data(
    backend: &Arc<dyn Backend>,
    r: &RecipientRef,
    channel_id: &str,
) -> ApiResult<Value> {
    validate::id("channel_id", channel_id)?;
    let q = ShardQuery::GetChannelData {
        recipient: r.clone(),
        channel_id: channel_id.to_owned(),
    };
    match read(backend, r, q).await? {
        ShardReply::ChannelData(Some(v)) => Ok(render::channel_data(&v)),
        ShardReply::ChannelData(None) => Err(not_found(format!(
            "no channel data for channel `{channel_id}` on {}",
            describe(r)
        ))),
        ShardReply::NotFound => Err(not_found(format!("{} not found", describe(r)))),
        other => Err(unexpected(other)),
    }
}

/// `PUT .../channel_data/{channel_id}` with body `{data}`; creates the recipient if missing.
pub async fn set_channel_data(
    backend: &Arc<dyn Backend>,
    r: &RecipientRef,
    channel_id: &str,
    body: &Value,
) -> ApiResult<Value> {
    let data = body
        .get("data")
        .ok_or_else(|| invalid("`data` is required"))?;
    let entry = validate::channel_data(channel_id, data)?;
    let cmd = ShardCommand::SetChannelData {
        recipient: r.clone(),
        channel_id: entry.channel_id,
        data: entry.data,
    };
    match write(backend, r, cmd).await? {
        ShardReply::ChannelData(Some(v)) => Ok(render::channel_data(&v)),
        other => Err(unexpected(other)),
    }
}

pub async fn unset_channel_data(
    backend: &Arc<dyn Backend>,
    r: &RecipientRef,
    channel_id: &str,
) -> ApiResult<StatusCode> {
    validate::id("channel_id", channel_id)?;
    let cmd = ShardCommand::UnsetChannelData {
        recipient: r.clone(),
        channel_id: channel_id.to_owned(),
    };
    match write(backend, r, cmd).await? {
        ShardReply::Unset(_) => Ok(StatusCode::NO_CONTENT),
        other => Err(unexpected(other)),
    }
}

// ---- preferences ----

/// The recipient's preference sets as a bare array.
pub async fn list_preferences(backend: &Arc<dyn Backend>, r: &RecipientRef) -> ApiResult<Value> {
    match read(backend, r, ShardQuery::ListPreferences(r.clone())).await? {
        ShardReply::PreferenceSets(sets) => Ok(Value::Array(
            sets.iter().map(render::preference_set).collect(),
        )),
        ShardReply::NotFound => Err(not_found(format!("{} not found", describe(r)))),
        other => Err(unexpected(other)),
    }
}

/// One set; a set never written reads as an empty set (every member `null`).
pub async fn get_preferences(
    backend: &Arc<dyn Backend>,
    r: &RecipientRef,
    set_id: &str,
) -> ApiResult<Value> {
    validate::id("preference set id", set_id)?;
    let q = ShardQuery::GetPreferences {
        recipient: r.clone(),
        set_id: set_id.to_owned(),
    };
    match read(backend, r, q).await? {
        ShardReply::PreferenceSet(Some(p)) => Ok(render::preference_set(&p)),
        ShardReply::PreferenceSet(None) => Ok(render::empty_preference_set(set_id)),
        ShardReply::NotFound => Err(not_found(format!("{} not found", describe(r)))),
        other => Err(unexpected(other)),
    }
}

/// `PUT .../preferences/{set_id}`: replace, or merge with `__persistence_strategy__: "merge"`.
/// Creates the recipient if missing (like channel data).
pub async fn set_preferences(
    backend: &Arc<dyn Backend>,
    r: &RecipientRef,
    set_id: &str,
    body: &Value,
) -> ApiResult<Value> {
    validate::id("preference set id", set_id)?;
    let (doc, persistence) = validate::preference_set("body", body)?;
    let cmd = ShardCommand::SetPreferences {
        recipients: vec![r.clone()],
        set_id: set_id.to_owned(),
        set: Value::Object(doc).to_string(),
        merge: persistence == Persistence::Merge,
    };
    match write(backend, r, cmd).await? {
        ShardReply::PreferenceSets(sets) if sets.len() == 1 => Ok(render::preference_set(&sets[0])),
        other => Err(unexpected(other)),
    }
}

pub async fn unset_preferences(
    backend: &Arc<dyn Backend>,
    r: &RecipientRef,
    set_id: &str,
) -> ApiResult<StatusCode> {
    validate::id("preference set id", set_id)?;
    let cmd = ShardCommand::UnsetPreferences {
        recipient: r.clone(),
        set_id: set_id.to_owned(),
    };
    match write(backend, r, cmd).await? {
        ShardReply::Unset(_) => Ok(StatusCode::NO_CONTENT),
        other => Err(unexpected(other)),
    }
}
