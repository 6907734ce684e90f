//! The catalog in the meta group: workflow definitions (every version kept) and channels.
//!
//! ```text
//! records "workflows"          / <key>                -> WorkflowRecord (current version, active)
//! records "workflow_versions"  / <key>@<version:020>  -> definition (Knock's workflow JSON)
//! records "channels"           / <channel key>        -> ChannelRecord
//! ```
//!
//! Definitions arrive validated by the HTTP layer (herald_shard::engine::parse_workflow); apply only
//! assigns versions and timestamps, deterministically from the leader-stamped `now_ms`.

use herald_raft::{GroupBatch, GroupState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{keys, to_json, MetaReply, CHANNELS_TABLE};
use crate::backend::ChannelRecord;

pub const WORKFLOWS_TABLE: &str = "workflows";
pub const WORKFLOW_VERSIONS_TABLE: &str = "workflow_versions";

/// A workflow's current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub key: String,
    pub version: u64,
    pub active: bool,
    /// The current definition (Knock's workflow JSON without read-only fields).
    pub definition: Value,
    /// Hex digest of the definition (Knock's `sha`).
    pub sha: String,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// The record key of one version.
pub fn version_key(key: &str, version: u64) -> String {
    format!("{key}@{version:020}")
}

fn get<T: for<'de> Deserialize<'de>>(state: &GroupBatch<'_>, table: &str, key: &str) -> Option<T> {
    let raw = state.get(&keys::record(table, key)).ok()??;
    serde_json::from_slice(&raw).ok()
}

pub(super) fn put_workflow(
    state: &mut GroupBatch<'_>,
    now_ms: u64,
    key: &str,
    definition_json: &str,
) -> MetaReply {
    let Ok(definition) = serde_json::from_str::<Value>(definition_json) else {
        return MetaReply::Rejected("workflow definition is not JSON".into());
    };
    let sha = format!(
        "{:032x}",
        xxhash_rust::xxh3::xxh3_128(definition.to_string().as_bytes())
    );
    let current: Option<WorkflowRecord> = get(state, WORKFLOWS_TABLE, key);
    let record = match current {
        Some(c) if c.sha == sha => return MetaReply::Ok,
        Some(c) => WorkflowRecord {
            version: c.version + 1,
            definition,
            sha,
            updated_ms: now_ms,
            ..c
        },
        None => WorkflowRecord {
            key: key.to_owned(),
            version: 1,
            active: true,
            definition,
            sha,
            created_ms: now_ms,
            updated_ms: now_ms,
        },
    };
    state.put(
        &keys::record(WORKFLOW_VERSIONS_TABLE, &version_key(key, record.version)),
        &to_json(&record.definition),
    );
    state.put(&keys::record(WORKFLOWS_TABLE, key), &to_json(&record));
    MetaReply::Ok
}

pub(super) fn activate_workflow(
    state: &mut GroupBatch<'_>,
    now_ms: u64,
    key: &str,
    active: bool,
) -> MetaReply {
    let Some(mut record) = get::<WorkflowRecord>(state, WORKFLOWS_TABLE, key) else {
        return MetaReply::Rejected(format!("workflow `{key}` does not exist"));
    };
    if record.active != active {
        record.active = active;
        record.updated_ms = now_ms;
        state.put(&keys::record(WORKFLOWS_TABLE, key), &to_json(&record));
    }
    MetaReply::Ok
}

pub(super) fn put_channel(
    state: &mut GroupBatch<'_>,
    now_ms: u64,
    channel_json: &str,
) -> MetaReply {
    let Ok(mut channel) = serde_json::from_str::<ChannelRecord>(channel_json) else {
        return MetaReply::Rejected("channel is not a channel record".into());
    };
    let (lo, hi) = keys::record_range(CHANNELS_TABLE);
    let clash = state
        .scan(&lo, &hi, usize::MAX, false)
        .unwrap_or_default()
        .iter()
        .filter_map(|(_, v)| serde_json::from_slice::<ChannelRecord>(v).ok())
        .any(|c| c.id == channel.id && c.key != channel.key);
    if clash {
        return MetaReply::Rejected(format!("channel id {} is taken", channel.id));
    }
    match get::<ChannelRecord>(state, CHANNELS_TABLE, &channel.key) {
        Some(old) => channel.created_ms = old.created_ms,
        None => channel.created_ms = now_ms,
    }
    channel.updated_ms = now_ms;
    state.put(
        &keys::record(CHANNELS_TABLE, &channel.key),
        &to_json(&channel),
    );
    MetaReply::Ok
}
