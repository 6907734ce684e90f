//! Typed reads from the JSON a provider receives (settings, content, channel data). Every miss is a
//! readable `Err(String)` that the provider turns into a terminal [`super::Outcome::Failed`]: these
//! values come from users, so nothing here may panic.

use serde_json::Value;

/// One JSON object and the name it is reported under (`settings`, `content`, ...).
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    value: &'a Value,
    what: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(value: &'a Value, what: &'static str) -> Self {
        Fields { value, what }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    /// A non-empty string.
    pub(crate) fn opt_str(&self, key: &str) -> Option<&'a str> {
        self.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A required non-empty string.
    pub(crate) fn str(&self, key: &str) -> Result<&'a str, String> {
        self.opt_str(key)
            .ok_or_else(|| format!("{}.{key} is missing or not a non-empty string", self.what))
    }

    /// A port-like number given as a JSON number or a numeric string; `default` when absent.
    pub(crate) fn u16_or(&self, key: &str, default: u16) -> Result<u16, String> {
        let parsed = match self.get(key) {
            None => return Ok(default),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        parsed.ok_or_else(|| format!("{}.{key} is not a number in 0..=65535", self.what))
    }

    /// `base_url` without trailing slashes, or `default` (the real service).
    pub(crate) fn base_url(&self, default: &str) -> String {
        self.opt_str("base_url")
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_reports_misses() {
        let v = json!({"a": "x", "empty": "", "n": 25, "s": "587", "big": 70000, "base_url": "http://h/"});
        let f = Fields::new(&v, "settings");
        assert_eq!(f.str("a"), Ok("x"));
        assert_eq!(
            f.str("empty"),
            Err("settings.empty is missing or not a non-empty string".into())
        );
        assert!(f.str("n").is_err());
        assert_eq!(f.u16_or("n", 1), Ok(25));
        assert_eq!(f.u16_or("s", 1), Ok(587));
        assert_eq!(f.u16_or("none", 1), Ok(1));
        assert!(f.u16_or("big", 1).is_err());
        assert_eq!(f.base_url("https://real"), "http://h");
        let not_object = json!(["x"]);
        assert_eq!(Fields::new(&not_object, "c").opt_str("a"), None);
    }
}
