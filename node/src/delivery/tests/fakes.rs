//! The fake-provider server every HTTP provider test uses: an axum app on 127.0.0.1:0 that records
//! each request and answers through a test-supplied responder. `axum::serve` speaks HTTP/1.1 and
//! h2c (HTTP/2 with prior knowledge), so the same server fakes APNs.
//!
//! Responders check the wire format the real provider requires (see [`checked`]): a request that
//! fails a check gets `400 {"fake_rejected": "<why>"}`, the way the real provider would reject it,
//! so the provider under test reports `Failed` and the test's outcome assertion shows why.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use crate::delivery::{Attempt, Outgoing, Providers, ProvidersConfig};

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: Option<String>,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) version: Version,
}

impl Seen {
    /// A header's value, "" when absent.
    pub(super) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Check `POST <path>` with a JSON body, and return the body.
    pub(super) fn json_post(&self, path: &str) -> Result<Value, String> {
        want("method", self.method.as_str(), "POST")?;
        want("path", self.path.as_str(), path)?;
        want(
            "content-type",
            self.header("content-type"),
            "application/json",
        )?;
        Ok(self.json())
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// An `application/x-www-form-urlencoded` string (a body or a query) as a map.
    pub(super) fn form_of(encoded: &str) -> BTreeMap<String, String> {
        reqwest::Url::parse(&format!("http://x/?{encoded}"))
            .map(|url| url.query_pairs().into_owned().collect())
            .unwrap_or_default()
    }

    /// The form body, after checking it is declared as one.
    pub(super) fn form(&self) -> Result<Form, String> {
        want(
            "content-type",
            self.header("content-type"),
            "application/x-www-form-urlencoded",
        )?;
        Ok(Form(Seen::form_of(&self.text())))
    }

    /// `(user, password)` from `Authorization: Basic`.
    pub(super) fn basic_auth(&self) -> Option<(String, String)> {
        let encoded = self.header("authorization").strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_string(), password.to_string()))
    }
}

/// A decoded form body.
#[derive(Debug)]
pub(super) struct Form(pub(super) BTreeMap<String, String>);

impl Form {
    /// A field's value, "" when absent.
    pub(super) fn field(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}

type Responder = Arc<dyn Fn(&Seen) -> Response + Send + Sync>;

#[derive(Clone)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    respond: Responder,
}

/// A running fake provider; it stops when the test's runtime ends.
pub(super) struct Fake {
    /// `http://127.0.0.1:<port>`: pass it as `settings.base_url`.
    pub(super) base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    pub(super) async fn start(respond: impl Fn(&Seen) -> Response + Send + Sync + 'static) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let addr = listener.local_addr().expect("fake address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            seen: seen.clone(),
            respond: Arc::new(respond),
        };
        let app = Router::new().fallback(record).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake {
            base: format!("http://{addr}"),
            seen,
        }
    }

    /// Every request received so far, in arrival order.
    pub(super) fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("fake lock").clone()
    }
}

async fn record(State(state): State<FakeState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body: to_bytes(body, 1 << 20).await.unwrap_or_default(),
        version: parts.version,
    };
    let response = (state.respond)(&seen);
    state.seen.lock().expect("fake lock").push(seen);
    response
}

pub(super) fn json_reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

pub(super) fn text_reply(status: u16, body: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, body.to_string()).into_response()
}

/// A responder that runs `check` first and answers 400 with the reason when it fails.
pub(super) fn checked(
    check: impl Fn(&Seen) -> Result<(), String> + Send + Sync + 'static,
    ok: impl Fn(&Seen) -> Response + Send + Sync + 'static,
) -> impl Fn(&Seen) -> Response + Send + Sync + 'static {
    move |seen| match check(seen) {
        Ok(()) => ok(seen),
        Err(why) => json_reply(400, json!({ "fake_rejected": why })),
    }
}

/// `Err` unless `actual == expected`; the building block of wire-format checks.
pub(super) fn want<T: PartialEq + Debug + ?Sized>(
    what: &str,
    actual: &T,
    expected: &T,
) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: got {actual:?}, want {expected:?}"))
    }
}

/// Counts calls, for responders whose answer depends on the call number.
#[derive(Default)]
pub(super) struct Counter(AtomicUsize);

impl Counter {
    /// The 0-based number of this call.
    pub(super) fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// Providers with short timeouts, as the tests use them.
pub(super) fn providers(config: ProvidersConfig) -> Providers {
    Providers::new(ProvidersConfig {
        request_timeout_ms: 5_000,
        connect_timeout_ms: 1_000,
        smtp_timeout_ms: 5_000,
        ..config
    })
}

pub(super) fn outgoing(
    provider: &str,
    channel_type: &str,
    settings: Value,
    content: Value,
    channel_data: Option<Value>,
) -> Outgoing {
    Outgoing {
        message_id: "msg_2b1fUq0Xn8Lw".into(),
        channel_type: channel_type.into(),
        provider: provider.into(),
        settings,
        content,
        recipient: json!({"id": "user_1", "email": "jane@example.com", "phone_number": "+15550001111"}),
        channel_data,
    }
}

/// The rendered email every email-provider test sends.
pub(super) fn email_content() -> Value {
    json!({
        "from": "Herald <noreply@example.com>",
        "to": "Jane Doe <jane@example.com>",
        "cc": ["ops@example.com"],
        "bcc": "audit@example.com",
        "reply_to": "support@example.com",
        "subject_line": "Your order shipped",
        "html_body": "<p>Order <b>42</b> shipped</p>",
        "text_body": "Order 42 shipped",
    })
}

/// `secret` appears nowhere in the attempt's logs, and credential headers read `[REDACTED]`.
pub(super) fn assert_redacted(attempt: &Attempt, secret: &str) {
    let logs = serde_json::to_string(&attempt.logs).expect("logs serialize");
    assert!(
        !logs.contains(secret),
        "secret {secret:?} leaked into {logs}"
    );
    for log in &attempt.logs {
        if let Some(auth) = log.request.headers.get("authorization") {
            assert_eq!(auth, "[REDACTED]");
        }
    }
}
