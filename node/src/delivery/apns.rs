//! Apple Push Notification service over HTTP/2 with token (`.p8`) authentication:
//!
//! ```text
//!  provider JWT: ES256, header {kid: key_id}, claims {iss: team_id, iat}; cached 50 minutes
//!  (Apple rejects tokens older than an hour and throttles minting more often than every 20)
//!  per device token: POST {base}/3/device/{token}
//!      authorization: bearer <jwt>      apns-topic: <bundle_id>
//!      apns-push-type: alert|background apns-priority: 10|5
//!      apns-id: UUIDv5(message id, token) — stable across retries
//!      {"aps": {"alert": {"title", "body"}}, ...data}   silent: {"aps": {"content-available": 1}}
//! ```
//!
//! 200 → `Sent`; 410 `Unregistered` and 400 `BadDeviceToken` fail that token (shared 4xx rule);
//! 403 `ExpiredProviderToken` drops the cached JWT and is retryable, `InvalidProviderToken` drops it
//! and fails (the key or team is wrong).
//!
//! APNs speaks only HTTP/2. Against `https://` that is negotiated by ALPN on the shared client; a
//! plain `http://` base URL (local fakes, an h2c gateway) uses the prior-knowledge h2c client, since
//! without TLS there is nothing to negotiate with.
//!
//! Settings: `{team_id, key_id, private_key (PKCS#8 PEM, the .p8 file), bundle_id,
//! environment? ("development"/"sandbox" → Apple's sandbox), base_url?}`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::exchange::{attempt, Prepared, Reply};
use super::fields::Fields;
use super::push::Push;
use super::token_cache::TokenCache;
use super::{Attempt, HttpClients, Outcome, Outgoing, Provider};

const PRODUCTION: &str = "https://api.push.apple.com";
const SANDBOX: &str = "https://api.sandbox.push.apple.com";
const SERVICE: &str = "apns";
const JWT_LIFETIME: Duration = Duration::from_secs(50 * 60);

pub(crate) struct Apns {
    http: HttpClients,
    jwts: TokenCache,
}

struct Credentials<'a> {
    team_id: &'a str,
    key_id: &'a str,
    private_key: &'a str,
    bundle_id: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

impl Apns {
    pub(crate) fn new(http: HttpClients) -> Self {
        Apns {
            http,
            jwts: TokenCache::default(),
        }
    }

    async fn deliver(&self, out: &Outgoing) -> Attempt {
        let settings = Fields::new(&out.settings, "settings");
        let parsed = Credentials::parse(settings).and_then(|c| Push::parse(out).map(|p| (c, p)));
        let (credentials, push) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => return Attempt::failed(reason),
        };
        let jwt = match self.provider_token(&credentials) {
            Ok(jwt) => jwt,
            Err(reason) => return Attempt::failed(reason),
        };
        let default_base = match settings.opt_str("environment") {
            Some("development" | "sandbox") => SANDBOX,
            _ => PRODUCTION,
        };
        let base = settings.base_url(default_base);
        let client = if base.starts_with("http://") {
            &self.http.h2c
        } else {
            &self.http.default
        };
        let payload = payload(&push);
        let (push_type, priority) = if push.silent {
            ("background", "5")
        } else {
            ("alert", "10")
        };
        let mut attempts = Vec::new();
        for token in &push.tokens {
            if token.is_empty() || !token.chars().all(|c| c.is_ascii_hexdigit()) {
                attempts.push(Attempt::failed(format!(
                    "invalid APNs device token {token:?}"
                )));
                continue;
            }
            let apns_id = Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                format!("herald:apns:{}:{token}", out.message_id).as_bytes(),
            );
            let request = client
                .post(format!("{base}/3/device/{token}"))
                .header("authorization", format!("bearer {jwt}"))
                .header("apns-topic", credentials.bundle_id)
                .header("apns-push-type", push_type)
                .header("apns-priority", priority)
                .header("apns-id", apns_id.to_string())
                .json(&payload);
            let prepared = Prepared::build(request, &[&jwt]);
            let sent = attempt(client, prepared, SERVICE, |reply| {
                self.classify(reply, &credentials)
            })
            .await;
            attempts.push(sent);
        }
        Attempt::combine(attempts)
    }

    /// The cached provider JWT for this team and key, or a freshly signed one.
    fn provider_token(&self, credentials: &Credentials<'_>) -> Result<String, String> {
        let key = credentials.cache_key();
        if let Some(jwt) = self.jwts.get(&key, Instant::now()) {
            return Ok(jwt);
        }
        let signing_key = EncodingKey::from_ec_pem(credentials.private_key.as_bytes())
            .map_err(|e| format!("settings.private_key is not a PKCS#8 EC key: {e}"))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(credentials.key_id.to_string());
        let claims = Claims {
            iss: credentials.team_id,
            iat: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        };
        let jwt = jsonwebtoken::encode(&header, &claims, &signing_key)
            .map_err(|e| format!("signing the APNs JWT: {e}"))?;
        self.jwts
            .put(&key, jwt.clone(), Instant::now() + JWT_LIFETIME);
        Ok(jwt)
    }

    fn classify(&self, reply: &Reply, credentials: &Credentials<'_>) -> Outcome {
        let reason = reply.json();
        match reason.get("reason").and_then(Value::as_str) {
            Some("ExpiredProviderToken") if reply.status == 403 => {
                self.jwts.invalidate(&credentials.cache_key());
                Outcome::Retryable("APNs: ExpiredProviderToken".into())
            }
            Some("InvalidProviderToken") if reply.status == 403 => {
                self.jwts.invalidate(&credentials.cache_key());
                Outcome::Failed(
                    "APNs: InvalidProviderToken (check team_id, key_id, private_key)".into(),
                )
            }
            _ => reply.outcome(Outcome::Sent),
        }
    }
}

impl Provider for Apns {
    fn send<'a>(&'a self, out: &'a Outgoing) -> BoxFuture<'a, Attempt> {
        Box::pin(self.deliver(out))
    }
}

impl<'a> Credentials<'a> {
    fn parse(settings: Fields<'a>) -> Result<Credentials<'a>, String> {
        Ok(Credentials {
            team_id: settings.str("team_id")?,
            key_id: settings.str("key_id")?,
            private_key: settings.str("private_key")?,
            bundle_id: settings.str("bundle_id")?,
        })
    }

    fn cache_key(&self) -> String {
        format!("{}|{}", self.team_id, self.key_id)
    }
}

/// The notification payload: `aps` plus the custom data keys at the top level (a data key named
/// `aps` is dropped: it would replace Apple's dictionary).
fn payload(push: &Push<'_>) -> Value {
    let aps = if push.silent {
        json!({"content-available": 1})
    } else {
        json!({"alert": {"title": push.title, "body": push.body}})
    };
    let mut payload = Map::new();
    for (key, value) in push.data.into_iter().flatten() {
        if key != "aps" {
            payload.insert(key.clone(), value.clone());
        }
    }
    payload.insert("aps".into(), aps);
    Value::Object(payload)
}
