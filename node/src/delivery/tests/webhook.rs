//! The webhook channel against a receiver that verifies the signature, and the shared status
//! classification (2xx / 408 / 429 / 5xx / other 4xx / no answer).

use serde_json::json;

use super::fakes::{checked, outgoing, providers, text_reply, want, Fake, Seen};
use crate::delivery::webhook::signature;
use crate::delivery::{Outcome, ProvidersConfig};

const SECRET: &str = "whsec_test";

fn webhook_wire(seen: &Seen) -> Result<(), String> {
    want("method", seen.method.as_str(), "PUT")?;
    want("path", seen.path.as_str(), "/hooks/orders")?;
    want(
        "query",
        &Seen::form_of(seen.query.as_deref().unwrap_or("")),
        &[
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "x y".to_string()),
        ]
        .into(),
    )?;
    want("x-custom", seen.header("x-custom"), "yes")?;
    want(
        "content-type",
        seen.header("content-type"),
        "application/json",
    )?;
    want(
        "idempotency-key",
        seen.header("idempotency-key"),
        "msg_2b1fUq0Xn8Lw",
    )?;
    want(
        "x-herald-message-id",
        seen.header("x-herald-message-id"),
        "msg_2b1fUq0Xn8Lw",
    )?;
    // Verify as a receiver would: recompute the MAC over "<t>.<raw body>".
    let header = seen.header("x-herald-signature");
    let t: u128 = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("bad signature header {header:?}"))?;
    want(
        "signature",
        header,
        signature(SECRET, t, &seen.text()).as_str(),
    )?;
    want("body", &seen.json(), &json!({"order": 42}))
}

#[tokio::test]
async fn webhook_sends_the_rendered_request_signed_and_2xx_is_delivered() {
    let fake = Fake::start(checked(webhook_wire, |_| text_reply(200, "thanks"))).await;
    let providers = providers(ProvidersConfig::default());
    let content = json!({
        "method": "put",
        "url": format!("{}/hooks/orders", fake.base),
        "headers": [{"key": "X-Custom", "value": "yes"}],
        "query_params": [{"key": "a", "value": "1"}, {"key": "b", "value": "x y"}],
        "body": {"order": 42},
    });
    let out = outgoing(
        "webhook",
        "http",
        json!({"signing_secret": SECRET}),
        content,
        None,
    );
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    let log = &attempt.logs[0];
    assert_eq!(log.request.query.as_deref(), Some("a=1&b=x+y"));
    assert_eq!(log.request.headers["x-custom"], "yes");
    assert_eq!(
        log.response.as_ref().map(|r| r.body.as_str()),
        Some("thanks")
    );
}

#[tokio::test]
async fn status_classification() {
    let fake = Fake::start(|seen| {
        let status = seen.path.trim_start_matches('/').parse().unwrap_or(500);
        text_reply(status, "status from path")
    })
    .await;
    let providers = providers(ProvidersConfig {
        breaker_failure_threshold: 100,
        ..ProvidersConfig::default()
    });
    let send = |url: String| {
        let out = outgoing(
            "webhook",
            "http",
            json!({}),
            json!({"method": "POST", "url": url, "body": "plain"}),
            None,
        );
        let providers = &providers;
        async move { providers.send(&out).await }
    };
    for (status, retryable) in [
        (408, true),
        (429, true),
        (500, true),
        (503, true),
        (400, false),
        (401, false),
        (404, false),
        (410, false),
        (301, false),
    ] {
        let attempt = send(format!("{}/{status}", fake.base)).await;
        let got_retryable = matches!(attempt.outcome, Outcome::Retryable(_));
        let got_failed = matches!(attempt.outcome, Outcome::Failed(_));
        assert!(
            got_retryable == retryable && got_failed != retryable,
            "{status}: {attempt:?}"
        );
        assert_eq!(
            attempt.logs[0].response.as_ref().map(|r| r.status),
            Some(status)
        );
    }
    assert_eq!(
        send(format!("{}/204", fake.base)).await.outcome,
        Outcome::Delivered
    );

    // Nobody listening: retryable, logged without a response.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let attempt = send(format!("http://127.0.0.1:{port}/x")).await;
    assert!(
        matches!(attempt.outcome, Outcome::Retryable(_)),
        "{attempt:?}"
    );
    assert_eq!(attempt.logs.len(), 1);
    assert!(attempt.logs[0].response.is_none());

    for bad in [
        json!({"url": "ftp://x/"}),
        json!({"url": "http://x/", "method": "TRACE"}),
        json!({"url": "http://x/", "headers": [{"key": "bad header", "value": "v"}]}),
    ] {
        let out = outgoing("webhook", "http", json!({}), bad, None);
        assert!(matches!(
            providers.send(&out).await.outcome,
            Outcome::Failed(_)
        ));
    }
}

#[tokio::test]
async fn a_string_body_is_typed_as_json_only_when_it_is_json() {
    let fake = Fake::start(|seen| {
        let ct = seen.header("content-type").to_string();
        text_reply(200, &ct)
    })
    .await;
    let providers = providers(ProvidersConfig::default());
    for (body, content_type) in [
        (json!("{\"a\": [1, 2]}"), "application/json"),
        (json!("plain text"), ""),
        (json!({"a": 1}), "application/json"),
    ] {
        let content = json!({"url": format!("{}/x", fake.base), "body": body});
        let out = outgoing("webhook", "http", json!({}), content, None);
        let attempt = providers.send(&out).await;
        assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
        let seen = attempt.logs[0].response.as_ref().map(|r| r.body.as_str());
        assert_eq!(seen, Some(content_type), "{body}");
    }
}
