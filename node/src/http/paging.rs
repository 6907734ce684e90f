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
//!
//! Lists keyed by Herald ids (messages, recipient runs) are newest first and their cursor is the
//! item's own id, which already orders them ([`IdPageRequest`], [`newest_first`]); short lists
//! read whole (events, logs) page in memory by row id ([`page_in_memory`]).

use std::future::Future;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use herald_shard::runs::Page;
use herald_shard::{
    ListPosition, ListQuery, RecipientRef, RecipientView, ShardId, ShardQuery, ShardReply,
};
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

/// `page_size`: 1..=50, default 50.
fn page_size(q: &QueryParams) -> ApiResult<u32> {
    match q.string("page_size")? {
        None | Some("") => Ok(MAX_PAGE_SIZE),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(invalid(format!(
                "page_size must be an integer from 1 to {MAX_PAGE_SIZE}"
            ))),
        },
    }
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
        let page_size = page_size(q)?;
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

/// Paging of a list whose cursor is the item's id: `after` (older items on newest-first lists),
/// `before` (newer items), `page_size`.
#[derive(Debug, Clone, Default)]
pub struct IdPageRequest {
    pub after: Option<String>,
    pub before: Option<String>,
    pub page_size: u32,
}

impl IdPageRequest {
    pub fn from_query(q: &QueryParams) -> ApiResult<Self> {
        let cursor = |k| -> ApiResult<Option<String>> {
            Ok(q.string(k)?.filter(|s| !s.is_empty()).map(str::to_owned))
        };
        Ok(IdPageRequest {
            after: cursor("after")?,
            before: cursor("before")?,
            page_size: page_size(q)?,
        })
    }

    /// Refuse cursors that are not Herald ids (lists of messages and runs).
    pub fn herald_ids(self) -> ApiResult<Self> {
        for c in self.after.iter().chain(&self.before) {
            if herald_shard::ids::slot_of_id(c).is_none() {
                return Err(invalid("invalid pagination cursor"));
            }
        }
        Ok(self)
    }
}

/// One page and the cursors of its neighbours.
#[derive(Debug)]
pub struct IdPage<T> {
    pub items: Vec<T>,
    pub after: Option<String>,
    pub before: Option<String>,
}

impl<T> IdPage<T> {
    pub fn page_info(&self, page_size: u32) -> Value {
        render::page_info(page_size, self.after.clone(), self.before.clone())
    }
}

/// Rows already in memory, in list order, paged by their ids: `after=x` starts behind row `x`,
/// `before=x` ends in front of it. A cursor naming no row is a 422.
pub fn page_in_memory<T>(
    mut rows: Vec<T>,
    page: &IdPageRequest,
    id_of: fn(&T) -> &str,
) -> ApiResult<IdPage<T>> {
    let position = |c: &str| {
        rows.iter()
            .position(|r| id_of(r) == c)
            .ok_or_else(|| invalid("invalid pagination cursor"))
    };
    let start = match &page.after {
        Some(c) => position(c)? + 1,
        None => 0,
    };
    let end = match &page.before {
        Some(c) => position(c)?,
        None => rows.len(),
    };
    let size = page.page_size as usize;
    let (start, end) = if start >= end {
        (start, start)
    } else if page.after.is_none() && page.before.is_some() {
        (end.saturating_sub(size).max(start), end)
    } else {
        (start, end.min(start + size))
    };
    let before = (start > 0 && start < end).then(|| id_of(&rows[start]).to_owned());
    let after = (end < rows.len() && start < end).then(|| id_of(&rows[end - 1]).to_owned());
    rows.truncate(end);
    rows.drain(..start);
    Ok(IdPage {
        items: rows,
        after,
        before,
    })
}

/// Extra bounds on a newest-first id list (e.g. from a time filter), tightened with the cursors.
#[derive(Debug, Clone, Default)]
pub struct IdBounds {
    pub newer_than: Option<String>,
    pub older_than: Option<String>,
}

/// Rows a backward page reads from a shard per call while walking down to its cursor.
const WALK: u32 = 200;

/// One newest-first page of a list keyed by time-ordered Herald ids, gathered from `shards`.
///
/// `fetch(shard, page)` returns the shard's matching rows strictly between the page's bounds,
/// newest first, at most `page.limit`. Forward pages (`after`, or no cursor) ask every shard for
/// `page_size + 1` rows below the cursor. A `before` page holds the rows just above its cursor, so
/// each shard is walked down from the top to the cursor keeping its lowest `page_size + 1` rows
/// (cheap for the usual case, a feed asking what arrived since its first item).
pub async fn newest_first<T, F, Fut>(
    shards: &[ShardId],
    page: &IdPageRequest,
    bounds: &IdBounds,
    fetch: F,
    id_of: fn(&T) -> &str,
) -> ApiResult<IdPage<T>>
where
    F: Fn(ShardId, Page) -> Fut,
    Fut: Future<Output = ApiResult<Vec<T>>>,
{
    let size = page.page_size as usize;
    let backward = page.after.is_none() && page.before.is_some();
    let older_than = min_id(page.after.clone(), bounds.older_than.clone());
    let newer_than = max_id(page.before.clone(), bounds.newer_than.clone());
    let reads = shards.iter().map(|&shard| {
        let (fetch, older_than, newer_than) = (&fetch, older_than.clone(), newer_than.clone());
        async move {
            if !backward {
                let p = Page {
                    older_than,
                    newer_than,
                    limit: page.page_size + 1,
                };
                return fetch(shard, p).await;
            }
            let mut lowest: Vec<T> = Vec::new();
            let mut older = older_than;
            loop {
                let p = Page {
                    older_than: older.clone(),
                    newer_than: newer_than.clone(),
                    limit: WALK,
                };
                let rows = fetch(shard, p).await?;
                let done = rows.len() < WALK as usize;
                older = rows.last().map(|r| id_of(r).to_owned());
                lowest.extend(rows);
                let excess = lowest.len().saturating_sub(size + 1);
                lowest.drain(..excess);
                if done {
                    return Ok(lowest);
                }
            }
        }
    });
    let mut items = Vec::new();
    for rows in futures::future::join_all(reads).await {
        items.extend(rows?);
    }
    items.sort_by(|a, b| id_of(b).cmp(id_of(a)));
    let has_more = items.len() > size;
    if backward {
        items.drain(..items.len().saturating_sub(size));
    } else {
        items.truncate(size);
    }
    let first = items.first().map(|r| id_of(r).to_owned());
    let last = items.last().map(|r| id_of(r).to_owned());
    // Past a cursor there is always something on its other side: the cursor's own row.
    let (after, before) = if backward {
        (last, first.filter(|_| has_more))
    } else {
        (
            last.filter(|_| has_more),
            first.filter(|_| page.after.is_some()),
        )
    };
    Ok(IdPage {
        items,
        after,
        before,
    })
}

/// The tighter of two upper bounds (ids order like their times).
fn min_id(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_id(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1000 ids alternating between two shards, oldest first.
    fn two_shards() -> Vec<String> {
        (0..1000u64)
            .map(|i| herald_shard::ids::make_id(1000 + i, (i % 2) as u16, [0; 10]))
            .collect()
    }

    #[tokio::test]
    async fn newest_first_pages_both_ways_across_shards() {
        let ids = two_shards();
        let fetch = |shard: ShardId, p: Page| {
            let ids = &ids;
            async move {
                let mut rows: Vec<String> = (0..ids.len())
                    .filter(|i| (*i % 2) as u32 == shard)
                    .map(|i| ids[i].clone())
                    .filter(|id| p.older_than.as_ref().is_none_or(|o| id < o))
                    .filter(|id| p.newer_than.as_ref().is_none_or(|n| id > n))
                    .collect();
                rows.reverse();
                rows.truncate(p.limit as usize);
                Ok(rows)
            }
        };
        let newest = |range: std::ops::Range<usize>| -> Vec<String> {
            ids[range].iter().rev().cloned().collect()
        };
        let run = |after: Option<usize>, before: Option<usize>, size: u32, bounds: IdBounds| {
            let page = IdPageRequest {
                after: after.map(|i| ids[i].clone()),
                before: before.map(|i| ids[i].clone()),
                page_size: size,
            };
            let fetch = &fetch;
            async move {
                newest_first(&[0, 1], &page, &bounds, fetch, |s: &String| s.as_str())
                    .await
                    .unwrap()
            }
        };
        // Far below the top: every shard is walked down past WALK rows.
        let p = run(None, Some(100), 7, IdBounds::default()).await;
        assert_eq!(p.items, newest(101..108));
        assert_eq!(
            (p.after, p.before),
            (Some(ids[101].clone()), Some(ids[107].clone()))
        );
        let p = run(None, Some(995), 7, IdBounds::default()).await;
        assert_eq!((p.items, p.before), (newest(996..1000), None));
        let p = run(Some(500), None, 3, IdBounds::default()).await;
        assert_eq!(p.items, newest(497..500));
        assert_eq!(
            (p.after, p.before),
            (Some(ids[497].clone()), Some(ids[499].clone()))
        );
        let p = run(None, None, 50, IdBounds::default()).await;
        assert_eq!((p.items.len(), p.before), (50, None));
        let bounds = IdBounds {
            newer_than: Some(ids[10].clone()),
            older_than: Some(ids[20].clone()),
        };
        let p = run(Some(900), None, 50, bounds.clone()).await;
        assert_eq!((p.items, p.after), (newest(11..20), None));
        let p = run(None, Some(5), 4, bounds).await;
        assert_eq!(p.items, newest(11..15));
    }

    #[test]
    fn page_in_memory_by_row_id() {
        let rows: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
        fn id(s: &String) -> &str {
            s
        }
        let page = |after: Option<&str>, before: Option<&str>, page_size| IdPageRequest {
            after: after.map(str::to_owned),
            before: before.map(str::to_owned),
            page_size,
        };
        let p = page_in_memory(rows.clone(), &page(None, None, 2), id).unwrap();
        assert_eq!(
            (p.items, p.after, p.before),
            (vec!["r0".to_owned(), "r1".into()], Some("r1".into()), None)
        );
        let p = page_in_memory(rows.clone(), &page(Some("r1"), None, 2), id).unwrap();
        assert_eq!(
            (p.items, p.before),
            (vec!["r2".to_owned(), "r3".into()], Some("r2".into()))
        );
        let p = page_in_memory(rows.clone(), &page(None, Some("r4"), 2), id).unwrap();
        assert_eq!(
            (p.items, p.after, p.before),
            (
                vec!["r2".to_owned(), "r3".into()],
                Some("r3".into()),
                Some("r2".into())
            )
        );
        let p = page_in_memory(rows.clone(), &page(Some("r4"), None, 2), id).unwrap();
        assert!(p.items.is_empty() && p.after.is_none() && p.before.is_none());
        assert!(page_in_memory(rows, &page(Some("zz"), None, 2), id).is_err());
    }

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
