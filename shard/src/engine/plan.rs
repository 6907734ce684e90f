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
//! ```
//!
//! Each channel step leaves a status under its ref for later conditions
//! (`refs.<ref>.delivery_status`): the planned status (`queued`, `delivered`, `not_sent`) or
//! `skipped` when it produced no message for any reason, render failures included.
//!
//! Pure: time is `RunInput::now_ms`; the same input always gives the same plan.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::compile::CompiledWorkflow;
use super::conditions::{evaluate, ConditionContext, StepStatus};
use super::definition::{BranchStep, ChannelInfo, ChannelStep, ChannelType, Step, StepKind};
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub outcome: RunOutcome,
    pub steps: Vec<StepRecord>,
    /// The run's data after `update_data` steps.
    pub data: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Completed,
    /// The workflow-level conditions were false: the run halts and nothing is sent.
    ConditionsNotMet,
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
        refs: BTreeMap::new(),
        records: Vec::new(),
        preferences: None,
        globals: None,
    };
    if let Some(c) = &w.conditions {
        if !evaluate(c, &run.ctx()) {
            return RunPlan {
                outcome: RunOutcome::ConditionsNotMet,
                steps: Vec::new(),
                data: run.data,
            };
        }
    }
    run.steps(&w.steps, &[]);
    RunPlan {
        outcome: RunOutcome::Completed,
        steps: run.records,
        data: run.data,
    }
}

/// Whether the walk goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Terminate,
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

    fn steps(&mut self, steps: &[Step], branch_path: &[String]) -> Flow {
        for step in steps {
            if self.step(step, branch_path) == Flow::Terminate {
                return Flow::Terminate;
            }
        }
        Flow::Continue
    }

    fn step(&mut self, step: &Step, branch_path: &[String]) -> Flow {
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
            StepKind::Branch(b) => self.branch(step, b, branch_path),
            StepKind::UpdateData(_) => {
                let result = self.update_data(step);
                self.record(step, branch_path, result);
                Flow::Continue
            }
        }
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

    fn branch(&mut self, step: &Step, b: &BranchStep, branch_path: &[String]) -> Flow {
        let chosen = b.branches.iter().enumerate().find(|(_, br)| {
            br.conditions
                .as_ref()
                .is_none_or(|c| evaluate(c, &self.ctx()))
        });
        let Some((index, branch)) = chosen else {
            self.record(step, branch_path, StepResult::SkippedConditions);
            return Flow::Continue;
        };
        let name = branch.display_name(index);
        self.record(
            step,
            branch_path,
            StepResult::BranchTaken {
                branch: name.clone(),
            },
        );
        let mut nested = branch_path.to_vec();
        nested.push(name);
        let flow = self.steps(&branch.steps, &nested);
        if branch.terminates {
            Flow::Terminate
        } else {
            flow
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
        ChannelType::Chat => {
            let webhook = data.and_then(|d| d.get("incoming_webhook")).is_some()
                || channel
                    .settings
                    .get("webhook_url")
                    .and_then(Value::as_str)
                    .is_some_and(|u| !u.is_empty());
            if non_empty("connections") || webhook {
                Ok(())
            } else {
                Err(format!(
                    "recipient has no chat connection for channel `{}`",
                    channel.key
                ))
            }
        }
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
    }

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
            }
        }

        fn plan(&self, w: &CompiledWorkflow) -> RunPlan {
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
                now_ms: 1_700_000_000_000,
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
            let channels = [ChannelInfo {
                id: "c".into(), key: "in-app".into(), channel_type: ChannelType::InAppFeed,
                settings: json!({}), sandbox: false,
            }];
            let _ = ConditionGroup::from_json(&group);
            if let Ok(w) = parse_workflow("abc", &json!({"name": "x", "steps": [update, step]}), &channels) {
                if let Ok(w) = compile(w) {
                    let (prefs, cd) = (PreferenceInputs::default(), BTreeMap::new());
                    let _ = w.validate_data(&data);
                    let _ = plan_run(&RunInput {
                        workflow: &w, recipient: &data, actor: Some(&data), tenant: None,
                        data: &data, vars: &data, preferences: &prefs, channel_data: &cd,
                        channels: &channels, sandbox: false, now_ms: 0,
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
