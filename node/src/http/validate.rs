//! Request validation. Everything a write needs is checked here, before the first shard write, so a
//! refused request changes nothing. Produces the `herald_shard` documents to send.

use herald_shard::{
    ChannelDataEntry, PreferenceEntry, RecipientRef, RecipientUpsert, TENANTS_COLLECTION,
};
use serde_json::{Map, Value};

use super::error::{invalid, ApiResult};

/// Knock's limit for ids (users, objects, tenants, collections, channel and preference set ids).
pub const MAX_ID_CHARS: usize = 255;
/// Largest batch accepted by the bulk endpoints.
pub const MAX_BULK_ITEMS: usize = 1000;

/// Non-empty, at most 255 characters, no control characters.
pub fn id(what: &str, s: &str) -> ApiResult<()> {
    if s.is_empty() {
        return Err(invalid(format!("{what} must not be empty")));
    }
    if s.chars().count() > MAX_ID_CHARS {
        return Err(invalid(format!(
            "{what} must be at most {MAX_ID_CHARS} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// An object collection: an id, and not one of Herald's reserved `$` collections (users live in
/// `$users` and must not be reachable through the objects API); `$tenants` is allowed.
pub fn collection(s: &str) -> ApiResult<()> {
    id("collection", s)?;
    if s.starts_with('$') && s != TENANTS_COLLECTION {
        return Err(invalid(format!("collection `{s}` is reserved")));
    }
    Ok(())
}

pub fn user_ref(user_id: &str) -> ApiResult<RecipientRef> {
    id("user id", user_id)?;
    Ok(RecipientRef::user(user_id))
}

pub fn object_ref(coll: &str, object_id: &str) -> ApiResult<RecipientRef> {
    collection(coll)?;
    id("object id", object_id)?;
    Ok(RecipientRef::object(coll, object_id))
}

pub fn tenant_ref(tenant_id: &str) -> ApiResult<RecipientRef> {
    id("tenant id", tenant_id)?;
    Ok(RecipientRef::tenant(tenant_id))
}

fn as_object<'a>(what: &str, v: &'a Value) -> ApiResult<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{what} must be an object")))
}

fn string_or_null(what: &str, v: &Value) -> ApiResult<()> {
    match v {
        Value::String(_) | Value::Null => Ok(()),
        _ => Err(invalid(format!("{what} must be a string or null"))),
    }
}

fn timestamp_or_null(what: &str, v: &Value) -> ApiResult<()> {
    match v {
        Value::Null => Ok(()),
        Value::String(s)
            if time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .is_ok() =>
        {
            Ok(())
        }
        _ => Err(invalid(format!(
            "{what} must be an ISO-8601 timestamp or null"
        ))),
    }
}

// ---- channel data ----

/// Validate one channel's `data` and normalize push data so responses carry both `tokens` and
/// `devices` (and `target_arns` / `devices` for AWS SNS), as Knock's ChannelData does.
pub fn channel_data(channel_id: &str, data: &Value) -> ApiResult<ChannelDataEntry> {
    id("channel_id", channel_id)?;
    let what = format!("channel_data for `{channel_id}`");
    let mut data = as_object(&what, data)?.clone();
    normalize_push(&mut data, "tokens", "token", &what)?;
    normalize_push(&mut data, "target_arns", "target_arn", &what)?;
    if let Some(c) = data.get("connections") {
        let arr = c
            .as_array()
            .ok_or_else(|| invalid(format!("{what}: connections must be a list")))?;
        if !arr.iter().all(Value::is_object) {
            return Err(invalid(format!(
                "{what}: each connection must be an object"
            )));
        }
    }
    if let Some(p) = data.get("player_ids") {
        if !p.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            return Err(invalid(format!(
                "{what}: player_ids must be a list of strings"
            )));
        }
    }
    Ok(ChannelDataEntry {
        channel_id: channel_id.to_owned(),
        data: Value::Object(data).to_string(),
    })
}

fn normalize_push(
    data: &mut Map<String, Value>,
    list: &str,
    field: &str,
    what: &str,
) -> ApiResult<()> {
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect()
    };
    let devices_ok = |v: &Value| {
        v.as_array()
            .is_some_and(|a| a.iter().all(|d| d.get(field).is_some_and(Value::is_string)))
    };
    match (data.get(list), data.get("devices")) {
        (None, None) => {}
        (Some(l), devices) => {
            let tokens = strings(l)
                .ok_or_else(|| invalid(format!("{what}: {list} must be a list of strings")))?;
            match devices {
                Some(d) if !devices_ok(d) => {
                    return Err(invalid(format!(
                        "{what}: each device must have a string `{field}`"
                    )))
                }
                Some(_) => {}
                None => {
                    let devices = tokens
                        .into_iter()
                        .map(|t| serde_json::json!({ field: t }))
                        .collect();
                    data.insert("devices".into(), Value::Array(devices));
                }
            }
        }
        (None, Some(d)) => {
            // `devices` without `tokens`: push devices carry `token`, SNS devices `target_arn`.
            if list == "tokens"
                && d.as_array()
                    .is_some_and(|a| a.iter().all(|x| x.get("token").is_some()))
            {
                if !devices_ok(d) {
                    return Err(invalid(format!(
                        "{what}: each device must have a string `{field}`"
                    )));
                }
                let tokens: Vec<Value> = d
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.get(field).cloned())
                    .collect();
                data.insert(list.into(), Value::Array(tokens));
            } else if list == "target_arns"
                && d.as_array()
                    .is_some_and(|a| a.iter().all(|x| x.get("target_arn").is_some()))
            {
                let arns: Vec<Value> = d
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.get(field).cloned())
                    .collect();
                if !devices_ok(d) {
                    return Err(invalid(format!(
                        "{what}: each device must have a string `{field}`"
                    )));
                }
                data.insert(list.into(), Value::Array(arns));
            } else if !d.is_array() {
                return Err(invalid(format!("{what}: devices must be a list")));
            }
        }
    }
    Ok(())
}

/// Inline `channel_data: {channel_id: data}` (null = nothing).
fn inline_channel_data(v: Option<&Value>) -> ApiResult<Vec<ChannelDataEntry>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => as_object("channel_data", v)?
            .iter()
            .map(|(channel_id, data)| channel_data(channel_id, data))
            .collect(),
    }
}

// ---- preferences ----

/// How a preference-set write combines with the stored set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    Replace,
    Merge,
}

fn bool_or_object(what: &str, v: &Value) -> ApiResult<()> {
    match v {
        Value::Bool(_) => Ok(()),
        Value::Object(m) => conditions_only(what, m),
        _ => Err(invalid(format!(
            "{what} must be a boolean or a settings object"
        ))),
    }
}

fn conditions(what: &str, v: &Value) -> ApiResult<()> {
    match v {
        Value::Null => Ok(()),
        Value::Array(a)
            if a.iter().all(|c| {
                c.get("variable").is_some_and(Value::is_string)
                    && c.get("operator").is_some_and(Value::is_string)
            }) =>
        {
            Ok(())
        }
        _ => Err(invalid(format!(
            "{what}.conditions must be a list of {{variable, operator, argument}}"
        ))),
    }
}

/// A channel / channel type setting object: only `conditions`.
fn conditions_only(what: &str, m: &Map<String, Value>) -> ApiResult<()> {
    for (k, v) in m {
        match k.as_str() {
            "conditions" => conditions(what, v)?,
            // The tenant-default marker (knock-api.md §6).
            "__strategy__" => string_or_null(&format!("{what}.__strategy__"), v)?,
            _ => return Err(invalid(format!("{what}: unknown field `{k}`"))),
        }
    }
    Ok(())
}

fn setting_map(
    what: &str,
    v: &Value,
    check: impl Fn(&str, &Value) -> ApiResult<()>,
) -> ApiResult<()> {
    match v {
        Value::Null => Ok(()),
        Value::Object(m) => {
            for (k, v) in m {
                if k == "__strategy__" {
                    string_or_null(&format!("{what}.__strategy__"), v)?;
                    continue;
                }
                id(&format!("{what} key"), k)?;
                check(&format!("{what}.{k}"), v)?;
            }
            Ok(())
        }
        _ => Err(invalid(format!("{what} must be an object"))),
    }
}

/// A workflow or category entry: a boolean or `{channel_types?, channels?, conditions?}`.
fn workflow_setting(what: &str, v: &Value) -> ApiResult<()> {
    match v {
        Value::Bool(_) => Ok(()),
        Value::Object(m) => {
            for (k, v) in m {
                match k.as_str() {
                    "channel_types" | "channels" => {
                        setting_map(&format!("{what}.{k}"), v, bool_or_object)?
                    }
                    "conditions" => conditions(what, v)?,
                    "__strategy__" => string_or_null(&format!("{what}.__strategy__"), v)?,
                    _ => return Err(invalid(format!("{what}: unknown field `{k}`"))),
                }
            }
            Ok(())
        }
        _ => Err(invalid(format!(
            "{what} must be a boolean or a settings object"
        ))),
    }
}

/// Validate a PreferenceSet request body and return the stored document (without `id` and
/// `__persistence_strategy__`; `null` members dropped) and its persistence strategy.
pub fn preference_set(what: &str, v: &Value) -> ApiResult<(Map<String, Value>, Persistence)> {
    let m = as_object(what, v)?;
    let mut out = Map::new();
    let mut persistence = Persistence::Replace;
    for (k, v) in m {
        match k.as_str() {
            "id" => string_or_null(&format!("{what}.id"), v)?,
            "__persistence_strategy__" => {
                persistence = match v.as_str() {
                    Some("merge") => Persistence::Merge,
                    Some("replace") => Persistence::Replace,
                    None if v.is_null() => Persistence::Replace,
                    _ => {
                        return Err(invalid(format!(
                            "{what}.__persistence_strategy__ must be `merge` or `replace`"
                        )))
                    }
                }
            }
            "channel_types" | "channels" => setting_map(&format!("{what}.{k}"), v, bool_or_object)?,
            "workflows" | "categories" => setting_map(&format!("{what}.{k}"), v, workflow_setting)?,
            "commercial_subscribed" => match v {
                Value::Null | Value::Bool(_) => {}
                Value::Object(o) => conditions_only(&format!("{what}.{k}"), o)?,
                _ => {
                    return Err(invalid(format!(
                        "{what}.commercial_subscribed must be a boolean or a settings object"
                    )))
                }
            },
            _ => return Err(invalid(format!("{what}: unknown field `{k}`"))),
        }
        if !matches!(k.as_str(), "id" | "__persistence_strategy__") && !v.is_null() {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok((out, persistence))
}

/// Inline `preferences: {set_id: set}` on identify / set (always deep-merged by the shard).
fn inline_preferences(v: Option<&Value>) -> ApiResult<Vec<PreferenceEntry>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => as_object("preferences", v)?
            .iter()
            .map(|(set_id, set)| {
                id("preference set id", set_id)?;
                let (doc, _) = preference_set(&format!("preferences.{set_id}"), set)?;
                Ok(PreferenceEntry {
                    set_id: set_id.clone(),
                    set: Value::Object(doc).to_string(),
                })
            })
            .collect(),
    }
}

// ---- recipients ----

/// Keys that are never stored as custom properties (identity, server-owned or request-only).
const NOT_PROPERTIES: &[&str] = &[
    "id",
    "collection",
    "__typename",
    "updated_at",
    "channel_data",
    "preferences",
];

/// Typed fields of a user (Knock's User model): strings or null.
const USER_STRING_FIELDS: &[&str] = &[
    "name",
    "email",
    "phone_number",
    "avatar",
    "timezone",
    "locale",
];

/// Identify (`PUT /v1/users/{id}`, bulk identify): properties merged flat, inline channel data
/// and preferences.
pub fn user_upsert(recipient: RecipientRef, body: &Value) -> ApiResult<RecipientUpsert> {
    let m = as_object("body", body)?;
    for f in USER_STRING_FIELDS {
        if let Some(v) = m.get(*f) {
            string_or_null(f, v)?;
        }
    }
    recipient_upsert(recipient, m)
}

/// Objects (`PUT /v1/objects/{collection}/{id}`, bulk set): properties are free-form.
pub fn object_upsert(recipient: RecipientRef, body: &Value) -> ApiResult<RecipientUpsert> {
    let m = as_object("body", body)?;
    recipient_upsert(recipient, m)
}

/// Tenants (`PUT /v1/tenants/{id}`, bulk set): `name`, `settings{branding, preference_set}`.
pub fn tenant_upsert(recipient: RecipientRef, body: &Value) -> ApiResult<RecipientUpsert> {
    let m = as_object("body", body)?;
    let mut m = m.clone();
    if let Some(v) = m.get("name") {
        string_or_null("name", v)?;
    }
    if let Some(settings) = m.get_mut("settings") {
        if !settings.is_null() {
            let s = settings
                .as_object_mut()
                .ok_or_else(|| invalid("settings must be an object"))?;
            for (k, v) in s.iter_mut() {
                match k.as_str() {
                    "branding" => {
                        if !v.is_null() {
                            for (bk, bv) in as_object("settings.branding", v)? {
                                string_or_null(&format!("settings.branding.{bk}"), bv)?;
                            }
                        }
                    }
                    "preference_set" => {
                        if !v.is_null() {
                            let (mut doc, _) = preference_set("settings.preference_set", v)?;
                            // Knock's PreferenceSet always carries an id; the tenant default is `default`.
                            doc.insert("id".into(), Value::String("default".into()));
                            *v = Value::Object(doc);
                        }
                    }
                    _ => return Err(invalid(format!("settings: unknown field `{k}`"))),
                }
            }
        }
    }
    recipient_upsert(recipient, &m)
}

fn recipient_upsert(recipient: RecipientRef, m: &Map<String, Value>) -> ApiResult<RecipientUpsert> {
    if let Some(v) = m.get("created_at") {
        timestamp_or_null("created_at", v)?;
    }
    let channel_data = inline_channel_data(m.get("channel_data"))?;
    let preferences = inline_preferences(m.get("preferences"))?;
    let mut props = Map::new();
    for (k, v) in m {
        if NOT_PROPERTIES.contains(&k.as_str()) || k.starts_with("__") {
            continue;
        }
        if k.is_empty() || k.chars().count() > MAX_ID_CHARS {
            return Err(invalid("property names must be 1 to 255 characters"));
        }
        props.insert(k.clone(), v.clone());
    }
    Ok(RecipientUpsert {
        recipient,
        properties: Value::Object(props).to_string(),
        channel_data,
        preferences,
    })
}

/// The `{id, ...}` items of bulk identify / bulk set: the id, validated.
pub fn item_id<'a>(what: &str, item: &'a Value) -> ApiResult<&'a str> {
    let id_value = item
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("each {what} needs a string `id`")))?;
    id(&format!("{what} id"), id_value)?;
    Ok(id_value)
}

/// A required list of at most [`MAX_BULK_ITEMS`] entries.
pub fn bulk_list<'a>(body: &'a Value, field: &str) -> ApiResult<&'a Vec<Value>> {
    let list = body
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("`{field}` must be a list")))?;
    if list.is_empty() || list.len() > MAX_BULK_ITEMS {
        return Err(invalid(format!(
            "`{field}` must hold 1 to {MAX_BULK_ITEMS} entries"
        )));
    }
    Ok(list)
}

/// A required list of ids (bulk deletes, bulk preferences).
pub fn id_list(what: &str, values: &[Value]) -> ApiResult<Vec<String>> {
    values
        .iter()
        .map(|v| {
            let s = v
                .as_str()
                .ok_or_else(|| invalid(format!("each {what} must be a string")))?;
            id(what, s)?;
            Ok(s.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids() {
        assert!(id("x", "ok").is_ok());
        assert!(id("x", &"é".repeat(255)).is_ok());
        assert!(id("x", &"a".repeat(256)).is_err());
        assert!(id("x", "").is_err());
        assert!(id("x", "a\nb").is_err());
        assert!(collection("$users").is_err());
        assert!(collection("$tenants").is_ok());
    }

    #[test]
    fn push_channel_data_gets_both_shapes() {
        let e = channel_data("c", &json!({"tokens": ["a"]})).unwrap();
        assert_eq!(e.data, r#"{"tokens":["a"],"devices":[{"token":"a"}]}"#);
        let e = channel_data("c", &json!({"devices": [{"token": "b", "locale": "en"}]})).unwrap();
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(v["tokens"], json!(["b"]));
        assert!(channel_data("c", &json!({"tokens": [1]})).is_err());
        assert!(channel_data("c", &json!([1])).is_err());
        assert!(channel_data(
            "c",
            &json!({"connections": [{"incoming_webhook": {"url": "u"}}]})
        )
        .is_ok());
    }

    #[test]
    fn preference_sets() {
        let (doc, p) = preference_set(
            "p",
            &json!({"__persistence_strategy__": "merge", "workflows": {"w": {"channel_types": {"email": false}}}, "categories": null}),
        )
        .unwrap();
        assert_eq!(p, Persistence::Merge);
        assert_eq!(
            Value::Object(doc),
            json!({"workflows": {"w": {"channel_types": {"email": false}}}})
        );
        for bad in [
            json!({"workflows": {"w": 1}}),
            json!({"channel_types": {"email": "no"}}),
            json!({"unknown": true}),
            json!({"__persistence_strategy__": "sometimes"}),
            json!({"categories": {"c": {"conditions": [1]}}}),
            json!([]),
        ] {
            assert!(preference_set("p", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_bodies() {
        let u = user_upsert(
            RecipientRef::user("u"),
            &json!({"id": "u", "name": "N", "x": {"y": 1}, "channel_data": {"c": {"tokens": []}}}),
        )
        .unwrap();
        assert_eq!(u.properties, r#"{"name":"N","x":{"y":1}}"#);
        assert_eq!(u.channel_data.len(), 1);
        assert!(user_upsert(RecipientRef::user("u"), &json!({"email": 5})).is_err());
        assert!(user_upsert(RecipientRef::user("u"), &json!({"created_at": "yesterday"})).is_err());
        assert!(user_upsert(
            RecipientRef::user("u"),
            &json!({"created_at": "2024-01-02T03:04:05Z"})
        )
        .is_ok());
        assert!(user_upsert(
            RecipientRef::user("u"),
            &json!({"preferences": {"default": {"bad": 1}}})
        )
        .is_err());
        assert!(tenant_upsert(
            RecipientRef::tenant("t"),
            &json!({"settings": {"branding": {"logo_url": 1}}})
        )
        .is_err());
    }
}
