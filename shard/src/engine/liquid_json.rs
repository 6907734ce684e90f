//! JSON as Liquid sees it, with Knock's forgiving lookups.
//!
//! The `liquid` crate is strict: `{{ recipient.nickname }}` fails with "Unknown index" when the
//! recipient has no nickname, and an unknown top-level name fails too. Knock templates rely on the
//! opposite (a missing value renders as nothing and is falsy), so templates here render against
//! [`LiquidJson`]: a JSON tree whose objects answer every key (missing ones with `nil`), whose arrays
//! answer out-of-range indexes with `nil`, and whose `nil` is itself an empty object, so
//! `{{ a.b.c }}` on a missing `a` renders "". [`Globals`] is the root object: it claims every name,
//! so an unknown variable is `nil` as well.

use std::collections::BTreeMap;
use std::fmt;

use liquid::model::{
    ArrayView, DisplayCow, KStringCow, ObjectView, Scalar, ScalarCow, State, Value as LValue,
    ValueView,
};
use serde_json::Value;

/// A JSON value prepared for rendering (converted once per render context).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LiquidJson {
    Nil,
    Scalar(Scalar),
    Array(Vec<LiquidJson>),
    Object(BTreeMap<String, LiquidJson>),
}

static NIL: LiquidJson = LiquidJson::Nil;

impl From<&Value> for LiquidJson {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => LiquidJson::Nil,
            Value::Bool(b) => LiquidJson::Scalar(Scalar::new(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => LiquidJson::Scalar(Scalar::new(i)),
                None => LiquidJson::Scalar(Scalar::new(n.as_f64().unwrap_or(0.0))),
            },
            Value::String(s) => LiquidJson::Scalar(Scalar::new(s.clone())),
            Value::Array(a) => LiquidJson::Array(a.iter().map(LiquidJson::from).collect()),
            Value::Object(m) => LiquidJson::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), LiquidJson::from(v)))
                    .collect(),
            ),
        }
    }
}

impl LiquidJson {
    fn owned_render(&self) -> String {
        self.to_value().render().to_string()
    }
}

impl ValueView for LiquidJson {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }

    fn render(&self) -> DisplayCow<'_> {
        match self {
            LiquidJson::Nil => DisplayCow::Borrowed(&""),
            LiquidJson::Scalar(s) => s.render(),
            _ => DisplayCow::Owned(Box::new(self.owned_render())),
        }
    }

    fn source(&self) -> DisplayCow<'_> {
        match self {
            LiquidJson::Nil => DisplayCow::Borrowed(&"nil"),
            LiquidJson::Scalar(s) => s.source(),
            _ => DisplayCow::Owned(Box::new(self.to_value().source().to_string())),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            LiquidJson::Nil => "nil",
            LiquidJson::Scalar(s) => s.type_name(),
            LiquidJson::Array(_) => "array",
            LiquidJson::Object(_) => "object",
        }
    }

    fn query_state(&self, state: State) -> bool {
        match self {
            LiquidJson::Nil => LValue::Nil.query_state(state),
            LiquidJson::Scalar(s) => s.query_state(state),
            LiquidJson::Array(a) => container_state(a.is_empty(), state),
            LiquidJson::Object(m) => container_state(m.is_empty(), state),
        }
    }

    fn to_kstr(&self) -> KStringCow<'_> {
        match self {
            LiquidJson::Nil => KStringCow::from_static(""),
            LiquidJson::Scalar(s) => s.to_kstr(),
            _ => KStringCow::from_string(self.owned_render()),
        }
    }

    fn to_value(&self) -> LValue {
        match self {
            LiquidJson::Nil => LValue::Nil,
            LiquidJson::Scalar(s) => LValue::Scalar(s.clone()),
            LiquidJson::Array(a) => LValue::Array(a.iter().map(ValueView::to_value).collect()),
            LiquidJson::Object(m) => LValue::Object(
                m.iter()
                    .map(|(k, v)| (k.clone().into(), v.to_value()))
                    .collect(),
            ),
        }
    }

    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            LiquidJson::Scalar(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            LiquidJson::Array(_) => Some(self),
            _ => None,
        }
    }

    /// `nil` is an empty object so that lookups through it keep yielding `nil`.
    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            LiquidJson::Object(_) | LiquidJson::Nil => Some(self),
            _ => None,
        }
    }

    fn is_nil(&self) -> bool {
        matches!(self, LiquidJson::Nil)
    }
}

fn container_state(empty: bool, state: State) -> bool {
    match state {
        State::Truthy => true,
        State::DefaultValue | State::Empty | State::Blank => empty,
    }
}

fn items(this: &LiquidJson) -> &[LiquidJson] {
    match this {
        LiquidJson::Array(a) => a,
        _ => &[],
    }
}

fn entries(this: &LiquidJson) -> Option<&BTreeMap<String, LiquidJson>> {
    match this {
        LiquidJson::Object(m) => Some(m),
        _ => None,
    }
}

impl ArrayView for LiquidJson {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        i64::try_from(items(self).len()).unwrap_or(i64::MAX)
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(items(self).iter().map(|v| v as &dyn ValueView))
    }

    fn contains_key(&self, index: i64) -> bool {
        array_index(items(self).len(), index).is_some()
    }

    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        let list = items(self);
        Some(array_index(list.len(), index).map_or(&NIL, |i| &list[i]))
    }
}

/// A Liquid index (negative counts from the end) into a list of `len`, if in range.
fn array_index(len: usize, index: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if index < 0 { len + index } else { index };
    (0..len)
        .contains(&i)
        .then(|| usize::try_from(i).ok())
        .flatten()
}

impl ObjectView for LiquidJson {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        entries(self).map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX))
    }

    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(
            entries(self)
                .into_iter()
                .flat_map(|m| m.keys().map(|k| KStringCow::from_ref(k))),
        )
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(
            entries(self)
                .into_iter()
                .flat_map(|m| m.values().map(|v| v as &dyn ValueView)),
        )
    }

    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(entries(self).into_iter().flat_map(|m| {
            m.iter()
                .map(|(k, v)| (KStringCow::from_ref(k), v as &dyn ValueView))
        }))
    }

    fn contains_key(&self, index: &str) -> bool {
        entries(self).is_some_and(|m| m.contains_key(index))
    }

    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        Some(entries(self).and_then(|m| m.get(index)).unwrap_or(&NIL))
    }
}

/// The root of a render: named globals; every other name is `nil`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Globals(LiquidJson);

impl Globals {
    pub(crate) fn new(vars: BTreeMap<String, LiquidJson>) -> Self {
        Globals(LiquidJson::Object(vars))
    }
}

impl ValueView for Globals {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        self.0.render()
    }
    fn source(&self) -> DisplayCow<'_> {
        self.0.source()
    }
    fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
    fn query_state(&self, state: State) -> bool {
        self.0.query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        self.0.to_kstr()
    }
    fn to_value(&self) -> LValue {
        self.0.to_value()
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for Globals {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        ObjectView::size(&self.0)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        self.0.keys()
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        ObjectView::values(&self.0)
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        self.0.iter()
    }
    /// Every name is "present" so the runtime asks us instead of failing with "Unknown variable".
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        ObjectView::get(&self.0, index)
    }
}
