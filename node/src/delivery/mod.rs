//! Delivery providers: turn one rendered message into one attempt at a real provider (SMTP, email
//! APIs, SMS, push, chat, webhooks) and record every exchange as a delivery log.
//!
//! ```text
//!   dispatcher ──Outgoing──► Providers::send ──breaker open?──► Retryable("circuit open"), no call
//!                                 │ closed / half-open probe
//!                                 ▼
//!                      Provider::send (one file per provider)
//!                                 │ one or more exchanges, each captured by `exchange`
//!                                 ▼
//!                      Attempt { outcome, logs }  ──► breaker records success / failure
//! ```
//!
//! The dispatcher (not this module) owns retries and statuses: it calls [`Providers::send`] once per
//! attempt, waits [`policy::retry_delay`] after a [`Outcome::Retryable`], and gives up after
//! [`policy::MAX_ATTEMPTS`].
//!
//! Invariants:
//! - **No panics on any input.** Settings, content and channel data come from users; every missing or
//!   malformed field becomes [`Outcome::Failed`], never a panic.
//! - **One log per exchange** with a provider (HTTP request/response or SMTP transaction), including the
//!   exchanges that failed at the network level (then `response` is `None`). Secrets (authorization
//!   headers, API tokens, OAuth assertions, webhook URL secrets) are replaced by `[REDACTED]` before a log
//!   leaves the provider.
//! - **Idempotency:** the message id is passed as the provider's idempotency key where one exists
//!   (Resend `Idempotency-Key`, webhook `idempotency-key`, APNs `apns-id`) and as a header/metadata
//!   elsewhere, because delivery is at-least-once (DESIGN.md, "How a trigger flows").
//! - **Classification is shared:** network errors, timeouts, 408, 429 and 5xx are retryable; other 4xx
//!   are terminal ([`Outcome::from_status`]). Providers only add their documented special cases.
//! - **Base URLs:** every HTTP provider reads an optional `settings.base_url` (default: the real
//!   service) so tests and self-hosted gateways can point it elsewhere.
//!
//! The [`dispatcher`] drives them from each shard leader's outbox.
//!
//! Not here: provider failover between channels, webhook SSRF filtering (the webhook
//! provider calls whatever URL the template renders).

mod apns;
pub mod dispatcher;
mod email;
mod exchange;
mod fcm;
mod fields;
pub mod policy;
mod postmark;
mod push;
mod resend;
mod sendgrid;
mod slack;
mod smtp;
mod token_cache;
mod twilio;
mod webhook;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use exchange::OneShotProvider;
use policy::CircuitBreaker;

/// The providers that can serve a channel type (`in_app_feed` needs none: its messages are
/// delivered at apply; its channels name the provider `knock`).
pub fn providers_for(channel_type: &str) -> &'static [&'static str] {
    match channel_type {
        "email" => &["smtp", "sendgrid", "postmark", "resend"],
        "sms" => &["twilio"],
        "push" => &["fcm", "apns"],
        "chat" => &["slack"],
        "http" => &["webhook"],
        "in_app_feed" => &["knock"],
        _ => &[],
    }
}

/// Whether a channel type's providers read the recipient's channel data (push tokens, Slack
/// connections); the dispatcher reads it only for these.
pub fn uses_channel_data(channel_type: &str) -> bool {
    matches!(channel_type, "push" | "chat")
}

/// One message to hand to one provider: everything a provider needs, already rendered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outgoing {
    /// Stable message id; the provider idempotency key where one exists.
    pub message_id: String,
    /// `email`, `sms`, `push`, `chat` or `http`.
    pub channel_type: String,
    /// Provider name, the key into [`Providers`] (`smtp`, `sendgrid`, `apns`, ...).
    pub provider: String,
    /// The channel's provider settings, secrets included, plus an optional `base_url`.
    pub settings: serde_json::Value,
    /// Rendered content; the shape depends on the channel type (see each provider).
    pub content: serde_json::Value,
    /// Recipient properties (`id`, `email`, `phone_number`, `name`, ...).
    pub recipient: serde_json::Value,
    /// The recipient's channel data `data` for this channel (push tokens, Slack connections);
    /// `None` for channel types that do not use it ([`uses_channel_data`]).
    pub channel_data: Option<serde_json::Value>,
}

/// One exchange with a provider, as Knock's `MessageDeliveryLog` records it (secrets redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryLog {
    pub request: LoggedRequest,
    /// `None` when no response arrived (connection refused, timeout).
    pub response: Option<LoggedResponse>,
    /// The provider name, e.g. `sendgrid`.
    pub service_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// HTTP method, or `SMTP` for an SMTP transaction.
    pub method: String,
    /// `host[:port]`.
    pub host: String,
    pub path: String,
    pub query: Option<String>,
    /// Header name → value, secrets redacted.
    pub headers: serde_json::Value,
    /// Body as text (truncated to 64 KiB), secrets redacted.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedResponse {
    /// HTTP status, or the SMTP reply code.
    pub status: u16,
    pub headers: serde_json::Value,
    pub body: String,
}

/// What one attempt achieved; decides the message status (knock-api.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The destination itself confirmed receipt (webhook 2xx): status `delivered`.
    Delivered,
    /// The provider accepted the message for delivery: status `sent`.
    Sent,
    /// Try again later (network, timeout, 408, 429, 5xx, circuit open): `delivery_attempted`.
    Retryable(String),
    /// Terminal: other 4xx, bad settings or content, invalid device token: `undelivered`.
    Failed(String),
}

impl Outcome {
    /// The shared HTTP status classification: 2xx → `success`; 408, 429, 5xx → retryable; anything
    /// else (other 4xx, unexpected 1xx/3xx) → terminal. `detail` (usually the response body) goes into
    /// the reason.
    pub fn from_status(status: u16, detail: &str, success: Outcome) -> Outcome {
        let reason = || format!("HTTP {status}: {}", excerpt(detail));
        match status {
            200..=299 => success,
            408 | 429 | 500..=599 => Outcome::Retryable(reason()),
            _ => Outcome::Failed(reason()),
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::Sent)
    }

    /// Combine the outcomes of sending one message to several targets (push tokens, Slack
    /// connections): a success anywhere wins (retrying would duplicate it), else any retryable
    /// failure, else terminal. No targets at all is terminal.
    pub fn combine(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
        let mut best: Option<Outcome> = None;
        let mut reasons = Vec::new();
        for outcome in outcomes {
            let rank = |o: &Outcome| match o {
                Outcome::Delivered => 3,
                Outcome::Sent => 2,
                Outcome::Retryable(_) => 1,
                Outcome::Failed(_) => 0,
            };
            if let Outcome::Retryable(r) | Outcome::Failed(r) = &outcome {
                reasons.push(r.clone());
            }
            if best.as_ref().is_none_or(|b| rank(&outcome) > rank(b)) {
                best = Some(outcome);
            }
        }
        match best {
            None => Outcome::Failed("no delivery targets".into()),
            Some(Outcome::Retryable(_)) => Outcome::Retryable(reasons.join("; ")),
            Some(Outcome::Failed(_)) => Outcome::Failed(reasons.join("; ")),
            Some(success) => success,
        }
    }
}

/// The first 200 characters of a provider's answer, for error reasons.
fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The result of one [`Provider::send`]: the outcome and one log per exchange made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub outcome: Outcome,
    pub logs: Vec<DeliveryLog>,
}

impl Attempt {
    /// A terminal failure found before anything was sent (bad settings or content).
    pub fn failed(reason: impl Into<String>) -> Attempt {
        Attempt {
            outcome: Outcome::Failed(reason.into()),
            logs: Vec::new(),
        }
    }

    /// One message sent to several targets (tokens, connections): all logs, combined outcome.
    pub fn combine(attempts: Vec<Attempt>) -> Attempt {
        let mut logs = Vec::new();
        let mut outcomes = Vec::new();
        for attempt in attempts {
            logs.extend(attempt.logs);
            outcomes.push(attempt.outcome);
        }
        Attempt {
            outcome: Outcome::combine(outcomes),
            logs,
        }
    }

    /// The attempt made of one exchange, classified by `outcome`.
    pub(crate) fn single(outcome: Outcome, log: DeliveryLog) -> Attempt {
        Attempt {
            outcome,
            logs: vec![log],
        }
    }
}

/// One delivery provider. Implementations never panic and classify every failure.
pub trait Provider: Send + Sync {
    fn send<'a>(&'a self, out: &'a Outgoing) -> BoxFuture<'a, Attempt>;
}

/// Timeouts and breaker thresholds shared by all providers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// Whole-request deadline for one HTTP exchange (connect + send + response body).
    pub request_timeout_ms: u64,
    /// TCP (+TLS) connect deadline, shorter so a dead host fails fast and is retried later.
    pub connect_timeout_ms: u64,
    /// Deadline for each SMTP command (lettre applies it per command, not per transaction).
    pub smtp_timeout_ms: u64,
    /// Consecutive retryable failures of one provider that open its circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker rejects sends before letting one probe through.
    pub breaker_cool_down_ms: u64,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            request_timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            smtp_timeout_ms: 30_000,
            breaker_failure_threshold: 20,
            breaker_cool_down_ms: 30_000,
        }
    }
}

impl ProvidersConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidParams(format!("delivery config: {m}")));
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 || self.smtp_timeout_ms == 0
        {
            return bad("timeouts must be > 0");
        }
        if self.breaker_failure_threshold == 0 {
            return bad("breaker_failure_threshold must be >= 1");
        }
        Ok(())
    }
}

/// The HTTP clients every HTTP provider shares: pooled connections, HTTP/2 by ALPN on https.
#[derive(Clone)]
pub(crate) struct HttpClients {
    /// For everything, https and http alike. Never follows redirects: one exchange, one log.
    pub(crate) default: reqwest::Client,
    /// HTTP/2 with prior knowledge (h2c) for `http://` base URLs of HTTP/2-only providers (APNs):
    /// over plain TCP there is no ALPN to negotiate HTTP/2, so the client must assume it.
    pub(crate) h2c: reqwest::Client,
}

impl HttpClients {
    fn new(config: &ProvidersConfig) -> Result<HttpClients> {
        // reqwest is built with `rustls-no-provider`: a process-wide provider must exist first. The
        // node installs ring at startup; doing it here too keeps tests and embedders working.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            reqwest::Client::builder()
                .timeout(Duration::from_millis(config.request_timeout_ms.max(1)))
                .connect_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        };
        let build = |b: reqwest::ClientBuilder| {
            b.build()
                .map_err(|e| Error::Internal(format!("building the delivery HTTP client: {e}")))
        };
        Ok(HttpClients {
            default: build(builder())?,
            h2c: build(builder().http2_prior_knowledge())?,
        })
    }
}

struct Entry {
    provider: Arc<dyn Provider>,
    /// One breaker per destination ([`breaker_key`]).
    breakers: Mutex<BTreeMap<String, CircuitBreaker>>,
}

/// What one circuit breaker guards: the provider, or for webhooks each destination host (one
/// customer's dead endpoint must not stop every other webhook).
fn breaker_key(out: &Outgoing) -> String {
    if out.provider != "webhook" {
        return String::new();
    }
    let url = out
        .content
        .get("url")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// All providers, sharing one HTTP client (pooled, HTTP/2 capable), with a circuit breaker per
/// provider (per destination host for webhooks).
pub struct Providers {
    entries: BTreeMap<String, Entry>,
    config: ProvidersConfig,
}

impl Providers {
    /// The built-in providers with `config`. An out-of-range config value is clamped, not refused
    /// (the node's config loader calls [`ProvidersConfig::validate`] first).
    ///
    /// # Panics
    /// Only if the TLS backend cannot be initialised (no message or setting can cause this); use
    /// [`Providers::try_new`] to handle that case.
    pub fn new(config: ProvidersConfig) -> Self {
        match Providers::try_new(config) {
            Ok(providers) => providers,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Providers::new`], reporting a TLS backend failure instead of panicking.
    pub fn try_new(config: ProvidersConfig) -> Result<Self> {
        let http = HttpClients::new(&config)?;
        let smtp_timeout = Duration::from_millis(config.smtp_timeout_ms.max(1));
        let mut providers = Providers {
            entries: BTreeMap::new(),
            config,
        };
        providers.register("smtp", Arc::new(smtp::Smtp::new(smtp_timeout)));
        let client = &http.default;
        providers.register(
            "sendgrid",
            OneShotProvider::shared(sendgrid::SendGrid, client),
        );
        providers.register(
            "postmark",
            OneShotProvider::shared(postmark::Postmark, client),
        );
        providers.register("resend", OneShotProvider::shared(resend::Resend, client));
        providers.register("twilio", OneShotProvider::shared(twilio::Twilio, client));
        providers.register("webhook", OneShotProvider::shared(webhook::Webhook, client));
        providers.register("fcm", Arc::new(fcm::Fcm::new(client.clone())));
        providers.register("slack", Arc::new(slack::Slack::new(client.clone())));
        providers.register("apns", Arc::new(apns::Apns::new(http)));
        Ok(providers)
    }

    /// Add or replace a provider under `name`, with fresh breakers.
    pub fn register(&mut self, name: impl Into<String>, provider: Arc<dyn Provider>) {
        self.entries.insert(
            name.into(),
            Entry {
                provider,
                breakers: Mutex::default(),
            },
        );
    }

    /// The registered provider names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Send through the named provider; unknown provider → `Failed("unknown provider X")`.
    /// An open breaker answers `Retryable("circuit open")` without calling the provider.
    ///
    /// Only retryable outcomes count as breaker failures: a terminal 4xx means the provider is up
    /// and answering (the message or its settings are wrong), so it resets the count.
    pub async fn send(&self, out: &Outgoing) -> Attempt {
        let Some(entry) = self.entries.get(&out.provider) else {
            return Attempt::failed(format!("unknown provider {}", out.provider));
        };
        let key = breaker_key(out);
        let (threshold, cool_down) = (
            self.config.breaker_failure_threshold,
            Duration::from_millis(self.config.breaker_cool_down_ms),
        );
        // A poisoned lock only means another send panicked mid-update; the breakers stay usable.
        let with_breaker = |f: &mut dyn FnMut(&mut CircuitBreaker) -> bool| {
            let mut breakers = entry
                .breakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let breaker = breakers
                .entry(key.clone())
                .or_insert_with(|| CircuitBreaker::new(threshold, cool_down));
            f(breaker)
        };
        if !with_breaker(&mut |b| b.try_acquire(Instant::now())) {
            return Attempt {
                outcome: Outcome::Retryable("circuit open".into()),
                logs: Vec::new(),
            };
        }
        let attempt = entry.provider.send(out).await;
        let failed = matches!(attempt.outcome, Outcome::Retryable(_));
        with_breaker(&mut |b| {
            if failed {
                b.record_failure(Instant::now());
            } else {
                b.record_success();
            }
            true
        });
        attempt
    }
}
