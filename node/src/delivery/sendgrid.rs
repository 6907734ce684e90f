//! SendGrid v3 Mail Send: `POST {base}/v3/mail/send` with `Authorization: Bearer <api_key>` and a
//! JSON body of personalizations, from, subject and content. `202 Accepted` → `Sent`.
//!
//! Settings: `{api_key, base_url?}`. SendGrid has no idempotency key; the message id travels as the
//! `X-Herald-Message-Id` header and the `herald_message_id` custom arg, which SendGrid echoes in its
//! event webhooks.

use serde_json::{json, Map, Value};

use super::email::{Address, Email};
use super::exchange::{OneShot, Prepared};
use super::fields::Fields;
use super::Outgoing;

const DEFAULT_BASE: &str = "https://api.sendgrid.com";

pub(crate) struct SendGrid;

impl OneShot for SendGrid {
    const SERVICE: &'static str = "sendgrid";

    fn prepare(&self, client: &reqwest::Client, out: &Outgoing) -> Result<Prepared, String> {
        let settings = Fields::new(&out.settings, "settings");
        let api_key = settings.str("api_key")?;
        let body = mail_send_body(&Email::parse(&out.content)?, &out.message_id);
        let url = format!("{}/v3/mail/send", settings.base_url(DEFAULT_BASE));
        Prepared::build(
            client.post(url).bearer_auth(api_key).json(&body),
            &[api_key],
        )
    }
}

fn mail_send_body(email: &Email<'_>, message_id: &str) -> Value {
    let list = |addresses: &[Address]| Value::Array(addresses.iter().map(address).collect());
    let mut personalization = Map::new();
    personalization.insert("to".into(), list(&email.to));
    // SendGrid rejects empty cc/bcc arrays.
    if !email.cc.is_empty() {
        personalization.insert("cc".into(), list(&email.cc));
    }
    if !email.bcc.is_empty() {
        personalization.insert("bcc".into(), list(&email.bcc));
    }
    // text/plain must come before text/html.
    let content: Vec<Value> = [("text/plain", email.text), ("text/html", email.html)]
        .into_iter()
        .filter_map(|(kind, value)| value.map(|v| json!({"type": kind, "value": v})))
        .collect();
    let mut body = json!({
        "personalizations": [personalization],
        "from": address(&email.from),
        "subject": email.subject,
        "content": content,
        "headers": {"X-Herald-Message-Id": message_id},
        "custom_args": {"herald_message_id": message_id},
    });
    if let (Some(first), Some(object)) = (email.reply_to.first(), body.as_object_mut()) {
        object.insert("reply_to".into(), address(first));
    }
    body
}

fn address(a: &Address) -> Value {
    match &a.name {
        Some(name) => json!({"email": a.email, "name": name}),
        None => json!({"email": a.email}),
    }
}
