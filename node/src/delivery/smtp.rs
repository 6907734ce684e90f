//! SMTP through lettre's async tokio transport: one connection per message (EHLO, optional
//! STARTTLS, optional AUTH, MAIL FROM, RCPT TO, DATA). The server's final `250` means it accepted
//! the message → `Sent` (delivery is only known later, from bounces).
//!
//! The message is `multipart/alternative` (text, then HTML) when both bodies exist, with a
//! `Message-ID: <id@from-domain>` and an `X-Herald-Message-Id` header carrying the message id, so a
//! re-send after failover can be recognised downstream.
//!
//! Settings: `{host, port? (587), username?, password?, tls?}` where `tls` is
//! - `opportunistic` (default): STARTTLS when the server offers it, plain otherwise;
//! - `starttls`: STARTTLS required; `implicit`: TLS from the first byte (port 465);
//! - `none`: never encrypt (local relays, tests).
//!
//! Certificates are checked against the platform's trust store. Failures: SMTP 5xx and unusable
//! settings/content → `Failed`; 4xx, connection errors and timeouts → retryable.

use std::time::Duration;

use futures::future::BoxFuture;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use super::email::{Address, Email};
use super::exchange::MAX_LOGGED_BODY;
use super::fields::Fields;
use super::{Attempt, DeliveryLog, LoggedRequest, LoggedResponse, Outcome, Outgoing, Provider};

const SERVICE: &str = "smtp";
const DEFAULT_PORT: u16 = 587;
const HERALD_ID_HEADER: HeaderName = HeaderName::new_from_ascii_str("X-Herald-Message-Id");

pub(crate) struct Smtp {
    /// Per-command deadline (lettre applies it to each SMTP command).
    timeout: Duration,
}

impl Smtp {
    pub(crate) fn new(timeout: Duration) -> Self {
        Smtp { timeout }
    }

    async fn deliver(&self, out: &Outgoing) -> Attempt {
        let prepared = self.transport(&out.settings).and_then(|(transport, host)| {
            let message = build_message(&Email::parse(&out.content)?, &out.message_id)?;
            Ok((transport, host, message))
        });
        let (transport, host, message) = match prepared {
            Ok(prepared) => prepared,
            Err(reason) => return Attempt::failed(reason),
        };
        let envelope = message.envelope();
        let formatted = message.formatted();
        let request = LoggedRequest {
            method: "SMTP".into(),
            host,
            path: String::new(),
            query: None,
            headers: json!({
                "mail_from": envelope.from().map(ToString::to_string),
                "rcpt_to": envelope.to().iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
            body: String::from_utf8_lossy(&formatted[..formatted.len().min(MAX_LOGGED_BODY)])
                .into_owned(),
        };
        let (outcome, response) = match transport.send(message).await {
            Ok(reply) => {
                let response = LoggedResponse {
                    status: u16::from(reply.code()),
                    headers: json!({}),
                    body: reply.message().collect::<Vec<_>>().join("\n"),
                };
                (Outcome::Sent, Some(response))
            }
            Err(e) => {
                let response = e.status().map(|code| LoggedResponse {
                    status: u16::from(code),
                    headers: json!({}),
                    body: e.to_string(),
                });
                let outcome = if e.is_permanent() || e.is_client() {
                    Outcome::Failed(format!("SMTP: {e}"))
                } else {
                    Outcome::Retryable(format!("SMTP: {e}"))
                };
                (outcome, response)
            }
        };
        let log = DeliveryLog {
            request,
            response,
            service_name: SERVICE.into(),
        };
        Attempt::single(outcome, log)
    }

    /// The transport for these settings, and the `host:port` it talks to.
    fn transport(
        &self,
        settings: &serde_json::Value,
    ) -> Result<(AsyncSmtpTransport<Tokio1Executor>, String), String> {
        let settings = Fields::new(settings, "settings");
        let host = settings.str("host")?;
        let port = settings.u16_or("port", DEFAULT_PORT)?;
        let tls_parameters =
            || TlsParameters::new(host.to_string()).map_err(|e| format!("SMTP TLS setup: {e}"));
        let tls = match settings.opt_str("tls").unwrap_or("opportunistic") {
            "opportunistic" => Tls::Opportunistic(tls_parameters()?),
            "starttls" => Tls::Required(tls_parameters()?),
            "implicit" => Tls::Wrapper(tls_parameters()?),
            "none" => Tls::None,
            other => {
                return Err(format!(
                    "settings.tls {other:?} is not opportunistic, starttls, implicit or none"
                ))
            }
        };
        let mut builder: AsyncSmtpTransportBuilder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .tls(tls)
                .timeout(Some(self.timeout));
        match (settings.opt_str("username"), settings.opt_str("password")) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.into(), password.into()));
            }
            (None, None) => {}
            _ => return Err("settings.username and settings.password go together".into()),
        }
        Ok((builder.build(), format!("{host}:{port}")))
    }
}

impl Provider for Smtp {
    fn send<'a>(&'a self, out: &'a Outgoing) -> BoxFuture<'a, Attempt> {
        Box::pin(self.deliver(out))
    }
}

fn build_message(email: &Email<'_>, message_id: &str) -> Result<Message, String> {
    // Header values are written raw: keep only characters that cannot end or fold a header.
    let safe_id: String = message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    if safe_id.is_empty() {
        return Err("message id has no usable characters".into());
    }
    let domain = email
        .from
        .email
        .rsplit('@')
        .next()
        .unwrap_or("herald.invalid");
    let mut builder = Message::builder()
        .from(mailbox(&email.from)?)
        .subject(email.subject)
        .message_id(Some(format!("<{safe_id}@{domain}>")))
        .raw_header(HeaderValue::new(HERALD_ID_HEADER, safe_id));
    for to in &email.to {
        builder = builder.to(mailbox(to)?);
    }
    for cc in &email.cc {
        builder = builder.cc(mailbox(cc)?);
    }
    for bcc in &email.bcc {
        builder = builder.bcc(mailbox(bcc)?);
    }
    for reply_to in &email.reply_to {
        builder = builder.reply_to(mailbox(reply_to)?);
    }
    let message = match (email.text, email.html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.to_string(),
            html.to_string(),
        )),
        (Some(text), None) => builder.singlepart(SinglePart::plain(text.to_string())),
        (None, Some(html)) => builder.singlepart(SinglePart::html(html.to_string())),
        (None, None) => return Err("content has neither html_body nor text_body".into()),
    };
    message.map_err(|e| format!("cannot build the email: {e}"))
}

fn mailbox(address: &Address) -> Result<Mailbox, String> {
    let email = address
        .email
        .parse()
        .map_err(|e| format!("invalid email address {:?}: {e}", address.email))?;
    Ok(Mailbox::new(address.name.clone(), email))
}
