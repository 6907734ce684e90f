//! FCM HTTP v1 against a fake that is both Google's OAuth token endpoint (it verifies the RS256
//! service-account JWT with the public key) and the FCM send endpoint.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::fakes::{
    assert_redacted, checked, json_reply, outgoing, providers, want, Counter, Fake, Seen,
};
use crate::delivery::fcm::{JWT_BEARER_GRANT, SCOPE};
use crate::delivery::{Outcome, ProvidersConfig};

// TEST KEY ONLY: a throwaway RSA key pair committed for these tests (ring cannot generate RSA keys).
const PRIVATE_KEY: &str = include_str!("fcm_test_rsa_key.pem");
const PUBLIC_KEY: &str = include_str!("fcm_test_rsa_key.pub.pem");
const CLIENT_EMAIL: &str = "herald@test-project.iam.gserviceaccount.com";
const ACCESS_TOKEN: &str = "ya29.fake-access-token";

fn token_endpoint(seen: &Seen, token_uri: &str) -> Result<(), String> {
    let form = seen.form()?;
    want("grant_type", form.field("grant_type"), JWT_BEARER_GRANT)?;
    let assertion = form.field("assertion");
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[token_uri]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let token = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map_err(|e| format!("JWT does not verify: {e}"))?;
    want("kid", &token.header.kid, &Some("key-1".to_string()))?;
    want("scope", &token.claims["scope"], &json!(SCOPE))?;
    let (iat, exp) = (token.claims["iat"].as_u64(), token.claims["exp"].as_u64());
    want("lifetime", &exp.zip(iat).map(|(e, i)| e - i), &Some(3600))
}

fn send_endpoint(seen: &Seen) -> Result<(), String> {
    let body = seen.json_post("/v1/projects/test-project/messages:send")?;
    want(
        "authorization",
        seen.header("authorization"),
        &format!("Bearer {ACCESS_TOKEN}"),
    )?;
    let message = &body["message"];
    if !message["token"].is_string() {
        return Err("message.token missing".into());
    }
    want(
        "notification",
        &message["notification"],
        &json!({"title": "Hi", "body": "You have mail"}),
    )?;
    // FCM rejects non-string data values.
    want(
        "data",
        &message["data"],
        &json!({"thread": "t1", "count": "3"}),
    )
}

#[tokio::test]
async fn fcm_mints_an_access_token_once_and_sends_to_each_device() {
    let token_calls = std::sync::Arc::new(Counter::default());
    let calls = token_calls.clone();
    let fake = Fake::start(move |seen: &Seen| {
        if seen.path == "/token" {
            calls.next();
            let token_uri = format!("http://{}/token", seen.header("host"));
            return checked(
                move |s| token_endpoint(s, &token_uri),
                |_| json_reply(200, json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"})),
            )(seen);
        }
        checked(send_endpoint, |seen| match seen.json()["message"]["token"].as_str() {
            Some("device-ok") => json_reply(200, json!({"name": "projects/test-project/messages/1"})),
            Some("device-gone") => json_reply(404, json!({"error": {"code": 404, "status": "NOT_FOUND",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})),
            _ => json_reply(400, json!({"error": {"code": 400, "status": "INVALID_ARGUMENT"}})),
        })(seen)
    })
    .await;
    let providers = providers(ProvidersConfig::default());
    let settings = json!({
        "base_url": fake.base,
        "service_account": {
            "project_id": "test-project",
            "private_key_id": "key-1",
            "private_key": PRIVATE_KEY,
            "client_email": CLIENT_EMAIL,
            "token_uri": format!("{}/token", fake.base),
        },
    });
    let content = json!({"title": "Hi", "body": "You have mail", "delivery_type": "content", "data": {"thread": "t1", "count": 3}});
    let devices = |tokens: Value| Some(json!({"tokens": tokens}));
    let out = outgoing(
        "fcm",
        "push",
        settings.clone(),
        content.clone(),
        devices(json!(["device-ok", "device-gone"])),
    );

    let attempt = providers.send(&out).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    // Token exchange + one send per device.
    assert_eq!(attempt.logs.len(), 3);
    assert_eq!(attempt.logs[0].request.path, "/token");
    assert_eq!(
        attempt.logs[2].response.as_ref().map(|r| r.status),
        Some(404)
    );
    assert_redacted(&attempt, ACCESS_TOKEN);
    assert!(
        attempt.logs[0]
            .request
            .body
            .contains("assertion=[REDACTED]"),
        "{:?}",
        attempt.logs[0]
    );

    // The access token is cached: no second exchange. Only invalid tokens left: terminal.
    let out = outgoing(
        "fcm",
        "push",
        settings.clone(),
        content.clone(),
        json!({"devices": [{"token": "device-gone"}, {"token": "device-bad"}]}).into(),
    );
    let attempt = providers.send(&out).await;
    assert!(matches!(attempt.outcome, Outcome::Failed(_)), "{attempt:?}");
    assert_eq!(attempt.logs.len(), 2);
    assert_eq!(
        token_calls.next(),
        1,
        "the access token was minted more than once"
    );

    // As a string (how consoles hand it out) it works the same.
    let mut as_text = settings.clone();
    as_text["service_account"] = json!(settings["service_account"].to_string());
    let out = outgoing(
        "fcm",
        "push",
        as_text,
        content.clone(),
        devices(json!(["device-ok"])),
    );
    assert_eq!(providers.send(&out).await.outcome, Outcome::Sent);

    let mut bad_key = settings;
    bad_key["service_account"]["private_key"] =
        json!("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----");
    bad_key["service_account"]["client_email"] = json!("other@x");
    let out = outgoing(
        "fcm",
        "push",
        bad_key,
        content,
        devices(json!(["device-ok"])),
    );
    assert!(matches!(
        providers.send(&out).await.outcome,
        Outcome::Failed(_)
    ));
}
