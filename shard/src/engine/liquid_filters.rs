//! Liquid filters Knock templates use beyond Liquid's standard library.
//!
//! - `json`: the input as compact JSON text (`{{ data.items | json }}` → `[{"name":"a \"b\""}]`),
//!   so webhook bodies and `update_data` templates can embed any value, quotes included, and still
//!   render to valid JSON. Strings come out quoted and escaped; a missing value is `null`. Object
//!   keys come out sorted, so the text is deterministic.

use std::collections::BTreeMap;
use std::fmt;

use liquid_core::parser::{FilterArguments, ParameterReflection};
use liquid_core::{
    Error, Filter, FilterReflection, ParseFilter, Result, Runtime, Value as LValue, ValueView,
};
use serde_json::{Map, Value};

/// Parses `| json` (no arguments) into [`JsonFilter`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonFilterParser;

impl FilterReflection for JsonFilterParser {
    fn name(&self) -> &str {
        "json"
    }

    fn description(&self) -> &str {
        "Renders the input as JSON text."
    }

    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }

    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for JsonFilterParser {
    fn parse(&self, mut arguments: FilterArguments) -> Result<Box<dyn Filter>> {
        if arguments.positional.next().is_some() || arguments.keyword.next().is_some() {
            return Err(Error::with_msg("the `json` filter takes no arguments"));
        }
        Ok(Box::new(JsonFilter))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug, Clone, Copy)]
struct JsonFilter;

impl fmt::Display for JsonFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("json")
    }
}

impl Filter for JsonFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<LValue> {
        let text = serde_json::to_string(&to_json(input))
            .map_err(|e| Error::with_msg(format!("json: {e}")))?;
        Ok(LValue::scalar(text))
    }
}

/// A Liquid value as JSON. `nil` and Liquid's `empty`/`blank` states are `null`.
fn to_json(v: &dyn ValueView) -> Value {
    // Checked first: a `nil` from Knock-style lookups also answers `as_object` (as an empty object).
    if v.is_nil() {
        return Value::Null;
    }
    if let Some(s) = v.as_scalar() {
        // Integers, floats and booleans keep their JSON type; dates become their Liquid text.
        return serde_json::to_value(&s).unwrap_or(Value::Null);
    }
    if let Some(a) = v.as_array() {
        return Value::Array(a.values().map(to_json).collect());
    }
    if let Some(o) = v.as_object() {
        let sorted: BTreeMap<String, Value> = o
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
            .collect();
        return Value::Object(sorted.into_iter().collect::<Map<_, _>>());
    }
    Value::Null
}
