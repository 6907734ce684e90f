//! The workflow definition model: what a parsed, validated workflow looks like in memory, and its
//! Knock JSON shape for GET responses ([`workflow_to_json`]).
//!
//! Invariants (established by [`crate::engine::parse_workflow`], relied on by the planner):
//! - step refs are unique across the whole workflow, nested branch steps included;
//! - every channel step names a known channel whose type equals the step's `channel_type`;
//! - every branch step has at least one branch and its last branch has no conditions (the default).
//! - every delay step has `delay_for`, `delay_until_field_path` or both; `delay_for` alone is positive.
//!
//! Templates stay the JSON object the author wrote (`ChannelStep::template`), so a GET returns
//! exactly what was pushed; [`crate::engine::compile`] turns them into parsed Liquid once per version.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::conditions::ConditionGroup;

/// The channel types a channel step can send through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    Email,
    Sms,
    Push,
    Chat,
    InAppFeed,
    Http,
}

impl ChannelType {
    pub const ALL: [ChannelType; 6] = [
        ChannelType::Email,
        ChannelType::Sms,
        ChannelType::Push,
        ChannelType::Chat,
        ChannelType::InAppFeed,
        ChannelType::Http,
    ];

    /// Knock's wire name (`in_app_feed`, not `InAppFeed`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelType::Email => "email",
            ChannelType::Sms => "sms",
            ChannelType::Push => "push",
            ChannelType::Chat => "chat",
            ChannelType::InAppFeed => "in_app_feed",
            ChannelType::Http => "http",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for ChannelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A channel record as the engine needs it (from the meta group). Secrets never reach the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelInfo {
    /// UUID; preference sets and channel data are keyed by it.
    pub id: String,
    /// What workflow steps name in `channel_key`, e.g. "in-app", "email", "webhook".
    pub key: String,
    pub channel_type: ChannelType,
    /// Non-secret settings, e.g. email `{"from_address","from_name","reply_to_address"}`.
    pub settings: Value,
    /// A sandbox channel records messages as `not_sent` instead of delivering them.
    pub sandbox: bool,
}

/// One thing wrong with a definition or with trigger data: where (`steps[2].template.subject`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// A workflow definition (Knock §5.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub categories: Vec<String>,
    pub steps: Vec<Step>,
    /// Trigger conditions: false halts the run before any step.
    pub conditions: Option<ConditionGroup>,
    pub settings: WorkflowSettings,
    pub trigger_data_json_schema: Option<Value>,
    pub trigger_frequency: TriggerFrequency,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkflowSettings {
    /// Commercial workflows also check the recipient's `commercial_subscribed` preference.
    pub is_commercial: bool,
    /// Skip preference evaluation entirely (transactional messages such as password resets).
    pub override_preferences: bool,
}

/// How often one recipient may run this workflow; enforced by `apply` (a run in a scope that
/// already ran is not recorded), not by the planner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TriggerFrequency {
    #[default]
    EveryTrigger,
    OncePerRecipient,
    OncePerRecipientPerTenant,
}

impl TriggerFrequency {
    pub fn as_str(&self) -> &'static str {
        match self {
            TriggerFrequency::EveryTrigger => "every_trigger",
            TriggerFrequency::OncePerRecipient => "once_per_recipient",
            TriggerFrequency::OncePerRecipientPerTenant => "once_per_recipient_per_tenant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            TriggerFrequency::EveryTrigger,
            TriggerFrequency::OncePerRecipient,
            TriggerFrequency::OncePerRecipientPerTenant,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }
}

/// One step of a workflow (Knock §5.2). Fields common to every step live here; the rest in `kind`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `ref` in Knock's JSON; unique in the workflow.
    pub step_ref: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// False skips the step. Always `None` on branch steps (their branches carry conditions).
    pub conditions: Option<ConditionGroup>,
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Channel(ChannelStep),
    Branch(BranchStep),
    UpdateData(UpdateDataStep),
    Delay(DelayStep),
}

impl Step {
    /// Knock's `type` of the step.
    pub fn type_str(&self) -> &'static str {
        match self.kind {
            StepKind::Channel(_) => "channel",
            StepKind::Branch(_) => "branch",
            StepKind::UpdateData(_) => "update_data",
            StepKind::Delay(_) => "delay",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStep {
    pub channel_type: ChannelType,
    pub channel_key: String,
    /// The template object as written (§5.4); Liquid in its string fields.
    pub template: Map<String, Value>,
    /// Per-step overrides of channel settings, e.g. email `from_address`.
    pub channel_overrides: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BranchStep {
    /// Evaluated in order; the last one has no conditions and is the default.
    pub branches: Vec<Branch>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub name: Option<String>,
    pub conditions: Option<ConditionGroup>,
    pub steps: Vec<Step>,
    /// End the whole run after this branch's steps.
    pub terminates: bool,
}

impl Branch {
    /// The name recorded in `branch_path` and `BranchTaken`: the author's name, else `default` for
    /// the unconditional branch, else `branch_<n>` (1-based).
    pub fn display_name(&self, index: usize) -> String {
        match (&self.name, &self.conditions) {
            (Some(name), _) => name.clone(),
            (None, None) => "default".to_string(),
            (None, Some(_)) => format!("branch_{}", index + 1),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateDataStep {
    /// Knock's `settings.data`: a JSON object, or a string holding JSON or Liquid that renders to a
    /// JSON object.
    pub data: Value,
}

/// A `delay` step (Knock `settings.delay_for` / `settings.delay_until_field_path`); at least one is set.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayStep {
    /// Alone: wait this long from when the step is reached. With a field path: an offset from the
    /// resolved time (negative values wait until before it).
    pub delay_for: Option<TimeSpan>,
    /// A path to an ISO timestamp or a `{unit, value}` duration, as written: `data.send_at`,
    /// `recipient.trial_ends_at` (prefixes `data recipient actor tenant vars`); a path without a
    /// known prefix is read from `data`.
    pub delay_until_field_path: Option<String>,
}

/// Knock's Duration `{unit, value}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpan {
    pub unit: TimeUnit,
    pub value: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    /// Calendar months (UTC); the day is clamped to the month's last day.
    Months,
}

impl TimeUnit {
    pub const ALL: [TimeUnit; 6] = [
        TimeUnit::Seconds,
        TimeUnit::Minutes,
        TimeUnit::Hours,
        TimeUnit::Days,
        TimeUnit::Weeks,
        TimeUnit::Months,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            TimeUnit::Seconds => "seconds",
            TimeUnit::Minutes => "minutes",
            TimeUnit::Hours => "hours",
            TimeUnit::Days => "days",
            TimeUnit::Weeks => "weeks",
            TimeUnit::Months => "months",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

impl TimeSpan {
    /// Parses Knock's `{unit, value}`; `value` must be an integer (a numeric string is accepted).
    pub fn from_json(v: &Value) -> Result<TimeSpan, String> {
        let Some(obj) = v.as_object() else {
            return Err("must be an object {unit, value}".into());
        };
        let unit = match obj.get("unit") {
            Some(Value::String(s)) => TimeUnit::parse(s).ok_or_else(|| {
                format!(
                    "unknown unit `{s}`; expected seconds, minutes, hours, days, weeks or months"
                )
            })?,
            _ => return Err("`unit` is required and must be a string".into()),
        };
        let value = match obj.get("value") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or("`value` is required and must be an integer")?;
        Ok(TimeSpan { unit, value })
    }

    pub fn to_json(&self) -> Value {
        json!({"unit": self.unit.as_str(), "value": self.value})
    }
}

/// The workflow back in Knock's JSON shape; [`crate::engine::parse_workflow`] accepts it unchanged.
pub fn workflow_to_json(w: &Workflow) -> Value {
    let mut out = Map::new();
    out.insert("key".into(), json!(w.key));
    out.insert("name".into(), json!(w.name));
    if let Some(d) = &w.description {
        out.insert("description".into(), json!(d));
    }
    out.insert("categories".into(), json!(w.categories));
    out.insert("steps".into(), steps_to_json(&w.steps));
    if let Some(c) = &w.conditions {
        out.insert("conditions".into(), c.to_json());
    }
    out.insert(
        "settings".into(),
        json!({
            "is_commercial": w.settings.is_commercial,
            "override_preferences": w.settings.override_preferences,
        }),
    );
    if let Some(s) = &w.trigger_data_json_schema {
        out.insert("trigger_data_json_schema".into(), s.clone());
    }
    out.insert(
        "trigger_frequency".into(),
        json!(w.trigger_frequency.as_str()),
    );
    Value::Object(out)
}

fn steps_to_json(steps: &[Step]) -> Value {
    Value::Array(steps.iter().map(step_to_json).collect())
}

fn step_to_json(step: &Step) -> Value {
    let mut out = Map::new();
    out.insert("ref".into(), json!(step.step_ref));
    out.insert("type".into(), json!(step.type_str()));
    if let Some(n) = &step.name {
        out.insert("name".into(), json!(n));
    }
    if let Some(d) = &step.description {
        out.insert("description".into(), json!(d));
    }
    if let Some(c) = &step.conditions {
        out.insert("conditions".into(), c.to_json());
    }
    match &step.kind {
        StepKind::Channel(c) => {
            out.insert("channel_type".into(), json!(c.channel_type.as_str()));
            out.insert("channel_key".into(), json!(c.channel_key));
            out.insert("template".into(), Value::Object(c.template.clone()));
            if let Some(o) = &c.channel_overrides {
                out.insert("channel_overrides".into(), Value::Object(o.clone()));
            }
        }
        StepKind::Branch(b) => {
            let branches = b
                .branches
                .iter()
                .map(|br| {
                    let mut o = Map::new();
                    if let Some(n) = &br.name {
                        o.insert("name".into(), json!(n));
                    }
                    if let Some(c) = &br.conditions {
                        o.insert("conditions".into(), c.to_json());
                    }
                    o.insert("steps".into(), steps_to_json(&br.steps));
                    o.insert("terminates".into(), json!(br.terminates));
                    Value::Object(o)
                })
                .collect();
            out.insert("branches".into(), Value::Array(branches));
        }
        StepKind::UpdateData(u) => {
            out.insert("settings".into(), json!({ "data": u.data }));
        }
        StepKind::Delay(d) => {
            let mut settings = Map::new();
            if let Some(span) = &d.delay_for {
                settings.insert("delay_for".into(), span.to_json());
            }
            if let Some(path) = &d.delay_until_field_path {
                settings.insert("delay_until_field_path".into(), json!(path));
            }
            out.insert("settings".into(), Value::Object(settings));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_type_names_round_trip() {
        for t in ChannelType::ALL {
            assert_eq!(ChannelType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).ok(), Some(json!(t.as_str())));
        }
        assert_eq!(ChannelType::parse("in_app_guide"), None);
    }

    #[test]
    fn trigger_frequency_names_round_trip() {
        for f in [
            TriggerFrequency::EveryTrigger,
            TriggerFrequency::OncePerRecipient,
            TriggerFrequency::OncePerRecipientPerTenant,
        ] {
            assert_eq!(TriggerFrequency::parse(f.as_str()), Some(f));
        }
    }
}
