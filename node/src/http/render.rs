//! JSON response shapes, exactly as Knock's SDK models expect them (knock-api.md §3): `__typename`,
//! ISO-8601 UTC timestamps, user and tenant properties flat, object properties nested.

use herald_shard::{ChannelDataView, PreferenceEntry, RecipientView};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the epoch as ISO-8601 UTC (`2024-01-02T03:04:05.678Z`).
pub fn iso(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// An ISO-8601 timestamp as ms since the epoch; one without an offset is read as UTC.
pub fn parse_iso(s: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
        .ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn properties(view: &RecipientView) -> Map<String, Value> {
    match serde_json::from_str(&view.properties) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Keys the renderer owns; a stored property with the same name never overrides them.
const RESERVED: &[&str] = &[
    "__typename",
    "id",
    "collection",
    "updated_at",
    "created_at",
    "properties",
    "preferences",
];

fn preferences_map(view: &RecipientView) -> Value {
    Value::Object(
        view.preferences
            .iter()
            .map(|p| (p.set_id.clone(), preference_set(p)))
            .collect(),
    )
}

/// Knock's User: `__typename id updated_at created_at? name? email? ...` + custom properties flat.
pub fn user(view: &RecipientView) -> Value {
    let mut props = properties(view);
    let mut out = Map::new();
    out.insert("__typename".into(), json!("User"));
    out.insert("id".into(), json!(view.recipient.id));
    let created_at = props.remove("created_at").unwrap_or(Value::Null);
    for (k, v) in props {
        if !RESERVED.contains(&k.as_str()) {
            out.insert(k, v);
        }
    }
    out.insert("created_at".into(), created_at);
    out.insert("updated_at".into(), json!(iso(view.updated_ms)));
    if !view.preferences.is_empty() {
        out.insert("preferences".into(), preferences_map(view));
    }
    Value::Object(out)
}

/// Knock's Object: `__typename id collection properties created_at updated_at`.
pub fn object(view: &RecipientView) -> Value {
    let mut props = properties(view);
    let created_at = match props.remove("created_at") {
        Some(Value::String(s)) => Value::String(s),
        _ => json!(iso(view.inserted_ms)),
    };
    let mut out = Map::new();
    out.insert("__typename".into(), json!("Object"));
    out.insert("id".into(), json!(view.recipient.id));
    out.insert("collection".into(), json!(view.recipient.collection));
    out.insert("properties".into(), Value::Object(props));
    out.insert("created_at".into(), created_at);
    out.insert("updated_at".into(), json!(iso(view.updated_ms)));
    if !view.preferences.is_empty() {
        out.insert("preferences".into(), preferences_map(view));
    }
    Value::Object(out)
}

/// Knock's Tenant: `__typename id name settings` + custom properties flat.
pub fn tenant(view: &RecipientView) -> Value {
    let props = properties(view);
    let mut out = Map::new();
    out.insert("__typename".into(), json!("Tenant"));
    out.insert("id".into(), json!(view.recipient.id));
    out.insert(
        "name".into(),
        props.get("name").cloned().unwrap_or(Value::Null),
    );
    out.insert(
        "settings".into(),
        props.get("settings").cloned().unwrap_or(Value::Null),
    );
    for (k, v) in props {
        if !RESERVED.contains(&k.as_str()) && k != "name" && k != "settings" {
            out.insert(k, v);
        }
    }
    out.insert("created_at".into(), json!(iso(view.inserted_ms)));
    out.insert("updated_at".into(), json!(iso(view.updated_ms)));
    Value::Object(out)
}

/// Knock's ChannelData: `__typename channel_id data`.
pub fn channel_data(view: &ChannelDataView) -> Value {
    let data: Value = serde_json::from_str(&view.data).unwrap_or_else(|_| json!({}));
    json!({"__typename": "ChannelData", "channel_id": view.channel_id, "data": data})
}

/// Knock's PreferenceSet: every member present, `null` when unset.
pub fn preference_set(entry: &PreferenceEntry) -> Value {
    let doc: Map<String, Value> = match serde_json::from_str(&entry.set) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let field = |k: &str| doc.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "__typename": "PreferenceSet",
        "id": entry.set_id,
        "categories": field("categories"),
        "channel_types": field("channel_types"),
        "channels": field("channels"),
        "commercial_subscribed": field("commercial_subscribed"),
        "workflows": field("workflows"),
    })
}

/// An empty set (what a recipient without that set reads as).
pub fn empty_preference_set(set_id: &str) -> Value {
    preference_set(&PreferenceEntry {
        set_id: set_id.to_owned(),
        set: "{}".into(),
    })
}

/// Knock's PageInfo.
pub fn page_info(page_size: u32, after: Option<String>, before: Option<String>) -> Value {
    json!({"__typename": "PageInfo", "page_size": page_size, "after": after, "before": before})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_is_utc_rfc3339() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            parse_iso("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_iso("2023-11-14T23:13:20.123+01:00"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_iso("2023-11-14T22:13:20"), Some(1_700_000_000_000));
        assert_eq!(parse_iso("yesterday"), None);
    }
}
