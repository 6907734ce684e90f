//! The node side of the workflow engine: what a trigger becomes on its way to the shards, the
//! cache of compiled workflow versions, and the leader's evaluation of a trigger into run effects.
//!
//! ```text
//!  HTTP trigger (any node) ── validate against the current version ── split recipients by shard
//!      └─► ShardTrigger{workflow, version, workflow_run_id, recipients, actor, tenant, data}
//!            ─► shard leader: executor evaluates (evaluate.rs, herald_shard::engine::plan_run)
//!               against applied state ─► RunsCommand::Record(NewRun..) in one Raft entry
//! ```
//!
//! The evaluation is the only place that reads the clock and mints random ids; the log records
//! the effects, so followers apply them blindly (DESIGN.md "The leader evaluates; the log records").

mod evaluate;
pub mod timers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_shard::engine::{self, ChannelInfo, ChannelType, CompiledWorkflow};
use herald_shard::{RecipientRef, RecipientUpsert};
use serde::{Deserialize, Serialize};

pub use evaluate::{evaluate, evaluate_resume, EvalContext, ResumeState};

use crate::backend::ChannelRecord;
use crate::meta::MetaView;

/// One shard's part of a trigger, sent to its leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardTrigger {
    pub workflow: String,
    /// The version the receiving node validated against; the leader runs exactly this version.
    pub version: u64,
    /// A UUID v7 (its time is the run ids' time, so a retry derives the same run ids).
    pub workflow_run_id: String,
    pub recipients: Vec<TriggerRecipient>,
    pub actor: Option<RecipientRef>,
    /// The actor's properties (JSON object) as the receiving node read or identified them.
    pub actor_properties: Option<String>,
    pub tenant: Option<String>,
    /// The tenant's properties (JSON object, incl. `settings.preference_set`).
    pub tenant_properties: Option<String>,
    /// Trigger data, a JSON object.
    pub data: String,
    pub cancellation_key: Option<String>,
    /// `settings.sandbox_mode`: every message ends `not_sent`.
    pub sandbox: bool,
}

/// A recipient of a trigger, with its inline identify when the trigger carried one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRecipient {
    pub recipient: RecipientRef,
    pub identify: Option<RecipientUpsert>,
}

/// Compiled workflow versions, shared by the HTTP layer and the executors. Versions never change
/// once written, so entries never go stale; the cache is bounded by the number of versions.
#[derive(Default)]
pub struct WorkflowCache {
    compiled: Mutex<HashMap<(String, u64), Arc<CompiledWorkflow>>>,
}

impl WorkflowCache {
    /// The compiled `version` of `key`, compiling it on first use. `None` when this node's meta
    /// group has not applied that version (yet), or it no longer compiles.
    pub fn get(&self, view: &MetaView, key: &str, version: u64) -> Option<Arc<CompiledWorkflow>> {
        let id = (key.to_owned(), version);
        if let Some(c) = self.lock().get(&id) {
            return Some(c.clone());
        }
        let definition = view.workflow_version(key, version)?;
        let channels = channel_infos(&view.channels());
        let workflow = engine::parse_workflow(key, &definition, &channels).ok()?;
        let compiled = Arc::new(engine::compile(workflow).ok()?);
        self.lock().insert(id, compiled.clone());
        Some(compiled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), Arc<CompiledWorkflow>>> {
        self.compiled.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The engine's view of the channel records (no secrets are needed to plan a run).
pub fn channel_infos(channels: &[ChannelRecord]) -> Vec<ChannelInfo> {
    channels
        .iter()
        .filter_map(|c| {
            Some(ChannelInfo {
                id: c.id.clone(),
                key: c.key.clone(),
                channel_type: ChannelType::parse(&c.channel_type)?,
                settings: public_settings(&c.settings),
                sandbox: c.sandbox,
            })
        })
        .collect()
}

/// Settings without secrets: the sender fields templates and addressing use.
fn public_settings(settings: &serde_json::Value) -> serde_json::Value {
    const PUBLIC: [&str; 4] = [
        "from_address",
        "from_name",
        "reply_to_address",
        "from_number",
    ];
    let mut out = serde_json::Map::new();
    for k in PUBLIC {
        if let Some(v) = settings.get(k) {
            out.insert(k.to_owned(), v.clone());
        }
    }
    serde_json::Value::Object(out)
}
