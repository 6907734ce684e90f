//! Resend: `POST {base}/emails` with `Authorization: Bearer <api_key>`, `Idempotency-Key: <message
//! id>` (Resend drops a repeat within 24 h, which makes at-least-once delivery exactly-once there) and
//! a JSON body `{from, to[], cc?, bcc?, reply_to?, subject, html?, text?, headers}`. 2xx → `Sent`.
//!
//! Settings: `{api_key, base_url?}`.

use serde_json::{json, Value};

use super::email::{Address, Email};
use super::exchange::{OneShot, Prepared};
use super::fields::Fields;
use super::Outgoing;

const DEFAULT_BASE: &str = "https://api.resend.com";

pub(crate) struct Resend;

impl OneShot for Resend {
    const SERVICE: &'static str = "resend";

    fn prepare(&self, client: &reqwest::Client, out: &Outgoing) -> Result<Prepared, String> {
        let settings = Fields::new(&out.settings, "settings");
        let api_key = settings.str("api_key")?;
        let body = email_body(&Email::parse(&out.content)?, &out.message_id);
        let request = client
            .post(format!("{}/emails", settings.base_url(DEFAULT_BASE)))
            .bearer_auth(api_key)
            .header("Idempotency-Key", &out.message_id)
            .json(&body);
        Prepared::build(request, &[api_key])
    }
}

fn email_body(email: &Email<'_>, message_id: &str) -> Value {
    let list = |addresses: &[Address]| {
        Value::from(addresses.iter().map(Address::to_string).collect::<Vec<_>>())
    };
    let mut body = json!({
        "from": email.from.to_string(),
        "to": list(&email.to),
        "subject": email.subject,
        "headers": {"X-Herald-Message-Id": message_id},
    });
    let optional = [
        ("cc", (!email.cc.is_empty()).then(|| list(&email.cc))),
        ("bcc", (!email.bcc.is_empty()).then(|| list(&email.bcc))),
        (
            "reply_to",
            (!email.reply_to.is_empty()).then(|| list(&email.reply_to)),
        ),
        ("html", email.html.map(Value::from)),
        ("text", email.text.map(Value::from)),
    ];
    if let Some(object) = body.as_object_mut() {
        for (key, value) in optional {
            if let Some(value) = value {
                object.insert(key.into(), value);
            }
        }
    }
    body
}
