//! SendGrid, Postmark and Resend against fakes that check what each real API requires.

use serde_json::{json, Value};

use super::fakes::{
    assert_redacted, checked, email_content, json_reply, outgoing, providers, want, Fake, Seen,
};
use crate::delivery::{Attempt, Outcome, ProvidersConfig};

const MESSAGE_ID: &str = "msg_2b1fUq0Xn8Lw";

/// Send the standard email through `provider` pointed at `fake`, with `api_key`.
async fn send_email(provider: &str, fake: &Fake, api_key: &str) -> Attempt {
    let settings = json!({"api_key": api_key, "base_url": fake.base});
    let out = outgoing(provider, "email", settings, email_content(), None);
    providers(ProvidersConfig::default()).send(&out).await
}

fn sendgrid_wire(seen: &Seen) -> Result<(), String> {
    let body = seen.json_post("/v3/mail/send")?;
    want(
        "authorization",
        seen.header("authorization"),
        "Bearer SG.test-key",
    )?;
    let personalization = &body["personalizations"][0];
    want(
        "to",
        &personalization["to"],
        &json!([{"email": "jane@example.com", "name": "Jane Doe"}]),
    )?;
    want(
        "cc",
        &personalization["cc"],
        &json!([{"email": "ops@example.com"}]),
    )?;
    want(
        "bcc",
        &personalization["bcc"],
        &json!([{"email": "audit@example.com"}]),
    )?;
    want(
        "from",
        &body["from"],
        &json!({"email": "noreply@example.com", "name": "Herald"}),
    )?;
    want(
        "reply_to",
        &body["reply_to"],
        &json!({"email": "support@example.com"}),
    )?;
    want("subject", &body["subject"], &json!("Your order shipped"))?;
    want(
        "content (text/plain first)",
        &body["content"],
        &json!([
            {"type": "text/plain", "value": "Order 42 shipped"},
            {"type": "text/html", "value": "<p>Order <b>42</b> shipped</p>"},
        ]),
    )?;
    want(
        "custom_args",
        &body["custom_args"]["herald_message_id"],
        &json!(MESSAGE_ID),
    )
}

#[tokio::test]
async fn sendgrid_posts_mail_send_and_202_is_sent() {
    let fake = Fake::start(checked(sendgrid_wire, |_| json_reply(202, Value::Null))).await;
    let attempt = send_email("sendgrid", &fake, "SG.test-key").await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    assert_eq!(attempt.logs.len(), 1);
    let log = &attempt.logs[0];
    assert_eq!(log.service_name, "sendgrid");
    assert_eq!(
        (log.request.method.as_str(), log.request.path.as_str()),
        ("POST", "/v3/mail/send")
    );
    assert_eq!(log.response.as_ref().map(|r| r.status), Some(202));
    assert!(log.request.body.contains("Your order shipped"));
    assert_redacted(&attempt, "SG.test-key");
}

fn postmark_wire(seen: &Seen) -> Result<(), String> {
    let body = seen.json_post("/email")?;
    want(
        "server token",
        seen.header("x-postmark-server-token"),
        "pm-server-token",
    )?;
    want("accept", seen.header("accept"), "application/json")?;
    let expected = [
        ("From", json!("\"Herald\" <noreply@example.com>")),
        ("To", json!("\"Jane Doe\" <jane@example.com>")),
        ("Cc", json!("ops@example.com")),
        ("Bcc", json!("audit@example.com")),
        ("ReplyTo", json!("support@example.com")),
        ("Subject", json!("Your order shipped")),
        ("HtmlBody", json!("<p>Order <b>42</b> shipped</p>")),
        ("TextBody", json!("Order 42 shipped")),
        ("MessageStream", json!("outbound")),
        ("Metadata", json!({"herald_message_id": MESSAGE_ID})),
    ];
    for (field, value) in expected {
        want(field, &body[field], &value)?;
    }
    Ok(())
}

#[tokio::test]
async fn postmark_posts_email_and_error_code_zero_is_sent() {
    let fake = Fake::start(checked(postmark_wire, |seen| {
        // Postmark answers 200 with a non-zero ErrorCode for some rejections.
        let code = if seen.json()["Subject"] == "inactive" {
            406
        } else {
            0
        };
        json_reply(
            200,
            json!({"ErrorCode": code, "Message": "OK", "MessageID": "pm-1"}),
        )
    }))
    .await;
    let providers = providers(ProvidersConfig::default());
    let mut out = outgoing(
        "postmark",
        "email",
        json!({"api_key": "pm-server-token", "base_url": fake.base}),
        email_content(),
        None,
    );
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    assert_redacted(&attempt, "pm-server-token");

    out.content["subject_line"] = json!("inactive");
    let attempt = providers.send(&out).await;
    assert!(matches!(attempt.outcome, Outcome::Failed(_)), "{attempt:?}");
}

fn resend_wire(seen: &Seen) -> Result<(), String> {
    let body = seen.json_post("/emails")?;
    want(
        "authorization",
        seen.header("authorization"),
        "Bearer re_test",
    )?;
    want(
        "idempotency-key",
        seen.header("idempotency-key"),
        MESSAGE_ID,
    )?;
    want(
        "from",
        &body["from"],
        &json!("\"Herald\" <noreply@example.com>"),
    )?;
    want(
        "to",
        &body["to"],
        &json!(["\"Jane Doe\" <jane@example.com>"]),
    )?;
    want("cc", &body["cc"], &json!(["ops@example.com"]))?;
    want("subject", &body["subject"], &json!("Your order shipped"))?;
    want(
        "html",
        &body["html"],
        &json!("<p>Order <b>42</b> shipped</p>"),
    )?;
    want("text", &body["text"], &json!("Order 42 shipped"))
}

#[tokio::test]
async fn resend_sends_the_message_id_as_idempotency_key() {
    let fake = Fake::start(checked(resend_wire, |_| {
        json_reply(200, json!({"id": "re-1"}))
    }))
    .await;
    let attempt = send_email("resend", &fake, "re_test").await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    assert_redacted(&attempt, "re_test");
}

#[tokio::test]
async fn bad_settings_or_content_fail_without_a_request() {
    let fake = Fake::start(|_| json_reply(202, Value::Null)).await;
    let providers = providers(ProvidersConfig::default());
    let cases = [
        ("sendgrid", json!({"base_url": fake.base}), email_content()),
        (
            "sendgrid",
            json!({"api_key": "k", "base_url": fake.base}),
            json!({"to": "x"}),
        ),
        ("postmark", json!("not an object"), email_content()),
        (
            "resend",
            json!({"api_key": "k", "base_url": "not a url"}),
            email_content(),
        ),
    ];
    for (provider, settings, content) in cases {
        let attempt = providers
            .send(&outgoing(provider, "email", settings, content, None))
            .await;
        assert!(matches!(attempt.outcome, Outcome::Failed(_)), "{attempt:?}");
        assert!(attempt.logs.is_empty());
    }
    assert!(fake.requests().is_empty());
}
