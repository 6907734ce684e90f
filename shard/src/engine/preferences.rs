//! Preference merging and evaluation (Knock §6).
//!
//! Merge order, highest first, done at evaluation time:
//!
//! ```text
//!   no tenant on the trigger:  recipient "default" set  >  environment default
//!   tenant T on the trigger:   recipient "T" set  >  tenant default  >  environment default
//!                              (when neither the recipient nor T has a set: the no-tenant order)
//! ```
//!
//! A key absent at a higher level is taken from the next level down (objects merge key by key;
//! booleans, arrays and `conditions` replace). An object at a lower level marked
//! `"__strategy__": "replace"` (Knock puts it on tenant-default categories, workflows and top-level
//! `channel_types`/`channels`) wins over whatever the higher levels say for that key. Markers are
//! removed from the merged result.
//!
//! Evaluation per channel step: unset means true; the message sends only if every applicable
//! setting is true: the channel (a `channels.<id>` entry beats `channel_types.<type>` at the same
//! level), the workflow entry, every category entry (any false blocks), their nested
//! `channel_types`/`channels`, and `commercial_subscribed` for commercial workflows. A setting may
//! be `{conditions:[...]}`: true only if all pass (AND; a malformed condition fails).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::conditions::{evaluate_condition, parse_list, ConditionContext};
use super::definition::ChannelType;

const STRATEGY: &str = "__strategy__";

/// The preference sets that apply to one recipient's run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreferenceInputs {
    /// The recipient's sets by id: "default" or a tenant id.
    pub recipient_sets: BTreeMap<String, Value>,
    /// The trigger's tenant, if any.
    pub tenant_id: Option<String>,
    /// The tenant's `settings.preference_set`.
    pub tenant_default: Option<Value>,
    /// The environment's default set.
    pub environment_default: Option<Value>,
}

/// What one channel step is, as far as preferences care.
#[derive(Debug, Clone, Copy)]
pub struct PreferenceTarget<'a> {
    pub channel_type: ChannelType,
    pub channel_id: &'a str,
    pub workflow_key: &'a str,
    pub categories: &'a [String],
    pub is_commercial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreferenceDecision {
    Allowed,
    /// `reason` names the setting that blocked, e.g. "channel_type email", "category marketing".
    Blocked {
        reason: String,
    },
}

/// The recipient's effective preference set for this run (see the module docs for the order).
pub fn merged_preferences(inputs: &PreferenceInputs) -> Value {
    let env = inputs.environment_default.as_ref();
    let levels: Vec<&Value> = match &inputs.tenant_id {
        Some(tenant)
            if inputs.recipient_sets.contains_key(tenant) || inputs.tenant_default.is_some() =>
        {
            [
                env,
                inputs.tenant_default.as_ref(),
                inputs.recipient_sets.get(tenant),
            ]
            .into_iter()
            .flatten()
            .collect()
        }
        _ => [env, inputs.recipient_sets.get("default")]
            .into_iter()
            .flatten()
            .collect(),
    };
    let mut merged = Value::Object(Map::new());
    for level in levels {
        overlay(&mut merged, level);
    }
    strip_markers(&mut merged);
    merged
}

/// Puts `higher` over `lower` in place, honouring `__strategy__: replace` on `lower`'s objects.
fn overlay(lower: &mut Value, higher: &Value) {
    if is_replace(lower) {
        return;
    }
    match (lower, higher) {
        (Value::Object(l), Value::Object(h)) => {
            for (k, hv) in h {
                match l.get_mut(k) {
                    Some(lv) => overlay(lv, hv),
                    None => {
                        l.insert(k.clone(), hv.clone());
                    }
                }
            }
        }
        (l, h) => *l = h.clone(),
    }
}

fn is_replace(v: &Value) -> bool {
    v.get(STRATEGY).and_then(Value::as_str) == Some("replace")
}

fn strip_markers(v: &mut Value) {
    if let Value::Object(m) = v {
        m.remove(STRATEGY);
        m.values_mut().for_each(strip_markers);
    }
}

/// Whether the merged set lets `target` send (see the module docs for the rules).
pub fn evaluate_preferences(
    merged: &Value,
    target: &PreferenceTarget,
    ctx: &ConditionContext,
) -> PreferenceDecision {
    if let Some(reason) = channel_block(merged, target, ctx) {
        return PreferenceDecision::Blocked { reason };
    }
    let entries = std::iter::once(("workflow", "workflows", target.workflow_key)).chain(
        target
            .categories
            .iter()
            .map(|c| ("category", "categories", c.as_str())),
    );
    for (label, section, key) in entries {
        let Some(entry) = merged.get(section).and_then(|s| s.get(key)) else {
            continue;
        };
        if !setting_allows(entry, ctx) {
            return PreferenceDecision::Blocked {
                reason: format!("{label} {key}"),
            };
        }
        if let Some(reason) = channel_block(entry, target, ctx) {
            return PreferenceDecision::Blocked {
                reason: format!("{label} {key} {reason}"),
            };
        }
    }
    if target.is_commercial {
        if let Some(setting) = merged.get("commercial_subscribed") {
            if !setting_allows(setting, ctx) {
                return PreferenceDecision::Blocked {
                    reason: "commercial_subscribed".to_string(),
                };
            }
        }
    }
    PreferenceDecision::Allowed
}

/// The channel-level block at one level (`channels.<id>` beats `channel_types.<type>`), if any.
fn channel_block(
    level: &Value,
    target: &PreferenceTarget,
    ctx: &ConditionContext,
) -> Option<String> {
    let channel = level.get("channels").and_then(|c| c.get(target.channel_id));
    let (setting, label) = match channel {
        Some(s) => (s, format!("channel {}", target.channel_id)),
        None => (
            level
                .get("channel_types")
                .and_then(|c| c.get(target.channel_type.as_str()))?,
            format!("channel_type {}", target.channel_type),
        ),
    };
    (!setting_allows(setting, ctx)).then_some(label)
}

/// One setting's verdict: a bool, `{conditions:[...]}` (all must pass), the legacy
/// `{subscribed: bool}`, or an entry object (true unless it says otherwise). Unset/null is true.
fn setting_allows(setting: &Value, ctx: &ConditionContext) -> bool {
    match setting {
        Value::Bool(b) => *b,
        Value::Object(m) => {
            if m.get("subscribed").and_then(Value::as_bool) == Some(false) {
                return false;
            }
            match m.get("conditions") {
                None | Some(Value::Null) => true,
                Some(list) => {
                    let mut problems = Vec::new();
                    match parse_list(list, "conditions", &mut problems) {
                        Some(conds) => conds.iter().all(|c| evaluate_condition(c, ctx)),
                        None => false,
                    }
                }
            }
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::conditions::StepStatus;
    use serde_json::json;

    struct Env {
        data: Value,
        recipient: Value,
        empty: Value,
        refs: BTreeMap<String, StepStatus>,
    }

    impl Env {
        fn new(data: Value) -> Self {
            Env {
                data,
                recipient: json!({"id": "u1"}),
                empty: json!({}),
                refs: BTreeMap::new(),
            }
        }
        fn ctx(&self) -> ConditionContext<'_> {
            ConditionContext {
                data: &self.data,
                recipient: &self.recipient,
                actor: None,
                tenant: None,
                vars: &self.empty,
                workflow: &self.empty,
                run: &self.empty,
                refs: &self.refs,
                now_ms: 0,
            }
        }
    }

    const CATS: &[String] = &[];

    fn target<'a>(channel_type: ChannelType, categories: &'a [String]) -> PreferenceTarget<'a> {
        PreferenceTarget {
            channel_type,
            channel_id: "chan-email",
            workflow_key: "new-comment",
            categories,
            is_commercial: false,
        }
    }

    fn decide(merged: Value, target: &PreferenceTarget) -> PreferenceDecision {
        evaluate_preferences(&merged, target, &Env::new(json!({})).ctx())
    }

    fn blocked(reason: &str) -> PreferenceDecision {
        PreferenceDecision::Blocked {
            reason: reason.to_string(),
        }
    }

    #[test]
    fn unset_means_allowed() {
        let t = target(ChannelType::Email, CATS);
        assert_eq!(decide(json!({}), &t), PreferenceDecision::Allowed);
        assert_eq!(
            decide(json!({"channel_types": {"sms": false}}), &t),
            PreferenceDecision::Allowed
        );
    }

    #[test]
    fn channel_type_false_blocks() {
        let t = target(ChannelType::Email, CATS);
        assert_eq!(
            decide(json!({"channel_types": {"email": false}}), &t),
            blocked("channel_type email")
        );
    }

    #[test]
    fn specific_channel_beats_channel_type() {
        let t = target(ChannelType::Email, CATS);
        let allowed = json!({"channel_types": {"email": false}, "channels": {"chan-email": true}});
        assert_eq!(decide(allowed, &t), PreferenceDecision::Allowed);
        let refused = json!({"channel_types": {"email": true}, "channels": {"chan-email": false}});
        assert_eq!(decide(refused, &t), blocked("channel chan-email"));
    }

    #[test]
    fn workflow_entry_and_its_nested_channel_types() {
        let t = target(ChannelType::Email, CATS);
        assert_eq!(
            decide(json!({"workflows": {"new-comment": false}}), &t),
            blocked("workflow new-comment")
        );
        assert_eq!(
            decide(
                json!({"workflows": {"new-comment": {"channel_types": {"email": false}}}}),
                &t
            ),
            blocked("workflow new-comment channel_type email")
        );
        assert_eq!(
            decide(
                json!({"workflows": {"new-comment": {"channel_types": {"sms": false}}}}),
                &t
            ),
            PreferenceDecision::Allowed
        );
    }

    #[test]
    fn any_false_category_blocks_even_when_channel_types_allow() {
        let cats = vec!["social".to_string(), "marketing".to_string()];
        let t = target(ChannelType::Email, &cats);
        let prefs = json!({
            "channel_types": {"email": true},
            "workflows": {"new-comment": {"channel_types": {"email": true}}},
            "categories": {"social": true, "marketing": false},
        });
        assert_eq!(decide(prefs, &t), blocked("category marketing"));
        let nested = json!({"categories": {"social": {"channels": {"chan-email": false}}}});
        assert_eq!(
            decide(nested, &t),
            blocked("category social channel chan-email")
        );
    }

    #[test]
    fn conditions_are_anded() {
        let t = target(ChannelType::Email, CATS);
        let prefs = json!({"channel_types": {"email": {"conditions": [
            {"variable": "data.priority", "operator": "equal_to", "argument": "high"},
            {"variable": "recipient.id", "operator": "equal_to", "argument": "u1"},
        ]}}});
        let env = Env::new(json!({"priority": "high"}));
        assert_eq!(
            evaluate_preferences(&prefs, &t, &env.ctx()),
            PreferenceDecision::Allowed
        );
        let env = Env::new(json!({"priority": "low"}));
        assert_eq!(
            evaluate_preferences(&prefs, &t, &env.ctx()),
            blocked("channel_type email")
        );
        let malformed = json!({"channel_types": {"email": {"conditions": [{"operator": "nope"}]}}});
        assert_eq!(decide(malformed, &t), blocked("channel_type email"));
    }

    #[test]
    fn commercial_subscribed_only_for_commercial_workflows() {
        let mut t = target(ChannelType::Email, CATS);
        let prefs = json!({"commercial_subscribed": false});
        assert_eq!(decide(prefs.clone(), &t), PreferenceDecision::Allowed);
        t.is_commercial = true;
        assert_eq!(decide(prefs, &t), blocked("commercial_subscribed"));
        assert_eq!(
            decide(json!({"commercial_subscribed": true}), &t),
            PreferenceDecision::Allowed
        );
    }

    fn inputs(
        sets: Value,
        tenant: Option<&str>,
        tenant_default: Option<Value>,
        env: Option<Value>,
    ) -> PreferenceInputs {
        let recipient_sets = sets
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        PreferenceInputs {
            recipient_sets,
            tenant_id: tenant.map(str::to_string),
            tenant_default,
            environment_default: env,
        }
    }

    #[test]
    fn merge_without_tenant_uses_default_set_over_environment() {
        let i = inputs(
            json!({"default": {"channel_types": {"email": false}}, "t1": {"channel_types": {"sms": false}}}),
            None,
            Some(json!({"channel_types": {"push": false}})),
            Some(
                json!({"channel_types": {"email": true, "chat": false}, "categories": {"m": false}}),
            ),
        );
        assert_eq!(
            merged_preferences(&i),
            json!({"channel_types": {"email": false, "chat": false}, "categories": {"m": false}})
        );
    }

    #[test]
    fn merge_with_tenant_uses_tenant_set_then_tenant_default_then_environment() {
        let i = inputs(
            json!({
                "default": {"channel_types": {"email": false}},
                "t1": {"channel_types": {"sms": true}, "workflows": {"w": false}},
            }),
            Some("t1"),
            Some(
                json!({"channel_types": {"sms": false, "push": false}, "categories": {"c": true}}),
            ),
            Some(json!({"channel_types": {"chat": false}, "categories": {"c": false, "d": false}})),
        );
        assert_eq!(
            merged_preferences(&i),
            json!({
                "channel_types": {"chat": false, "sms": true, "push": false},
                "categories": {"c": true, "d": false},
                "workflows": {"w": false},
            })
        );
    }

    #[test]
    fn merge_with_tenant_but_no_tenant_sets_falls_back_to_default_order() {
        let i = inputs(
            json!({"default": {"channel_types": {"email": false}}}),
            Some("t1"),
            None,
            Some(json!({"channel_types": {"sms": false}})),
        );
        assert_eq!(
            merged_preferences(&i),
            json!({"channel_types": {"sms": false, "email": false}})
        );
    }

    #[test]
    fn tenant_replace_strategy_overrides_the_user() {
        let i = inputs(
            json!({"t1": {
                "categories": {"marketing": {"channel_types": {"email": true}}, "social": true},
                "channel_types": {"email": true, "sms": true},
            }}),
            Some("t1"),
            Some(json!({
                "categories": {"marketing": {"__strategy__": "replace", "channel_types": {"email": false}}},
                "channel_types": {"__strategy__": "replace", "email": false},
            })),
            None,
        );
        let merged = merged_preferences(&i);
        assert_eq!(
            merged,
            json!({
                "categories": {"marketing": {"channel_types": {"email": false}}, "social": true},
                "channel_types": {"email": false},
            })
        );
        let cats = vec!["marketing".to_string()];
        assert_eq!(
            decide(merged, &target(ChannelType::Email, &cats)),
            blocked("channel_type email")
        );
    }
}
