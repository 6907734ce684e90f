//! The rendered push content (`{title, body, delivery_type: content|silent, data?}`) and the
//! recipient's device tokens (channel data `{tokens[]}` or `{devices[{token}]}`), parsed once for FCM
//! and APNs. Both send to every token and combine with [`super::Attempt::combine`].

use serde_json::{Map, Value};

use super::fields::Fields;
use super::Outgoing;

#[derive(Debug, Clone)]
pub(crate) struct Push<'a> {
    pub(crate) title: &'a str,
    pub(crate) body: &'a str,
    /// `delivery_type: silent`: wake the app with data only, show nothing.
    pub(crate) silent: bool,
    pub(crate) data: Option<&'a Map<String, Value>>,
    /// Distinct device tokens, in channel-data order.
    pub(crate) tokens: Vec<&'a str>,
}

impl<'a> Push<'a> {
    pub(crate) fn parse(out: &'a Outgoing) -> Result<Push<'a>, String> {
        let content = Fields::new(&out.content, "content");
        let silent = match content.opt_str("delivery_type") {
            None | Some("content") => false,
            Some("silent") => true,
            Some(other) => return Err(format!("unknown push delivery_type {other:?}")),
        };
        let data = match content.get("data") {
            None => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => return Err("content.data must be an object".into()),
        };
        let tokens = device_tokens(out.channel_data.as_ref());
        if tokens.is_empty() {
            return Err("recipient has no push tokens for this channel".into());
        }
        Ok(Push {
            title: content.opt_str("title").unwrap_or_default(),
            body: content.opt_str("body").unwrap_or_default(),
            silent,
            data,
            tokens,
        })
    }
}

fn device_tokens(channel_data: Option<&Value>) -> Vec<&str> {
    let Some(data) = channel_data else {
        return Vec::new();
    };
    let listed = data
        .get("tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    let devices = data
        .get("devices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("token").and_then(Value::as_str));
    let mut tokens: Vec<&str> = Vec::new();
    for token in listed.chain(devices) {
        if !token.is_empty() && !tokens.contains(&token) {
            tokens.push(token);
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_come_from_both_shapes_without_duplicates() {
        let data = json!({"tokens": ["a", "b", ""], "devices": [{"token": "b"}, {"token": "c"}, {"x": 1}]});
        assert_eq!(device_tokens(Some(&data)), ["a", "b", "c"]);
        assert!(device_tokens(Some(&json!({"tokens": "a"}))).is_empty());
        assert!(device_tokens(None).is_empty());
    }
}
