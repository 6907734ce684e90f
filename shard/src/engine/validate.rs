//! Parsing and validating a workflow definition body (Knock's `{workflow: {...}}`, inner object).
//!
//! [`parse_workflow`] reports every problem it finds, each with a path into the body
//! (`steps[1].branches[0].steps[2].template.subject`), so `herald workflow validate` and the
//! management API can show an author everything at once. It checks, beyond the JSON shape:
//! - the key (3–255 chars of `a-z 0-9 _ -`), name (≤255) and description (≤280);
//! - unique step refs across nesting;
//! - channel steps against the known channels (the key exists, its type matches);
//! - templates (required fields, Liquid syntax) and `update_data` Liquid;
//! - delays (`delay_for` a Duration, `delay_until_field_path` a field path, at least one of them);
//! - conditions (known operators and variable prefixes, required arguments);
//! - branch shape (1–10 branches, the last is the unconditional default, nesting ≤ 5);
//! - that `trigger_data_json_schema` compiles.
//!
//! Step types Herald does not run yet are rejected rather than silently ignored, and so are
//! channel groups, send windows and in-app guides.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::conditions::{parse_group, ConditionGroup};
use super::definition::{
    Branch, BranchStep, ChannelInfo, ChannelStep, ChannelType, DelayStep, Problem, Step, StepKind,
    TimeSpan, TriggerFrequency, UpdateDataStep, Workflow, WorkflowSettings,
};
use super::delay::check_field_path;
use super::template::{JsonTemplate, StepTemplate};

const MAX_BRANCHES: usize = 10;
const MAX_BRANCH_DEPTH: usize = 5;

/// Parses and validates a definition body (see the module docs). `key` comes from the URL.
pub fn parse_workflow(
    key: &str,
    body: &Value,
    channels: &[ChannelInfo],
) -> Result<Workflow, Vec<Problem>> {
    let mut v = Validator {
        channels,
        problems: Vec::new(),
        refs: BTreeSet::new(),
    };
    v.check_key(key);
    let Some(obj) = body.as_object() else {
        v.problems
            .push(Problem::new("", "the workflow must be a JSON object"));
        return Err(v.problems);
    };
    let name = v.string(obj, "", "name", 255, true);
    let description = v.string(obj, "", "description", 280, false);
    let categories = v.categories(obj.get("categories"));
    let steps = match obj.get("steps") {
        Some(Value::Array(items)) => v.steps(items, "steps", 0),
        Some(_) => {
            v.problems.push(Problem::new("steps", "must be an array"));
            Vec::new()
        }
        None => {
            v.problems.push(Problem::new("steps", "is required"));
            Vec::new()
        }
    };
    let conditions = v.conditions(obj.get("conditions"), "conditions");
    let settings = v.settings(obj.get("settings"));
    let trigger_data_json_schema = v.schema(obj.get("trigger_data_json_schema"));
    let trigger_frequency = v.trigger_frequency(obj.get("trigger_frequency"));
    if !v.problems.is_empty() {
        return Err(v.problems);
    }
    Ok(Workflow {
        key: key.to_string(),
        name: name.unwrap_or_default(),
        description,
        categories,
        steps,
        conditions,
        settings,
        trigger_data_json_schema,
        trigger_frequency,
    })
}

struct Validator<'a> {
    channels: &'a [ChannelInfo],
    problems: Vec<Problem>,
    /// Step refs seen so far, to reject duplicates anywhere in the tree.
    refs: BTreeSet<String>,
}

fn at(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

impl Validator<'_> {
    fn problem(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem::new(path, reason));
    }

    fn check_key(&mut self, key: &str) {
        let valid_chars = key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !(3..=255).contains(&key.len()) || !valid_chars {
            self.problem(
                "key",
                "must be 3 to 255 characters of lowercase letters, digits, `_` and `-`",
            );
        }
    }

    /// A string field (`None` when absent or invalid; a problem when required and absent).
    fn string(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        field: &str,
        max_chars: usize,
        required: bool,
    ) -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.problem(at(path, field), "is required");
                }
                None
            }
            Some(Value::String(s)) if required && s.trim().is_empty() => {
                self.problem(at(path, field), "must not be empty");
                None
            }
            Some(Value::String(s)) if s.chars().count() > max_chars => {
                self.problem(
                    at(path, field),
                    format!("must be at most {max_chars} characters"),
                );
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.problem(at(path, field), "must be a string");
                None
            }
        }
    }

    fn categories(&mut self, value: Option<&Value>) -> Vec<String> {
        match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) if !s.is_empty() => out.push(s.to_string()),
                        _ => self.problem(format!("categories[{i}]"), "must be a non-empty string"),
                    }
                }
                out
            }
            Some(_) => {
                self.problem("categories", "must be an array of strings");
                Vec::new()
            }
        }
    }

    fn conditions(&mut self, value: Option<&Value>, path: &str) -> Option<ConditionGroup> {
        match value {
            None | Some(Value::Null) => None,
            Some(v) => parse_group(v, path, &mut self.problems),
        }
    }

    fn flag(&mut self, obj: &Map<String, Value>, path: &str, field: &str) -> bool {
        match obj.get(field) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.problem(at(path, field), "must be a boolean");
                false
            }
        }
    }

    fn settings(&mut self, value: Option<&Value>) -> WorkflowSettings {
        match value {
            None | Some(Value::Null) => WorkflowSettings::default(),
            Some(Value::Object(obj)) => WorkflowSettings {
                is_commercial: self.flag(obj, "settings", "is_commercial"),
                override_preferences: self.flag(obj, "settings", "override_preferences"),
            },
            Some(_) => {
                self.problem("settings", "must be an object");
                WorkflowSettings::default()
            }
        }
    }

    fn schema(&mut self, value: Option<&Value>) -> Option<Value> {
        let schema = match value {
            None | Some(Value::Null) => return None,
            Some(v @ (Value::Object(_) | Value::Bool(_))) => v,
            Some(_) => {
                self.problem("trigger_data_json_schema", "must be a JSON Schema object");
                return None;
            }
        };
        match jsonschema::validator_for(schema) {
            Ok(_) => Some(schema.clone()),
            Err(e) => {
                self.problem(
                    "trigger_data_json_schema",
                    format!("is not a valid JSON Schema: {e}"),
                );
                None
            }
        }
    }

    fn trigger_frequency(&mut self, value: Option<&Value>) -> TriggerFrequency {
        match value {
            None | Some(Value::Null) => TriggerFrequency::default(),
            Some(Value::String(s)) => TriggerFrequency::parse(s).unwrap_or_else(|| {
                self.problem(
                    "trigger_frequency",
                    "must be every_trigger, once_per_recipient or once_per_recipient_per_tenant",
                );
                TriggerFrequency::default()
            }),
            Some(_) => {
                self.problem("trigger_frequency", "must be a string");
                TriggerFrequency::default()
            }
        }
    }

    fn steps(&mut self, items: &[Value], path: &str, depth: usize) -> Vec<Step> {
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.step(item, &format!("{path}[{i}]"), depth))
            .collect()
    }

    fn step(&mut self, value: &Value, path: &str, depth: usize) -> Option<Step> {
        let Some(obj) = value.as_object() else {
            self.problem(path, "must be a step object");
            return None;
        };
        let step_ref = self.string(obj, path, "ref", 255, true);
        if let Some(r) = &step_ref {
            if !self.refs.insert(r.clone()) {
                self.problem(
                    at(path, "ref"),
                    format!("duplicate step ref `{r}`; refs are unique in a workflow"),
                );
            }
        }
        let name = self.string(obj, path, "name", 255, false);
        let description = self.string(obj, path, "description", 280, false);
        let step_type = self.string(obj, path, "type", 255, true);
        let kind = match step_type.as_deref()? {
            "channel" => self.channel_step(obj, path).map(StepKind::Channel),
            "branch" => self.branch_step(obj, path, depth).map(StepKind::Branch),
            "update_data" => self.update_data_step(obj, path).map(StepKind::UpdateData),
            "delay" => self.delay_step(obj, path).map(StepKind::Delay),
            other => {
                self.problem(
                    at(path, "type"),
                    format!("step type `{other}` is not supported by this Herald version"),
                );
                None
            }
        };
        let conditions = match (&kind, obj.get("conditions")) {
            (Some(StepKind::Branch(_)), Some(c)) if !c.is_null() => {
                self.problem(
                    at(path, "conditions"),
                    "branch steps take no conditions; put them on the branches",
                );
                None
            }
            (_, c) => self.conditions(c, &at(path, "conditions")),
        };
        Some(Step {
            step_ref: step_ref?,
            name,
            description,
            conditions,
            kind: kind?,
        })
    }

    fn channel_step(&mut self, obj: &Map<String, Value>, path: &str) -> Option<ChannelStep> {
        if obj.get("channel_group_key").is_some_and(|v| !v.is_null()) {
            self.problem(
                at(path, "channel_group_key"),
                "channel groups are not supported by this Herald version; use channel_key",
            );
        }
        if obj
            .get("send_windows")
            .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()) && !v.is_null())
        {
            self.problem(
                at(path, "send_windows"),
                "send windows are not supported by this Herald version",
            );
        }
        let declared = match obj.get("channel_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match ChannelType::parse(s) {
                Some(t) => Some(t),
                None => {
                    let reason = if s == "in_app_guide" {
                        "in-app guides are not supported by this Herald version".to_string()
                    } else {
                        format!("unknown channel type `{s}`; expected email, sms, push, chat, in_app_feed or http")
                    };
                    self.problem(at(path, "channel_type"), reason);
                    return None;
                }
            },
            Some(_) => {
                self.problem(at(path, "channel_type"), "must be a string");
                return None;
            }
        };
        let channel_key = self.string(obj, path, "channel_key", 255, true)?;
        let Some(channel) = self.channels.iter().find(|c| c.key == channel_key) else {
            self.problem(
                at(path, "channel_key"),
                format!("unknown channel `{channel_key}`"),
            );
            return None;
        };
        let channel_type = declared.unwrap_or(channel.channel_type);
        if channel_type != channel.channel_type {
            self.problem(
                at(path, "channel_key"),
                format!(
                    "channel `{channel_key}` is a {} channel, but the step's channel_type is {channel_type}",
                    channel.channel_type
                ),
            );
            return None;
        }
        let overrides = match obj.get("channel_overrides") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o.clone()),
            Some(_) => {
                self.problem(at(path, "channel_overrides"), "must be an object");
                return None;
            }
        };
        let Some(Value::Object(template)) = obj.get("template") else {
            self.problem(at(path, "template"), "is required and must be an object");
            return None;
        };
        StepTemplate::compile(
            channel_type,
            template,
            overrides.as_ref(),
            path,
            &mut self.problems,
        )?;
        Some(ChannelStep {
            channel_type,
            channel_key,
            template: template.clone(),
            channel_overrides: overrides,
        })
    }

    fn branch_step(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Option<BranchStep> {
        if depth >= MAX_BRANCH_DEPTH {
            self.problem(
                path,
                format!("branch steps nest at most {MAX_BRANCH_DEPTH} deep"),
            );
            return None;
        }
        let Some(Value::Array(items)) = obj.get("branches") else {
            self.problem(at(path, "branches"), "is required and must be an array");
            return None;
        };
        if items.is_empty() || items.len() > MAX_BRANCHES {
            self.problem(
                at(path, "branches"),
                format!("must have 1 to {MAX_BRANCHES} branches, the last one the default"),
            );
            return None;
        }
        let last = items.len() - 1;
        let mut branches = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let bpath = format!("{path}.branches[{i}]");
            let Some(b) = item.as_object() else {
                self.problem(bpath, "must be a branch object");
                continue;
            };
            let name = self.string(b, &bpath, "name", 255, false);
            let conditions = self.conditions(b.get("conditions"), &at(&bpath, "conditions"));
            let has_conditions = b.get("conditions").is_some_and(|c| !c.is_null());
            if i == last && has_conditions {
                self.problem(
                    at(&bpath, "conditions"),
                    "the last branch is the default and takes no conditions",
                );
            } else if i != last && !has_conditions {
                self.problem(
                    at(&bpath, "conditions"),
                    "is required on every branch but the last (the default)",
                );
            }
            let steps = match b.get("steps") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(s)) => self.steps(s, &at(&bpath, "steps"), depth + 1),
                Some(_) => {
                    self.problem(at(&bpath, "steps"), "must be an array");
                    Vec::new()
                }
            };
            let terminates = self.flag(b, &bpath, "terminates");
            branches.push(Branch {
                name,
                conditions,
                steps,
                terminates,
            });
        }
        Some(BranchStep { branches })
    }

    fn update_data_step(&mut self, obj: &Map<String, Value>, path: &str) -> Option<UpdateDataStep> {
        let data = obj.get("settings").and_then(|s| s.get("data"));
        let Some(data) = data.filter(|d| !d.is_null()) else {
            self.problem(at(path, "settings.data"), "is required");
            return None;
        };
        JsonTemplate::compile(data, &at(path, "settings.data"), &mut self.problems)?;
        Some(UpdateDataStep { data: data.clone() })
    }

    fn delay_step(&mut self, obj: &Map<String, Value>, path: &str) -> Option<DelayStep> {
        let spath = at(path, "settings");
        let settings = match obj.get("settings") {
            None | Some(Value::Null) => &Map::new(),
            Some(Value::Object(s)) => s,
            Some(_) => {
                self.problem(spath, "must be an object");
                return None;
            }
        };
        let for_path = at(&spath, "delay_for");
        let delay_for = match settings.get("delay_for") {
            None | Some(Value::Null) => None,
            Some(v) => match TimeSpan::from_json(v) {
                Ok(span) => Some(span),
                Err(reason) => {
                    self.problem(for_path, reason);
                    return None;
                }
            },
        };
        let until_path = at(&spath, "delay_until_field_path");
        let field_path = match settings.get("delay_until_field_path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => match check_field_path(p) {
                Ok(()) => Some(p.clone()),
                Err(reason) => {
                    self.problem(until_path, reason);
                    return None;
                }
            },
            Some(_) => {
                self.problem(until_path, "must be a string");
                return None;
            }
        };
        match (&delay_for, &field_path) {
            (None, None) => {
                self.problem(
                    spath,
                    "a delay step needs delay_for, delay_until_field_path or both",
                );
                return None;
            }
            // Alone, delay_for is a wait; only as an offset may it be zero or negative.
            (Some(span), None) if span.value <= 0 => {
                self.problem(
                    at(&for_path, "value"),
                    "must be a positive integer (or use delay_until_field_path with an offset)",
                );
                return None;
            }
            _ => {}
        }
        Some(DelayStep {
            delay_for,
            delay_until_field_path: field_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::definition::workflow_to_json;
    use serde_json::json;

    fn channels() -> Vec<ChannelInfo> {
        [
            ("in-app", ChannelType::InAppFeed),
            ("email", ChannelType::Email),
            ("sms", ChannelType::Sms),
            ("webhook", ChannelType::Http),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (key, channel_type))| ChannelInfo {
            id: format!("00000000-0000-0000-0000-00000000000{i}"),
            key: key.to_string(),
            channel_type,
            settings: json!({"from_address": "hi@herald.test"}),
            sandbox: false,
        })
        .collect()
    }

    fn full_body() -> Value {
        json!({
            "name": "New comment",
            "description": "Someone commented",
            "categories": ["social"],
            "conditions": {"all": [{"variable": "data.comment", "operator": "not_empty"}]},
            "settings": {"is_commercial": false, "override_preferences": true},
            "trigger_data_json_schema": {"type": "object", "required": ["comment"]},
            "trigger_frequency": "once_per_recipient",
            "steps": [
                {"ref": "feed", "type": "channel", "channel_key": "in-app", "channel_type": "in_app_feed",
                 "template": {"markdown_body": "{{ comment }}"}},
                {"ref": "set", "type": "update_data", "settings": {"data": "{\"n\": 1}"}},
                {"ref": "split", "type": "branch", "branches": [
                    {"name": "vip", "conditions": {"any": [{"variable": "recipient.vip", "operator": "equal_to", "argument": true}]},
                     "steps": [{"ref": "mail", "type": "channel", "channel_key": "email",
                                "template": {"subject": "Hi", "html_body": "<p>{{ comment }}</p>"},
                                "conditions": {"all": [{"variable": "refs.feed.delivery_status", "operator": "equal_to", "argument": "$message.delivered"}]}}],
                     "terminates": true},
                    {"steps": []},
                ]},
            ],
        })
    }

    #[test]
    fn parses_a_full_definition_and_round_trips() {
        let w = parse_workflow("new-comment", &full_body(), &channels()).expect("valid");
        assert_eq!(w.steps.len(), 3);
        assert!(w.settings.override_preferences);
        assert_eq!(w.trigger_frequency, TriggerFrequency::OncePerRecipient);
        let StepKind::Branch(b) = &w.steps[2].kind else {
            panic!("expected a branch step");
        };
        assert!(b.branches[0].terminates);
        let StepKind::Channel(c) = &b.branches[0].steps[0].kind else {
            panic!("expected a channel step");
        };
        // channel_type is taken from the channel when the step leaves it out.
        assert_eq!(c.channel_type, ChannelType::Email);
        let again =
            parse_workflow("new-comment", &workflow_to_json(&w), &channels()).expect("round trip");
        assert_eq!(again, w);
    }

    #[test]
    fn lists_every_problem_with_paths() {
        let body = json!({
            "name": "",
            "description": "x".repeat(300),
            "categories": ["ok", 5],
            "settings": {"is_commercial": "yes"},
            "trigger_data_json_schema": {"type": "not-a-type"},
            "trigger_frequency": "hourly",
            "conditions": {"all": [{"variable": "nope.x", "operator": "equal_to", "argument": 1}]},
            "steps": [
                {"ref": "a", "type": "batch", "settings": {"batch_window": {"unit": "hours", "value": 1}}},
                {"ref": "a", "type": "channel", "channel_key": "email", "channel_type": "sms",
                 "template": {"text_body": "x"}},
                {"ref": "b", "type": "channel", "channel_key": "missing", "template": {}},
                {"ref": "c", "type": "channel", "channel_key": "email",
                 "template": {"subject": "{{ oops ", "html_body": "ok"}},
                {"ref": "d", "type": "channel", "channel_key": "in-app", "template": {},
                 "conditions": {"all": [{"variable": "data.x", "operator": "is_cool"}]}},
                {"ref": "e", "type": "branch", "branches": [
                    {"steps": []},
                    {"conditions": {"all": [{"variable": "data.x", "operator": "exists"}]},
                     "steps": [{"ref": "f", "type": "throttle"}]},
                ]},
                {"ref": "g", "type": "update_data", "settings": {}},
                "not a step",
            ],
        });
        let problems = parse_workflow("Bad Key!", &body, &channels()).expect_err("invalid");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "key",
                "name",
                "description",
                "categories[1]",
                "steps[0].type",
                "steps[1].ref",
                "steps[1].channel_key",
                "steps[2].channel_key",
                "steps[3].template.subject",
                "steps[4].template.markdown_body",
                "steps[4].conditions.all[0].operator",
                "steps[5].branches[0].conditions",
                "steps[5].branches[1].conditions",
                "steps[5].branches[1].steps[0].type",
                "steps[6].settings.data",
                "steps[7]",
                "conditions.all[0].variable",
                "settings.is_commercial",
                "trigger_data_json_schema",
                "trigger_frequency",
            ],
            "{problems:#?}"
        );
        assert_eq!(
            problems[4].reason,
            "step type `batch` is not supported by this Herald version"
        );
        assert!(problems[6].reason.contains("is a email channel"));
    }

    #[test]
    fn rejects_unsupported_channel_features() {
        let body = json!({"name": "x", "steps": [
            {"ref": "a", "type": "channel", "channel_group_key": "g", "channel_key": "email",
             "send_windows": [{"day": "monday", "type": "send"}],
             "template": {"subject": "s", "html_body": "b"}},
            {"ref": "b", "type": "channel", "channel_type": "in_app_guide", "channel_key": "in-app"},
        ]});
        let problems = parse_workflow("abc", &body, &channels()).expect_err("invalid");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "steps[0].channel_group_key",
                "steps[0].send_windows",
                "steps[1].channel_type"
            ]
        );
    }

    #[test]
    fn branch_nesting_is_limited() {
        let mut steps = json!([{"ref": "leaf", "type": "update_data", "settings": {"data": {}}}]);
        for depth in 0..6 {
            steps = json!([{"ref": format!("b{depth}"), "type": "branch",
                            "branches": [{"steps": steps}]}]);
        }
        let problems = parse_workflow("abc", &json!({"name": "x", "steps": steps}), &channels())
            .expect_err("too deep");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].reason.contains("at most 5 deep"));
    }

    #[test]
    fn delay_steps() {
        let body = json!({"name": "x", "steps": [
            {"ref": "fixed", "type": "delay", "settings": {"delay_for": {"unit": "minutes", "value": 30}}},
            {"ref": "until", "type": "delay", "settings": {"delay_until_field_path": "recipient.trial_ends_at"}},
            {"ref": "both", "type": "delay",
             "conditions": {"all": [{"variable": "data.wait", "operator": "equal_to", "argument": true}]},
             "settings": {"delay_for": {"unit": "hours", "value": -1}, "delay_until_field_path": "data.due_at"}},
        ]});
        let w = parse_workflow("abc", &body, &channels()).expect("valid");
        let StepKind::Delay(both) = &w.steps[2].kind else {
            panic!("expected a delay step");
        };
        assert_eq!(
            both.delay_for,
            Some(TimeSpan {
                unit: super::super::definition::TimeUnit::Hours,
                value: -1
            })
        );
        assert!(w.steps[2].conditions.is_some());
        let again = parse_workflow("abc", &workflow_to_json(&w), &channels()).expect("round trip");
        assert_eq!(again, w);

        let body = json!({"name": "x", "steps": [
            {"ref": "a", "type": "delay"},
            {"ref": "b", "type": "delay", "settings": {}},
            {"ref": "c", "type": "delay", "settings": {"delay_for": {"unit": "fortnights", "value": 1}}},
            {"ref": "d", "type": "delay", "settings": {"delay_for": {"unit": "days", "value": 1.5}}},
            {"ref": "e", "type": "delay", "settings": {"delay_for": {"unit": "days", "value": 0}}},
            {"ref": "f", "type": "delay", "settings": {"delay_until_field_path": "data."}},
            {"ref": "g", "type": "delay", "settings": {"delay_until_field_path": 5}},
            {"ref": "h", "type": "delay", "settings": "soon"},
        ]});
        let problems = parse_workflow("abc", &body, &channels()).expect_err("invalid");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "steps[0].settings",
                "steps[1].settings",
                "steps[2].settings.delay_for",
                "steps[3].settings.delay_for",
                "steps[4].settings.delay_for.value",
                "steps[5].settings.delay_until_field_path",
                "steps[6].settings.delay_until_field_path",
                "steps[7].settings",
            ],
            "{problems:#?}"
        );
    }

    #[test]
    fn body_must_be_an_object() {
        let problems = parse_workflow("abc", &json!([]), &channels()).expect_err("invalid");
        assert_eq!(problems.len(), 1);
    }
}
