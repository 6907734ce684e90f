//! The planner: walks one workflow for one recipient and says what each step does.
//!
//! ```text
//!   workflow conditions false ───────────────────────────────> ConditionsNotMet, no steps
//!   for each step, in order:
//!     step conditions false ─────────────────────────────────> SkippedConditions
//!     channel:  preferences (merged once per run; skipped when settings.override_preferences)
//!               -> addressing (email, phone, push tokens, chat connection)
//!               -> render -> Message(Queued | Delivered for in_app_feed | NotSent when sandboxed)
//!     branch:   first branch whose conditions pass (the last is the default) -> BranchTaken,
//!               its steps recorded with the branch name appended to branch_path;
//!               `terminates` ends the run after them
//!     update_data: merge the rendered object into `data` (top-level keys replace) -> DataUpdated
//!     delay:    resolve the end time (see [`super::delay`]); invalid -> SkippedInvalidDelay, go on;
//!               otherwise Delayed { until_ms }, and if it is after now_ms the plan stops there:
//!               outcome Paused { resume_at_ms, resume: ResumePoint }
//! ```
//!
//! Pausing and resuming. A paused run is stored by the node with [`RunPlan::data`] and its
//! [`ResumePoint`] (serde JSON). At `resume_at_ms` the node plans again with `RunInput::resume`
//! set, the stored data as `data`, and `refs` built from the run's stored messages:
//!
//! ```text
//!   steps: [feed, split: branch [vip: [wait(delay), mail], default: []], after]
//!   first plan:  feed, split(vip), wait ──> Paused { resume: {step_ref: wait,
//!                                              branches: [{step: 1, branch: 0}], step: 0, branch_path: [vip]} }
//!   resume plan: mail (branch_path [vip]), then after   (workflow conditions are not evaluated again)
//! ```
//!
//! The walk continues after the delay step in its step list, then after each enclosing branch
//! step in turn (unless that branch terminates the run). If the definition changed and the indexes
//! no longer lead to the delay step, it is looked up by its ref (refs are unique); if it is gone the
//! outcome is [`RunOutcome::ResumePointNotFound`] and nothing runs.
//!
//! Each channel step leaves a status under its ref for later conditions
//! (`refs.<ref>.delivery_status`): the planned status (`queued`, `delivered`, `not_sent`) or
//! `skipped` when it produced no message for any reason, render failures included. These go on
//! top of `RunInput::refs`, which carries the current statuses of steps from before a pause.
//!
//! Pure: time is `RunInput::now_ms`; the same input always gives the same plan.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::compile::CompiledWorkflow;
use super::conditions::{evaluate, ConditionContext, StepStatus};
use super::definition::{
    BranchStep, ChannelInfo, ChannelStep, ChannelType, DelayStep, Step, StepKind,
};
use super::delay::{delay_until, DelayRoots};
use super::liquid_json::Globals;
use super::preferences::{
    evaluate_preferences, merged_preferences, PreferenceDecision, PreferenceInputs,
    PreferenceTarget,
};
use super::template::{globals, RenderError};

/// Everything the planner needs about one recipient's run.
#[derive(Debug, Clone, Copy)]
pub struct RunInput<'a> {
    pub workflow: &'a CompiledWorkflow,
    /// Flat user properties incl. "id" (objects: `{"id","collection",...props}`).
    pub recipient: &'a Value,
    pub actor: Option<&'a Value>,
    /// Tenant properties incl. "id" and "settings".
    pub tenant: Option<&'a Value>,
    pub data: &'a Value,
    pub vars: &'a Value,
    pub preferences: &'a PreferenceInputs,
    /// Channel id -> the recipient's channel data `data` object for that channel.
    pub channel_data: &'a BTreeMap<String, Value>,
    pub channels: &'a [ChannelInfo],
    /// The trigger's `settings.sandbox_mode`: every message ends `not_sent`.
    pub sandbox: bool,
    pub now_ms: u64,
    /// Where a paused run continues; `None` starts at the first step. On resume the workflow's
    /// trigger conditions are not evaluated again, and `data` is the run's data at the pause.
    pub resume: Option<&'a ResumePoint>,
    /// Current statuses of steps that already ran (before a pause), by step ref, so conditions
    /// after a delay see delivery and engagement as they are now. Empty on a fresh run.
    pub refs: &'a BTreeMap<String, StepStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub outcome: RunOutcome,
    pub steps: Vec<StepRecord>,
    /// The run's data after `update_data` steps.
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Completed,
    /// The workflow-level conditions were false: the run halts and nothing is sent.
    ConditionsNotMet,
    /// The walk reached a delay ending after `now_ms`. The plan's steps (and `data`) are those
    /// before it; plan again at `resume_at_ms` with `RunInput::resume = Some(&resume)`.
    Paused {
        resume_at_ms: u64,
        resume: ResumePoint,
    },
    /// `RunInput::resume` names a delay step this workflow no longer has; nothing ran.
    ResumePointNotFound,
}

/// Where a paused run continues: after the delay step `step_ref`, found by `branches` then `step`.
/// Stored by the node as JSON between the pause and the resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The delay step the run paused at (also the fallback when the indexes no longer match).
    pub step_ref: String,
    /// The branch steps the delay sits in, outermost first; empty for a top-level delay.
    pub branches: Vec<BranchFrame>,
    /// The delay step's index in the innermost step list (the taken branch's steps, or the
    /// workflow's steps when `branches` is empty).
    pub step: usize,
    /// The names of the branches taken, as in [`StepRecord::branch_path`]; one per frame.
    pub branch_path: Vec<String>,
}

/// One branch step on the way to a [`ResumePoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchFrame {
    /// The branch step's index in its step list.
    pub step: usize,
    /// The index of the branch that was taken.
    pub branch: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub step_ref: String,
    pub step_type: String,
    /// Names of the branches taken to reach this step, outermost first.
    pub branch_path: Vec<String>,
    pub result: StepResult,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    Message(PlannedMessage),
    /// The step's conditions were false.
    SkippedConditions,
    SkippedPreferences {
        reason: String,
    },
    /// No email, phone number, push token or chat connection for this recipient.
    SkippedNoRecipientAddress {
        reason: String,
    },
    /// The step failed (a render error, or its channel is no longer configured); the run records
    /// the error and continues.
    TemplateError {
        error: String,
    },
    DataUpdated,
    BranchTaken {
        branch: String,
    },
    /// A delay step resolved to `until_ms`. After `now_ms` the run paused here
    /// ([`RunOutcome::Paused`]); otherwise the time had passed and the run went straight on.
    Delayed {
        until_ms: u64,
    },
    /// The delay's time could not be resolved (a missing or invalid field): Knock skips the step
    /// and logs the error, and the run goes on.
    SkippedInvalidDelay {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMessage {
    pub channel_id: String,
    pub channel_key: String,
    pub channel_type: ChannelType,
    pub status: PlannedStatus,
    /// The rendered content (shapes in [`super::template`]).
    pub content: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedStatus {
    /// Needs a provider send.
    Queued,
    /// In-app feed messages are delivered on commit.
    Delivered,
    /// Sandbox channel or sandbox trigger.
    NotSent,
}

impl PlannedStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PlannedStatus::Queued => "queued",
            PlannedStatus::Delivered => "delivered",
            PlannedStatus::NotSent => "not_sent",
        }
    }
}

/// Walks the workflow for one recipient (see the module docs).
pub fn plan_run(input: &RunInput) -> RunPlan {
    let w = input.workflow.workflow();
    let mut run = Run {
        input,
        workflow_json: json!({"key": w.key, "name": w.name, "categories": w.categories}),
        run_json: json!({"total_activities": 1, "total_actors": u8::from(input.actor.is_some())}),
        data: input.data.clone(),
        refs: input.refs.clone(),
        records: Vec::new(),
        preferences: None,
        globals: None,
        frames: Vec::new(),
        pause: None,
    };
    match input.resume {
        None => {
            if let Some(c) = &w.conditions {
                if !evaluate(c, &run.ctx()) {
                    return run.finish(RunOutcome::ConditionsNotMet);
                }
            }
            run.steps(&w.steps, 0, &[]);
        }
        Some(point) => {
            let Some(at) = locate(&w.steps, point) else {
                return run.finish(RunOutcome::ResumePointNotFound);
            };
            run.resume(&w.steps, &at.branches, &at.names, at.step, &[]);
        }
    }
    let outcome = match run.pause.take() {
        Some((resume_at_ms, resume)) => RunOutcome::Paused {
            resume_at_ms,
            resume,
        },
        None => RunOutcome::Completed,
    };
    run.finish(outcome)
}

/// A resume point checked against the workflow: every frame is a branch step with that branch,
/// and `step` is the delay step.
struct Located {
    branches: Vec<BranchFrame>,
    names: Vec<String>,
    step: usize,
}

/// Finds where `point` resumes: at its indexes when they still lead to its delay step, else
/// wherever a delay step with its ref now is.
fn locate(steps: &[Step], point: &ResumePoint) -> Option<Located> {
    let mut list = steps;
    let mut names = Vec::new();
    let mut by_index = true;
    for (depth, frame) in point.branches.iter().enumerate() {
        let branch = match list.get(frame.step).map(|s| &s.kind) {
            Some(StepKind::Branch(b)) => b.branches.get(frame.branch),
            _ => None,
        };
        let Some(branch) = branch else {
            by_index = false;
            break;
        };
        names.push(
            point
                .branch_path
                .get(depth)
                .cloned()
                .unwrap_or_else(|| branch.display_name(frame.branch)),
        );
        list = &branch.steps;
    }
    let is_the_delay =
        |s: &Step| s.step_ref == point.step_ref && matches!(s.kind, StepKind::Delay(_));
    if by_index && list.get(point.step).is_some_and(is_the_delay) {
        return Some(Located {
            branches: point.branches.clone(),
            names,
            step: point.step,
        });
    }
    let mut found = Located {
        branches: Vec::new(),
        names: Vec::new(),
        step: 0,
    };
    find_delay(steps, &point.step_ref, &mut found).then_some(found)
}

/// Depth-first search for the delay step `step_ref`, filling `at` with its location.
fn find_delay(steps: &[Step], step_ref: &str, at: &mut Located) -> bool {
    for (i, step) in steps.iter().enumerate() {
        match &step.kind {
            StepKind::Delay(_) if step.step_ref == step_ref => {
                at.step = i;
                return true;
            }
            StepKind::Branch(b) => {
                for (j, branch) in b.branches.iter().enumerate() {
                    at.branches.push(BranchFrame { step: i, branch: j });
                    at.names.push(branch.display_name(j));
                    if find_delay(&branch.steps, step_ref, at) {
                        return true;
                    }
                    at.branches.pop();
                    at.names.pop();
                }
            }
            _ => {}
        }
    }
    false
}

/// Whether the walk goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// A branch with `terminates` ended the run.
    Terminate,
    /// A delay paused the run; `Run::pause` says until when and where to resume.
    Pause,
}

/// The mutable state of one walk.
struct Run<'i, 'a> {
    input: &'i RunInput<'a>,
    workflow_json: Value,
    run_json: Value,
    data: Value,
    refs: BTreeMap<String, StepStatus>,
    records: Vec<StepRecord>,
    /// Merged on first use, once per run.
    preferences: Option<Value>,
    /// Built on first render; dropped when `data` changes.
    globals: Option<Globals>,
    /// The branch steps the walk is inside, outermost first (becomes `ResumePoint::branches`).
    frames: Vec<BranchFrame>,
    /// Set by the delay step that paused the walk.
    pause: Option<(u64, ResumePoint)>,
}

impl Run<'_, '_> {
    fn ctx(&self) -> ConditionContext<'_> {
        ConditionContext {
            data: &self.data,
            recipient: self.input.recipient,
            actor: self.input.actor,
            tenant: self.input.tenant,
            vars: self.input.vars,
            workflow: &self.workflow_json,
            run: &self.run_json,
            refs: &self.refs,
            now_ms: self.input.now_ms,
        }
    }

    fn globals(&mut self) -> &Globals {
        let i = self.input;
        let (data, workflow) = (&self.data, &self.workflow_json);
        self.globals
            .get_or_insert_with(|| globals(i.recipient, i.actor, i.tenant, data, i.vars, workflow))
    }

    fn record(&mut self, step: &Step, branch_path: &[String], result: StepResult) {
        self.records.push(StepRecord {
            step_ref: step.step_ref.clone(),
            step_type: step.type_str().to_string(),
            branch_path: branch_path.to_vec(),
            result,
        });
    }

    fn finish(self, outcome: RunOutcome) -> RunPlan {
        RunPlan {
            outcome,
            steps: self.records,
            data: self.data,
        }
    }

    /// Walks `steps[from..]`.
    fn steps(&mut self, steps: &[Step], from: usize, branch_path: &[String]) -> Flow {
        for (index, step) in steps.iter().enumerate().skip(from) {
            let flow = self.step(step, index, branch_path);
            if flow != Flow::Continue {
                return flow;
            }
        }
        Flow::Continue
    }

    /// Walks down `frames` (checked by [`locate`]) to the delay step at `delay_index`, then runs
    /// what follows it at every level on the way back up.
    fn resume(
        &mut self,
        steps: &[Step],
        frames: &[BranchFrame],
        names: &[String],
        delay_index: usize,
        branch_path: &[String],
    ) -> Flow {
        let Some((frame, inner_frames)) = frames.split_first() else {
            return self.steps(steps, delay_index + 1, branch_path);
        };
        let branch = match steps.get(frame.step).map(|s| &s.kind) {
            Some(StepKind::Branch(b)) => b.branches.get(frame.branch),
            _ => None,
        };
        let (Some(branch), Some((name, inner_names))) = (branch, names.split_first()) else {
            return Flow::Continue;
        };
        let mut nested = branch_path.to_vec();
        nested.push(name.clone());
        self.frames.push(*frame);
        let flow = self.resume(
            &branch.steps,
            inner_frames,
            inner_names,
            delay_index,
            &nested,
        );
        self.frames.pop();
        match flow {
            Flow::Continue if branch.terminates => Flow::Terminate,
            Flow::Continue => self.steps(steps, frame.step + 1, branch_path),
            other => other,
        }
    }

    fn step(&mut self, step: &Step, index: usize, branch_path: &[String]) -> Flow {
        if let Some(c) = &step.conditions {
            if !evaluate(c, &self.ctx()) {
                if matches!(step.kind, StepKind::Channel(_)) {
                    self.set_status(step, "skipped");
                }
                self.record(step, branch_path, StepResult::SkippedConditions);
                return Flow::Continue;
            }
        }
        match &step.kind {
            StepKind::Channel(c) => {
                let result = self.channel(step, c);
                let status = match &result {
                    StepResult::Message(m) => m.status.as_str(),
                    _ => "skipped",
                };
                self.set_status(step, status);
                self.record(step, branch_path, result);
                Flow::Continue
            }
            StepKind::Branch(b) => self.branch(step, index, b, branch_path),
            StepKind::UpdateData(_) => {
                let result = self.update_data(step);
                self.record(step, branch_path, result);
                Flow::Continue
            }
            StepKind::Delay(d) => self.delay(step, index, d, branch_path),
        }
    }

    fn delay(&mut self, step: &Step, index: usize, d: &DelayStep, branch_path: &[String]) -> Flow {
        let i = self.input;
        let roots = DelayRoots {
            data: &self.data,
            recipient: i.recipient,
            actor: i.actor,
            tenant: i.tenant,
            vars: i.vars,
        };
        let until = match delay_until(d, &roots, i.now_ms) {
            Ok(until) => until,
            Err(reason) => {
                self.record(
                    step,
                    branch_path,
                    StepResult::SkippedInvalidDelay { reason },
                );
                return Flow::Continue;
            }
        };
        let until_ms = u64::try_from(until.max(0)).unwrap_or(u64::MAX);
        self.record(step, branch_path, StepResult::Delayed { until_ms });
        if until <= i128::from(i.now_ms) {
            return Flow::Continue;
        }
        self.pause = Some((
            until_ms,
            ResumePoint {
                step_ref: step.step_ref.clone(),
                branches: self.frames.clone(),
                step: index,
                branch_path: branch_path.to_vec(),
            },
        ));
        Flow::Pause
    }

    fn set_status(&mut self, step: &Step, status: &str) {
        self.refs.insert(
            step.step_ref.clone(),
            StepStatus {
                delivery_status: Some(status.to_string()),
                engagement: Vec::new(),
            },
        );
    }

    fn branch(
        &mut self,
        step: &Step,
        index: usize,
        b: &BranchStep,
        branch_path: &[String],
    ) -> Flow {
        let chosen = b.branches.iter().enumerate().find(|(_, br)| {
            br.conditions
                .as_ref()
                .is_none_or(|c| evaluate(c, &self.ctx()))
        });
        let Some((branch_index, branch)) = chosen else {
            self.record(step, branch_path, StepResult::SkippedConditions);
            return Flow::Continue;
        };
        let name = branch.display_name(branch_index);
        self.record(
            step,
            branch_path,
            StepResult::BranchTaken {
                branch: name.clone(),
            },
        );
        let mut nested = branch_path.to_vec();
        nested.push(name);
        self.frames.push(BranchFrame {
            step: index,
            branch: branch_index,
        });
        let flow = self.steps(&branch.steps, 0, &nested);
        self.frames.pop();
        match flow {
            Flow::Continue if branch.terminates => Flow::Terminate,
            other => other,
        }
    }

    fn update_data(&mut self, step: &Step) -> StepResult {
        let Some(update) = self.input.workflow.data_update(&step.step_ref) else {
            return StepResult::TemplateError {
                error: format!("step `{}` was not compiled", step.step_ref),
            };
        };
        let rendered = update.render_object(self.globals(), "settings.data");
        match rendered {
            Ok(patch) => {
                if !self.data.is_object() {
                    self.data = json!({});
                }
                if let Value::Object(data) = &mut self.data {
                    crate::json_merge::shallow_merge(data, patch);
                }
                self.globals = None;
                StepResult::DataUpdated
            }
            Err(e) => StepResult::TemplateError {
                error: render_error_text(e),
            },
        }
    }

    fn channel(&mut self, step: &Step, c: &ChannelStep) -> StepResult {
        let input = self.input;
        let Some(channel) = input.channels.iter().find(|ch| ch.key == c.channel_key) else {
            return StepResult::TemplateError {
                error: format!("channel `{}` is not configured", c.channel_key),
            };
        };
        let w = input.workflow.workflow();
        if !w.settings.override_preferences {
            let merged = self
                .preferences
                .get_or_insert_with(|| merged_preferences(input.preferences));
            let target = PreferenceTarget {
                channel_type: c.channel_type,
                channel_id: &channel.id,
                workflow_key: &w.key,
                categories: &w.categories,
                is_commercial: w.settings.is_commercial,
            };
            let merged = &*merged;
            let ctx = ConditionContext {
                data: &self.data,
                recipient: input.recipient,
                actor: input.actor,
                tenant: input.tenant,
                vars: input.vars,
                workflow: &self.workflow_json,
                run: &self.run_json,
                refs: &self.refs,
                now_ms: input.now_ms,
            };
            if let PreferenceDecision::Blocked { reason } =
                evaluate_preferences(merged, &target, &ctx)
            {
                return StepResult::SkippedPreferences { reason };
            }
        }
        if let Err(reason) = check_address(c.channel_type, channel, input.channel_data) {
            return StepResult::SkippedNoRecipientAddress { reason };
        }
        let Some(template) = input.workflow.template(&step.step_ref) else {
            return StepResult::TemplateError {
                error: format!("step `{}` was not compiled", step.step_ref),
            };
        };
        let rendered = template.render(self.globals(), input.recipient, channel);
        match rendered {
            Ok(content) => StepResult::Message(PlannedMessage {
                channel_id: channel.id.clone(),
                channel_key: channel.key.clone(),
                channel_type: c.channel_type,
                status: if input.sandbox || channel.sandbox {
                    PlannedStatus::NotSent
                } else if c.channel_type == ChannelType::InAppFeed {
                    PlannedStatus::Delivered
                } else {
                    PlannedStatus::Queued
                },
                content,
            }),
            Err(RenderError::NoAddress(reason)) => StepResult::SkippedNoRecipientAddress { reason },
            Err(e) => StepResult::TemplateError {
                error: render_error_text(e),
            },
        }
    }
}

fn render_error_text(e: RenderError) -> String {
    match e {
        RenderError::NoAddress(s) | RenderError::Template(s) => s,
    }
}

/// Whether the recipient can be reached on `channel` through its channel data. Email and SMS
/// addresses are checked while rendering (an SMS template may supply its own `to_number`).
fn check_address(
    channel_type: ChannelType,
    channel: &ChannelInfo,
    channel_data: &BTreeMap<String, Value>,
) -> Result<(), String> {
    let data = channel_data.get(&channel.id);
    let non_empty = |key: &str| {
        data.and_then(|d| d.get(key))
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    match channel_type {
        ChannelType::Push if !(non_empty("tokens") || non_empty("devices")) => Err(format!(
            "recipient has no push tokens for channel `{}`",
            channel.key
        )),
        // The chat providers send to `connections[]` (access token + channel, or an incoming
        // webhook entry): without one there is no address.
        ChannelType::Chat if !non_empty("connections") => Err(format!(
            "recipient has no chat connection for channel `{}`",
            channel.key
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{compile, parse_workflow};

    fn channels() -> Vec<ChannelInfo> {
        [
            ("in-app", ChannelType::InAppFeed, false),
            ("email", ChannelType::Email, false),
            ("sms", ChannelType::Sms, false),
            ("push", ChannelType::Push, false),
            ("slack", ChannelType::Chat, false),
            ("webhook", ChannelType::Http, false),
            ("sandbox-email", ChannelType::Email, true),
        ]
        .into_iter()
        .map(|(key, channel_type, sandbox)| ChannelInfo {
            id: format!("id-{key}"),
            key: key.to_string(),
            channel_type,
            settings: json!({"from_address": "hi@herald.test", "from_name": "Herald"}),
            sandbox,
        })
        .collect()
    }

    fn workflow(body: Value) -> CompiledWorkflow {
        let parsed = parse_workflow("new-comment", &body, &channels())
            .unwrap_or_else(|p| panic!("invalid workflow: {p:#?}"));
        compile(parsed).unwrap_or_else(|p| panic!("compile: {p:#?}"))
    }

    struct Case {
        recipient: Value,
        actor: Value,
        data: Value,
        vars: Value,
        preferences: PreferenceInputs,
        channel_data: BTreeMap<String, Value>,
        channels: Vec<ChannelInfo>,
        sandbox: bool,
        refs: BTreeMap<String, StepStatus>,
    }

    const NOW: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    impl Case {
        fn new() -> Self {
            Case {
                recipient: json!({"id": "u1", "name": "Ada", "email": "ada@example.com"}),
                actor: json!({"id": "a1", "name": "Bob"}),
                data: json!({"comment": "Nice!"}),
                vars: json!({}),
                preferences: PreferenceInputs::default(),
                channel_data: BTreeMap::new(),
                channels: channels(),
                sandbox: false,
                refs: BTreeMap::new(),
            }
        }

        fn plan(&self, w: &CompiledWorkflow) -> RunPlan {
            self.plan_at(w, NOW, None)
        }

        fn plan_at(
            &self,
            w: &CompiledWorkflow,
            now_ms: u64,
            resume: Option<&ResumePoint>,
        ) -> RunPlan {
            plan_run(&RunInput {
                workflow: w,
                recipient: &self.recipient,
                actor: Some(&self.actor),
                tenant: None,
                data: &self.data,
                vars: &self.vars,
                preferences: &self.preferences,
                channel_data: &self.channel_data,
                channels: &self.channels,
                sandbox: self.sandbox,
                now_ms,
                resume,
                refs: &self.refs,
            })
        }
    }

    fn feed_step(step_ref: &str) -> Value {
        json!({"ref": step_ref, "type": "channel", "channel_key": "in-app",
               "template": {"markdown_body": "{{ actor.name }}: {{ comment }}"}})
    }

    fn email_step(step_ref: &str, channel_key: &str) -> Value {
        json!({"ref": step_ref, "type": "channel", "channel_key": channel_key,
               "template": {"subject": "Hi {{ recipient.name }}", "html_body": "<p>{{ comment }}</p>"}})
    }

    fn results(plan: &RunPlan) -> Vec<(&str, &StepResult)> {
        plan.steps
            .iter()
            .map(|s| (s.step_ref.as_str(), &s.result))
            .collect()
    }

    fn status(r: &StepResult) -> Option<PlannedStatus> {
        match r {
            StepResult::Message(m) => Some(m.status),
            _ => None,
        }
    }

    #[test]
    fn feed_and_email_messages() {
        let w = workflow(
            json!({"name": "x", "steps": [feed_step("feed"), email_step("mail", "email")]}),
        );
        let plan = Case::new().plan(&w);
        assert_eq!(plan.outcome, RunOutcome::Completed);
        let StepResult::Message(feed) = &plan.steps[0].result else {
            panic!("expected a message: {plan:#?}");
        };
        assert_eq!(feed.status, PlannedStatus::Delivered);
        assert_eq!(feed.channel_id, "id-in-app");
        assert_eq!(feed.content["blocks"][0]["content"], "Bob: Nice!");
        let StepResult::Message(mail) = &plan.steps[1].result else {
            panic!("expected a message: {plan:#?}");
        };
        assert_eq!(mail.status, PlannedStatus::Queued);
        assert_eq!(mail.content["subject_line"], "Hi Ada");
        assert_eq!(mail.content["from"], "Herald <hi@herald.test>");
        assert_eq!(plan.steps[1].step_type, "channel");
    }

    #[test]
    fn workflow_conditions_false_halts_the_run() {
        let w = workflow(json!({"name": "x", "steps": [feed_step("feed")],
            "conditions": {"all": [{"variable": "data.comment", "operator": "equal_to", "argument": "other"}]}}));
        let plan = Case::new().plan(&w);
        assert_eq!(plan.outcome, RunOutcome::ConditionsNotMet);
        assert!(plan.steps.is_empty());
    }

    #[test]
    fn step_conditions_and_refs_to_earlier_steps() {
        let mut second = email_step("mail", "email");
        second["conditions"] = json!({"all": [
            {"variable": "refs.feed.delivery_status", "operator": "equal_to", "argument": "$message.skipped"}]});
        let mut third = email_step("mail2", "email");
        third["conditions"] = json!({"all": [
            {"variable": "refs.mail.delivery_status", "operator": "equal_to", "argument": "$message.queued"}]});
        let mut first = feed_step("feed");
        first["conditions"] =
            json!({"all": [{"variable": "data.urgent", "operator": "equal_to", "argument": true}]});
        let w = workflow(json!({"name": "x", "steps": [first, second, third]}));
        let plan = Case::new().plan(&w);
        let r = results(&plan);
        assert_eq!(r[0], ("feed", &StepResult::SkippedConditions));
        assert_eq!(status(r[1].1), Some(PlannedStatus::Queued));
        assert_eq!(status(r[2].1), Some(PlannedStatus::Queued));
    }

    #[test]
    fn preferences_skip_and_override() {
        let body = json!({"name": "x", "categories": ["social"],
                          "steps": [feed_step("feed"), email_step("mail", "email")]});
        let mut case = Case::new();
        case.preferences.recipient_sets.insert(
            "default".into(),
            json!({"channel_types": {"email": false}, "categories": {"social": {"channel_types": {"in_app_feed": true}}}}),
        );
        let plan = case.plan(&workflow(body.clone()));
        assert_eq!(
            status(&plan.steps[0].result),
            Some(PlannedStatus::Delivered)
        );
        assert_eq!(
            plan.steps[1].result,
            StepResult::SkippedPreferences {
                reason: "channel_type email".into()
            }
        );
        let mut overriding = body;
        overriding["settings"] = json!({"override_preferences": true});
        let plan = case.plan(&workflow(overriding));
        assert_eq!(status(&plan.steps[1].result), Some(PlannedStatus::Queued));
    }

    #[test]
    fn branches_record_the_path_and_terminate() {
        let w = workflow(json!({"name": "x", "steps": [
            {"ref": "split", "type": "branch", "branches": [
                {"name": "vip", "conditions": {"all": [{"variable": "recipient.vip", "operator": "equal_to", "argument": true}]},
                 "steps": [email_step("vip_mail", "email")], "terminates": true},
                {"steps": [
                    {"ref": "inner", "type": "branch", "branches": [
                        {"name": "deep", "conditions": {"all": [{"variable": "data.comment", "operator": "exists"}]},
                         "steps": [feed_step("deep_feed")]},
                        {"steps": []},
                    ]},
                ]},
            ]},
            feed_step("after"),
        ]}));
        let mut case = Case::new();
        let plan = case.plan(&w);
        let summary: Vec<(&str, Vec<String>)> = plan
            .steps
            .iter()
            .map(|s| (s.step_ref.as_str(), s.branch_path.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("split", vec![]),
                ("inner", vec!["default".to_string()]),
                ("deep_feed", vec!["default".to_string(), "deep".to_string()]),
                ("after", vec![]),
            ]
        );
        assert_eq!(
            plan.steps[0].result,
            StepResult::BranchTaken {
                branch: "default".into()
            }
        );
        case.recipient["vip"] = json!(true);
        let plan = case.plan(&w);
        let refs: Vec<&str> = plan.steps.iter().map(|s| s.step_ref.as_str()).collect();
        assert_eq!(refs, ["split", "vip_mail"], "terminates ends the run");
        assert_eq!(plan.steps[1].branch_path, ["vip"]);
    }

    #[test]
    fn sandbox_channel_and_sandbox_trigger() {
        let w = workflow(
            json!({"name": "x", "steps": [email_step("a", "sandbox-email"), email_step("b", "email"), feed_step("c")]}),
        );
        let mut case = Case::new();
        let plan = case.plan(&w);
        assert_eq!(status(&plan.steps[0].result), Some(PlannedStatus::NotSent));
        assert_eq!(status(&plan.steps[1].result), Some(PlannedStatus::Queued));
        case.sandbox = true;
        let plan = case.plan(&w);
        for s in &plan.steps {
            assert_eq!(status(&s.result), Some(PlannedStatus::NotSent));
        }
    }

    #[test]
    fn missing_addresses_skip_the_step() {
        let w = workflow(json!({"name": "x", "steps": [
            email_step("mail", "email"),
            {"ref": "text", "type": "channel", "channel_key": "sms", "template": {"text_body": "hi"}},
            {"ref": "push", "type": "channel", "channel_key": "push", "template": {"title": "t", "text_body": "b"}},
            {"ref": "chat", "type": "channel", "channel_key": "slack", "template": {"markdown_body": "m"}},
            feed_step("feed"),
        ]}));
        let mut case = Case::new();
        case.recipient = json!({"id": "u2"});
        let plan = case.plan(&w);
        for s in &plan.steps[..4] {
            assert!(
                matches!(s.result, StepResult::SkippedNoRecipientAddress { .. }),
                "{s:?}"
            );
        }
        assert_eq!(
            status(&plan.steps[4].result),
            Some(PlannedStatus::Delivered)
        );

        case.recipient = json!({"id": "u2", "phone_number": "+1555"});
        case.channel_data
            .insert("id-push".into(), json!({"tokens": ["tok"]}));
        case.channel_data.insert(
            "id-slack".into(),
            json!({"connections": [{"incoming_webhook": {"url": "https://hooks.slack.test/x"}}]}),
        );
        let plan = case.plan(&w);
        let statuses: Vec<Option<PlannedStatus>> =
            plan.steps.iter().map(|s| status(&s.result)).collect();
        assert_eq!(
            statuses,
            [
                None,
                Some(PlannedStatus::Queued),
                Some(PlannedStatus::Queued),
                Some(PlannedStatus::Queued),
                Some(PlannedStatus::Delivered),
            ]
        );
    }

    #[test]
    fn update_data_feeds_later_steps_and_template_errors_continue() {
        let w = workflow(json!({"name": "x", "steps": [
            {"ref": "set", "type": "update_data", "settings": {"data": "{\"comment\": \"{{ comment | upcase }}\", \"n\": 2}"}},
            {"ref": "bad", "type": "channel", "channel_key": "in-app",
             "template": {"markdown_body": "{{ n | divided_by: 0 }}"}},
            {"ref": "check", "type": "update_data",
             "conditions": {"all": [{"variable": "data.n", "operator": "equal_to", "argument": 2}]},
             "settings": {"data": {"checked": true}}},
            feed_step("feed"),
            {"ref": "broken", "type": "update_data", "settings": {"data": "not json {{ n }}"}},
        ]}));
        let plan = Case::new().plan(&w);
        assert_eq!(plan.steps[0].result, StepResult::DataUpdated);
        assert!(
            matches!(&plan.steps[1].result, StepResult::TemplateError { error } if error.contains("markdown_body")),
            "{:?}",
            plan.steps[1].result
        );
        assert_eq!(plan.steps[2].result, StepResult::DataUpdated);
        let StepResult::Message(m) = &plan.steps[3].result else {
            panic!("expected a message");
        };
        assert_eq!(m.content["blocks"][0]["content"], "Bob: NICE!");
        assert!(matches!(
            plan.steps[4].result,
            StepResult::TemplateError { .. }
        ));
        assert_eq!(
            plan.data,
            json!({"comment": "NICE!", "n": 2, "checked": true})
        );
    }

    #[test]
    fn channel_removed_after_validation_is_a_step_error() {
        let w = workflow(json!({"name": "x", "steps": [feed_step("feed")]}));
        let mut case = Case::new();
        case.channels.retain(|c| c.key != "in-app");
        let plan = case.plan(&w);
        assert!(matches!(
            plan.steps[0].result,
            StepResult::TemplateError { .. }
        ));
    }

    fn delay_step(step_ref: &str, settings: Value) -> Value {
        json!({"ref": step_ref, "type": "delay", "settings": settings})
    }

    const HOUR: u64 = 3_600_000;

    fn refs_of(plan: &RunPlan) -> Vec<&str> {
        plan.steps.iter().map(|s| s.step_ref.as_str()).collect()
    }

    fn paused(plan: &RunPlan) -> (u64, ResumePoint) {
        match &plan.outcome {
            RunOutcome::Paused {
                resume_at_ms,
                resume,
            } => (*resume_at_ms, resume.clone()),
            other => panic!("expected a pause, got {other:?}: {plan:#?}"),
        }
    }

    #[test]
    fn pauses_at_a_top_level_delay_and_resumes_after_it() {
        let w = workflow(json!({"name": "x", "steps": [
            {"ref": "set", "type": "update_data", "settings": {"data": {"step": 1}}},
            feed_step("feed"),
            delay_step("wait", json!({"delay_for": {"unit": "hours", "value": 1}})),
            email_step("mail", "email"),
        ]}));
        let mut case = Case::new();
        let plan = case.plan(&w);
        assert_eq!(refs_of(&plan), ["set", "feed", "wait"]);
        assert_eq!(
            plan.steps[2].result,
            StepResult::Delayed {
                until_ms: NOW + HOUR
            }
        );
        let (at, resume) = paused(&plan);
        assert_eq!(at, NOW + HOUR);
        assert_eq!(
            resume,
            ResumePoint {
                step_ref: "wait".into(),
                branches: vec![],
                step: 2,
                branch_path: vec![],
            }
        );
        assert_eq!(plan.data["step"], 1, "data at the pause includes updates");

        case.data = plan.data.clone();
        let resumed = case.plan_at(&w, at, Some(&resume));
        assert_eq!(resumed.outcome, RunOutcome::Completed);
        assert_eq!(refs_of(&resumed), ["mail"]);
        assert_eq!(
            status(&resumed.steps[0].result),
            Some(PlannedStatus::Queued)
        );
        assert_eq!(resumed.data, plan.data);
    }

    #[test]
    fn pauses_inside_branches_and_resumes_through_them() {
        let vip = json!({"all": [{"variable": "recipient.vip", "operator": "equal_to", "argument": true}]});
        let steps = |terminates: bool| {
            json!([
                feed_step("first"),
                {"ref": "split", "type": "branch", "branches": [
                    {"name": "vip", "conditions": vip, "terminates": terminates, "steps": [
                        delay_step("wait1", json!({"delay_for": {"unit": "minutes", "value": 10}})),
                        {"ref": "inner", "type": "branch", "branches": [
                            {"conditions": {"all": [{"variable": "data.comment", "operator": "exists"}]},
                             "steps": [
                                delay_step("wait2", json!({"delay_for": {"unit": "days", "value": 1}})),
                                feed_step("deep_feed"),
                             ]},
                            {"steps": []},
                        ]},
                        email_step("vip_mail", "email"),
                    ]},
                    {"steps": [feed_step("regular")]},
                ]},
                feed_step("after"),
            ])
        };
        let w = workflow(json!({"name": "x", "steps": steps(false)}));
        let mut case = Case::new();
        case.recipient["vip"] = json!(true);

        let first = case.plan(&w);
        assert_eq!(refs_of(&first), ["first", "split", "wait1"]);
        let (at1, point1) = paused(&first);
        assert_eq!(at1, NOW + 10 * 60_000);
        assert_eq!(point1.branches, [BranchFrame { step: 1, branch: 0 }]);
        assert_eq!(
            (point1.step, point1.branch_path.clone()),
            (0, vec!["vip".into()])
        );

        let second = case.plan_at(&w, at1, Some(&point1));
        assert_eq!(refs_of(&second), ["inner", "wait2"]);
        assert_eq!(second.steps[0].branch_path, ["vip"]);
        assert_eq!(
            second.steps[1].branch_path,
            ["vip".to_string(), "branch_1".to_string()]
        );
        let (at2, point2) = paused(&second);
        assert_eq!(at2, at1 + 24 * HOUR);
        assert_eq!(
            point2.branches,
            [
                BranchFrame { step: 1, branch: 0 },
                BranchFrame { step: 1, branch: 0 }
            ]
        );
        assert_eq!(point2.step, 0);

        let third = case.plan_at(&w, at2, Some(&point2));
        assert_eq!(third.outcome, RunOutcome::Completed);
        let walked: Vec<(&str, Vec<String>)> = third
            .steps
            .iter()
            .map(|s| (s.step_ref.as_str(), s.branch_path.clone()))
            .collect();
        assert_eq!(
            walked,
            [
                ("deep_feed", vec!["vip".to_string(), "branch_1".to_string()]),
                ("vip_mail", vec!["vip".to_string()]),
                ("after", vec![]),
            ]
        );

        // A terminating branch ends the run after its remaining steps, on resume too.
        let w = workflow(json!({"name": "x", "steps": steps(true)}));
        let third = case.plan_at(&w, at2, Some(&point2));
        assert_eq!(refs_of(&third), ["deep_feed", "vip_mail"]);
        assert_eq!(third.outcome, RunOutcome::Completed);
    }

    #[test]
    fn delay_until_field_path_timestamps_durations_and_invalid_values() {
        let w = workflow(json!({"name": "x", "steps": [
            delay_step("wait", json!({"delay_until_field_path": "data.send_at"})),
            feed_step("feed"),
        ]}));
        let mut case = Case::new();
        let at = |plan: &RunPlan| paused(plan).0;

        case.data["send_at"] = json!("2023-11-15T09:00:00Z");
        assert_eq!(at(&case.plan(&w)), 1_700_038_800_000);

        case.data["send_at"] = json!({"unit": "hours", "value": 3});
        assert_eq!(at(&case.plan(&w)), NOW + 3 * HOUR);

        // A time already past continues at once.
        case.data["send_at"] = json!("2023-11-14T00:00:00Z");
        let plan = case.plan(&w);
        assert_eq!(plan.outcome, RunOutcome::Completed);
        assert_eq!(
            plan.steps[0].result,
            StepResult::Delayed {
                until_ms: 1_699_920_000_000
            }
        );
        assert_eq!(
            status(&plan.steps[1].result),
            Some(PlannedStatus::Delivered)
        );

        // With both, delay_for offsets the resolved time: an hour before it.
        let offset = workflow(json!({"name": "x", "steps": [
            delay_step("wait", json!({"delay_until_field_path": "recipient.renews_at",
                                       "delay_for": {"unit": "hours", "value": -1}})),
        ]}));
        case.recipient["renews_at"] = json!("2023-11-20T12:00:00Z");
        assert_eq!(at(&case.plan(&offset)), 1_700_481_600_000 - HOUR);

        for invalid in [
            json!(null),
            json!("whenever"),
            json!({"frequency": "daily"}),
        ] {
            case.data["send_at"] = invalid.clone();
            let plan = case.plan(&w);
            assert_eq!(plan.outcome, RunOutcome::Completed, "{invalid}");
            assert!(
                matches!(&plan.steps[0].result, StepResult::SkippedInvalidDelay { reason } if reason.contains("data.send_at")),
                "{invalid}: {:?}",
                plan.steps[0].result
            );
            assert_eq!(refs_of(&plan), ["wait", "feed"]);
        }
    }

    #[test]
    fn delay_conditions_false_skip_the_delay() {
        let w = workflow(json!({"name": "x", "steps": [
            {"ref": "wait", "type": "delay", "settings": {"delay_for": {"unit": "days", "value": 1}},
             "conditions": {"all": [{"variable": "data.urgent", "operator": "not_equal_to", "argument": true}]}},
            feed_step("feed"),
        ]}));
        let mut case = Case::new();
        assert!(matches!(case.plan(&w).outcome, RunOutcome::Paused { .. }));
        case.data["urgent"] = json!(true);
        let plan = case.plan(&w);
        assert_eq!(plan.outcome, RunOutcome::Completed);
        assert_eq!(plan.steps[0].result, StepResult::SkippedConditions);
        assert_eq!(refs_of(&plan), ["wait", "feed"]);
    }

    #[test]
    fn conditions_after_a_delay_see_current_message_statuses() {
        let mut reminder = email_step("reminder", "email");
        reminder["conditions"] = json!({"all": [
            {"variable": "refs.feed.engagement_status", "operator": "not_contains", "argument": "$message.read"},
            {"variable": "refs.feed.delivery_status", "operator": "equal_to", "argument": "$message.delivered"},
        ]});
        let w = workflow(json!({"name": "x", "steps": [
            feed_step("feed"),
            delay_step("wait", json!({"delay_for": {"unit": "days", "value": 1}})),
            reminder,
        ]}));
        let mut case = Case::new();
        let (at, point) = paused(&case.plan(&w));
        let feed_status = |engagement: &[&str]| StepStatus {
            delivery_status: Some("delivered".into()),
            engagement: engagement.iter().map(|e| e.to_string()).collect(),
        };

        case.refs.insert("feed".into(), feed_status(&["seen"]));
        let unread = case.plan_at(&w, at, Some(&point));
        assert_eq!(status(&unread.steps[0].result), Some(PlannedStatus::Queued));

        case.refs
            .insert("feed".into(), feed_status(&["seen", "read"]));
        let read = case.plan_at(&w, at, Some(&point));
        assert_eq!(read.steps[0].result, StepResult::SkippedConditions);
    }

    #[test]
    fn resume_does_not_evaluate_workflow_conditions_again() {
        let w = workflow(json!({"name": "x",
        "conditions": {"all": [{"variable": "data.comment", "operator": "equal_to", "argument": "Nice!"}]},
        "steps": [
            {"ref": "set", "type": "update_data", "settings": {"data": {"comment": "changed"}}},
            delay_step("wait", json!({"delay_for": {"unit": "seconds", "value": 30}})),
            feed_step("feed"),
        ]}));
        let mut case = Case::new();
        let plan = case.plan(&w);
        let (at, point) = paused(&plan);
        case.data = plan.data;
        let resumed = case.plan_at(&w, at, Some(&point));
        assert_eq!(resumed.outcome, RunOutcome::Completed);
        assert_eq!(refs_of(&resumed), ["feed"]);
        let StepResult::Message(m) = &resumed.steps[0].result else {
            panic!("expected a message: {resumed:#?}");
        };
        assert_eq!(m.content["blocks"][0]["content"], "Bob: changed");
    }

    #[test]
    fn resume_points_round_trip_through_json() {
        let point = ResumePoint {
            step_ref: "wait".into(),
            branches: vec![BranchFrame { step: 2, branch: 1 }],
            step: 0,
            branch_path: vec!["default".into()],
        };
        let text = serde_json::to_value(&point).expect("serializes");
        assert_eq!(
            text,
            json!({"step_ref": "wait", "branches": [{"step": 2, "branch": 1}], "step": 0,
                   "branch_path": ["default"]})
        );
        let back: ResumePoint = serde_json::from_value(text).expect("deserializes");
        assert_eq!(back, point);
    }

    #[test]
    fn resume_points_follow_a_moved_delay_or_report_it_missing() {
        let w = workflow(json!({"name": "x", "steps": [
            feed_step("feed"),
            {"ref": "split", "type": "branch", "branches": [
                {"name": "vip", "conditions": {"all": [{"variable": "recipient.vip", "operator": "equal_to", "argument": true}]},
                 "steps": [delay_step("wait", json!({"delay_for": {"unit": "hours", "value": 1}})), feed_step("vip_feed")]},
                {"steps": []},
            ]},
            feed_step("after"),
        ]}));
        let case = Case::new();
        // Recorded against an older version where `wait` was the first top-level step.
        let stale = ResumePoint {
            step_ref: "wait".into(),
            branches: vec![],
            step: 0,
            branch_path: vec![],
        };
        let plan = case.plan_at(&w, NOW, Some(&stale));
        assert_eq!(refs_of(&plan), ["vip_feed", "after"]);
        assert_eq!(plan.steps[0].branch_path, ["vip"]);

        let gone = ResumePoint {
            step_ref: "feed".into(),
            ..stale
        };
        let plan = case.plan_at(&w, NOW, Some(&gone));
        assert_eq!(plan.outcome, RunOutcome::ResumePointNotFound);
        assert!(plan.steps.is_empty());
    }

    #[test]
    fn planning_is_deterministic() {
        let w = workflow(
            json!({"name": "x", "steps": [feed_step("feed"), email_step("mail", "email")]}),
        );
        let case = Case::new();
        assert_eq!(case.plan(&w), case.plan(&w));
    }
}

/// No input may panic the engine: arbitrary JSON in every user-controlled position.
#[cfg(test)]
mod never_panics {
    use super::*;
    use crate::engine::{compile, parse_workflow, ConditionGroup};
    use proptest::prelude::*;

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z{}%|.\\[\\]0-9 \"$_-]{0,24}".prop_map(Value::String),
            prop_oneof![
                Just("data.a"),
                Just("recipient.email"),
                Just("refs.x.delivery_status"),
                Just("$message.read"),
                Just("7 days ago"),
                Just("2024-01-01T00:00:00Z"),
                Just("{{ a.b.c }}"),
                Just("{% for x in data.a %}{{ x }}{% endfor %}"),
                Just("{{ data.a | divided_by: 0 }}"),
            ]
            .prop_map(|s| json!(s)),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn conditions_and_templates(
            variable in json_leaf(),
            operator in prop::sample::select(
                crate::engine::Operator::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>()),
            argument in json_value(),
            data in json_value(),
            body in json_leaf(),
        ) {
            let group = json!({"all": [{"variable": variable, "operator": operator, "argument": argument}]});
            let step = json!({"ref": "s", "type": "channel", "channel_key": "in-app",
                              "conditions": group, "template": {"markdown_body": body}});
            let update = json!({"ref": "u", "type": "update_data", "settings": {"data": body}});
            let delay = json!({"ref": "d", "type": "delay",
                               "settings": {"delay_until_field_path": "data.a", "delay_for": {"unit": "months", "value": 1}}});
            let channels = [ChannelInfo {
                id: "c".into(), key: "in-app".into(), channel_type: ChannelType::InAppFeed,
                settings: json!({}), sandbox: false,
            }];
            let _ = ConditionGroup::from_json(&group);
            if let Ok(w) = parse_workflow("abc", &json!({"name": "x", "steps": [update, step, delay]}), &channels) {
                if let Ok(w) = compile(w) {
                    let (prefs, cd) = (PreferenceInputs::default(), BTreeMap::new());
                    let _ = w.validate_data(&data);
                    let _ = plan_run(&RunInput {
                        workflow: &w, recipient: &data, actor: Some(&data), tenant: None,
                        data: &data, vars: &data, preferences: &prefs, channel_data: &cd,
                        channels: &channels, sandbox: false, now_ms: 0, resume: None, refs: &BTreeMap::new(),
                    });
                }
            }
        }

        #[test]
        fn arbitrary_definition_bodies(body in json_value(), key in "[a-z-]{0,6}") {
            let _ = parse_workflow(&key, &body, &[]);
            let _ = parse_workflow(&key, &json!({"name": "x", "steps": [body]}), &[]);
        }
    }
}
