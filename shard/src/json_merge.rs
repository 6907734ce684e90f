//! JSON merge rules shared by identify, preference sets and user merge.

use serde_json::{Map, Value};

/// Deep merge: objects merge key by key, recursively; any other value (including `null` and arrays)
/// replaces what was there. Used for inline preferences on identify, `__persistence_strategy__:
/// "merge"`, and user merge (where the primary's properties are the patch, so they win conflicts).
pub fn deep_merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => deep_merge_maps(b, p),
        (b, p) => *b = p,
    }
}

pub fn deep_merge_maps(base: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        match base.get_mut(&k) {
            Some(existing) => deep_merge(existing, v),
            None => {
                base.insert(k, v);
            }
        }
    }
}

/// Shallow merge of top-level keys (identify's property merge): each patch key replaces.
pub fn shallow_merge(base: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        base.insert(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deep_merge_recurses_into_objects_only() {
        let mut a = json!({"w": {"x": true, "y": {"c": 1}}, "l": [1, 2], "k": 1});
        deep_merge(&mut a, json!({"w": {"y": {"d": 2}}, "l": [3], "n": null}));
        assert_eq!(
            a,
            json!({"w": {"x": true, "y": {"c": 1, "d": 2}}, "l": [3], "k": 1, "n": null})
        );
    }

    #[test]
    fn shallow_merge_replaces_nested_objects() {
        let mut a = json!({"a": {"x": 1}, "b": 2}).as_object().unwrap().clone();
        shallow_merge(&mut a, json!({"a": {"y": 2}}).as_object().unwrap().clone());
        assert_eq!(Value::Object(a), json!({"a": {"y": 2}, "b": 2}));
    }
}
