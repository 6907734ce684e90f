//! Twilio SMS against a fake of the Messages resource.

use serde_json::json;

use super::fakes::{assert_redacted, checked, json_reply, outgoing, providers, want, Fake, Seen};
use crate::delivery::{Outcome, ProvidersConfig};

fn twilio_wire(seen: &Seen) -> Result<(), String> {
    want("method", seen.method.as_str(), "POST")?;
    want(
        "path",
        seen.path.as_str(),
        "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json",
    )?;
    want(
        "basic auth",
        &seen.basic_auth(),
        &Some((
            "AC0123456789abcdef".to_string(),
            "tw-auth-token".to_string(),
        )),
    )?;
    let form = seen.form()?;
    want("To", form.field("To"), "+15550001111")?;
    want("Body", form.field("Body"), "Your code is 1234")?;
    // Exactly one sender: a number or a messaging service.
    match (form.0.get("From"), form.0.get("MessagingServiceSid")) {
        (Some(from), None) => want("From", from.as_str(), "+15559990000"),
        (None, Some(service)) => want("MessagingServiceSid", service.as_str(), "MG42"),
        _ => Err(format!(
            "want exactly one of From, MessagingServiceSid: {form:?}"
        )),
    }
}

#[tokio::test]
async fn twilio_posts_form_with_basic_auth_and_201_is_sent() {
    let fake = Fake::start(checked(twilio_wire, |_| {
        json_reply(201, json!({"sid": "SM1", "status": "queued"}))
    }))
    .await;
    let providers = providers(ProvidersConfig::default());
    let settings = json!({
        "account_sid": "AC0123456789abcdef",
        "auth_token": "tw-auth-token",
        "from": "+15559990000",
        "base_url": fake.base,
    });
    let content = json!({"to": "+15550001111", "body": "Your code is 1234"});
    let mut out = outgoing("twilio", "sms", settings, content, None);
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    assert_eq!(
        attempt.logs[0].response.as_ref().map(|r| r.status),
        Some(201)
    );
    assert_redacted(&attempt, "tw-auth-token");

    out.settings["messaging_service_sid"] = json!("MG42");
    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");

    out.settings["account_sid"] = json!("AC/../../x");
    let attempt = providers.send(&out).await;
    assert!(matches!(attempt.outcome, Outcome::Failed(_)));
    assert_eq!(fake.requests().len(), 2);
}
