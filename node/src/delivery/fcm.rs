//! Firebase Cloud Messaging HTTP v1, authenticated with a service account:
//!
//! ```text
//!  1. (cache miss) sign an RS256 JWT {iss: client_email, scope: firebase.messaging, aud: token_uri,
//!     iat, exp: iat+1h} with the account's private key; POST token_uri
//!     grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>
//!     → {access_token, expires_in}; cached until a minute before it expires
//!  2. per device token: POST {base}/v1/projects/{project_id}/messages:send
//!     Authorization: Bearer <access_token>
//!     {"message": {"token", "notification": {"title", "body"}, "data"?}}
//! ```
//!
//! 200 → `Sent`; 404 `UNREGISTERED` and 400 `INVALID_ARGUMENT` fail that token (shared 4xx rule);
//! 401 drops the cached access token and is retryable (it expired or was revoked early). Silent
//! pushes carry only `data`, plus the APNs headers iOS needs for a background wake-up. FCM requires
//! data values to be strings, so other JSON values are sent serialized.
//!
//! Settings: `{project_id?, service_account: {client_email, private_key (PEM), token_uri?,
//! project_id?, private_key_id?} (an object or its JSON text), base_url?}`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::exchange::{attempt, exchange, Prepared, Redactor};
use super::fields::Fields;
use super::push::Push;
use super::token_cache::TokenCache;
use super::{Attempt, DeliveryLog, Outcome, Outgoing, Provider};

const DEFAULT_BASE: &str = "https://fcm.googleapis.com";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
pub(crate) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const SERVICE: &str = "fcm";
/// Refresh a cached access token this long before Google says it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

pub(crate) struct Fcm {
    client: reqwest::Client,
    access_tokens: TokenCache,
}

/// The service account fields we use.
struct Account {
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: String,
    project_id: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl Fcm {
    pub(crate) fn new(client: reqwest::Client) -> Self {
        Fcm {
            client,
            access_tokens: TokenCache::default(),
        }
    }

    async fn deliver(&self, out: &Outgoing) -> Attempt {
        let settings = Fields::new(&out.settings, "settings");
        let parsed = Account::parse(settings).and_then(|a| Push::parse(out).map(|p| (a, p)));
        let (account, push) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => return Attempt::failed(reason),
        };
        let mut logs = Vec::new();
        let access_token = match self.access_token(&account, &mut logs).await {
            Ok(token) => token,
            Err(outcome) => return Attempt { outcome, logs },
        };
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            settings.base_url(DEFAULT_BASE),
            account.project_id
        );
        let cache_key = account.cache_key();
        let mut attempts = Vec::new();
        for token in &push.tokens {
            let request = self
                .client
                .post(&url)
                .bearer_auth(&access_token)
                .json(&json!({"message": message(&push, token)}));
            let prepared = Prepared::build(request, &[&access_token]);
            let sent = attempt(&self.client, prepared, SERVICE, |reply| {
                if reply.status == 401 {
                    self.access_tokens.invalidate(&cache_key);
                    Outcome::Retryable(format!("FCM rejected the access token: {}", reply.body))
                } else {
                    reply.outcome(Outcome::Sent)
                }
            })
            .await;
            attempts.push(sent);
        }
        let mut combined = Attempt::combine(attempts);
        logs.append(&mut combined.logs);
        combined.logs = logs;
        combined
    }

    /// A cached access token, or a fresh one from the token endpoint (its exchange appended to
    /// `logs`). `Err` is the outcome of the whole attempt.
    async fn access_token(
        &self,
        account: &Account,
        logs: &mut Vec<DeliveryLog>,
    ) -> Result<String, Outcome> {
        let key = account.cache_key();
        if let Some(token) = self.access_tokens.get(&key, Instant::now()) {
            return Ok(token);
        }
        let assertion = account.assertion().map_err(Outcome::Failed)?;
        let request = self
            .client
            .post(&account.token_uri)
            .form(&[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)])
            .build()
            .map_err(|e| Outcome::Failed(format!("invalid token_uri: {e}")))?;
        let mut sent = exchange(&self.client, request, SERVICE, &[&assertion]).await;
        let result = match &sent.reply {
            Err(e) => Err(Outcome::Retryable(e.clone())),
            Ok(reply) => match reply.outcome(Outcome::Sent) {
                Outcome::Sent => {
                    let body = reply.json();
                    match body.get("access_token").and_then(Value::as_str) {
                        Some(token) => {
                            let lifetime = body
                                .get("expires_in")
                                .and_then(Value::as_u64)
                                .unwrap_or(3600);
                            let valid_for =
                                Duration::from_secs(lifetime).saturating_sub(EXPIRY_MARGIN);
                            self.access_tokens.put(
                                &key,
                                token.to_string(),
                                Instant::now() + valid_for,
                            );
                            Ok(token.to_string())
                        }
                        None => Err(Outcome::Retryable(
                            "token endpoint sent no access_token".into(),
                        )),
                    }
                }
                failure => Err(failure),
            },
        };
        if let (Ok(token), Some(response)) = (&result, sent.log.response.as_mut()) {
            response.body = Redactor::new(&[token]).text(&response.body);
        }
        logs.push(sent.log);
        result
    }
}

impl Provider for Fcm {
    fn send<'a>(&'a self, out: &'a Outgoing) -> BoxFuture<'a, Attempt> {
        Box::pin(self.deliver(out))
    }
}

impl Account {
    fn parse(settings: Fields<'_>) -> Result<Account, String> {
        // Consoles hand out the service account as a JSON file; accept it pasted as text too.
        let text_form;
        let raw = match settings.get("service_account") {
            Some(Value::String(text)) => {
                text_form = serde_json::from_str::<Value>(text)
                    .map_err(|e| format!("settings.service_account is not JSON: {e}"))?;
                &text_form
            }
            Some(object @ Value::Object(_)) => object,
            _ => return Err("settings.service_account is missing".into()),
        };
        let account = Fields::new(raw, "settings.service_account");
        let project_id = settings
            .opt_str("project_id")
            .or_else(|| account.opt_str("project_id"))
            .ok_or("settings.project_id is missing")?;
        if !project_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':')
        {
            return Err("settings.project_id has unexpected characters".into());
        }
        Ok(Account {
            client_email: account.str("client_email")?.to_string(),
            // A key pasted through a form sometimes keeps its JSON escapes.
            private_key: account.str("private_key")?.replace("\\n", "\n"),
            private_key_id: account.opt_str("private_key_id").map(str::to_string),
            token_uri: account
                .opt_str("token_uri")
                .unwrap_or(DEFAULT_TOKEN_URI)
                .to_string(),
            project_id: project_id.to_string(),
        })
    }

    fn cache_key(&self) -> String {
        format!("{}|{}", self.token_uri, self.client_email)
    }

    /// The signed JWT the token endpoint exchanges for an access token.
    fn assertion(&self) -> Result<String, String> {
        let key = EncodingKey::from_rsa_pem(self.private_key.as_bytes())
            .map_err(|e| format!("invalid service account private_key: {e}"))?;
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat,
            exp: iat + 3600,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.private_key_id.clone();
        jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("signing the JWT: {e}"))
    }
}

/// The v1 `message` for one device token.
fn message(push: &Push<'_>, token: &str) -> Value {
    let mut message = Map::new();
    message.insert("token".into(), Value::from(token));
    if push.silent {
        message.insert(
            "apns".into(),
            json!({"headers": {"apns-push-type": "background", "apns-priority": "5"},
                   "payload": {"aps": {"content-available": 1}}}),
        );
    } else {
        message.insert(
            "notification".into(),
            json!({"title": push.title, "body": push.body}),
        );
    }
    if let Some(data) = push.data {
        let strings: Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), Value::String(text))
            })
            .collect();
        message.insert("data".into(), Value::Object(strings));
    }
    Value::Object(message)
}
