//! Knock conditions (§5.3): parsing from and to Knock's JSON, and evaluation against one run.
//!
//! ```text
//!   ConditionGroup = {"all": [Condition...]}                      every condition passes
//!                  | {"any": [Condition | {"all": [...]}...]}     at least one member passes
//!   Condition      = {"variable": operand, "operator": name, "argument"?: operand}
//! ```
//!
//! Operands. A string operand `prefix.path` with a known prefix (`data recipient actor tenant vars
//! workflow run refs`) is a reference resolved at evaluation time; any other string is JSON-decoded
//! (`"5"` is the number 5, `"\"data.x\""` the literal string `data.x`). An argument that does not
//! decode stays the literal string (`admin`, `$message.read`); a *variable* that neither names a
//! known prefix nor decodes is a validation problem. Non-string JSON arguments are literals.
//! A missing path evaluates to `""`.
//!
//! Comparisons are loose the way trigger data needs them: a number and a numeric string compare
//! as numbers; two other strings compare lexically (so ISO dates order correctly).
//!
//! Message statuses. `refs.<ref>.delivery_status` and `refs.<ref>.engagement_status` read the
//! statuses of earlier steps of this run. Against a `"$message.<status>"` argument, comparisons use
//! Knock's order `undelivered < bounced < delivery_attempted < queued < not_sent < sent <
//! delivered < seen < read < interacted = link_clicked < archived`; `skipped` has no rank and only
//! compares equal to itself. Engagement `contains` understands `seen_not_read` and
//! `read_not_link_clicked`.
//!
//! Audiences do not exist in this Herald version: `is_audience_member` is always false and
//! `is_not_audience_member` always true.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::definition::Problem;
use super::timestamp::{day_of, timestamp_ms};

/// Reference prefixes a condition operand may use.
const PREFIXES: [&str; 8] = [
    "data",
    "recipient",
    "actor",
    "tenant",
    "vars",
    "workflow",
    "run",
    "refs",
];
const WORKFLOW_FIELDS: [&str; 4] = ["id", "key", "name", "categories"];
const RUN_FIELDS: [&str; 2] = ["total_activities", "total_actors"];
const MESSAGE_PREFIX: &str = "$message.";

/// A group of conditions (see the module docs for its JSON shape).
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionGroup {
    All(Vec<Condition>),
    Any(Vec<AnyMember>),
}

/// A member of an `any` group: a single condition or a nested `all`.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyMember {
    Condition(Condition),
    All(Vec<Condition>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub variable: String,
    pub operator: Operator,
    pub argument: Option<Value>,
}

macro_rules! operators {
    ($($variant:ident => $name:literal, needs_argument: $arg:literal;)*) => {
        /// Every condition operator Knock defines (§5.3).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operator { $($variant,)* }

        impl Operator {
            pub const ALL: &'static [Operator] = &[$(Operator::$variant,)*];

            pub fn as_str(&self) -> &'static str {
                match self { $(Operator::$variant => $name,)* }
            }

            /// Whether a condition with this operator must carry an `argument`.
            pub fn needs_argument(&self) -> bool {
                match self { $(Operator::$variant => $arg,)* }
            }
        }
    };
}

operators! {
    EqualTo => "equal_to", needs_argument: true;
    NotEqualTo => "not_equal_to", needs_argument: true;
    GreaterThan => "greater_than", needs_argument: true;
    LessThan => "less_than", needs_argument: true;
    GreaterThanOrEqualTo => "greater_than_or_equal_to", needs_argument: true;
    LessThanOrEqualTo => "less_than_or_equal_to", needs_argument: true;
    Contains => "contains", needs_argument: true;
    NotContains => "not_contains", needs_argument: true;
    ContainsAll => "contains_all", needs_argument: true;
    NotContainsAll => "not_contains_all", needs_argument: true;
    Empty => "empty", needs_argument: false;
    NotEmpty => "not_empty", needs_argument: false;
    Exists => "exists", needs_argument: false;
    NotExists => "not_exists", needs_argument: false;
    IsBetween => "is_between", needs_argument: true;
    IsTimestampBetween => "is_timestamp_between", needs_argument: true;
    IsTimestamp => "is_timestamp", needs_argument: false;
    IsNotTimestamp => "is_not_timestamp", needs_argument: false;
    IsTimestampBefore => "is_timestamp_before", needs_argument: true;
    IsTimestampOnOrAfter => "is_timestamp_on_or_after", needs_argument: true;
    IsTimestampBeforeDate => "is_timestamp_before_date", needs_argument: true;
    IsTimestampOnOrAfterDate => "is_timestamp_on_or_after_date", needs_argument: true;
    IsTimestampBeforeNow => "is_timestamp_before_now", needs_argument: false;
    IsTimestampOnOrAfterNow => "is_timestamp_on_or_after_now", needs_argument: false;
    IsAudienceMember => "is_audience_member", needs_argument: false;
    IsNotAudienceMember => "is_not_audience_member", needs_argument: false;
}

impl Operator {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|o| o.as_str() == s)
    }
}

/// The statuses of one earlier step of this run, as conditions see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepStatus {
    /// e.g. "queued", "delivered", "not_sent", "skipped"; `None` before the step has a message.
    pub delivery_status: Option<String>,
    /// Engagement statuses of the step's message: "seen", "read", "interacted", ...
    pub engagement: Vec<String>,
}

/// Everything a condition can refer to during one recipient's run.
#[derive(Debug, Clone, Copy)]
pub struct ConditionContext<'a> {
    pub data: &'a Value,
    pub recipient: &'a Value,
    pub actor: Option<&'a Value>,
    pub tenant: Option<&'a Value>,
    pub vars: &'a Value,
    /// `{id, key, name, categories}`.
    pub workflow: &'a Value,
    /// `{total_activities, total_actors}`.
    pub run: &'a Value,
    /// Statuses of earlier steps by step ref.
    pub refs: &'a BTreeMap<String, StepStatus>,
    pub now_ms: u64,
}

/// Whether `group` passes in `ctx`. An empty `all` passes; an empty `any` does not.
pub fn evaluate(group: &ConditionGroup, ctx: &ConditionContext) -> bool {
    match group {
        ConditionGroup::All(conds) => conds.iter().all(|c| evaluate_condition(c, ctx)),
        ConditionGroup::Any(members) => members.iter().any(|m| match m {
            AnyMember::Condition(c) => evaluate_condition(c, ctx),
            AnyMember::All(conds) => conds.iter().all(|c| evaluate_condition(c, ctx)),
        }),
    }
}

/// Whether one condition passes in `ctx`.
pub fn evaluate_condition(cond: &Condition, ctx: &ConditionContext) -> bool {
    let var = variable_operand(&cond.variable).resolve(ctx);
    let arg = cond
        .argument
        .as_ref()
        .and_then(|a| argument_operand(a).resolve(ctx));
    let blank = Value::String(String::new());
    let v = var.as_deref().unwrap_or(&blank);
    let a = arg.as_deref().unwrap_or(&blank);
    let now = i128::from(ctx.now_ms);
    let ts = |x: &Value| timestamp_ms(x, ctx.now_ms);
    use Operator::*;
    match cond.operator {
        EqualTo => equals(v, a),
        NotEqualTo => !equals(v, a),
        GreaterThan => ordered(v, a, |o| o == Ordering::Greater),
        LessThan => ordered(v, a, |o| o == Ordering::Less),
        GreaterThanOrEqualTo => ordered(v, a, |o| o != Ordering::Less),
        LessThanOrEqualTo => ordered(v, a, |o| o != Ordering::Greater),
        Contains => contains(v, a, false),
        NotContains => !contains(v, a, false),
        ContainsAll => contains(v, a, true),
        NotContainsAll => !contains(v, a, true),
        Empty => var.as_deref().is_none_or(is_empty),
        NotEmpty => var.as_deref().is_some_and(|x| !is_empty(x)),
        Exists => var.as_deref().is_some_and(|x| !x.is_null()),
        NotExists => var.as_deref().is_none_or(Value::is_null),
        IsBetween => bounds(a).is_some_and(|(lo, hi)| {
            ordered(v, lo, |o| o != Ordering::Less) && ordered(v, hi, |o| o != Ordering::Greater)
        }),
        IsTimestampBetween => match (ts(v), bounds(a)) {
            (Some(t), Some((lo, hi))) => match (ts(lo), ts(hi)) {
                (Some(lo), Some(hi)) => lo <= t && t <= hi,
                _ => false,
            },
            _ => false,
        },
        IsTimestamp => ts(v).is_some(),
        IsNotTimestamp => ts(v).is_none(),
        IsTimestampBefore => both(ts(v), ts(a), |x, y| x < y),
        IsTimestampOnOrAfter => both(ts(v), ts(a), |x, y| x >= y),
        IsTimestampBeforeDate => both(ts(v), ts(a), |x, y| day_of(x) < day_of(y)),
        IsTimestampOnOrAfterDate => both(ts(v), ts(a), |x, y| day_of(x) >= day_of(y)),
        IsTimestampBeforeNow => ts(v).is_some_and(|x| x < now),
        IsTimestampOnOrAfterNow => ts(v).is_some_and(|x| x >= now),
        IsAudienceMember => false,
        IsNotAudienceMember => true,
    }
}

fn both(a: Option<i128>, b: Option<i128>, f: impl Fn(i128, i128) -> bool) -> bool {
    matches!((a, b), (Some(a), Some(b)) if f(a, b))
}

fn bounds(arg: &Value) -> Option<(&Value, &Value)> {
    match arg.as_array()?.as_slice() {
        [lo, hi] => Some((lo, hi)),
        _ => None,
    }
}

// ---- operands ----

/// Where a reference operand reads from.
#[derive(Debug, Clone, PartialEq)]
enum Operand<'s> {
    /// `prefix` is one of [`PREFIXES`]; `path` the dot-separated rest (may be empty).
    Reference {
        prefix: &'s str,
        path: &'s str,
    },
    Literal(Value),
    /// A variable that is neither a reference nor JSON (a validation problem; evaluates as missing).
    Invalid(String),
}

fn split_reference(s: &str) -> Option<(&str, &str)> {
    let (head, rest) = s.split_once('.').unwrap_or((s, ""));
    PREFIXES.contains(&head).then_some((head, rest))
}

fn variable_operand(s: &str) -> Operand<'_> {
    if let Some((prefix, path)) = split_reference(s) {
        return Operand::Reference { prefix, path };
    }
    match serde_json::from_str::<Value>(s) {
        Ok(v) => Operand::Literal(v),
        Err(_) => Operand::Invalid(format!(
            "unknown variable prefix `{}`; expected one of {}",
            s.split('.').next().unwrap_or(s),
            PREFIXES.join(", ")
        )),
    }
}

fn argument_operand(arg: &Value) -> Operand<'_> {
    let Value::String(s) = arg else {
        return Operand::Literal(arg.clone());
    };
    if s.contains('.') {
        if let Some((prefix, path)) = split_reference(s) {
            return Operand::Reference { prefix, path };
        }
    }
    Operand::Literal(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())))
}

impl Operand<'_> {
    /// Problems with a reference's shape (`workflow.<field>`, `refs.<ref>.<status>`, `run.<field>`).
    fn problem(&self) -> Option<String> {
        match self {
            Operand::Invalid(reason) => Some(reason.clone()),
            Operand::Literal(_) => None,
            Operand::Reference { prefix, path } => {
                let first = path.split('.').next().unwrap_or("");
                match *prefix {
                    "workflow" if !WORKFLOW_FIELDS.contains(&first) => Some(format!(
                        "`workflow.{path}` is not available; use one of workflow.{}",
                        WORKFLOW_FIELDS.join(", workflow.")
                    )),
                    "run" if !RUN_FIELDS.contains(&first) => Some(format!(
                        "`run.{path}` is not available; use run.total_activities or run.total_actors"
                    )),
                    "refs" => match path.split('.').collect::<Vec<_>>().as_slice() {
                        [r, "delivery_status" | "engagement_status"] if !r.is_empty() => None,
                        _ => Some(format!(
                            "`refs.{path}` must be refs.<step_ref>.delivery_status or refs.<step_ref>.engagement_status"
                        )),
                    },
                    _ => None,
                }
            }
        }
    }

    /// The operand's value, `None` when a reference names nothing.
    fn resolve<'c>(&self, ctx: &ConditionContext<'c>) -> Option<Cow<'c, Value>> {
        match self {
            Operand::Literal(v) => Some(Cow::Owned(v.clone())),
            Operand::Invalid(_) => None,
            Operand::Reference { prefix, path } => {
                let root: &'c Value = match *prefix {
                    "data" => ctx.data,
                    "recipient" => ctx.recipient,
                    "actor" => ctx.actor?,
                    "tenant" => ctx.tenant?,
                    "vars" => ctx.vars,
                    "workflow" => ctx.workflow,
                    "run" => ctx.run,
                    _ => return resolve_ref(path, ctx.refs).map(Cow::Owned),
                };
                lookup(root, path).map(Cow::Borrowed)
            }
        }
    }
}

fn resolve_ref(path: &str, refs: &BTreeMap<String, StepStatus>) -> Option<Value> {
    let (step_ref, field) = path.rsplit_once('.')?;
    let status = refs.get(step_ref)?;
    match field {
        "delivery_status" => status.delivery_status.clone().map(Value::String),
        "engagement_status" => Some(json!(status.engagement)),
        _ => None,
    }
}

/// Follows a dot path (`a.b.0.c`, `a.b[0].c`) into `root`; the empty path is `root` itself.
pub(crate) fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(root);
    }
    let normalized = path.replace('[', ".").replace(']', "");
    normalized
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(root, |cur, seg| match cur {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
}

// ---- comparison semantics ----

fn message_status(arg: &Value) -> Option<&str> {
    arg.as_str()?.strip_prefix(MESSAGE_PREFIX)
}

/// Knock's total order of message statuses; `skipped` and unknown names have no rank.
fn status_rank(status: &str) -> Option<u8> {
    Some(match status {
        "undelivered" => 0,
        "bounced" => 1,
        "delivery_attempted" => 2,
        "queued" => 3,
        "not_sent" => 4,
        "sent" => 5,
        "delivered" => 6,
        "seen" => 7,
        "read" => 8,
        "interacted" | "link_clicked" => 9,
        "archived" => 10,
        _ => return None,
    })
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A scalar's text for string comparisons; `null` reads as "" like a missing value.
fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        Value::Null => Some(Cow::Borrowed("")),
        _ => None,
    }
}

fn equals(v: &Value, a: &Value) -> bool {
    if let Some(status) = message_status(a) {
        return v.as_str() == Some(status);
    }
    loose_eq(v, a)
}

fn loose_eq(x: &Value, y: &Value) -> bool {
    if x == y {
        return true;
    }
    if let (Some(p), Some(q)) = (as_number(x), as_number(y)) {
        return p == q;
    }
    match (scalar_text(x), scalar_text(y)) {
        (Some(p), Some(q)) => p == q,
        _ => false,
    }
}

fn ordered(v: &Value, a: &Value, want: impl Fn(Ordering) -> bool) -> bool {
    let ord = if let Some(status) = message_status(a) {
        match (v.as_str().and_then(status_rank), status_rank(status)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => None,
        }
    } else if let (Some(p), Some(q)) = (as_number(v), as_number(a)) {
        p.partial_cmp(&q)
    } else {
        match (v, a) {
            (Value::String(p), Value::String(q)) => Some(p.cmp(q)),
            _ => None,
        }
    };
    ord.is_some_and(want)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn list_has(list: &[Value], item: &Value) -> bool {
    if let Some(status) = message_status(item) {
        return engagement_has(list, status);
    }
    list.iter().any(|x| loose_eq(x, item))
}

/// Engagement membership, including Knock's composite statuses.
fn engagement_has(list: &[Value], status: &str) -> bool {
    let has = |s: &str| list.iter().any(|x| x.as_str() == Some(s));
    match status {
        "seen_not_read" => has("seen") && !has("read"),
        "read_not_link_clicked" => has("read") && !has("link_clicked"),
        s => has(s),
    }
}

/// `contains` (any overlap) or `contains_all` (every argument item present).
fn contains(v: &Value, a: &Value, all: bool) -> bool {
    match (v, a) {
        (Value::Array(list), Value::Array(items)) => {
            if all {
                items.iter().all(|i| list_has(list, i))
            } else {
                items.iter().any(|i| list_has(list, i))
            }
        }
        (Value::Array(list), item) => list_has(list, item),
        (item, Value::Array(list)) if !all => list_has(list, item),
        (Value::Object(map), key) => scalar_text(key).is_some_and(|k| map.contains_key(k.as_ref())),
        (x, y) => match (scalar_text(x), scalar_text(y)) {
            (Some(p), Some(q)) => p.contains(q.as_ref()),
            _ => false,
        },
    }
}

// ---- JSON ----

impl ConditionGroup {
    /// Parses Knock's JSON, listing every problem.
    pub fn from_json(value: &Value) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        match parse_group(value, "", &mut problems) {
            Some(g) if problems.is_empty() => Ok(g),
            _ => Err(problems),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ConditionGroup::All(conds) => json!({ "all": conds_to_json(conds) }),
            ConditionGroup::Any(members) => {
                let members: Vec<Value> = members
                    .iter()
                    .map(|m| match m {
                        AnyMember::Condition(c) => c.to_json(),
                        AnyMember::All(conds) => json!({ "all": conds_to_json(conds) }),
                    })
                    .collect();
                json!({ "any": members })
            }
        }
    }
}

impl Condition {
    /// Parses one condition, listing every problem.
    pub fn from_json(value: &Value) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        match parse_condition(value, "", &mut problems) {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("variable".into(), json!(self.variable));
        m.insert("operator".into(), json!(self.operator.as_str()));
        if let Some(a) = &self.argument {
            m.insert("argument".into(), a.clone());
        }
        Value::Object(m)
    }
}

fn conds_to_json(conds: &[Condition]) -> Vec<Value> {
    conds.iter().map(Condition::to_json).collect()
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Parses a ConditionGroup at `path`, pushing problems; `None` when it cannot be used at all.
pub(crate) fn parse_group(
    value: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<ConditionGroup> {
    let Some(obj) = value.as_object() else {
        problems.push(Problem::new(path, "must be an object with `all` or `any`"));
        return None;
    };
    match (obj.get("all"), obj.get("any")) {
        (Some(all), None) => parse_list(all, &join(path, "all"), problems).map(ConditionGroup::All),
        (None, Some(Value::Array(items))) => {
            let any_path = join(path, "any");
            let mut members = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let p = format!("{any_path}[{i}]");
                let member = match item.get("all") {
                    Some(all) => parse_list(all, &join(&p, "all"), problems).map(AnyMember::All),
                    None => parse_condition(item, &p, problems).map(AnyMember::Condition),
                };
                members.extend(member);
            }
            Some(ConditionGroup::Any(members))
        }
        (None, Some(_)) => {
            problems.push(Problem::new(join(path, "any"), "must be an array"));
            None
        }
        _ => {
            problems.push(Problem::new(
                path,
                "must have exactly one of `all` or `any`",
            ));
            None
        }
    }
}

/// Parses an array of conditions at `path` (also used for preference `conditions` arrays).
pub(crate) fn parse_list(
    value: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Condition>> {
    let Some(items) = value.as_array() else {
        problems.push(Problem::new(path, "must be an array of conditions"));
        return None;
    };
    let parsed: Vec<Condition> = items
        .iter()
        .enumerate()
        .filter_map(|(i, c)| parse_condition(c, &format!("{path}[{i}]"), problems))
        .collect();
    (parsed.len() == items.len()).then_some(parsed)
}

fn parse_condition(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<Condition> {
    let Some(obj) = value.as_object() else {
        problems.push(Problem::new(path, "must be a condition object"));
        return None;
    };
    let before = problems.len();
    let variable = match obj.get("variable") {
        Some(Value::String(s)) if !s.is_empty() => {
            if let Some(reason) = variable_operand(s).problem() {
                problems.push(Problem::new(join(path, "variable"), reason));
            }
            Some(s.clone())
        }
        _ => {
            problems.push(Problem::new(
                join(path, "variable"),
                "is required and must be a non-empty string",
            ));
            None
        }
    };
    let operator = match obj.get("operator") {
        Some(Value::String(s)) => match Operator::parse(s) {
            Some(op) => Some(op),
            None => {
                problems.push(Problem::new(
                    join(path, "operator"),
                    format!("unknown operator `{s}`"),
                ));
                None
            }
        },
        _ => {
            problems.push(Problem::new(
                join(path, "operator"),
                "is required and must be a string",
            ));
            None
        }
    };
    let argument = obj.get("argument").filter(|a| !a.is_null()).cloned();
    if let Some(a) = &argument {
        if let Some(reason) = argument_operand(a).problem() {
            problems.push(Problem::new(join(path, "argument"), reason));
        }
    }
    if let Some(op) = operator {
        if op.needs_argument() && argument.is_none() {
            problems.push(Problem::new(
                join(path, "argument"),
                format!("is required by operator `{}`", op.as_str()),
            ));
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(Condition {
        variable: variable?,
        operator: operator?,
        argument,
    })
}

impl Serialize for ConditionGroup {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ConditionGroup {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        ConditionGroup::from_json(&value).map_err(|problems| {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            serde::de::Error::custom(text.join("; "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    struct Fixture {
        data: Value,
        recipient: Value,
        actor: Value,
        tenant: Value,
        vars: Value,
        workflow: Value,
        run: Value,
        refs: BTreeMap<String, StepStatus>,
    }

    impl Fixture {
        fn new() -> Self {
            let mut refs = BTreeMap::new();
            refs.insert(
                "email_1".to_string(),
                StepStatus {
                    delivery_status: Some("delivered".into()),
                    engagement: vec!["seen".into()],
                },
            );
            refs.insert(
                "sms_1".to_string(),
                StepStatus {
                    delivery_status: Some("skipped".into()),
                    engagement: vec![],
                },
            );
            Fixture {
                data: json!({
                    "count": 5, "count_str": "5", "name": "Ada Lovelace", "plan": "pro",
                    "tags": ["a", "b", "c"], "flag": true, "empty_s": "", "empty_l": [], "nothing": null,
                    "obj": {"k": 1}, "items": [{"id": "x"}],
                    "when": "2023-11-10T00:00:00Z", "later": "2023-11-20T00:00:00Z",
                }),
                recipient: json!({"id": "u1", "email": "ada@example.com", "role": "admin"}),
                actor: json!({"id": "a1", "name": "Bob"}),
                tenant: json!({"id": "t1", "plan": "pro"}),
                vars: json!({"limit": 10}),
                workflow: json!({"id": "w-id", "key": "new-comment", "name": "New comment", "categories": ["social"]}),
                run: json!({"total_activities": 3, "total_actors": 1}),
                refs,
            }
        }

        fn ctx(&self) -> ConditionContext<'_> {
            ConditionContext {
                data: &self.data,
                recipient: &self.recipient,
                actor: Some(&self.actor),
                tenant: Some(&self.tenant),
                vars: &self.vars,
                workflow: &self.workflow,
                run: &self.run,
                refs: &self.refs,
                now_ms: NOW,
            }
        }
    }

    fn check(variable: &str, op: &str, argument: Option<Value>) -> bool {
        let mut c = json!({"variable": variable, "operator": op});
        if let Some(a) = argument {
            c["argument"] = a;
        }
        let cond = Condition::from_json(&c).unwrap_or_else(|p| panic!("{c}: {p:?}"));
        evaluate_condition(&cond, &Fixture::new().ctx())
    }

    fn yes(variable: &str, op: &str, argument: Option<Value>) {
        assert!(
            check(variable, op, argument.clone()),
            "{variable} {op} {argument:?}"
        );
    }

    fn no(variable: &str, op: &str, argument: Option<Value>) {
        assert!(
            !check(variable, op, argument.clone()),
            "{variable} {op} {argument:?}"
        );
    }

    #[test]
    fn comparison_operators() {
        yes("data.count", "equal_to", Some(json!(5)));
        yes("data.count", "equal_to", Some(json!("5")));
        yes("data.count_str", "equal_to", Some(json!(5)));
        yes("recipient.role", "equal_to", Some(json!("admin")));
        yes("recipient.role", "equal_to", Some(json!("\"admin\"")));
        no("recipient.role", "equal_to", Some(json!("member")));
        yes("data.flag", "equal_to", Some(json!("true")));
        yes("data.missing", "equal_to", Some(json!("")));
        yes("data.count", "not_equal_to", Some(json!(6)));
        no("data.count", "not_equal_to", Some(json!(5)));
        yes("data.count", "greater_than", Some(json!(4)));
        no("data.count", "greater_than", Some(json!(5)));
        yes("data.count", "less_than", Some(json!("6")));
        no("data.count", "less_than", Some(json!(5)));
        yes("data.count", "greater_than_or_equal_to", Some(json!(5)));
        no("data.count", "greater_than_or_equal_to", Some(json!(6)));
        yes("data.count", "less_than_or_equal_to", Some(json!(5)));
        no("data.count", "less_than_or_equal_to", Some(json!(4)));
        yes("data.name", "greater_than", Some(json!("Aa")));
        no("data.tags", "greater_than", Some(json!(1)));
    }

    #[test]
    fn dynamic_arguments_and_literal_variables() {
        yes("data.plan", "equal_to", Some(json!("tenant.plan")));
        no("data.plan", "equal_to", Some(json!("recipient.role")));
        yes("vars.limit", "greater_than", Some(json!("data.count")));
        yes("\"pro\"", "equal_to", Some(json!("data.plan")));
        yes("5", "equal_to", Some(json!("data.count")));
        // A quoted reference is a literal string.
        no("data.plan", "equal_to", Some(json!("\"tenant.plan\"")));
        yes("actor.name", "equal_to", Some(json!("Bob")));
        yes("workflow.key", "equal_to", Some(json!("new-comment")));
        yes("workflow.categories", "contains", Some(json!("social")));
        yes("run.total_activities", "equal_to", Some(json!(3)));
        yes("data.items[0].id", "equal_to", Some(json!("x")));
        yes("data.items.0.id", "equal_to", Some(json!("x")));
    }

    #[test]
    fn contains_family() {
        yes("data.name", "contains", Some(json!("Love")));
        no("data.name", "contains", Some(json!("love")));
        yes("data.tags", "contains", Some(json!("b")));
        no("data.tags", "contains", Some(json!("z")));
        yes("data.plan", "contains", Some(json!(["free", "pro"])));
        yes("data.tags", "contains", Some(json!(["z", "c"])));
        no("data.tags", "contains", Some(json!(["y", "z"])));
        yes("data.obj", "contains", Some(json!("k")));
        yes("data.tags", "not_contains", Some(json!("z")));
        no("data.tags", "not_contains", Some(json!("a")));
        yes("data.tags", "contains_all", Some(json!(["a", "c"])));
        no("data.tags", "contains_all", Some(json!(["a", "z"])));
        yes("data.name", "contains_all", Some(json!("Ada")));
        yes("data.tags", "not_contains_all", Some(json!(["a", "z"])));
        no("data.tags", "not_contains_all", Some(json!(["a", "b"])));
    }

    #[test]
    fn presence_operators() {
        for empty in [
            "data.empty_s",
            "data.empty_l",
            "data.nothing",
            "data.missing",
        ] {
            yes(empty, "empty", None);
            no(empty, "not_empty", None);
        }
        yes("data.count", "not_empty", None);
        no("data.count", "empty", None);
        yes("data.empty_s", "exists", None);
        no("data.nothing", "exists", None);
        no("data.missing", "exists", None);
        yes("data.missing", "not_exists", None);
        yes("data.nothing", "not_exists", None);
        no("data.count", "not_exists", None);
    }

    #[test]
    fn range_operators() {
        yes("data.count", "is_between", Some(json!([1, 5])));
        yes("data.count", "is_between", Some(json!("[5, 10]")));
        no("data.count", "is_between", Some(json!([6, 10])));
        no("data.count", "is_between", Some(json!(5)));
        yes(
            "data.when",
            "is_timestamp_between",
            Some(json!(["2023-11-01", "2023-11-11"])),
        );
        no(
            "data.when",
            "is_timestamp_between",
            Some(json!(["2023-11-11", "2023-11-12"])),
        );
    }

    #[test]
    fn timestamp_operators() {
        yes("data.when", "is_timestamp", None);
        no("data.name", "is_timestamp", None);
        yes("data.name", "is_not_timestamp", None);
        no("data.when", "is_not_timestamp", None);
        // relative arguments
        yes("data.when", "is_timestamp_before", Some(json!("1 day ago")));
        no(
            "data.when",
            "is_timestamp_before",
            Some(json!("7 days ago")),
        );
        yes(
            "data.when",
            "is_timestamp_on_or_after",
            Some(json!("7 days ago")),
        );
        no(
            "data.when",
            "is_timestamp_on_or_after",
            Some(json!("1 day ago")),
        );
        // absolute arguments
        yes(
            "data.when",
            "is_timestamp_before",
            Some(json!("2023-11-10T00:00:01Z")),
        );
        yes(
            "data.when",
            "is_timestamp_on_or_after",
            Some(json!("2023-11-10T00:00:00Z")),
        );
        // dynamic argument
        yes(
            "data.when",
            "is_timestamp_before",
            Some(json!("data.later")),
        );
        // date variants compare calendar days
        no(
            "data.when",
            "is_timestamp_before_date",
            Some(json!("2023-11-10T23:00:00Z")),
        );
        yes(
            "data.when",
            "is_timestamp_before_date",
            Some(json!("2023-11-11")),
        );
        yes(
            "data.when",
            "is_timestamp_on_or_after_date",
            Some(json!("2023-11-10T23:59:00Z")),
        );
        no(
            "data.when",
            "is_timestamp_on_or_after_date",
            Some(json!("2023-11-11")),
        );
        // now variants
        yes("data.when", "is_timestamp_before_now", None);
        no("data.later", "is_timestamp_before_now", None);
        yes("data.later", "is_timestamp_on_or_after_now", None);
        no("data.when", "is_timestamp_on_or_after_now", None);
        no("data.name", "is_timestamp_before_now", None);
    }

    #[test]
    fn audience_operators_without_audiences() {
        no("recipient.id", "is_audience_member", Some(json!("vip")));
        yes("recipient.id", "is_not_audience_member", Some(json!("vip")));
    }

    #[test]
    fn message_status_conditions() {
        let d = "refs.email_1.delivery_status";
        yes(d, "equal_to", Some(json!("$message.delivered")));
        no(d, "equal_to", Some(json!("$message.sent")));
        yes(d, "not_equal_to", Some(json!("$message.sent")));
        yes(d, "greater_than", Some(json!("$message.sent")));
        yes(
            d,
            "greater_than_or_equal_to",
            Some(json!("$message.queued")),
        );
        no(d, "less_than", Some(json!("$message.not_sent")));
        yes(
            "refs.sms_1.delivery_status",
            "equal_to",
            Some(json!("$message.skipped")),
        );
        no(
            "refs.sms_1.delivery_status",
            "greater_than",
            Some(json!("$message.undelivered")),
        );
        no(
            "refs.never_ran.delivery_status",
            "equal_to",
            Some(json!("$message.skipped")),
        );
        let e = "refs.email_1.engagement_status";
        yes(e, "contains", Some(json!("$message.seen")));
        no(e, "contains", Some(json!("$message.read")));
        yes(e, "not_contains", Some(json!("$message.read")));
        yes(e, "contains", Some(json!("$message.seen_not_read")));
        no(e, "contains", Some(json!("$message.read_not_link_clicked")));
    }

    #[test]
    fn groups_all_and_any() {
        let f = Fixture::new();
        let group = |v: Value| ConditionGroup::from_json(&v).expect("valid group");
        let t = json!({"variable": "data.count", "operator": "equal_to", "argument": 5});
        let fa = json!({"variable": "data.count", "operator": "equal_to", "argument": 6});
        assert!(evaluate(&group(json!({"all": [t, t]})), &f.ctx()));
        assert!(!evaluate(&group(json!({"all": [t, fa]})), &f.ctx()));
        assert!(evaluate(&group(json!({"any": [fa, t]})), &f.ctx()));
        assert!(!evaluate(
            &group(json!({"any": [fa, {"all": [t, fa]}]})),
            &f.ctx()
        ));
        assert!(evaluate(
            &group(json!({"any": [fa, {"all": [t, t]}]})),
            &f.ctx()
        ));
        assert!(evaluate(&group(json!({"all": []})), &f.ctx()));
        assert!(!evaluate(&group(json!({"any": []})), &f.ctx()));
    }

    #[test]
    fn json_round_trip_and_serde() {
        let v = json!({"any": [
            {"variable": "data.x", "operator": "exists"},
            {"all": [{"variable": "recipient.role", "operator": "equal_to", "argument": "admin"}]}
        ]});
        let g = ConditionGroup::from_json(&v).expect("valid");
        assert_eq!(g.to_json(), v);
        let via_serde: ConditionGroup = serde_json::from_value(v.clone()).expect("serde");
        assert_eq!(via_serde, g);
        assert_eq!(serde_json::to_value(&g).ok(), Some(v));
        for op in Operator::ALL {
            assert_eq!(Operator::parse(op.as_str()), Some(*op));
        }
    }

    #[test]
    fn invalid_conditions_list_every_problem() {
        let v = json!({"all": [
            {"variable": "foo.bar", "operator": "equal_to", "argument": 1},
            {"variable": "data.x", "operator": "is_similar_to"},
            {"variable": "data.x", "operator": "equal_to"},
            {"variable": "workflow.version", "operator": "exists"},
            {"variable": "refs.a.status", "operator": "exists"},
            "nope",
        ]});
        let problems = ConditionGroup::from_json(&v).expect_err("invalid");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "all[0].variable",
                "all[1].operator",
                "all[2].argument",
                "all[3].variable",
                "all[4].variable",
                "all[5]",
            ]
        );
        assert!(problems[0].reason.contains("unknown variable prefix `foo`"));
        assert!(problems[1]
            .reason
            .contains("unknown operator `is_similar_to`"));
        assert!(ConditionGroup::from_json(&json!({"all": [], "any": []})).is_err());
        assert!(ConditionGroup::from_json(&json!([])).is_err());
    }
}
