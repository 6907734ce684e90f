//! Slack `chat.postMessage` and incoming webhooks against one fake serving both.

use serde_json::json;

use super::fakes::{
    assert_redacted, checked, json_reply, outgoing, providers, text_reply, want, Fake, Seen,
};
use crate::delivery::{Outcome, ProvidersConfig};

const WEBHOOK_PATH: &str = "/services/T000/B000/hooksecret";

fn slack_wire(seen: &Seen) -> Result<(), String> {
    want("method", seen.method.as_str(), "POST")?;
    let body = seen.json();
    want("text", &body["text"], &json!("Deploy finished"))?;
    want(
        "blocks",
        &body["blocks"],
        &json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*Deploy* finished"}}]),
    )?;
    match seen.path.as_str() {
        "/api/chat.postMessage" => {
            want(
                "authorization",
                seen.header("authorization"),
                "Bearer xoxb-test",
            )?;
            want(
                "content-type",
                seen.header("content-type"),
                "application/json; charset=utf-8",
            )?;
            if !body["channel"].is_string() {
                return Err("channel missing".into());
            }
            Ok(())
        }
        WEBHOOK_PATH => {
            want(
                "content-type",
                seen.header("content-type"),
                "application/json",
            )?;
            want("authorization", seen.header("authorization"), "")?;
            want("no channel on webhooks", &body.get("channel"), &None)
        }
        other => Err(format!("unexpected path {other}")),
    }
}

fn slack_answer(seen: &Seen) -> axum::response::Response {
    if seen.path == WEBHOOK_PATH {
        return text_reply(200, "ok");
    }
    match seen.json()["channel"].as_str() {
        Some("C_OK") => json_reply(200, json!({"ok": true, "channel": "C_OK", "ts": "1.2"})),
        Some("C_RATE") => json_reply(200, json!({"ok": false, "error": "ratelimited"})),
        _ => json_reply(200, json!({"ok": false, "error": "channel_not_found"})),
    }
}

#[tokio::test]
async fn slack_posts_to_every_connection() {
    let fake = Fake::start(checked(slack_wire, slack_answer)).await;
    let providers = providers(ProvidersConfig::default());
    let content = json!({
        "markdown_body": "*Deploy* finished",
        "summary": "Deploy finished",
        "json_content": {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Deploy* finished"}}]},
    });
    let data = |connections: serde_json::Value| {
        Some(json!({"token": {"access_token": "xoxb-test"}, "connections": connections}))
    };
    let settings = json!({"base_url": fake.base});
    let webhook = json!({"incoming_webhook": {"url": format!("{}{WEBHOOK_PATH}", fake.base)}});

    let out = outgoing(
        "slack",
        "chat",
        settings.clone(),
        content.clone(),
        data(json!([{"channel_id": "C_OK"}, webhook])),
    );
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    assert_eq!(attempt.logs.len(), 2);
    assert_eq!(attempt.logs[0].request.path, "/api/chat.postMessage");
    // The webhook URL is the credential: its path never reaches the log.
    assert_eq!(attempt.logs[1].request.path, "[REDACTED]");
    assert_redacted(&attempt, "xoxb-test");
    assert_redacted(&attempt, "hooksecret");

    let cases = [("C_RATE", "Retryable"), ("C_MISSING", "Failed")];
    for (channel, expected) in cases {
        let out = outgoing(
            "slack",
            "chat",
            settings.clone(),
            content.clone(),
            data(json!([{"channel_id": channel}])),
        );
        let attempt = providers.send(&out).await;
        let kind = match attempt.outcome {
            Outcome::Retryable(_) => "Retryable",
            Outcome::Failed(_) => "Failed",
            _ => "success",
        };
        assert_eq!(kind, expected, "{channel}: {attempt:?}");
    }

    let out = outgoing("slack", "chat", settings, content, None);
    assert!(matches!(
        providers.send(&out).await.outcome,
        Outcome::Failed(_)
    ));
    assert_eq!(fake.requests().len(), 4);
}
