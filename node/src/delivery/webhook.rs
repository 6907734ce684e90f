//! The webhook (`http`) channel: send the rendered request `{method, url, headers[{key,value}],
//! query_params[{key,value}], body}` as is, and sign it so the receiver can check it came from us.
//!
//! Added headers (they replace any rendered header of the same name):
//! - `x-herald-signature: t=<unix ms>,s=<hex HMAC-SHA256(signing_secret, "<t>.<body>")>` when
//!   `settings.signing_secret` is set. The timestamp is inside the MAC so receivers can reject
//!   replays; the body is signed byte for byte as sent.
//! - `idempotency-key` and `x-herald-message-id`: the message id, stable across retries.
//!
//! 2xx → `Delivered` (the destination itself answered); 408/429/5xx/network → retryable; other
//! 4xx → `Failed`. Redirects are not followed. The URL is not filtered: a template can target any
//! host this node can reach.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;
use sha2::Sha256;

use super::exchange::{OneShot, Prepared, Reply};
use super::fields::Fields;
use super::{Outcome, Outgoing};

pub(crate) const SIGNATURE_HEADER: &str = "x-herald-signature";

pub(crate) struct Webhook;

impl OneShot for Webhook {
    const SERVICE: &'static str = "webhook";

    fn prepare(&self, client: &reqwest::Client, out: &Outgoing) -> Result<Prepared, String> {
        let content = Fields::new(&out.content, "content");
        let method = content
            .opt_str("method")
            .unwrap_or("POST")
            .to_ascii_uppercase();
        let method = match method.as_str() {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => {
                Method::from_bytes(method.as_bytes()).map_err(|e| format!("invalid method: {e}"))?
            }
            other => return Err(format!("unsupported webhook method {other:?}")),
        };
        let mut url = Url::parse(content.str("url")?).map_err(|e| format!("invalid url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("unsupported url scheme {:?}", url.scheme()));
        }
        let query = pairs(content.get("query_params"), "query_params")?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        // A body rendered as JSON is sent as JSON; a string is sent as it is, typed as JSON only
        // if it parses (checked without building a tree).
        let (body, is_json) = match content.get("body") {
            None => (String::new(), false),
            Some(Value::String(text)) => (
                text.clone(),
                serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
            ),
            Some(json) => (json.to_string(), true),
        };

        let mut headers = HeaderMap::new();
        for (key, value) in pairs(content.get("headers"), "headers")? {
            headers.insert(header_name(key)?, header_value(value)?);
        }
        if !headers.contains_key(CONTENT_TYPE) && is_json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let settings = Fields::new(&out.settings, "settings");
        let secret = settings.opt_str("signing_secret");
        if let Some(secret) = secret {
            let signature = signature(secret, unix_ms(), &body);
            headers.insert(header_name(SIGNATURE_HEADER)?, header_value(&signature)?);
        }
        let id = header_value(&out.message_id)?;
        headers.insert(header_name("idempotency-key")?, id.clone());
        headers.insert(header_name("x-herald-message-id")?, id);

        let request = client.request(method, url).headers(headers).body(body);
        Prepared::build(request, secret.as_slice())
    }

    fn classify(&self, reply: &Reply) -> Outcome {
        reply.outcome(Outcome::Delivered)
    }
}

/// `t=<t>,s=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub(crate) fn signature(secret: &str, t: u128, body: &str) -> String {
    // HMAC accepts keys of any length; the error branch is unreachable but must not panic.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},s={}", hex::encode(mac.finalize().into_bytes()))
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// A `[{key, value}]` list; absent → empty.
fn pairs<'a>(value: Option<&'a Value>, what: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or_else(|| format!("content.{what} must be a list of {{key, value}}"))?;
    items
        .iter()
        .map(|item| {
            let field = |name| item.get(name).and_then(Value::as_str);
            match (field("key"), field("value")) {
                (Some(key), Some(value)) if !key.is_empty() => Ok((key, value)),
                _ => Err(format!("content.{what} entries need string key and value")),
            }
        })
        .collect()
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))
}

fn header_value(value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| format!("invalid header value {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key",b"1700000000000.{}",hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("key", 1_700_000_000_000, "{}"),
            "t=1700000000000,s=36a72f4525d3323bd0f238fe82098164fb77b1e42288ff8e07b074c686178ad3"
        );
    }
}
