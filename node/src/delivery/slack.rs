//! Slack, through either kind of connection in the recipient's channel data
//! `{connections: [{access_token?, channel_id} | {incoming_webhook: {url}}], token?: {access_token}}`:
//!
//! - `chat.postMessage`: `POST {base}/api/chat.postMessage`, `Authorization: Bearer <token>` (the
//!   connection's own token, else `token.access_token`), JSON `{channel, text, blocks?}`. Slack
//!   answers 200 with `{"ok": true}` → `Sent`, or `{"ok": false, "error"}`: transient errors
//!   (`ratelimited`, `internal_error`, ...) are retryable, the rest (`channel_not_found`,
//!   `invalid_auth`, ...) terminal.
//! - Incoming webhook: `POST <url>` with `{text, blocks?}`; 200 `ok` → `Sent`. The URL is the
//!   credential, so its path is redacted from logs.
//!
//! Content `{markdown_body, summary?, json_content?}`: `json_content` supplies Block Kit blocks
//! (`{blocks: [...]}` or a bare array); `text` is the markdown body, or the summary when blocks carry
//! the message. Every connection is sent to; one success makes the message `Sent`.
//!
//! Settings: `{base_url?}` for the Web API.

use futures::future::BoxFuture;
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use serde_json::{json, Value};

use super::exchange::{attempt, Prepared, Reply};
use super::fields::Fields;
use super::{Attempt, Outcome, Outgoing, Provider};

const DEFAULT_BASE: &str = "https://slack.com";
const SERVICE: &str = "slack";

/// `chat.postMessage` errors worth retrying; every other error needs a human.
const TRANSIENT_ERRORS: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

pub(crate) struct Slack {
    client: reqwest::Client,
}

enum Target<'a> {
    Api { token: &'a str, channel: &'a str },
    Webhook { url: &'a str },
}

impl Slack {
    pub(crate) fn new(client: reqwest::Client) -> Self {
        Slack { client }
    }

    async fn deliver(&self, out: &Outgoing) -> Attempt {
        let message = match message(&out.content) {
            Ok(message) => message,
            Err(reason) => return Attempt::failed(reason),
        };
        let targets = targets(out.channel_data.as_ref());
        if targets.is_empty() {
            return Attempt::failed("recipient has no Slack connections for this channel");
        }
        let base = Fields::new(&out.settings, "settings").base_url(DEFAULT_BASE);
        let mut attempts = Vec::new();
        for target in targets {
            let sent = match target {
                Ok(Target::Api { token, channel }) => {
                    let mut body = message.clone();
                    body["channel"] = Value::from(channel);
                    let request = self
                        .client
                        .post(format!("{base}/api/chat.postMessage"))
                        .bearer_auth(token)
                        .header(CONTENT_TYPE, "application/json; charset=utf-8")
                        .json(&body);
                    let prepared = Prepared::build(request, &[token]);
                    attempt(&self.client, prepared, SERVICE, classify_api).await
                }
                Ok(Target::Webhook { url }) => {
                    let prepared = Url::parse(url)
                        .map_err(|e| format!("invalid incoming webhook url: {e}"))
                        .and_then(|parsed| {
                            let secret_path = parsed.path().to_string();
                            let request = self.client.post(parsed).json(&message);
                            Prepared::build(request, &[&secret_path])
                        });
                    attempt(&self.client, prepared, SERVICE, |reply| {
                        reply.outcome(Outcome::Sent)
                    })
                    .await
                }
                Err(reason) => Attempt::failed(reason),
            };
            attempts.push(sent);
        }
        Attempt::combine(attempts)
    }
}

impl Provider for Slack {
    fn send<'a>(&'a self, out: &'a Outgoing) -> BoxFuture<'a, Attempt> {
        Box::pin(self.deliver(out))
    }
}

/// `{text, blocks?}` from the chat content.
fn message(content: &Value) -> Result<Value, String> {
    let content = Fields::new(content, "content");
    let blocks = match content.get("json_content") {
        None => None,
        Some(Value::Array(blocks)) => Some(blocks),
        Some(json) => json.get("blocks").and_then(Value::as_array),
    };
    let text = match blocks {
        Some(_) => content
            .opt_str("summary")
            .or_else(|| content.opt_str("markdown_body")),
        None => content.opt_str("markdown_body"),
    };
    match (text, blocks) {
        (None, None) => Err("content has neither markdown_body nor json_content blocks".into()),
        (text, None) => Ok(json!({"text": text})),
        (text, Some(blocks)) => Ok(json!({"text": text.unwrap_or_default(), "blocks": blocks})),
    }
}

/// One entry per connection; a connection we cannot use is an `Err` (a terminal failure for it).
fn targets(channel_data: Option<&Value>) -> Vec<Result<Target<'_>, String>> {
    let Some(data) = channel_data else {
        return Vec::new();
    };
    let shared_token = data
        .get("token")
        .and_then(|t| t.get("access_token"))
        .and_then(Value::as_str);
    let connections = data.get("connections").and_then(Value::as_array);
    connections
        .into_iter()
        .flatten()
        .map(|connection| {
            if let Some(url) = non_empty(
                connection
                    .get("incoming_webhook")
                    .and_then(|w| w.get("url")),
            ) {
                return Ok(Target::Webhook { url });
            }
            let token = non_empty(connection.get("access_token")).or(shared_token);
            match (token, non_empty(connection.get("channel_id"))) {
                (Some(token), Some(channel)) => Ok(Target::Api { token, channel }),
                (None, _) => Err("Slack connection has no access_token".to_string()),
                (_, None) => Err("Slack connection has no channel_id".to_string()),
            }
        })
        .collect()
}

fn non_empty(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn classify_api(reply: &Reply) -> Outcome {
    match reply.outcome(Outcome::Sent) {
        Outcome::Sent => {}
        other => return other,
    }
    let body = reply.json();
    match (
        body.get("ok").and_then(Value::as_bool),
        body.get("error").and_then(Value::as_str),
    ) {
        (Some(true), _) => Outcome::Sent,
        (_, Some(error)) if TRANSIENT_ERRORS.contains(&error) => {
            Outcome::Retryable(format!("Slack: {error}"))
        }
        (_, Some(error)) => Outcome::Failed(format!("Slack: {error}")),
        _ => Outcome::Retryable(format!("unexpected Slack response: {}", reply.body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_prefers_blocks_with_summary_text() {
        let m = message(&json!({"markdown_body": "*hi*", "summary": "hi", "json_content": {"blocks": [{"type": "divider"}]}})).unwrap();
        assert_eq!(m, json!({"text": "hi", "blocks": [{"type": "divider"}]}));
        assert_eq!(
            message(&json!({"markdown_body": "*hi*"})).unwrap(),
            json!({"text": "*hi*"})
        );
        assert!(message(&json!({})).is_err());
    }

    #[test]
    fn connections_resolve_tokens() {
        let data = json!({"token": {"access_token": "xoxb-shared"}, "connections": [
            {"channel_id": "C1"},
            {"access_token": "xoxb-own", "channel_id": "C2"},
            {"incoming_webhook": {"url": "https://hooks.slack.com/services/T/B/X"}},
            {"user_id": "U1"},
        ]});
        let t = targets(Some(&data));
        assert!(matches!(
            t[0],
            Ok(Target::Api {
                token: "xoxb-shared",
                channel: "C1"
            })
        ));
        assert!(matches!(
            t[1],
            Ok(Target::Api {
                token: "xoxb-own",
                channel: "C2"
            })
        ));
        assert!(matches!(t[2], Ok(Target::Webhook { .. })));
        assert!(t[3].is_err());
    }
}
