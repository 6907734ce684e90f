//! Postmark: `POST {base}/email` with the `X-Postmark-Server-Token` header and a JSON body
//! `{From, To, Cc?, Bcc?, ReplyTo?, Subject, HtmlBody?, TextBody?, MessageStream, Headers, Metadata}`.
//! `200` with `ErrorCode: 0` → `Sent`; `200` with another `ErrorCode` is a rejection → `Failed`.
//!
//! Settings: `{api_key (the server token), message_stream? (default "outbound"), base_url?}`.
//! Postmark has no idempotency key; the message id goes in a header and the metadata.

use serde_json::{json, Value};

use super::email::{joined, Email};
use super::exchange::{OneShot, Prepared, Reply};
use super::fields::Fields;
use super::{Outcome, Outgoing};

const DEFAULT_BASE: &str = "https://api.postmarkapp.com";

pub(crate) struct Postmark;

impl OneShot for Postmark {
    const SERVICE: &'static str = "postmark";

    fn prepare(&self, client: &reqwest::Client, out: &Outgoing) -> Result<Prepared, String> {
        let settings = Fields::new(&out.settings, "settings");
        let token = settings.str("api_key")?;
        let stream = settings.opt_str("message_stream").unwrap_or("outbound");
        let body = email_body(&Email::parse(&out.content)?, stream, &out.message_id);
        let request = client
            .post(format!("{}/email", settings.base_url(DEFAULT_BASE)))
            .header("Accept", "application/json")
            .header("X-Postmark-Server-Token", token)
            .json(&body);
        Prepared::build(request, &[token])
    }

    fn classify(&self, reply: &Reply) -> Outcome {
        match reply.outcome(Outcome::Sent) {
            Outcome::Sent => match reply.json().get("ErrorCode").and_then(Value::as_i64) {
                Some(0) => Outcome::Sent,
                _ => Outcome::Failed(format!("Postmark rejected the message: {}", reply.body)),
            },
            other => other,
        }
    }
}

fn email_body(email: &Email<'_>, stream: &str, message_id: &str) -> Value {
    let mut body = json!({
        "From": email.from.to_string(),
        "To": joined(&email.to),
        "Subject": email.subject,
        "MessageStream": stream,
        "Headers": [{"Name": "X-Herald-Message-Id", "Value": message_id}],
        "Metadata": {"herald_message_id": message_id},
    });
    let optional = [
        ("Cc", Some(joined(&email.cc))),
        ("Bcc", Some(joined(&email.bcc))),
        ("ReplyTo", Some(joined(&email.reply_to))),
        ("HtmlBody", email.html.map(str::to_string)),
        ("TextBody", email.text.map(str::to_string)),
    ];
    if let Some(object) = body.as_object_mut() {
        for (key, value) in optional {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                object.insert(key.into(), Value::String(value));
            }
        }
    }
    body
}
