//! The in-app feed: `GET /v1/users/{user_id}/feeds/{channel_id}` and its `/settings`
//! (knock-api.md §4.2).
//!
//! ```text
//! query -> MessageFilter{recipient, channel, status, archived, source, tenant, ...}
//!       -> RunsQuery::Feed on the user's shard (the feed index, newest first, + FeedCounts)
//!       -> FeedItem[] (compact or rich), meta from the counters, `exclude` paths dropped
//! ```
//!
//! `meta` counts come from [`FeedCounts`], kept exact by the shard's apply, never from counting
//! items. They follow `archived` (exclude: unarchived counters, only: archived ones, include: both)
//! and `status` (`total_count` is the unread count with `status=unread`, total minus unread with
//! `read`, and the same for seen/unseen), but they **ignore** the `source`, `tenant`, `has_tenant`,
//! `workflow_categories`, `trigger_data` and `inserted_at` filters: the counters are per
//! recipient and channel only.
//!
//! An unknown user reads as an empty feed. `locale` is accepted and ignored: content is rendered
//! when the message is created. A channel that is unknown or not an `in_app_feed` channel is a 404.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use herald_shard::runs::{ArchivedFilter, FeedCounts, RunsQuery, RunsReply, StoredMessage};
use serde_json::{json, Value};

use super::error::{internal, invalid, not_found, ApiResult};
use super::extract::{KPath, Query};
use super::message_render as mr;
use super::messages::{common_filter, parse_rows, runs_read, unexpected_runs};
use super::paging::{self, IdBounds, IdPageRequest};
use super::validate;
use crate::backend::{Backend, ChannelRecord};

type AppState = Arc<dyn Backend>;

/// Deepest field path `exclude` may name (`entries.source.key`).
const MAX_EXCLUDE_DEPTH: usize = 3;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users/{user_id}/feeds/{channel_id}", get(feed))
        .route(
            "/v1/users/{user_id}/feeds/{channel_id}/settings",
            get(settings),
        )
}

/// The `in_app_feed` channel named by id or key.
fn feed_channel(b: &AppState, id_or_key: &str) -> ApiResult<ChannelRecord> {
    b.channel(id_or_key)
        .filter(|c| c.channel_type == herald_shard::runs::IN_APP_FEED)
        .ok_or_else(|| not_found(format!("no in-app feed channel `{id_or_key}`")))
}

/// `status=unread|read|unseen|seen|all`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    All,
    Unread,
    Read,
    Unseen,
    Seen,
}

impl Status {
    fn parse(s: Option<&str>) -> ApiResult<Status> {
        Ok(match s {
            None | Some("") | Some("all") => Status::All,
            Some("unread") => Status::Unread,
            Some("read") => Status::Read,
            Some("unseen") => Status::Unseen,
            Some("seen") => Status::Seen,
            Some(_) => {
                return Err(invalid(
                    "`status` must be one of unread, read, unseen, seen, all",
                ))
            }
        })
    }

    fn engagement(self) -> Vec<String> {
        match self {
            Status::All => vec![],
            Status::Unread => vec!["unread".into()],
            Status::Read => vec!["read".into()],
            Status::Unseen => vec!["unseen".into()],
            Status::Seen => vec!["seen".into()],
        }
    }
}

/// FeedMetadata from the exact counters.
fn meta(c: &FeedCounts, archived: ArchivedFilter, status: Status) -> Value {
    let (total, unread, unseen) = match archived {
        ArchivedFilter::Exclude => (c.total, c.unread, c.unseen),
        ArchivedFilter::Only => (c.archived_total, c.archived_unread, c.archived_unseen),
        ArchivedFilter::Include => (
            c.total + c.archived_total,
            c.unread + c.archived_unread,
            c.unseen + c.archived_unseen,
        ),
    };
    let total_count = match status {
        Status::All => total,
        Status::Unread => unread,
        Status::Read => total.saturating_sub(unread),
        Status::Unseen => unseen,
        Status::Seen => total.saturating_sub(unseen),
    };
    json!({
        "__typename": "FeedMetadata",
        "total_count": total_count,
        "unread_count": unread,
        "unseen_count": unseen,
    })
}

/// `exclude=entries.archived_at,meta.unseen_count`: field paths of at most 3 levels.
fn exclude_paths(s: Option<&str>) -> ApiResult<Vec<Vec<String>>> {
    let Some(s) = s else {
        return Ok(Vec::new());
    };
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let path: Vec<String> = p.split('.').map(str::to_owned).collect();
            if path.len() > MAX_EXCLUDE_DEPTH || path.iter().any(String::is_empty) {
                return Err(invalid(format!(
                    "`exclude` paths are dotted field names at most {MAX_EXCLUDE_DEPTH} deep: `{p}`"
                )));
            }
            Ok(path)
        })
        .collect()
}

/// Remove `path` from `v`; lists are crossed transparently (`entries.x` is `x` of every entry).
fn drop_path(v: &mut Value, path: &[String]) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| drop_path(i, path)),
        Value::Object(o) => match path {
            [last] => {
                o.shift_remove(last);
            }
            [head, rest @ ..] => {
                if let Some(child) = o.get_mut(head) {
                    drop_path(child, rest);
                }
            }
            [] => {}
        },
        _ => {}
    }
}

async fn feed(
    State(b): State<AppState>,
    KPath((user_id, channel_id)): KPath<(String, String)>,
    Query(q): Query,
) -> ApiResult<Json<Value>> {
    let recipient = validate::user_ref(&user_id)?;
    let page = IdPageRequest::from_query(&q)?.herald_ids()?;
    let status = Status::parse(q.string("status")?)?;
    let archived = match q.string("archived")? {
        None | Some("") | Some("exclude") => ArchivedFilter::Exclude,
        Some("include") => ArchivedFilter::Include,
        Some("only") => ArchivedFilter::Only,
        Some(_) => return Err(invalid("`archived` must be `exclude`, `include` or `only`")),
    };
    let compact = match q.string("mode")? {
        None | Some("") | Some("rich") => false,
        Some("compact") => true,
        Some(_) => return Err(invalid("`mode` must be `compact` or `rich`")),
    };
    // Content was rendered when the message was created: `locale` is checked, not used.
    q.string("locale")?;
    let exclude = exclude_paths(q.string("exclude")?)?;
    let channel = feed_channel(&b, &channel_id)?;
    let mut filter = common_filter(&q)?;
    filter.recipient = Some(recipient.clone());
    filter.channel_id = Some(channel.id.clone());
    filter.engagement = status.engagement();
    filter.archived = archived;

    let shard = b.shard_for(&recipient.recipient_key());
    let counts = Mutex::new(FeedCounts::default());
    let fetch = |shard, page| {
        let q = RunsQuery::Feed {
            recipient: recipient.clone(),
            channel_id: channel.id.clone(),
            filter: filter.clone(),
            page,
        };
        let (b, counts) = (&b, &counts);
        async move {
            match runs_read(b, shard, q).await? {
                RunsReply::Feed { items, counts: c } => {
                    *counts
                        .lock()
                        .map_err(|_| internal("feed counts lock poisoned"))? = c;
                    parse_rows::<StoredMessage>(&items)
                }
                other => Err(unexpected_runs(other)),
            }
        }
    };
    let found =
        paging::newest_first(&[shard], &page, &IdBounds::default(), fetch, |m| &m.id).await?;
    let counts = *counts
        .lock()
        .map_err(|_| internal("feed counts lock poisoned"))?;
    let mut out = json!({
        "entries": found.items.iter().map(|m| mr::feed_item(m, compact)).collect::<Vec<_>>(),
        "page_info": found.page_info(page.page_size),
        "meta": meta(&counts, archived, status),
        "vars": {},
    });
    for path in &exclude {
        drop_path(&mut out, path);
    }
    Ok(Json(out))
}

async fn settings(
    State(b): State<AppState>,
    KPath((user_id, channel_id)): KPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    validate::user_ref(&user_id)?;
    feed_channel(&b, &channel_id)?;
    Ok(Json(json!({"features": {"branding_required": false}})))
}
