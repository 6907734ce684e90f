//! Retries and the circuit breaker as the dispatcher sees them: repeated `Providers::send` calls
//! against a flaky provider and a dead one.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::fakes::{outgoing, providers, text_reply, Counter, Fake};
use crate::delivery::{Outcome, Outgoing, ProvidersConfig};

fn webhook_to(fake: &Fake) -> Outgoing {
    let content = json!({"method": "POST", "url": format!("{}/hook", fake.base), "body": "{}"});
    outgoing("webhook", "http", json!({}), content, None)
}

#[tokio::test]
async fn a_provider_failing_three_times_then_succeeding() {
    let calls = Arc::new(Counter::default());
    let counted = calls.clone();
    let fake = Fake::start(move |_| match counted.next() {
        0..=2 => text_reply(503, "busy"),
        _ => text_reply(200, "ok"),
    })
    .await;
    let providers = providers(ProvidersConfig {
        breaker_failure_threshold: 5,
        ..ProvidersConfig::default()
    });
    let out = webhook_to(&fake);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let attempt = providers.send(&out).await;
        assert!(
            matches!(attempt.outcome, Outcome::Retryable(_)),
            "{attempt:?}"
        );
        assert_eq!(attempt.logs.len(), 1);
        statuses.extend(attempt.logs[0].response.as_ref().map(|r| r.status));
    }
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Delivered);
    statuses.extend(attempt.logs[0].response.as_ref().map(|r| r.status));
    assert_eq!(statuses, [503, 503, 503, 200]);
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn a_dead_provider_trips_the_breaker_which_probes_after_the_cool_down() {
    let fake = Fake::start(|_| text_reply(500, "down")).await;
    let providers = providers(ProvidersConfig {
        breaker_failure_threshold: 3,
        breaker_cool_down_ms: 60,
        ..ProvidersConfig::default()
    });
    let out = webhook_to(&fake);
    for _ in 0..3 {
        let attempt = providers.send(&out).await;
        assert!(
            matches!(attempt.outcome, Outcome::Retryable(ref r) if r.contains("500")),
            "{attempt:?}"
        );
        assert_eq!(attempt.logs.len(), 1);
    }
    // Open: answered without calling the provider, so no log.
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Retryable("circuit open".into()));
    assert!(attempt.logs.is_empty());
    assert_eq!(fake.requests().len(), 3);

    // After the cool-down one probe goes out; it fails, so the breaker opens again.
    tokio::time::sleep(Duration::from_millis(80)).await;
    let probe = providers.send(&out).await;
    assert_eq!(probe.logs.len(), 1, "{probe:?}");
    assert_eq!(fake.requests().len(), 4);
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Retryable("circuit open".into()));

    // Webhook breakers are per destination host: another host is unaffected.
    let elsewhere = Fake::start(|_| text_reply(200, "ok")).await;
    let mut other_host = webhook_to(&elsewhere);
    let url = other_host.content["url"]
        .as_str()
        .unwrap()
        .replace("127.0.0.1", "localhost");
    other_host.content["url"] = json!(url);
    assert_eq!(
        providers.send(&other_host).await.outcome,
        Outcome::Delivered
    );

    // Breakers are per provider: another provider is unaffected.
    let other = outgoing("sendgrid", "email", json!({}), json!({}), None);
    assert!(matches!(
        providers.send(&other).await.outcome,
        Outcome::Failed(_)
    ));
}

#[tokio::test]
async fn unknown_providers_fail() {
    let providers = providers(ProvidersConfig::default());
    let attempt = providers
        .send(&outgoing("pigeon", "sms", json!({}), json!({}), None))
        .await;
    assert_eq!(
        attempt.outcome,
        Outcome::Failed("unknown provider pigeon".into())
    );
    let names: Vec<&str> = providers.names().collect();
    assert_eq!(
        names,
        ["apns", "fcm", "postmark", "resend", "sendgrid", "slack", "smtp", "twilio", "webhook"]
    );
}

#[test]
fn providers_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync>(_: &T) {}
    fn spawnable<F: std::future::Future + Send>(_: F) {}
    let providers = providers(ProvidersConfig::default());
    shareable(&providers);
    let out = outgoing("webhook", "http", json!({}), json!({}), None);
    spawnable(providers.send(&out));
}

#[test]
fn config_validation() {
    assert!(ProvidersConfig::default().validate().is_ok());
    let zero_threshold = ProvidersConfig {
        breaker_failure_threshold: 0,
        ..ProvidersConfig::default()
    };
    assert!(zero_threshold.validate().is_err());
    let zero_timeout = ProvidersConfig {
        request_timeout_ms: 0,
        ..ProvidersConfig::default()
    };
    assert!(zero_timeout.validate().is_err());
    // Unvalidated, it is clamped rather than refused.
    let _ = providers(zero_threshold);
}
