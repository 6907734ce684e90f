//! The shard leader's evaluation of a [`ShardTrigger`] into [`NewRun`]s.
//!
//! Reads the recipients' applied state (properties, channel data, preference sets), applies the
//! trigger's inline identify in memory (the same merge `apply` will make), plans each run with
//! `herald_shard::engine::plan_run`, and mints message ids. Nothing here writes: the returned runs
//! are proposed as one `RunsCommand::Record`.

use std::collections::BTreeMap;

use herald_shard::engine::{
    plan_run, CompiledWorkflow, PlannedStatus, PreferenceInputs, RunInput, RunOutcome, StepResult,
};
use herald_shard::ids::{make_id, run_id};
use herald_shard::json_merge::{deep_merge, shallow_merge};
use herald_shard::runs::{NewMessage, NewRun, RunStatus, RunStep};
use herald_shard::{slot_of, RecipientRef, ShardQuery, ShardReply, StoreRead};
use serde_json::{json, Map, Value};

use super::{channel_infos, ShardTrigger, TriggerRecipient};
use crate::backend::ChannelRecord;

/// Everything evaluation needs besides the trigger.
pub struct EvalContext<'a> {
    pub store: &'a dyn StoreRead,
    pub workflow: &'a CompiledWorkflow,
    pub channels: &'a [ChannelRecord],
    pub now_ms: u64,
}

/// Evaluate every recipient of `trigger`. Recipients whose state cannot be read fail the whole
/// trigger for this shard (the caller retries it: run ids make that safe).
pub fn evaluate(ctx: &EvalContext<'_>, trigger: &ShardTrigger) -> Result<Vec<NewRun>, String> {
    let wf_ms = uuid_ms(&trigger.workflow_run_id).unwrap_or(ctx.now_ms);
    let data: Value = serde_json::from_str(&trigger.data).map_err(|e| e.to_string())?;
    let actor = props_of(trigger.actor.as_ref(), trigger.actor_properties.as_deref());
    let tenant = trigger
        .tenant
        .as_ref()
        .map(|id| {
            props_of(
                Some(&RecipientRef::tenant(id)),
                trigger.tenant_properties.as_deref(),
            )
        })
        .and_then(|t| t);
    let tenant_default = tenant
        .as_ref()
        .and_then(|t| t.pointer("/settings/preference_set"))
        .cloned();
    let channels = channel_infos(ctx.channels);
    let vars = json!({});
    trigger
        .recipients
        .iter()
        .map(|r| {
            let key = r.recipient.recipient_key();
            let slot = slot_of(&key);
            let state = recipient_state(ctx.store, r)?;
            let preferences = PreferenceInputs {
                recipient_sets: state.preferences,
                tenant_id: trigger.tenant.clone(),
                tenant_default: tenant_default.clone(),
                environment_default: None,
            };
            let plan = plan_run(&RunInput {
                workflow: ctx.workflow,
                recipient: &state.properties,
                actor: actor.as_ref(),
                tenant: tenant.as_ref(),
                data: &data,
                vars: &vars,
                preferences: &preferences,
                channel_data: &state.channel_data,
                channels: &channels,
                sandbox: trigger.sandbox,
                now_ms: ctx.now_ms,
            });
            Ok(to_run(
                ctx,
                trigger,
                r,
                run_id(wf_ms, slot, &trigger.workflow_run_id, &key),
                slot,
                plan,
                &state.properties,
            ))
        })
        .collect()
}

/// A recipient as the engine sees it.
struct RecipientState {
    properties: Value,
    channel_data: BTreeMap<String, Value>,
    preferences: BTreeMap<String, Value>,
}

fn recipient_state(store: &dyn StoreRead, r: &TriggerRecipient) -> Result<RecipientState, String> {
    let mut properties = Map::new();
    let mut channel_data = BTreeMap::new();
    let mut preferences = BTreeMap::new();
    match herald_shard::query(store, &ShardQuery::Snapshot(r.recipient.clone())) {
        ShardReply::Snapshot(Some(s)) => {
            properties = parse_object(&s.view.properties);
            for c in s.channel_data {
                channel_data.insert(c.channel_id, Value::Object(parse_object(&c.data)));
            }
            for p in s.preferences {
                preferences.insert(p.set_id, Value::Object(parse_object(&p.set)));
            }
        }
        ShardReply::Snapshot(None) | ShardReply::NotFound => {}
        ShardReply::StoreError(e) => return Err(e),
        other => return Err(format!("unexpected snapshot reply {other:?}")),
    }
    if let Some(u) = &r.identify {
        shallow_merge(&mut properties, parse_object(&u.properties));
        for c in &u.channel_data {
            channel_data.insert(c.channel_id.clone(), Value::Object(parse_object(&c.data)));
        }
        for p in &u.preferences {
            let set = preferences
                .entry(p.set_id.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            deep_merge(set, Value::Object(parse_object(&p.set)));
        }
    }
    properties.insert("id".into(), json!(r.recipient.id));
    if !r.recipient.is_user() {
        properties.insert("collection".into(), json!(r.recipient.collection));
    }
    Ok(RecipientState {
        properties: Value::Object(properties),
        channel_data,
        preferences,
    })
}

fn parse_object(s: &str) -> Map<String, Value> {
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Properties plus `id` (and `collection` for objects) of an actor or tenant.
fn props_of(r: Option<&RecipientRef>, properties: Option<&str>) -> Option<Value> {
    let r = r?;
    let mut m = properties.map(parse_object).unwrap_or_default();
    m.insert("id".into(), json!(r.id));
    if !r.is_user() {
        m.insert("collection".into(), json!(r.collection));
    }
    Some(Value::Object(m))
}

/// Milliseconds of a UUID v7.
fn uuid_ms(id: &str) -> Option<u64> {
    let u = uuid::Uuid::parse_str(id).ok()?;
    let (secs, nanos) = u.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos) / 1_000_000)
}

fn to_run(
    ctx: &EvalContext<'_>,
    trigger: &ShardTrigger,
    r: &TriggerRecipient,
    run_id: String,
    slot: u16,
    plan: herald_shard::engine::RunPlan,
    recipient: &Value,
) -> NewRun {
    let snapshot = json!({
        "user_id": r.recipient.is_user().then(|| r.recipient.id.clone()),
        "email": recipient.get("email"),
        "phone_number": recipient.get("phone_number"),
        "name": recipient.get("name"),
    })
    .to_string();
    let mut steps = Vec::new();
    let mut messages = Vec::new();
    if let RunOutcome::ConditionsNotMet = plan.outcome {
        steps.push(RunStep {
            step_ref: String::new(),
            step_type: "workflow".into(),
            status: "skipped".into(),
            event: "workflow_conditions_not_met".into(),
            data: "{}".into(),
        });
    }
    for step in plan.steps {
        let (status, event, data) = match step.result {
            StepResult::Message(m) => {
                let id = make_id(ctx.now_ms, slot, rand::random());
                let data = json!({ "message_id": id, "channel_id": m.channel_id });
                messages.push(NewMessage {
                    id,
                    channel_id: m.channel_id,
                    channel_key: m.channel_key,
                    channel_type: m.channel_type.as_str().to_owned(),
                    step_ref: step.step_ref.clone(),
                    branch_path: step.branch_path.clone(),
                    status: match m.status {
                        PlannedStatus::Queued => "queued",
                        PlannedStatus::Delivered => "delivered",
                        PlannedStatus::NotSent => "not_sent",
                    }
                    .into(),
                    content: m.content.to_string(),
                    recipient_snapshot: snapshot.clone(),
                });
                ("ok", "message_created", data)
            }
            StepResult::SkippedConditions => ("skipped", "step_conditions_not_met", json!({})),
            StepResult::SkippedPreferences { reason } => (
                "skipped",
                "step_skipped_preferences",
                json!({ "reason": reason }),
            ),
            StepResult::SkippedNoRecipientAddress { reason } => (
                "skipped",
                "step_skipped_missing_recipient_data",
                json!({ "reason": reason }),
            ),
            StepResult::TemplateError { error } => {
                ("error", "template_error", json!({ "error": error }))
            }
            StepResult::DataUpdated => ("ok", "data_updated", json!({})),
            StepResult::BranchTaken { branch } => {
                ("ok", "branch_taken", json!({ "branch": branch }))
            }
        };
        steps.push(RunStep {
            step_ref: step.step_ref,
            step_type: step.step_type,
            status: status.into(),
            event: event.into(),
            data: data.to_string(),
        });
    }
    NewRun {
        run_id,
        workflow_run_id: trigger.workflow_run_id.clone(),
        workflow: trigger.workflow.clone(),
        workflow_version: trigger.version,
        categories: ctx.workflow.workflow().categories.clone(),
        recipient: r.recipient.clone(),
        actor: trigger.actor.clone(),
        tenant: trigger.tenant.clone(),
        cancellation_key: trigger.cancellation_key.clone(),
        data: plan.data.to_string(),
        identify: r.identify.clone(),
        status: RunStatus::Completed,
        steps,
        messages,
        resume_at_ms: None,
        resume_state: None,
    }
}
