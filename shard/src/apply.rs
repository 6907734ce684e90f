//! The recipients state machine: [`apply`] (replicated writes) and [`query`] (reads).
//!
//! # Correctness
//! - `apply` is deterministic: time comes only from the leader-stamped `now_ms`, nothing is random,
//!   and every collection it iterates is ordered (store scans, `Vec`s, `serde_json` maps with
//!   `preserve_order`). Two replicas applying the same command to the same state write the same bytes.
//! - A command is checked completely (ids, JSON documents) before its first write, so an `Invalid`
//!   reply means nothing changed.
//! - Reads inside `apply` see its own earlier writes (the store guarantees read-your-writes), which
//!   makes a batch naming the same recipient twice behave like two sequential commands.
//! - The collection index row and the count are written together with the record they describe, so
//!   `Count` stays exact and every record is listed exactly once.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::command::{ShardCommand, ShardQuery, ShardReply};
use crate::error::{Error, Result};
use crate::json_merge::{deep_merge, deep_merge_maps, shallow_merge};
use crate::keys;
use crate::model::{
    check_name, ChannelDataEntry, ChannelDataView, ListQuery, PreferenceEntry, RecipientRef,
    RecipientSnapshot, RecipientView,
};
use crate::store::{Store, StoreRead};

/// Rows read per store call while scanning prefixes and indexes.
const SCAN_CHUNK: usize = 256;

/// A recipient row as stored (JSON; storage format, never sent over the network).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRecipient {
    #[serde(rename = "p")]
    properties: Map<String, Value>,
    #[serde(rename = "i")]
    inserted_ms: u64,
    #[serde(rename = "u")]
    updated_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredChannelData {
    #[serde(rename = "d")]
    data: Map<String, Value>,
    #[serde(rename = "u")]
    updated_ms: u64,
}

/// Apply one replicated command. Never panics on any input; domain failures are reply variants.
pub fn apply(store: &mut dyn Store, now_ms: u64, cmd: &ShardCommand) -> ShardReply {
    if let ShardCommand::Runs(c) = cmd {
        return crate::runs::apply(store, now_ms, c)
            .unwrap_or_else(|e| ShardReply::StoreError(e.to_string()));
    }
    let prepared = match prepare(cmd) {
        Ok(p) => p,
        Err(msg) => return ShardReply::Invalid(msg),
    };
    match execute(store, now_ms, prepared) {
        Ok(reply) => reply,
        Err(e) => ShardReply::StoreError(e.to_string()),
    }
}

/// Serve one read on applied state.
pub fn query(store: &dyn StoreRead, q: &ShardQuery) -> ShardReply {
    if let ShardQuery::Runs(rq) = q {
        return crate::runs::query(store, rq)
            .unwrap_or_else(|e| ShardReply::StoreError(e.to_string()));
    }
    match run_query(store, q) {
        Ok(reply) => reply,
        Err(e) => ShardReply::StoreError(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation: turn a command into parsed documents, or refuse it before any write.

struct PreparedUpsert {
    recipient: RecipientRef,
    properties: Map<String, Value>,
    channel_data: NamedDocs,
    preferences: NamedDocs,
}

enum Prepared {
    Upsert(Vec<PreparedUpsert>),
    Delete(Vec<RecipientRef>),
    SetChannelData(RecipientRef, String, Map<String, Value>),
    UnsetChannelData(RecipientRef, String),
    SetPreferences(Vec<RecipientRef>, String, Map<String, Value>, bool),
    UnsetPreferences(RecipientRef, String),
    /// Boxed: the secondary's documents make this variant much larger than the others.
    MergeInto(RecipientRef, Box<PreparedUpsert>),
}

/// A validation outcome: the message of an `Invalid` reply on failure.
type Check<T> = std::result::Result<T, String>;
/// Named JSON documents (channel data by channel id, preference sets by set id).
type NamedDocs = Vec<(String, Map<String, Value>)>;

fn parse_object(what: &str, s: &str) -> Check<Map<String, Value>> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{what} must be a JSON object")),
        Err(e) => Err(format!("{what} is not valid JSON: {e}")),
    }
}

fn prepare_entries<'a>(
    what: &str,
    entries: impl Iterator<Item = (&'a String, &'a String)>,
) -> Check<NamedDocs> {
    entries
        .map(|(name, doc)| {
            check_name(what, name)?;
            Ok((name.clone(), parse_object(what, doc)?))
        })
        .collect()
}

fn prepare_upsert(
    recipient: &RecipientRef,
    properties: &str,
    channel_data: &[ChannelDataEntry],
    preferences: &[PreferenceEntry],
) -> Check<PreparedUpsert> {
    recipient.validate()?;
    Ok(PreparedUpsert {
        recipient: recipient.clone(),
        properties: parse_object("properties", properties)?,
        channel_data: prepare_entries(
            "channel_id",
            channel_data.iter().map(|e| (&e.channel_id, &e.data)),
        )?,
        preferences: prepare_entries("set_id", preferences.iter().map(|e| (&e.set_id, &e.set)))?,
    })
}

fn prepare(cmd: &ShardCommand) -> Check<Prepared> {
    Ok(match cmd {
        ShardCommand::Runs(_) => return Err("runs commands are applied by crate::runs".into()),
        ShardCommand::Upsert(items) => Prepared::Upsert(
            items
                .iter()
                .map(|u| {
                    prepare_upsert(&u.recipient, &u.properties, &u.channel_data, &u.preferences)
                })
                .collect::<std::result::Result<_, _>>()?,
        ),
        ShardCommand::Delete(rs) => {
            for r in rs {
                r.validate()?;
            }
            Prepared::Delete(rs.clone())
        }
        ShardCommand::SetChannelData {
            recipient,
            channel_id,
            data,
        } => {
            recipient.validate()?;
            check_name("channel_id", channel_id)?;
            Prepared::SetChannelData(
                recipient.clone(),
                channel_id.clone(),
                parse_object("data", data)?,
            )
        }
        ShardCommand::UnsetChannelData {
            recipient,
            channel_id,
        } => {
            recipient.validate()?;
            check_name("channel_id", channel_id)?;
            Prepared::UnsetChannelData(recipient.clone(), channel_id.clone())
        }
        ShardCommand::SetPreferences {
            recipients,
            set_id,
            set,
            merge,
        } => {
            for r in recipients {
                r.validate()?;
            }
            check_name("set_id", set_id)?;
            Prepared::SetPreferences(
                recipients.clone(),
                set_id.clone(),
                parse_object("preference set", set)?,
                *merge,
            )
        }
        ShardCommand::UnsetPreferences { recipient, set_id } => {
            recipient.validate()?;
            check_name("set_id", set_id)?;
            Prepared::UnsetPreferences(recipient.clone(), set_id.clone())
        }
        ShardCommand::MergeInto { target, from } => {
            target.validate()?;
            if *target == from.view.recipient {
                return Err("cannot merge a recipient into itself".into());
            }
            let from_prepared = prepare_upsert(
                &from.view.recipient,
                &from.view.properties,
                &from.channel_data,
                &from.preferences,
            )?;
            Prepared::MergeInto(target.clone(), Box::new(from_prepared))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Row access.

pub(crate) fn key_or_corrupt(k: Option<Vec<u8>>) -> Result<Vec<u8>> {
    // Unreachable after `prepare`/`validate` (names are bounded well below the segment limit).
    k.ok_or_else(|| Error::Corrupt("key segment too long".into()))
}

fn load_recipient(store: &dyn StoreRead, r: &RecipientRef) -> Result<Option<StoredRecipient>> {
    let key = key_or_corrupt(keys::recipient(&r.collection, &r.id))?;
    match store.get(&key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("recipient {}: {e}", r.recipient_key()))),
    }
}

pub(crate) fn encode_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing maps of `Value`s to a Vec cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Write the record; a new record also gets its index row and bumps the collection count.
fn save_recipient(
    store: &mut dyn Store,
    r: &RecipientRef,
    rec: &StoredRecipient,
    is_new: bool,
) -> Result<()> {
    let key = key_or_corrupt(keys::recipient(&r.collection, &r.id))?;
    store.put(&key, &encode_json(rec));
    if is_new {
        let idx = key_or_corrupt(keys::collection_index(
            &r.collection,
            rec.inserted_ms,
            &r.id,
        ))?;
        store.put(&idx, &[]);
        adjust_count(store, &r.collection, 1)?;
    }
    Ok(())
}

fn read_count(store: &dyn StoreRead, collection: &str) -> Result<u64> {
    let key = key_or_corrupt(keys::collection_count(collection))?;
    Ok(store
        .get(&key)?
        .and_then(|v| keys::decode_count(&v))
        .unwrap_or(0))
}

fn adjust_count(store: &mut dyn Store, collection: &str, delta: i64) -> Result<()> {
    let key = key_or_corrupt(keys::collection_count(collection))?;
    let n = read_count(store, collection)?.saturating_add_signed(delta);
    if n == 0 {
        store.delete(&key);
    } else {
        store.put(&key, &keys::encode_count(n));
    }
    Ok(())
}

/// Load a recipient or create an empty one (channel data / preference writes create it, as Knock does).
fn ensure_recipient(
    store: &mut dyn Store,
    r: &RecipientRef,
    now_ms: u64,
) -> Result<StoredRecipient> {
    if let Some(rec) = load_recipient(store, r)? {
        return Ok(rec);
    }
    let rec = StoredRecipient {
        properties: Map::new(),
        inserted_ms: now_ms,
        updated_ms: now_ms,
    };
    save_recipient(store, r, &rec, true)?;
    Ok(rec)
}

/// Every row under `prefix`, in key order.
pub(crate) fn scan_prefix(store: &dyn StoreRead, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let end = keys::prefix_end(prefix);
    let mut out = Vec::new();
    let mut start = prefix.to_vec();
    loop {
        let chunk = store.scan(&start, &end, SCAN_CHUNK, false)?;
        let done = chunk.len() < SCAN_CHUNK;
        if let Some((last, _)) = chunk.last() {
            start = last.clone();
            start.push(0);
        }
        out.extend(chunk);
        if done {
            return Ok(out);
        }
    }
}

fn load_preferences(store: &dyn StoreRead, r: &RecipientRef) -> Result<Vec<PreferenceEntry>> {
    let prefix = key_or_corrupt(keys::preference_set_prefix(&r.collection, &r.id))?;
    scan_prefix(store, &prefix)?
        .into_iter()
        .map(|(k, v)| {
            let (_, _, set_id) = keys::decode_preference_set(&k)
                .ok_or_else(|| Error::Corrupt("preference key".into()))?;
            let set = String::from_utf8(v).map_err(|e| Error::Corrupt(e.to_string()))?;
            Ok(PreferenceEntry { set_id, set })
        })
        .collect()
}

fn load_channel_data(store: &dyn StoreRead, r: &RecipientRef) -> Result<Vec<ChannelDataEntry>> {
    let prefix = key_or_corrupt(keys::channel_data_prefix(&r.collection, &r.id))?;
    scan_prefix(store, &prefix)?
        .into_iter()
        .map(|(k, v)| {
            let (_, _, channel_id) = keys::decode_channel_data(&k)
                .ok_or_else(|| Error::Corrupt("channel data key".into()))?;
            let row: StoredChannelData =
                serde_json::from_slice(&v).map_err(|e| Error::Corrupt(e.to_string()))?;
            Ok(ChannelDataEntry {
                channel_id,
                data: Value::Object(row.data).to_string(),
            })
        })
        .collect()
}

fn load_preference(
    store: &dyn StoreRead,
    r: &RecipientRef,
    set_id: &str,
) -> Result<Option<Map<String, Value>>> {
    let key = key_or_corrupt(keys::preference_set(&r.collection, &r.id, set_id))?;
    match store.get(&key)? {
        None => Ok(None),
        Some(v) => match serde_json::from_slice(&v) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            _ => Err(Error::Corrupt(format!("preference set {set_id}"))),
        },
    }
}

fn save_preference(
    store: &mut dyn Store,
    r: &RecipientRef,
    set_id: &str,
    set: &Map<String, Value>,
) -> Result<()> {
    let key = key_or_corrupt(keys::preference_set(&r.collection, &r.id, set_id))?;
    store.put(&key, &encode_json(set));
    Ok(())
}

fn save_channel_data(
    store: &mut dyn Store,
    r: &RecipientRef,
    channel_id: &str,
    data: Map<String, Value>,
    now_ms: u64,
) -> Result<ChannelDataView> {
    let key = key_or_corrupt(keys::channel_data(&r.collection, &r.id, channel_id))?;
    let row = StoredChannelData {
        data,
        updated_ms: now_ms,
    };
    store.put(&key, &encode_json(&row));
    Ok(ChannelDataView {
        recipient: r.clone(),
        channel_id: channel_id.to_owned(),
        data: Value::Object(row.data).to_string(),
        updated_ms: now_ms,
    })
}

fn view(
    r: &RecipientRef,
    rec: &StoredRecipient,
    preferences: Vec<PreferenceEntry>,
) -> RecipientView {
    RecipientView {
        recipient: r.clone(),
        properties: Value::Object(rec.properties.clone()).to_string(),
        inserted_ms: rec.inserted_ms,
        updated_ms: rec.updated_ms,
        preferences,
    }
}

fn delete_recipient(store: &mut dyn Store, r: &RecipientRef) -> Result<bool> {
    let Some(rec) = load_recipient(store, r)? else {
        return Ok(false);
    };
    store.delete(&key_or_corrupt(keys::recipient(&r.collection, &r.id))?);
    store.delete(&key_or_corrupt(keys::collection_index(
        &r.collection,
        rec.inserted_ms,
        &r.id,
    ))?);
    adjust_count(store, &r.collection, -1)?;
    for prefix in [
        keys::channel_data_prefix(&r.collection, &r.id),
        keys::preference_set_prefix(&r.collection, &r.id),
    ] {
        let prefix = key_or_corrupt(prefix)?;
        for (k, _) in scan_prefix(store, &prefix)? {
            store.delete(&k);
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Commands.

fn upsert(store: &mut dyn Store, now_ms: u64, u: PreparedUpsert) -> Result<RecipientView> {
    let r = &u.recipient;
    let (mut rec, is_new) = match load_recipient(store, r)? {
        Some(rec) => (rec, false),
        None => (
            StoredRecipient {
                properties: Map::new(),
                inserted_ms: now_ms,
                updated_ms: now_ms,
            },
            true,
        ),
    };
    shallow_merge(&mut rec.properties, u.properties);
    rec.updated_ms = now_ms;
    save_recipient(store, r, &rec, is_new)?;
    for (channel_id, data) in u.channel_data {
        save_channel_data(store, r, &channel_id, data, now_ms)?;
    }
    for (set_id, patch) in u.preferences {
        let mut set = load_preference(store, r, &set_id)?.unwrap_or_default();
        deep_merge_maps(&mut set, patch);
        save_preference(store, r, &set_id, &set)?;
    }
    Ok(view(r, &rec, Vec::new()))
}

/// Identify one recipient (the inline identify of a trigger). `Ok(Err(_))`: refused, nothing written.
pub(crate) fn identify(
    store: &mut dyn Store,
    now_ms: u64,
    u: &crate::model::RecipientUpsert,
) -> Result<Check<RecipientView>> {
    match prepare_upsert(&u.recipient, &u.properties, &u.channel_data, &u.preferences) {
        Ok(p) => upsert(store, now_ms, p).map(Ok),
        Err(e) => Ok(Err(e)),
    }
}

fn execute(store: &mut dyn Store, now_ms: u64, cmd: Prepared) -> Result<ShardReply> {
    Ok(match cmd {
        Prepared::Upsert(items) => ShardReply::Recipients(
            items
                .into_iter()
                .map(|u| upsert(store, now_ms, u))
                .collect::<Result<_>>()?,
        ),
        Prepared::Delete(rs) => ShardReply::Deleted(
            rs.iter()
                .map(|r| delete_recipient(store, r))
                .collect::<Result<_>>()?,
        ),
        Prepared::SetChannelData(r, channel_id, data) => {
            ensure_recipient(store, &r, now_ms)?;
            ShardReply::ChannelData(Some(save_channel_data(
                store,
                &r,
                &channel_id,
                data,
                now_ms,
            )?))
        }
        Prepared::UnsetChannelData(r, channel_id) => {
            let key = key_or_corrupt(keys::channel_data(&r.collection, &r.id, &channel_id))?;
            let existed = store.get(&key)?.is_some();
            store.delete(&key);
            ShardReply::Unset(existed)
        }
        Prepared::SetPreferences(rs, set_id, set, merge) => {
            let mut out = Vec::with_capacity(rs.len());
            for r in &rs {
                ensure_recipient(store, r, now_ms)?;
                let stored = if merge {
                    let mut base = load_preference(store, r, &set_id)?.unwrap_or_default();
                    deep_merge_maps(&mut base, set.clone());
                    base
                } else {
                    set.clone()
                };
                save_preference(store, r, &set_id, &stored)?;
                out.push(PreferenceEntry {
                    set_id: set_id.clone(),
                    set: Value::Object(stored).to_string(),
                });
            }
            ShardReply::PreferenceSets(out)
        }
        Prepared::UnsetPreferences(r, set_id) => {
            let key = key_or_corrupt(keys::preference_set(&r.collection, &r.id, &set_id))?;
            let existed = store.get(&key)?.is_some();
            store.delete(&key);
            ShardReply::Unset(existed)
        }
        Prepared::MergeInto(target, from) => {
            let from = *from;
            let Some(mut rec) = load_recipient(store, &target)? else {
                return Ok(ShardReply::NotFound);
            };
            // The primary (target) wins conflicts: its properties are the patch over the secondary's.
            let mut merged = Value::Object(from.properties);
            deep_merge(
                &mut merged,
                Value::Object(std::mem::take(&mut rec.properties)),
            );
            rec.properties = match merged {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            rec.updated_ms = now_ms;
            save_recipient(store, &target, &rec, false)?;
            for (channel_id, data) in from.channel_data {
                let key = key_or_corrupt(keys::channel_data(
                    &target.collection,
                    &target.id,
                    &channel_id,
                ))?;
                if store.get(&key)?.is_none() {
                    save_channel_data(store, &target, &channel_id, data, now_ms)?;
                }
            }
            for (set_id, set) in from.preferences {
                if load_preference(store, &target, &set_id)?.is_none() {
                    save_preference(store, &target, &set_id, &set)?;
                }
            }
            ShardReply::Recipient(Some(view(&target, &rec, Vec::new())))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Queries.

fn run_query(store: &dyn StoreRead, q: &ShardQuery) -> Result<ShardReply> {
    Ok(match q {
        ShardQuery::Runs(rq) => return crate::runs::query(store, rq),
        ShardQuery::Get {
            recipient,
            include_preferences,
        } => {
            if recipient.validate().is_err() {
                return Ok(ShardReply::Recipient(None));
            }
            match load_recipient(store, recipient)? {
                None => ShardReply::Recipient(None),
                Some(rec) => {
                    let prefs = if *include_preferences {
                        load_preferences(store, recipient)?
                    } else {
                        Vec::new()
                    };
                    ShardReply::Recipient(Some(view(recipient, &rec, prefs)))
                }
            }
        }
        ShardQuery::Snapshot(r) => {
            if r.validate().is_err() {
                return Ok(ShardReply::Snapshot(None));
            }
            match load_recipient(store, r)? {
                None => ShardReply::Snapshot(None),
                Some(rec) => ShardReply::Snapshot(Some(RecipientSnapshot {
                    view: view(r, &rec, Vec::new()),
                    channel_data: load_channel_data(store, r)?,
                    preferences: load_preferences(store, r)?,
                })),
            }
        }
        ShardQuery::List(lq) => ShardReply::Recipients(list(store, lq)?),
        ShardQuery::GetChannelData {
            recipient,
            channel_id,
        } => {
            if recipient.validate().is_err() || check_name("channel_id", channel_id).is_err() {
                return Ok(ShardReply::NotFound);
            }
            if load_recipient(store, recipient)?.is_none() {
                return Ok(ShardReply::NotFound);
            }
            let key = key_or_corrupt(keys::channel_data(
                &recipient.collection,
                &recipient.id,
                channel_id,
            ))?;
            match store.get(&key)? {
                None => ShardReply::ChannelData(None),
                Some(v) => {
                    let row: StoredChannelData =
                        serde_json::from_slice(&v).map_err(|e| Error::Corrupt(e.to_string()))?;
                    ShardReply::ChannelData(Some(ChannelDataView {
                        recipient: recipient.clone(),
                        channel_id: channel_id.clone(),
                        data: Value::Object(row.data).to_string(),
                        updated_ms: row.updated_ms,
                    }))
                }
            }
        }
        ShardQuery::ListPreferences(r) => {
            if r.validate().is_err() || load_recipient(store, r)?.is_none() {
                return Ok(ShardReply::NotFound);
            }
            ShardReply::PreferenceSets(load_preferences(store, r)?)
        }
        ShardQuery::GetPreferences { recipient, set_id } => {
            if recipient.validate().is_err()
                || check_name("set_id", set_id).is_err()
                || load_recipient(store, recipient)?.is_none()
            {
                return Ok(ShardReply::NotFound);
            }
            ShardReply::PreferenceSet(load_preference(store, recipient, set_id)?.map(|m| {
                PreferenceEntry {
                    set_id: set_id.clone(),
                    set: Value::Object(m).to_string(),
                }
            }))
        }
        ShardQuery::Count { collection } => {
            if check_name("collection", collection).is_err() {
                return Ok(ShardReply::Count(0));
            }
            ShardReply::Count(read_count(store, collection)?)
        }
    })
}

fn matches_filters(lq: &ListQuery, rec: &StoredRecipient) -> bool {
    match &lq.name_equals {
        None => true,
        Some(name) => rec.properties.get("name").and_then(Value::as_str) == Some(name.as_str()),
    }
}

fn list(store: &dyn StoreRead, lq: &ListQuery) -> Result<Vec<RecipientView>> {
    let limit = lq.limit as usize;
    if limit == 0 || check_name("collection", &lq.collection).is_err() {
        return Ok(Vec::new());
    }
    let within = |ms: u64, id: &str| {
        let pos = (ms, id);
        lq.lower
            .as_ref()
            .is_none_or(|l| pos > (l.inserted_ms, l.id.as_str()))
            && lq
                .upper
                .as_ref()
                .is_none_or(|u| pos < (u.inserted_ms, u.id.as_str()))
    };
    let build = |r: RecipientRef, rec: &StoredRecipient| -> Result<RecipientView> {
        let prefs = if lq.include_preferences {
            load_preferences(store, &r)?
        } else {
            Vec::new()
        };
        Ok(view(&r, rec, prefs))
    };

    // A filter on the id is a point lookup, not a scan.
    if let Some(id) = &lq.id_equals {
        let r = RecipientRef::object(lq.collection.clone(), id.clone());
        if r.validate().is_err() {
            return Ok(Vec::new());
        }
        return Ok(match load_recipient(store, &r)? {
            Some(rec) if within(rec.inserted_ms, id) && matches_filters(lq, &rec) => {
                vec![build(r, &rec)?]
            }
            _ => Vec::new(),
        });
    }

    let prefix = key_or_corrupt(keys::collection_index_prefix(&lq.collection))?;
    let mut start = match &lq.lower {
        Some(l) => {
            let mut k =
                key_or_corrupt(keys::collection_index(&lq.collection, l.inserted_ms, &l.id))?;
            k.push(0); // exclusive: the smallest key after `l`
            k
        }
        None => prefix.clone(),
    };
    let mut end = match &lq.upper {
        Some(u) => key_or_corrupt(keys::collection_index(&lq.collection, u.inserted_ms, &u.id))?,
        None => keys::prefix_end(&prefix),
    };
    let mut out = Vec::new();
    // Without a name filter every index row matches, so one chunk of `limit` suffices.
    let chunk = if lq.name_equals.is_some() {
        SCAN_CHUNK.max(limit)
    } else {
        limit
    };
    while out.len() < limit {
        let rows = store.scan(&start, &end, chunk, lq.descending)?;
        let exhausted = rows.len() < chunk;
        if let Some((last, _)) = rows.last() {
            if lq.descending {
                end = last.clone();
            } else {
                start = last.clone();
                start.push(0);
            }
        }
        for (k, _) in rows {
            let (_, _, id) = keys::decode_collection_index(&k)
                .ok_or_else(|| Error::Corrupt("collection index key".into()))?;
            let r = RecipientRef::object(lq.collection.clone(), id);
            let rec = load_recipient(store, &r)?
                .ok_or_else(|| Error::Corrupt(format!("index row without record: {}", r.id)))?;
            if matches_filters(lq, &rec) {
                out.push(build(r, &rec)?);
                if out.len() == limit {
                    break;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ListPosition, RecipientUpsert};
    use crate::store::MemStore;
    use serde_json::json;

    fn upsert_cmd(r: RecipientRef, props: Value) -> ShardCommand {
        ShardCommand::Upsert(vec![RecipientUpsert {
            recipient: r,
            properties: props.to_string(),
            channel_data: vec![],
            preferences: vec![],
        }])
    }

    fn props(v: &RecipientView) -> Value {
        serde_json::from_str(&v.properties).unwrap()
    }

    fn get(s: &MemStore, r: &RecipientRef) -> Option<RecipientView> {
        match query(
            s,
            &ShardQuery::Get {
                recipient: r.clone(),
                include_preferences: true,
            },
        ) {
            ShardReply::Recipient(v) => v,
            other => panic!("{other:?}"),
        }
    }

    fn list_all(s: &MemStore, coll: &str, descending: bool) -> Vec<String> {
        let q = ListQuery {
            collection: coll.into(),
            lower: None,
            upper: None,
            descending,
            limit: 100,
            include_preferences: false,
            id_equals: None,
            name_equals: None,
        };
        match query(s, &ShardQuery::List(q)) {
            ShardReply::Recipients(v) => v.into_iter().map(|v| v.recipient.id).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn identify_merges_top_level_properties_and_keeps_inserted_time() {
        let mut s = MemStore::new();
        let u = RecipientRef::user("u1");
        apply(
            &mut s,
            10,
            &upsert_cmd(u.clone(), json!({"name": "A", "plan": {"x": 1}})),
        );
        let r = apply(
            &mut s,
            20,
            &upsert_cmd(
                u.clone(),
                json!({"email": "a@x", "plan": {"y": 2}, "name": null}),
            ),
        );
        let ShardReply::Recipients(v) = r else {
            panic!()
        };
        assert_eq!(
            props(&v[0]),
            json!({"name": null, "plan": {"y": 2}, "email": "a@x"})
        );
        assert_eq!((v[0].inserted_ms, v[0].updated_ms), (10, 20));
        assert_eq!(
            query(
                &s,
                &ShardQuery::Count {
                    collection: "$users".into()
                }
            ),
            ShardReply::Count(1)
        );
    }

    #[test]
    fn inline_preferences_deep_merge_and_channel_data_set() {
        let mut s = MemStore::new();
        let u = RecipientRef::user("u1");
        let cmd = |set: Value| {
            ShardCommand::Upsert(vec![RecipientUpsert {
                recipient: u.clone(),
                properties: "{}".into(),
                channel_data: vec![ChannelDataEntry {
                    channel_id: "c1".into(),
                    data: r#"{"tokens":["t"]}"#.into(),
                }],
                preferences: vec![PreferenceEntry {
                    set_id: "default".into(),
                    set: set.to_string(),
                }],
            }])
        };
        apply(&mut s, 1, &cmd(json!({"workflows": {"a": false}})));
        apply(
            &mut s,
            2,
            &cmd(json!({"workflows": {"b": true}, "channel_types": {"email": false}})),
        );
        let ShardReply::PreferenceSet(Some(p)) = query(
            &s,
            &ShardQuery::GetPreferences {
                recipient: u.clone(),
                set_id: "default".into(),
            },
        ) else {
            panic!()
        };
        assert_eq!(
            serde_json::from_str::<Value>(&p.set).unwrap(),
            json!({"workflows": {"a": false, "b": true}, "channel_types": {"email": false}})
        );
        let ShardReply::ChannelData(Some(cd)) = query(
            &s,
            &ShardQuery::GetChannelData {
                recipient: u.clone(),
                channel_id: "c1".into(),
            },
        ) else {
            panic!()
        };
        assert_eq!(cd.data, r#"{"tokens":["t"]}"#);
    }

    #[test]
    fn set_preferences_replaces_or_merges_and_creates_recipient() {
        let mut s = MemStore::new();
        let u = RecipientRef::user("new");
        let set = |set: Value, merge| ShardCommand::SetPreferences {
            recipients: vec![u.clone()],
            set_id: "default".into(),
            set: set.to_string(),
            merge,
        };
        apply(&mut s, 1, &set(json!({"workflows": {"a": false}}), false));
        assert!(get(&s, &u).is_some(), "created");
        apply(&mut s, 2, &set(json!({"workflows": {"b": false}}), true));
        let ShardReply::PreferenceSets(v) =
            apply(&mut s, 3, &set(json!({"categories": {"c": true}}), true))
        else {
            panic!()
        };
        assert_eq!(
            serde_json::from_str::<Value>(&v[0].set).unwrap(),
            json!({"workflows": {"a": false, "b": false}, "categories": {"c": true}})
        );
        let ShardReply::PreferenceSets(v) = apply(&mut s, 4, &set(json!({"channels": {}}), false))
        else {
            panic!()
        };
        assert_eq!(v[0].set, r#"{"channels":{}}"#);
        assert_eq!(
            apply(
                &mut s,
                5,
                &ShardCommand::UnsetPreferences {
                    recipient: u.clone(),
                    set_id: "default".into()
                }
            ),
            ShardReply::Unset(true)
        );
        assert_eq!(
            query(&s, &ShardQuery::ListPreferences(u.clone())),
            ShardReply::PreferenceSets(vec![])
        );
    }

    #[test]
    fn delete_removes_everything_of_the_recipient_only() {
        let mut s = MemStore::new();
        let keep = RecipientRef::user("keep");
        apply(&mut s, 1, &upsert_cmd(keep.clone(), json!({"name": "k"})));
        let before = s.clone();
        let u = RecipientRef::user("u");
        apply(&mut s, 2, &upsert_cmd(u.clone(), json!({"name": "x"})));
        apply(
            &mut s,
            3,
            &ShardCommand::SetChannelData {
                recipient: u.clone(),
                channel_id: "c".into(),
                data: "{}".into(),
            },
        );
        apply(
            &mut s,
            4,
            &ShardCommand::SetPreferences {
                recipients: vec![u.clone()],
                set_id: "default".into(),
                set: "{}".into(),
                merge: false,
            },
        );
        assert_eq!(
            apply(
                &mut s,
                5,
                &ShardCommand::Delete(vec![u.clone(), RecipientRef::user("nope")])
            ),
            ShardReply::Deleted(vec![true, false])
        );
        assert_eq!(s, before, "no row of the deleted user is left");
    }

    #[test]
    fn invalid_commands_change_nothing() {
        let mut s = MemStore::new();
        let bad = ShardCommand::Upsert(vec![
            RecipientUpsert {
                recipient: RecipientRef::user("ok"),
                properties: "{}".into(),
                channel_data: vec![],
                preferences: vec![],
            },
            RecipientUpsert {
                recipient: RecipientRef::user("bad"),
                properties: "[1]".into(),
                channel_data: vec![],
                preferences: vec![],
            },
        ]);
        assert!(matches!(apply(&mut s, 1, &bad), ShardReply::Invalid(_)));
        assert!(matches!(
            apply(&mut s, 1, &upsert_cmd(RecipientRef::user(""), json!({}))),
            ShardReply::Invalid(_)
        ));
        let long = RecipientRef::user("x".repeat(2000));
        assert!(matches!(
            apply(&mut s, 1, &upsert_cmd(long, json!({}))),
            ShardReply::Invalid(_)
        ));
        assert!(s.is_empty());
    }

    #[test]
    fn lists_page_in_insertion_order_both_ways() {
        let mut s = MemStore::new();
        for (t, id) in [(5, "b"), (5, "a"), (3, "z"), (9, "c")] {
            apply(
                &mut s,
                t,
                &upsert_cmd(RecipientRef::object("projects", id), json!({"name": id})),
            );
        }
        apply(&mut s, 10, &upsert_cmd(RecipientRef::user("u"), json!({})));
        assert_eq!(list_all(&s, "projects", false), ["z", "a", "b", "c"]);
        assert_eq!(list_all(&s, "projects", true), ["c", "b", "a", "z"]);
        let page = |lower: Option<ListPosition>,
                    upper: Option<ListPosition>,
                    descending,
                    name: Option<&str>| {
            let q = ListQuery {
                collection: "projects".into(),
                lower,
                upper,
                descending,
                limit: 2,
                include_preferences: false,
                id_equals: None,
                name_equals: name.map(Into::into),
            };
            match query(&s, &ShardQuery::List(q)) {
                ShardReply::Recipients(v) => {
                    v.into_iter().map(|v| v.recipient.id).collect::<Vec<_>>()
                }
                other => panic!("{other:?}"),
            }
        };
        let pos = |ms, id: &str| {
            Some(ListPosition {
                inserted_ms: ms,
                id: id.into(),
            })
        };
        assert_eq!(page(pos(5, "a"), None, false, None), ["b", "c"]);
        assert_eq!(page(None, pos(5, "b"), true, None), ["a", "z"]);
        assert_eq!(page(None, None, false, Some("c")), ["c"]);
        assert_eq!(
            page(pos(9, "c"), None, false, Some("c")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn merge_into_keeps_primary_values_and_adds_missing_rows() {
        let mut s = MemStore::new();
        let a = RecipientRef::user("a");
        let b = RecipientRef::user("b");
        apply(
            &mut s,
            1,
            &upsert_cmd(a.clone(), json!({"name": "A", "x": {"p": 1}})),
        );
        apply(
            &mut s,
            1,
            &ShardCommand::SetChannelData {
                recipient: a.clone(),
                channel_id: "c1".into(),
                data: r#"{"v":"a"}"#.into(),
            },
        );
        apply(
            &mut s,
            2,
            &upsert_cmd(
                b.clone(),
                json!({"name": "B", "email": "b@x", "x": {"q": 2}}),
            ),
        );
        apply(
            &mut s,
            2,
            &ShardCommand::SetChannelData {
                recipient: b.clone(),
                channel_id: "c1".into(),
                data: r#"{"v":"b"}"#.into(),
            },
        );
        apply(
            &mut s,
            2,
            &ShardCommand::SetChannelData {
                recipient: b.clone(),
                channel_id: "c2".into(),
                data: r#"{"v":"b"}"#.into(),
            },
        );
        let ShardReply::Snapshot(Some(snap)) = query(&s, &ShardQuery::Snapshot(b.clone())) else {
            panic!()
        };
        let cmd = ShardCommand::MergeInto {
            target: a.clone(),
            from: snap,
        };
        let ShardReply::Recipient(Some(v)) = apply(&mut s, 3, &cmd) else {
            panic!()
        };
        assert_eq!(
            props(&v),
            json!({"name": "A", "email": "b@x", "x": {"q": 2, "p": 1}})
        );
        assert_eq!(
            apply(&mut s, 4, &cmd),
            ShardReply::Recipient(Some(RecipientView { updated_ms: 4, ..v }))
        );
        let cd = |c: &str| match query(
            &s,
            &ShardQuery::GetChannelData {
                recipient: a.clone(),
                channel_id: c.into(),
            },
        ) {
            ShardReply::ChannelData(Some(v)) => v.data,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (cd("c1"), cd("c2")),
            (r#"{"v":"a"}"#.to_string(), r#"{"v":"b"}"#.to_string())
        );
        let ShardReply::Snapshot(Some(snap)) = query(&s, &ShardQuery::Snapshot(b.clone())) else {
            panic!()
        };
        let missing = ShardCommand::MergeInto {
            target: RecipientRef::user("zz"),
            from: snap,
        };
        assert_eq!(apply(&mut s, 5, &missing), ShardReply::NotFound);
    }

    #[test]
    fn queries_on_missing_recipients() {
        let s = MemStore::new();
        let u = RecipientRef::user("none");
        assert_eq!(get(&s, &u), None);
        assert_eq!(
            query(&s, &ShardQuery::ListPreferences(u.clone())),
            ShardReply::NotFound
        );
        assert_eq!(
            query(
                &s,
                &ShardQuery::GetChannelData {
                    recipient: u.clone(),
                    channel_id: "c".into()
                }
            ),
            ShardReply::NotFound
        );
        assert_eq!(
            query(&s, &ShardQuery::Snapshot(u)),
            ShardReply::Snapshot(None)
        );
    }

    #[test]
    fn apply_is_deterministic() {
        let run = || {
            let mut s = MemStore::new();
            for i in 0..50u64 {
                let r = RecipientRef::object(format!("c{}", i % 3), format!("id{}", i % 7));
                apply(
                    &mut s,
                    i,
                    &upsert_cmd(r.clone(), json!({"i": i, "z": 1, "a": 2})),
                );
                if i % 5 == 0 {
                    apply(&mut s, i, &ShardCommand::Delete(vec![r]));
                }
            }
            s
        };
        assert_eq!(run(), run());
    }
}
