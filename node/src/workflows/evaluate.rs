//! The shard leader's evaluation of a [`ShardTrigger`] into [`NewRun`]s.
//!
//! Reads the recipients' applied state (properties, channel data, preference sets), applies the
//! trigger's inline identify in memory (the same merge `apply` will make), plans each run with
//! `herald_shard::engine::plan_run`, and mints message ids. Nothing here writes: the returned runs
//! are proposed as one `RunsCommand::Record`.

use std::collections::BTreeMap;

use herald_shard::engine::{
    plan_run, ChannelInfo, CompiledWorkflow, PlannedStatus, PreferenceInputs, ResumePoint,
    RunInput, RunOutcome, StepResult, StepStatus, TriggerFrequency,
};
use herald_shard::ids::{make_id, run_id};
use herald_shard::json_merge::{deep_merge, shallow_merge};
use herald_shard::runs::{load_message, NewMessage, NewRun, RunStatus, RunStep, StoredRun};
use herald_shard::{slot_of, RecipientRef, ShardQuery, ShardReply, StoreRead};
use serde::{Deserialize, Serialize};
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

/// What a paused run keeps to resume: where, and what its trigger carried that lives on other
/// shards (actor and tenant properties).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeState {
    pub point: ResumePoint,
    pub actor_properties: Option<String>,
    pub tenant_properties: Option<String>,
    pub sandbox: bool,
}

/// The parts of a run shared by all its recipients.
struct RunContext<'a> {
    trigger: &'a ShardTrigger,
    data: Value,
    actor: Option<Value>,
    tenant: Option<Value>,
    tenant_default: Option<Value>,
    channels: Vec<ChannelInfo>,
    /// Millisecond time of the workflow run id (UUID v7): the run ids' time.
    wf_ms: u64,
}

impl<'a> RunContext<'a> {
    fn new(ctx: &EvalContext<'_>, trigger: &'a ShardTrigger) -> Result<Self, String> {
        let actor = props_of(trigger.actor.as_ref(), trigger.actor_properties.as_deref());
        let tenant = trigger.tenant.as_ref().and_then(|id| {
            props_of(
                Some(&RecipientRef::tenant(id)),
                trigger.tenant_properties.as_deref(),
            )
        });
        Ok(RunContext {
            trigger,
            data: serde_json::from_str(&trigger.data).map_err(|e| e.to_string())?,
            tenant_default: tenant
                .as_ref()
                .and_then(|t| t.pointer("/settings/preference_set"))
                .cloned(),
            actor,
            tenant,
            channels: channel_infos(ctx.channels),
            wf_ms: uuid_ms(&trigger.workflow_run_id).unwrap_or(ctx.now_ms),
        })
    }
}

/// Evaluate every recipient of `trigger`. Recipients whose state cannot be read fail the whole
/// trigger for this shard (the caller retries it: run ids make that safe).
pub fn evaluate(ctx: &EvalContext<'_>, trigger: &ShardTrigger) -> Result<Vec<NewRun>, String> {
    let run = RunContext::new(ctx, trigger)?;
    trigger
        .recipients
        .iter()
        .map(|r| {
            let key = r.recipient.recipient_key();
            let run_id = run_id(run.wf_ms, slot_of(&key), &trigger.workflow_run_id, &key);
            plan_recipient(ctx, &run, r, run_id, None, &BTreeMap::new())
        })
        .collect()
}

/// Continue a paused run after its delay: the same run id, its stored data, and the current
/// statuses of the messages it already created (for message-status conditions).
pub fn evaluate_resume(ctx: &EvalContext<'_>, stored: &StoredRun) -> Result<NewRun, String> {
    let state: ResumeState = stored
        .resume_state
        .clone()
        .ok_or("paused run without resume state")
        .and_then(|v| serde_json::from_value(v).map_err(|_| "undecodable resume state"))?;
    let trigger = ShardTrigger {
        workflow: stored.workflow.clone(),
        version: stored.workflow_version,
        workflow_run_id: stored.workflow_run_id.clone(),
        recipients: Vec::new(),
        actor: stored.actor.clone(),
        actor_properties: state.actor_properties.clone(),
        tenant: stored.tenant.clone(),
        tenant_properties: state.tenant_properties.clone(),
        data: stored.data.to_string(),
        cancellation_key: stored.cancellation_key.clone(),
        sandbox: state.sandbox,
    };
    let run = RunContext::new(ctx, &trigger)?;
    let mut refs = BTreeMap::new();
    for id in &stored.message_ids {
        if let Some(m) = load_message(ctx.store, id).map_err(|e| e.to_string())? {
            refs.insert(
                m.step_ref.clone(),
                StepStatus {
                    delivery_status: Some(m.status.clone()),
                    engagement: m
                        .engagement_statuses()
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect(),
                },
            );
        }
    }
    let recipient = TriggerRecipient {
        recipient: stored.recipient.clone(),
        identify: None,
    };
    plan_recipient(
        ctx,
        &run,
        &recipient,
        stored.id.clone(),
        Some(&state.point),
        &refs,
    )
}

fn plan_recipient(
    ctx: &EvalContext<'_>,
    run: &RunContext<'_>,
    r: &TriggerRecipient,
    run_id: String,
    resume: Option<&ResumePoint>,
    refs: &BTreeMap<String, StepStatus>,
) -> Result<NewRun, String> {
    let slot = slot_of(&r.recipient.recipient_key());
    let state = recipient_state(ctx.store, r)?;
    let preferences = PreferenceInputs {
        recipient_sets: state.preferences,
        tenant_id: run.trigger.tenant.clone(),
        tenant_default: run.tenant_default.clone(),
        environment_default: None,
    };
    let vars = json!({});
    let plan = plan_run(&RunInput {
        workflow: ctx.workflow,
        recipient: &state.properties,
        actor: run.actor.as_ref(),
        tenant: run.tenant.as_ref(),
        data: &run.data,
        vars: &vars,
        preferences: &preferences,
        channel_data: &state.channel_data,
        channels: &run.channels,
        sandbox: run.trigger.sandbox,
        now_ms: ctx.now_ms,
        resume,
        refs,
    });
    Ok(to_run(ctx, run, r, run_id, slot, plan, &state.properties))
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
    Ok(RecipientState {
        properties: with_identity(properties, &r.recipient),
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
    let m = properties.map(parse_object).unwrap_or_default();
    Some(with_identity(m, r?))
}

/// Properties as templates and conditions see them: plus `id`, and `collection` for objects.
fn with_identity(mut m: Map<String, Value>, r: &RecipientRef) -> Value {
    m.insert("id".into(), json!(r.id));
    if !r.is_user() {
        m.insert("collection".into(), json!(r.collection));
    }
    Value::Object(m)
}

/// Milliseconds of a UUID v7.
fn uuid_ms(id: &str) -> Option<u64> {
    let u = uuid::Uuid::parse_str(id).ok()?;
    let (secs, nanos) = u.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos) / 1_000_000)
}

fn to_run(
    ctx: &EvalContext<'_>,
    run: &RunContext<'_>,
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
    let trigger = run.trigger;
    let mut steps = Vec::new();
    let mut messages = Vec::new();
    let workflow_event = |event: &str, status: &str| RunStep {
        step_ref: String::new(),
        step_type: "workflow".into(),
        status: status.into(),
        event: event.into(),
        data: "{}".into(),
    };
    let (status, resume_at_ms, resume_state) = match &plan.outcome {
        RunOutcome::Completed => (RunStatus::Completed, None, None),
        RunOutcome::ConditionsNotMet => {
            steps.push(workflow_event("workflow_conditions_not_met", "skipped"));
            (RunStatus::Completed, None, None)
        }
        RunOutcome::ResumePointNotFound => {
            steps.push(workflow_event("resume_point_not_found", "error"));
            (RunStatus::Completed, None, None)
        }
        RunOutcome::Paused {
            resume_at_ms,
            resume,
        } => {
            let state = ResumeState {
                point: resume.clone(),
                actor_properties: trigger.actor_properties.clone(),
                tenant_properties: trigger.tenant_properties.clone(),
                sandbox: trigger.sandbox,
            };
            (
                RunStatus::Paused,
                Some(*resume_at_ms),
                serde_json::to_string(&state).ok(),
            )
        }
    };
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
            StepResult::Delayed { until_ms } => ("ok", "delayed", json!({ "until_ms": until_ms })),
            StepResult::SkippedInvalidDelay { reason } => (
                "skipped",
                "step_skipped_invalid_delay",
                json!({ "reason": reason }),
            ),
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
        status,
        steps,
        messages,
        resume_at_ms,
        resume_state,
        once_scope: match ctx.workflow.workflow().trigger_frequency {
            TriggerFrequency::EveryTrigger => None,
            TriggerFrequency::OncePerRecipient => Some(String::new()),
            TriggerFrequency::OncePerRecipientPerTenant => {
                Some(trigger.tenant.clone().unwrap_or_default())
            }
        },
    }
}
