//! One HTTP exchange with a provider, captured as a [`DeliveryLog`]. Every HTTP provider goes
//! through [`exchange`], so logging, redaction and body limits are written once.
//!
//! Redaction happens here, before a log exists: headers whose *name* is known to carry credentials
//! are replaced whole, and each string in the caller's `secrets` (API tokens, OAuth assertions,
//! webhook URL paths) is replaced wherever it appears in headers, path, query or bodies.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::{Attempt, DeliveryLog, LoggedRequest, LoggedResponse, Outcome, Outgoing, Provider};

/// Bodies are logged (and provider answers parsed) up to this many bytes.
pub(crate) const MAX_LOGGED_BODY: usize = 64 * 1024;

const REDACTED: &str = "[REDACTED]";

/// Strings shorter than this are not treated as secrets by [`Redactor`].
const MIN_SECRET_LEN: usize = 6;

/// Header names whose values are always credentials.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-postmark-server-token",
    "x-auth-token",
];

/// A provider's answer: status and (possibly truncated) body.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Reply {
    /// The shared classification, see [`Outcome::from_status`].
    pub(crate) fn outcome(&self, success: Outcome) -> Outcome {
        Outcome::from_status(self.status, &self.body, success)
    }

    /// The body as JSON, `Null` when it is not JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The log of one exchange and what came back: a reply, or why none came (always retryable).
pub(crate) struct Exchange {
    pub(crate) log: DeliveryLog,
    pub(crate) reply: Result<Reply, String>,
}

/// A provider that makes exactly one HTTP request per message (the email APIs, Twilio, webhooks).
/// [`OneShotProvider`] turns it into a [`Provider`], so each of them only says how to build the
/// request and, if it differs from the shared rules, how to read the answer.
pub(crate) trait OneShot: Send + Sync + 'static {
    /// The `service_name` of its delivery logs.
    const SERVICE: &'static str;

    /// Build the request for `out`, and name the secrets it contains. An `Err` is terminal (bad
    /// settings or content) and nothing is sent.
    fn prepare(&self, client: &reqwest::Client, out: &Outgoing) -> Result<Prepared, String>;

    /// The outcome of a reply; by default the shared classification with 2xx → `Sent`.
    fn classify(&self, reply: &Reply) -> Outcome {
        reply.outcome(Outcome::Sent)
    }
}

/// A built request and the secrets to keep out of its log.
pub(crate) struct Prepared {
    pub(crate) request: reqwest::Request,
    pub(crate) secrets: Vec<String>,
}

impl Prepared {
    /// Finish a request builder; an invalid URL or header is a terminal configuration error.
    pub(crate) fn build(
        builder: reqwest::RequestBuilder,
        secrets: &[&str],
    ) -> Result<Prepared, String> {
        let request = builder
            .build()
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let secrets = secrets.iter().map(|s| s.to_string()).collect();
        Ok(Prepared { request, secrets })
    }
}

pub(crate) struct OneShotProvider<P> {
    inner: P,
    client: reqwest::Client,
}

impl<P: OneShot> OneShotProvider<P> {
    /// `inner` as a provider sending through `client`.
    pub(crate) fn shared(inner: P, client: &reqwest::Client) -> Arc<dyn Provider> {
        Arc::new(OneShotProvider {
            inner,
            client: client.clone(),
        })
    }
}

impl<P: OneShot> Provider for OneShotProvider<P> {
    fn send<'a>(&'a self, out: &'a Outgoing) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let prepared = self.inner.prepare(&self.client, out);
            attempt(&self.client, prepared, P::SERVICE, |reply| {
                self.inner.classify(reply)
            })
            .await
        })
    }
}

/// Send a prepared request and classify the reply with `classify`: an unprepared request is a
/// terminal failure with no log, a missing reply a retryable one with a log.
pub(crate) async fn attempt(
    client: &reqwest::Client,
    prepared: Result<Prepared, String>,
    service_name: &str,
    classify: impl FnOnce(&Reply) -> Outcome,
) -> Attempt {
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(reason) => return Attempt::failed(reason),
    };
    let secrets: Vec<&str> = prepared.secrets.iter().map(String::as_str).collect();
    let sent = exchange(client, prepared.request, service_name, &secrets).await;
    let outcome = match &sent.reply {
        Ok(reply) => classify(reply),
        Err(e) => Outcome::Retryable(e.clone()),
    };
    Attempt::single(outcome, sent.log)
}

/// Send `request` with `client` and capture both sides. `secrets` are redacted from the log.
pub(crate) async fn exchange(
    client: &reqwest::Client,
    request: reqwest::Request,
    service_name: &str,
    secrets: &[&str],
) -> Exchange {
    let redact = Redactor::new(secrets);
    let url = request.url();
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => String::new(),
    };
    let logged_request = LoggedRequest {
        method: request.method().to_string(),
        host,
        path: redact.text(url.path()),
        query: url.query().map(|q| redact.text(q)),
        headers: redact.headers(request.headers()),
        body: redact.text(&truncated_text(
            request
                .body()
                .and_then(|b| b.as_bytes())
                .unwrap_or_default(),
        )),
    };
    let (response, reply) = match client.execute(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = redact.headers(response.headers());
            let body = read_body(response).await;
            let logged = LoggedResponse {
                status,
                headers,
                body: redact.text(&body),
            };
            (Some(logged), Ok(Reply { status, body }))
        }
        Err(e) => (None, Err(describe(&e))),
    };
    Exchange {
        log: DeliveryLog {
            request: logged_request,
            response,
            service_name: service_name.to_string(),
        },
        reply,
    }
}

/// Read at most [`MAX_LOGGED_BODY`] bytes; a body that fails midway keeps what arrived.
async fn read_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_LOGGED_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    truncated_text(&body)
}

fn truncated_text(bytes: &[u8]) -> String {
    let cut = bytes.len().min(MAX_LOGGED_BODY);
    String::from_utf8_lossy(&bytes[..cut]).into_owned()
}

/// reqwest's error plus its cause chain ("error sending request" alone says nothing).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect error"
    } else {
        "network error"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Replaces credentials in log text.
pub(crate) struct Redactor<'a> {
    secrets: Vec<&'a str>,
}

impl<'a> Redactor<'a> {
    pub(crate) fn new(secrets: &[&'a str]) -> Self {
        // Longest first, so a secret containing another is replaced whole. Very short strings are
        // no credentials (a webhook URL's path "/") and replacing them would garble the whole log.
        let mut secrets: Vec<&str> = secrets
            .iter()
            .copied()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub(crate) fn text(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret) {
                text = text.replace(secret, REDACTED);
            }
        }
        text
    }

    /// Headers as a JSON object (repeated names joined with ", ").
    pub(crate) fn headers(&self, headers: &reqwest::header::HeaderMap) -> Value {
        let mut object = Map::new();
        for (name, value) in headers {
            let name = name.as_str();
            let value = if SECRET_HEADERS.contains(&name) {
                REDACTED.to_string()
            } else {
                self.text(&String::from_utf8_lossy(value.as_bytes()))
            };
            match object.get_mut(name) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                _ => {
                    object.insert(name.to_string(), Value::String(value));
                }
            }
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn redacts_named_headers_and_listed_secrets() {
        let redactor = Redactor::new(&["tok-123456", "tok-123456-longer", "/", ""]);
        assert_eq!(
            redactor.text("a tok-123456-longer and tok-123456 / b"),
            "a [REDACTED] and [REDACTED] / b"
        );
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Basic abc"));
        headers.insert("x-echo", HeaderValue::from_static("tok-123456"));
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        assert_eq!(
            redactor.headers(&headers),
            serde_json::json!({"authorization": "[REDACTED]", "x-echo": "[REDACTED]", "accept": "a, b"})
        );
    }

    #[test]
    fn bodies_are_cut_at_the_limit() {
        let long = vec![b'x'; MAX_LOGGED_BODY + 10];
        assert_eq!(truncated_text(&long).len(), MAX_LOGGED_BODY);
    }
}
