//! Reads of runs and messages: single rows, filtered newest-first pages over the time-ordered id
//! tables and indexes, the feed with its exact counters, and the leader's due outbox and timers.

use serde_json::Value;

use super::apply::decode;
use super::model::*;
use super::{RunFilter, RunsQuery, RunsReply};
use crate::apply::key_or_corrupt;
use crate::error::Result;
use crate::keys::{
    self, TAG_FEED, TAG_FEED_COUNTS, TAG_MESSAGE, TAG_OUTBOX, TAG_RECIPIENT_MSG, TAG_RUN,
};
use crate::store::StoreRead;
use crate::ShardReply;

/// Rows read per store call.
const CHUNK: usize = 256;

pub fn load_message(store: &dyn StoreRead, id: &str) -> Result<Option<StoredMessage>> {
    let Some(key) = keys::single(TAG_MESSAGE, id) else {
        return Ok(None);
    };
    store
        .get(&key)?
        .map(|raw| decode(&raw, "message"))
        .transpose()
}

/// Whether message `id` still waits in the outbox under the row due at `due_ms` (a send whose
/// result is committed has moved or removed it).
pub fn in_outbox(store: &dyn StoreRead, due_ms: u64, id: &str) -> Result<bool> {
    let Some(key) = keys::due(TAG_OUTBOX, due_ms, id) else {
        return Ok(false);
    };
    Ok(store.get(&key)?.is_some())
}

pub fn load_run(store: &dyn StoreRead, id: &str) -> Result<Option<StoredRun>> {
    let Some(key) = keys::single(TAG_RUN, id) else {
        return Ok(None);
    };
    store.get(&key)?.map(|raw| decode(&raw, "run")).transpose()
}

/// Keys under `prefix` whose last segment (an id) lies strictly between `newer_than` and
/// `older_than`, newest first, at most `limit`. `prefix` ends where the id segment starts.
pub(super) fn scan_keys(
    store: &dyn StoreRead,
    prefix: &[u8],
    newer_than: Option<&str>,
    older_than: Option<&str>,
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    let with_id = |id: &str| {
        let mut k = prefix.to_vec();
        k.extend_from_slice(&(id.len() as u16).to_be_bytes());
        k.extend_from_slice(id.as_bytes());
        k
    };
    let start = match newer_than {
        Some(id) => {
            let mut k = with_id(id);
            k.push(0);
            k
        }
        None => prefix.to_vec(),
    };
    let mut end = match older_than {
        Some(id) => with_id(id),
        None => keys::prefix_end(prefix),
    };
    let mut out = Vec::new();
    while out.len() < limit {
        let chunk = store.scan(&start, &end, CHUNK.min(limit - out.len()), true)?;
        let done = chunk.len() < CHUNK.min(limit - out.len());
        if let Some((last, _)) = chunk.last() {
            end = last.clone();
        }
        out.extend(chunk.into_iter().map(|(k, _)| k));
        if done {
            break;
        }
    }
    Ok(out)
}

/// Walk the keys under `prefix` newest first, within `page`'s cursors, until `page.limit` rows
/// are kept. `id_of` reads a key's id (`None` skips the key); `load` returns the id's row if it
/// is kept.
fn page_newest_first<T>(
    store: &dyn StoreRead,
    prefix: &[u8],
    page: &Page,
    id_of: impl Fn(&[u8]) -> Option<String>,
    load: impl Fn(&str) -> Result<Option<T>>,
) -> Result<Vec<T>> {
    let limit = page.limit.max(1) as usize;
    let mut out = Vec::new();
    let mut older = page.older_than.clone();
    loop {
        let keys = scan_keys(
            store,
            prefix,
            page.newer_than.as_deref(),
            older.as_deref(),
            CHUNK,
        )?;
        let exhausted = keys.len() < CHUNK;
        for key in keys {
            let Some(id) = id_of(&key) else { continue };
            if let Some(row) = load(&id)? {
                out.push(row);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            older = Some(id);
        }
        if exhausted {
            return Ok(out);
        }
    }
}

/// Walk ids under `prefix` newest first, keeping the messages that pass `filter`, until `limit`.
fn page_messages(
    store: &dyn StoreRead,
    prefix: &[u8],
    skip_segments: usize,
    filter: &MessageFilter,
    page: &Page,
) -> Result<Vec<StoredMessage>> {
    let id_of = |key: &[u8]| {
        if skip_segments == 0 {
            keys::decode_single(TAG_MESSAGE, key)
        } else {
            keys::last_segment(key, skip_segments)
        }
    };
    page_newest_first(store, prefix, page, id_of, |id| {
        Ok(load_message(store, id)?.filter(|m| matches(m, filter)))
    })
}

/// Whether a message passes every filter.
pub(super) fn matches(m: &StoredMessage, f: &MessageFilter) -> bool {
    let engagement_ok = f.engagement.iter().all(|e| match e.as_str() {
        "seen" => m.seen_ms.is_some(),
        "unseen" => m.seen_ms.is_none(),
        "read" => m.read_ms.is_some(),
        "unread" => m.read_ms.is_none(),
        "archived" => m.archived_ms.is_some(),
        "unarchived" => m.archived_ms.is_none(),
        "interacted" => m.interacted_ms.is_some(),
        "link_clicked" => m.link_clicked_ms.is_some(),
        _ => false,
    });
    let archived_ok = match f.archived {
        ArchivedFilter::Include => true,
        ArchivedFilter::Exclude => m.archived_ms.is_none(),
        ArchivedFilter::Only => m.archived_ms.is_some(),
    };
    let trigger_data_ok = match &f.trigger_data {
        None => true,
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(pairs)) => {
                let data = m.data_json();
                pairs.iter().all(|(k, v)| data.get(k) == Some(v))
            }
            _ => false,
        },
    };
    f.recipient.as_ref().is_none_or(|r| *r == m.recipient)
        && f.channel_id.as_ref().is_none_or(|c| *c == m.channel_id)
        && (f.statuses.is_empty() || f.statuses.contains(&m.status))
        && engagement_ok
        && archived_ok
        && (f.message_ids.is_empty() || f.message_ids.contains(&m.id))
        && f.workflow.as_ref().is_none_or(|w| *w == m.workflow)
        && f.workflow_categories
            .iter()
            .all(|c| m.categories.contains(c))
        && (f.tenants.is_empty() || m.tenant.as_ref().is_some_and(|t| f.tenants.contains(t)))
        && f.has_tenant.is_none_or(|h| h == m.tenant.is_some())
        && f.workflow_run_id
            .as_ref()
            .is_none_or(|w| *w == m.workflow_run_id)
        && f.run_id.as_ref().is_none_or(|r| *r == m.run_id)
        && trigger_data_ok
        && f.inserted_gte_ms.is_none_or(|t| m.inserted_ms >= t)
        && f.inserted_lt_ms.is_none_or(|t| m.inserted_ms < t)
}

fn run_matches(r: &StoredRun, f: &RunFilter) -> bool {
    f.workflow.as_ref().is_none_or(|w| *w == r.workflow)
        && (f.statuses.is_empty() || f.statuses.contains(&r.status))
        && f.tenant
            .as_ref()
            .is_none_or(|t| r.tenant.as_ref() == Some(t))
        && f.has_errors.is_none_or(|h| h == (r.error_count > 0))
        && f.recipient.as_ref().is_none_or(|x| *x == r.recipient)
        && f.workflow_run_id
            .as_ref()
            .is_none_or(|w| *w == r.workflow_run_id)
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn rows(store: &dyn StoreRead, tag: u8, id: &str) -> Result<Vec<String>> {
    let prefix = key_or_corrupt(keys::single(tag, id))?;
    Ok(crate::apply::scan_prefix(store, &prefix)?
        .into_iter()
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
        .collect())
}

/// A message's events, oldest first: event 0 from the message row where it stands for it.
fn events(store: &dyn StoreRead, id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Some(m) = load_message(store, id)? {
        if let Some(kind) = &m.created_event {
            let first = m.event_json(0, kind, m.inserted_ms, None);
            out.push(first.to_string());
        }
    }
    out.extend(rows(store, keys::TAG_MESSAGE_EVENT, id)?);
    Ok(out)
}

pub fn query(store: &dyn StoreRead, q: &RunsQuery) -> Result<ShardReply> {
    let reply = match q {
        RunsQuery::Message(id) => RunsReply::Message(load_message(store, id)?.map(|m| to_json(&m))),
        RunsQuery::Messages { filter, page } => {
            let (prefix, skip) = match &filter.recipient {
                Some(r) => (
                    key_or_corrupt(keys::segments(TAG_RECIPIENT_MSG, &[&r.collection, &r.id]))?,
                    2,
                ),
                None => (vec![TAG_MESSAGE], 0),
            };
            let found = page_messages(store, &prefix, skip, filter, page)?;
            RunsReply::Messages(found.iter().map(to_json).collect())
        }
        RunsQuery::Feed {
            recipient: r,
            channel_id,
            filter,
            page,
        } => {
            let prefix = key_or_corrupt(keys::segments(
                TAG_FEED,
                &[&r.collection, &r.id, channel_id],
            ))?;
            let found = page_messages(store, &prefix, 3, filter, page)?;
            let counts_key = key_or_corrupt(keys::segments(
                TAG_FEED_COUNTS,
                &[&r.collection, &r.id, channel_id],
            ))?;
            let counts = match store.get(&counts_key)? {
                Some(raw) => decode(&raw, "feed counts")?,
                None => FeedCounts::default(),
            };
            RunsReply::Feed {
                items: found.iter().map(to_json).collect(),
                counts,
            }
        }
        RunsQuery::DeliveryLogs(id) => RunsReply::Rows(rows(store, keys::TAG_DELIVERY_LOG, id)?),
        RunsQuery::Events(id) => RunsReply::Rows(events(store, id)?),
        RunsQuery::Run(id) => RunsReply::Json(load_run(store, id)?.map(|r| to_json(&r))),
        RunsQuery::Runs { filter, page } => {
            let id_of = |key: &[u8]| keys::decode_single(TAG_RUN, key);
            let found = page_newest_first(store, &[TAG_RUN], page, id_of, |id| {
                Ok(load_run(store, id)?.filter(|r| run_matches(r, filter)))
            })?;
            RunsReply::Runs(found.iter().map(to_json).collect())
        }
    };
    Ok(ShardReply::Runs(reply))
}

/// Rows of `queue` due in `from_ms..=now_ms`, oldest due first: messages to send (outbox) or
/// paused runs to resume (timers).
///
/// Readers pass a floor, `from_ms`: a leader's loop that knows no row is due earlier starts its
/// range scan there instead of at the table's start, where the rows it already removed leave
/// deletion tombstones that every scan from the start would step over again.
pub fn due_rows(
    store: &dyn StoreRead,
    queue: Queue,
    from_ms: u64,
    now_ms: u64,
    limit: usize,
) -> Result<Vec<DueItem>> {
    let tag = queue.tag();
    let rows = store.scan(
        &keys::due_from(tag, from_ms),
        &keys::due_until(tag, now_ms),
        limit,
        false,
    )?;
    Ok(rows
        .iter()
        .filter_map(|(k, _)| keys::decode_due(tag, k))
        .map(|(due_ms, id)| DueItem { due_ms, id })
        .collect())
}

/// The earliest due time at or after `from_ms` in `queue`, if it has such a row.
pub fn first_due(store: &dyn StoreRead, queue: Queue, from_ms: u64) -> Result<Option<u64>> {
    let tag = queue.tag();
    let rows = store.scan(&keys::due_from(tag, from_ms), &[tag + 1], 1, false)?;
    Ok(rows
        .first()
        .and_then(|(k, _)| keys::decode_due(tag, k))
        .map(|(due, _)| due))
}
