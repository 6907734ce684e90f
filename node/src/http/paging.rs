//! Environment-wide lists: scatter a [`ListQuery`] to every shard, merge by `(inserted_ms, id)`,
//! and hand out opaque cursors.
//!
//! A cursor is `base64url("<inserted_ms>:<id>")`: the exact position of an item. Every shard can
//! resume from it, so the next page is exact whatever shard the items came from.
//!
//! ```text
//! order asc,  after=c  -> items > c, ascending     order desc, after=c  -> items < c, descending
//! order asc,  before=c -> items < c (read down, returned ascending)    (and the mirror for desc)
//! ```

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use herald_shard::{ListPosition, ListQuery, RecipientRef, RecipientView, ShardQuery, ShardReply};
use serde_json::Value;

use super::error::{internal, invalid, ApiError, ApiResult};
use super::query::QueryParams;
use super::render;
use crate::backend::Backend;

/// Knock's default and maximum page size.
pub const MAX_PAGE_SIZE: u32 = 50;

pub fn encode_cursor(p: &ListPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", p.inserted_ms, p.id))
}

pub fn decode_cursor(s: &str) -> ApiResult<ListPosition> {
    let bad = || invalid("invalid pagination cursor");
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ms, id) = text.split_once(':').ok_or_else(bad)?;
    Ok(ListPosition {
        inserted_ms: ms.parse().map_err(|_| bad())?,
        id: id.to_owned(),
    })
}

/// The paging parameters of a list request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<ListPosition>,
    pub before: Option<ListPosition>,
    pub page_size: u32,
    /// `order=desc`: newest first.
    pub descending: bool,
}

impl PageRequest {
    /// `after`, `before`, `page_size` (1..=50, default 50) and, where allowed, `order=asc|desc`.
    pub fn from_query(q: &QueryParams, allow_order: bool) -> ApiResult<Self> {
        let page_size = match q.string("page_size")? {
            None | Some("") => MAX_PAGE_SIZE,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    return Err(invalid(format!(
                        "page_size must be an integer from 1 to {MAX_PAGE_SIZE}"
                    )))
                }
            },
        };
        let descending = match (allow_order, q.string("order")?) {
            (_, None) | (true, Some("asc")) => false,
            (true, Some("desc")) => true,
            (true, Some(_)) => return Err(invalid("order must be `asc` or `desc`")),
            // Endpoints without `order` ignore it, as they ignore other unknown parameters.
            (false, Some(_)) => false,
        };
        let cursor = |k| -> ApiResult<Option<ListPosition>> {
            match q.string(k)? {
                None | Some("") => Ok(None),
                Some(s) => decode_cursor(s).map(Some),
            }
        };
        Ok(PageRequest {
            after: cursor("after")?,
            before: cursor("before")?,
            page_size,
            descending,
        })
    }
}

/// What to list besides the paging.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub include_preferences: bool,
    pub id_equals: Option<String>,
    pub name_equals: Option<String>,
}

/// `{entries, page_info}` for one page of `collection`, rendered with `render_item`.
pub async fn list_page(
    backend: &Arc<dyn Backend>,
    collection: &str,
    page: &PageRequest,
    filter: ListFilter,
    render_item: fn(&RecipientView) -> Value,
) -> ApiResult<Value> {
    // `after` wins when both are given.
    let backward = page.after.is_none() && page.before.is_some();
    let cursor = page.after.clone().or_else(|| page.before.clone());
    let scan_descending = page.descending != backward;
    let (lower, upper) = if scan_descending {
        (None, cursor.clone())
    } else {
        (cursor.clone(), None)
    };
    let query = ListQuery {
        collection: collection.to_owned(),
        lower,
        upper,
        descending: scan_descending,
        limit: page.page_size + 1,
        include_preferences: filter.include_preferences,
        id_equals: filter.id_equals.clone(),
        name_equals: filter.name_equals,
    };
    // An id filter names the one shard that can hold the item.
    let shards = match &filter.id_equals {
        Some(id) => {
            vec![backend.shard_for(&RecipientRef::object(collection, id.as_str()).recipient_key())]
        }
        None => backend.shards(),
    };
    let replies = futures::future::join_all(
        shards
            .into_iter()
            .map(|s| backend.read(s, ShardQuery::List(query.clone()))),
    )
    .await;
    let mut items = Vec::new();
    for reply in replies {
        match reply.map_err(ApiError)? {
            ShardReply::Recipients(v) => items.extend(v),
            other => {
                return Err(internal(format!(
                    "unexpected shard reply to a list: {other:?}"
                )))
            }
        }
    }
    items.sort_by_key(|v| v.position());
    if scan_descending {
        items.reverse();
    }
    let has_more = items.len() > page.page_size as usize;
    items.truncate(page.page_size as usize);
    if backward {
        items.reverse();
    }
    let first = items.first().map(|v| encode_cursor(&v.position()));
    let last = items.last().map(|v| encode_cursor(&v.position()));
    let (after, before) = if backward {
        (last, if has_more { first } else { None })
    } else {
        (
            if has_more { last } else { None },
            if cursor.is_some() { first } else { None },
        )
    };
    Ok(serde_json::json!({
        "entries": items.iter().map(render_item).collect::<Vec<_>>(),
        "page_info": render::page_info(page.page_size, after, before),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let p = ListPosition {
            inserted_ms: 17,
            id: "a:b/ü".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&p)).unwrap(), p);
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:y")).is_err());
    }
}
