//! Stored runs and messages ([`StoredMessage`], [`StoredRun`], their event and delivery-log rows)
//! rendered in Knock's shapes (knock-api.md §3, §4.2, §7), with timestamps as [`render::iso`].
//!
//! The store keeps recipient and actor *refs* only. Where Knock embeds a full User or Object (feed
//! actors, activities) Herald renders a stub: `{__typename:"User", id, updated_at}` or
//! `{__typename:"Object", id, collection, updated_at}`. Channel settings (provider secrets) and chat
//! connections (access tokens) are never rendered.

use herald_shard::runs::{StoredMessage, StoredRun};
use herald_shard::RecipientRef;
use serde_json::{json, Map, Value};

use super::render::iso;
use crate::backend::ChannelRecord;

fn opt_iso(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |ms| json!(iso(ms)))
}

/// A RecipientRef: the user id as a string, or `{id, collection}`.
pub fn recipient_ref(r: &RecipientRef) -> Value {
    if r.is_user() {
        json!(r.id)
    } else {
        json!({"id": r.id, "collection": r.collection})
    }
}

/// A recipient where Knock embeds the full record; `updated_ms` is the time of the message it
/// appears in (the store does not keep a copy of the record).
pub fn recipient_stub(r: &RecipientRef, updated_ms: u64) -> Value {
    if r.is_user() {
        json!({"__typename": "User", "id": r.id, "updated_at": iso(updated_ms)})
    } else {
        json!({"__typename": "Object", "id": r.id, "collection": r.collection,
            "updated_at": iso(updated_ms)})
    }
}

/// `ms` fields of a stored row (`inserted_ms`) read back as a timestamp.
fn row_time(row: &Value) -> Value {
    opt_iso(row.get("inserted_ms").and_then(Value::as_u64))
}

/// Knock's `channel` on a Message; a channel deleted since falls back to what the message holds.
fn channel(m: &StoredMessage, channels: &[ChannelRecord]) -> Value {
    match channels.iter().find(|c| c.id == m.channel_id) {
        Some(c) => json!({
            "id": c.id,
            "key": c.key,
            "name": c.name,
            "type": c.channel_type,
            "provider": c.provider,
            "created_at": iso(c.created_ms),
            "updated_at": iso(c.updated_ms),
        }),
        None => json!({
            "id": m.channel_id,
            "key": m.channel_key,
            "name": null,
            "type": m.channel_type,
            "provider": null,
            "created_at": null,
            "updated_at": null,
        }),
    }
}

/// Knock's NotificationSource: the workflow step a message came from. Knock's `version_id` is a
/// string.
fn source(m: &StoredMessage) -> Value {
    json!({
        "__typename": "NotificationSource",
        "key": m.workflow,
        "version_id": m.workflow_version.to_string(),
        "categories": m.categories,
        "step_ref": m.step_ref,
    })
}

/// Knock's Message.
pub fn message(m: &StoredMessage, channels: &[ChannelRecord]) -> Value {
    let mut source = source(m);
    source["type"] = json!("workflow");
    source["workflow_run_id"] = json!(m.workflow_run_id);
    source["workflow_recipient_run_id"] = json!(m.run_id);
    json!({
        "__typename": "Message",
        "id": m.id,
        "channel_id": m.channel_id,
        "channel": channel(m, channels),
        "recipient": recipient_ref(&m.recipient),
        "actors": m.actors.iter().map(recipient_ref).collect::<Vec<_>>(),
        "tenant": m.tenant,
        "workflow": m.workflow,
        "source": source,
        "status": m.status,
        "engagement_statuses": m.engagement_statuses(),
        "seen_at": opt_iso(m.seen_ms),
        "read_at": opt_iso(m.read_ms),
        "interacted_at": opt_iso(m.interacted_ms),
        "link_clicked_at": opt_iso(m.link_clicked_ms),
        "clicked_at": opt_iso(m.link_clicked_ms),
        "archived_at": opt_iso(m.archived_ms),
        "scheduled_at": null,
        "inserted_at": iso(m.inserted_ms),
        "updated_at": iso(m.updated_ms),
        "data": m.data,
        "metadata": m.metadata,
        "recipient_snapshot": m.recipient_snapshot,
    })
}

/// `keys` of `content`, `null` when missing; `optional` ones only when present.
fn pick(content: &Value, keys: &[&str], optional: &[&str]) -> Value {
    let mut out = Map::new();
    for k in keys {
        out.insert((*k).into(), content.get(*k).cloned().unwrap_or(Value::Null));
    }
    for k in optional {
        if let Some(v) = content.get(*k) {
            out.insert((*k).into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Knock's MessageContents: `data` in the shape of the message's channel type.
pub fn contents(m: &StoredMessage) -> Value {
    let content = m.content_json();
    let c = &content;
    let data = match m.channel_type.as_str() {
        "email" => pick(
            c,
            &["from", "to", "subject_line", "html_body", "text_body"],
            &["cc", "bcc", "reply_to"],
        ),
        "sms" => pick(c, &["to", "body"], &[]),
        "push" => {
            let token = c
                .get("token")
                .filter(|t| t.is_string())
                .or_else(|| c.get("tokens").and_then(|t| t.get(0)))
                .cloned()
                .unwrap_or(Value::Null);
            let field = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
            json!({"token": token, "title": field("title"), "body": field("body"), "data": field("data")})
        }
        "chat" => {
            // The connection carries the recipient's access token or webhook: never rendered.
            let template = match c.get("template") {
                Some(t @ Value::Object(_)) => t.clone(),
                _ => {
                    let mut t = c.as_object().cloned().unwrap_or_default();
                    for k in ["connection", "metadata"] {
                        t.shift_remove(k);
                    }
                    Value::Object(t)
                }
            };
            let mut out = json!({"connection": null, "template": template});
            if let Some(meta) = c.get("metadata") {
                out["metadata"] = meta.clone();
            }
            out
        }
        "in_app_feed" => json!({"blocks": blocks(c)}),
        // http: the request as sent.
        _ => c.clone(),
    };
    json!({
        "__typename": "MessageContents",
        "message_id": m.id,
        "inserted_at": iso(m.inserted_ms),
        "data": data,
    })
}

fn blocks(content: &Value) -> Value {
    content.get("blocks").cloned().unwrap_or_else(|| json!([]))
}

/// Knock's MessageEvent from a stored event row.
pub fn event(row: &Value) -> Value {
    let recipient = serde_json::from_value::<RecipientRef>(row["recipient"].clone())
        .map_or(Value::Null, |r| recipient_ref(&r));
    json!({
        "__typename": "MessageEvent",
        "id": row["id"],
        "inserted_at": row_time(row),
        "recipient": recipient,
        "type": row["type"],
        "data": row["data"],
    })
}

/// Knock's MessageDeliveryLog from a row the dispatcher wrote (`service_name`, `request`,
/// `response`; `environment_id` only if it wrote one: Herald has a single environment).
pub fn delivery_log(row: &Value, provider: Option<&str>) -> Value {
    let field = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
    let service = match row.get("service_name") {
        Some(Value::String(s)) => json!(s),
        _ => json!(provider),
    };
    json!({
        "__typename": "MessageDeliveryLog",
        "id": row["id"],
        "environment_id": field("environment_id"),
        "service_name": service,
        "inserted_at": row_time(row),
        "request": field("request"),
        "response": field("response"),
    })
}

/// Knock's Activity. Herald has no batch step yet, so a message has one activity: its trigger.
pub fn activity(m: &StoredMessage) -> Value {
    json!({
        "__typename": "Activity",
        "id": m.id,
        "actor": m.actors.first().map_or(Value::Null, |a| recipient_stub(a, m.inserted_ms)),
        "recipient": recipient_stub(&m.recipient, m.inserted_ms),
        "data": m.data,
        "inserted_at": iso(m.inserted_ms),
        "updated_at": iso(m.inserted_ms),
    })
}

/// Knock's FeedItem. `compact` (the browser client's default) drops the activities, keeps at most
/// one actor and only the top-level scalar values of `data`.
pub fn feed_item(m: &StoredMessage, compact: bool) -> Value {
    let mut actors: Vec<Value> = m
        .actors
        .iter()
        .map(|a| recipient_stub(a, m.inserted_ms))
        .collect();
    let data = if compact {
        actors.truncate(1);
        match m.data_json() {
            Value::Object(d) => Value::Object(
                d.into_iter()
                    .filter(|(_, v)| !v.is_object() && !v.is_array())
                    .collect(),
            ),
            other => other,
        }
    } else {
        m.data_json()
    };
    let mut item = json!({
        "__typename": "FeedItem",
        "__cursor": m.id,
        "id": m.id,
        "inserted_at": iso(m.inserted_ms),
        "updated_at": iso(m.updated_ms),
        "source": source(m),
        "tenant": m.tenant,
        "data": data,
        "actors": actors,
        "total_actors": m.actors.len(),
        "activities": [activity(m)],
        "total_activities": 1,
        "blocks": blocks(&m.content_json()),
        "read_at": opt_iso(m.read_ms),
        "seen_at": opt_iso(m.seen_ms),
        "interacted_at": opt_iso(m.interacted_ms),
        "link_clicked_at": opt_iso(m.link_clicked_ms),
        "clicked_at": opt_iso(m.link_clicked_ms),
        "archived_at": opt_iso(m.archived_ms),
    });
    if compact {
        if let Value::Object(o) = &mut item {
            o.shift_remove("activities");
            o.shift_remove("total_activities");
        }
    }
    item
}

/// Knock's WorkflowRecipientRun; the detail view (`with_events`) adds `events[]`.
pub fn run(r: &StoredRun, with_events: bool) -> Value {
    let mut out = json!({
        "__typename": "WorkflowRecipientRun",
        "id": r.id,
        "workflow": r.workflow,
        "workflow_run_id": r.workflow_run_id,
        "recipient": recipient_ref(&r.recipient),
        "actor": r.actor.as_ref().map_or(Value::Null, recipient_ref),
        "tenant": r.tenant,
        "status": r.status,
        "trigger_source": {"type": "api"},
        "error_count": r.error_count,
        "inserted_at": iso(r.inserted_ms),
        "updated_at": iso(r.updated_ms),
    });
    if with_events {
        out["events"] = r.events.iter().map(run_event).collect();
    }
    out
}

/// `{id, event, status, step_ref?, step_type?, data?, inserted_at}`.
fn run_event(e: &Value) -> Value {
    let mut out = Map::new();
    out.insert("__typename".into(), json!("WorkflowRecipientRunEvent"));
    for k in ["id", "event", "status", "step_ref", "step_type", "data"] {
        if let Some(v) = e.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    out.insert("inserted_at".into(), row_time(e));
    Value::Object(out)
}
