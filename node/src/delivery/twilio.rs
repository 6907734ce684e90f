//! Twilio Programmable Messaging: `POST {base}/2010-04-01/Accounts/{account_sid}/Messages.json` with
//! HTTP basic auth (`account_sid:auth_token`) and a form body `To, From | MessagingServiceSid, Body`.
//! `201 Created` → `Sent`.
//!
//! Settings: `{account_sid, auth_token, from? | phone_number?, messaging_service_sid?, base_url?}`;
//! a messaging service, when set, picks the sender itself. Twilio has no request idempotency key.

use super::exchange::{OneShot, Prepared};
use super::fields::Fields;
use super::Outgoing;

const DEFAULT_BASE: &str = "https://api.twilio.com";

pub(crate) struct Twilio;

impl OneShot for Twilio {
    const SERVICE: &'static str = "twilio";

    fn prepare(&self, client: &reqwest::Client, out: &Outgoing) -> Result<Prepared, String> {
        let settings = Fields::new(&out.settings, "settings");
        let content = Fields::new(&out.content, "content");
        let sid = settings.str("account_sid")?;
        // The sid becomes a path segment: refuse anything that could change the path.
        if !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("settings.account_sid must be alphanumeric".into());
        }
        let auth_token = settings.str("auth_token")?;
        let to = content
            .opt_str("to")
            .or_else(|| Fields::new(&out.recipient, "recipient").opt_str("phone_number"))
            .ok_or("content.to (or the recipient's phone_number) is missing")?;
        let sender = match settings.opt_str("messaging_service_sid") {
            Some(service) => ("MessagingServiceSid", service),
            None => (
                "From",
                settings
                    .opt_str("from")
                    .or_else(|| settings.opt_str("phone_number"))
                    .ok_or("settings.from or settings.messaging_service_sid is required")?,
            ),
        };
        let form = [("To", to), sender, ("Body", content.str("body")?)];
        let url = format!(
            "{}/2010-04-01/Accounts/{sid}/Messages.json",
            settings.base_url(DEFAULT_BASE)
        );
        let request = client
            .post(url)
            .basic_auth(sid, Some(auth_token))
            .form(&form);
        Prepared::build(request, &[auth_token])
    }
}
