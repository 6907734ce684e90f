//! APNs against an HTTP/2 (h2c) fake that verifies the ES256 provider JWT with the public half of a
//! P-256 key generated for the test, and answers per device token like Apple does.

use axum::http::Version;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::fakes::{assert_redacted, checked, json_reply, outgoing, providers, want, Fake, Seen};
use crate::delivery::{Outcome, ProvidersConfig};

const TEAM_ID: &str = "TEAM123456";
const KEY_ID: &str = "KEY7654321";
const OK: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const GONE: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const BAD: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn apns_wire(seen: &Seen, public_key: &str) -> Result<(), String> {
    want("HTTP version", &seen.version, &Version::HTTP_2)?;
    want("method", seen.method.as_str(), "POST")?;
    if !seen.path.starts_with("/3/device/") {
        return Err(format!("path {}", seen.path));
    }
    let jwt = seen
        .header("authorization")
        .strip_prefix("bearer ")
        .ok_or("authorization is not `bearer <jwt>`")?;
    let key = DecodingKey::from_ec_pem(public_key.as_bytes()).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_required_spec_claims(&["iss"]);
    validation.set_issuer(&[TEAM_ID]);
    validation.validate_exp = false; // APNs tokens carry iat only
    let token = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map_err(|e| format!("JWT does not verify: {e}"))?;
    want("kid", &token.header.kid, &Some(KEY_ID.to_string()))?;
    if token.claims["iat"].as_u64().is_none() {
        return Err("no iat".into());
    }
    want("apns-topic", seen.header("apns-topic"), "com.example.app")?;
    uuid::Uuid::parse_str(seen.header("apns-id")).map_err(|e| format!("apns-id: {e}"))?;
    let body = seen.json();
    match seen.header("apns-push-type") {
        "alert" => {
            want("apns-priority", seen.header("apns-priority"), "10")?;
            want(
                "aps",
                &body["aps"],
                &json!({"alert": {"title": "Hi", "body": "You have mail"}}),
            )?;
        }
        "background" => {
            want("apns-priority", seen.header("apns-priority"), "5")?;
            want("aps", &body["aps"], &json!({"content-available": 1}))?;
        }
        other => return Err(format!("apns-push-type {other:?}")),
    }
    want("custom data", &body["thread"], &json!("t1"))
}

fn apple_answer(seen: &Seen) -> axum::response::Response {
    match seen.path.trim_start_matches("/3/device/") {
        OK => json_reply(200, Value::Null),
        GONE => json_reply(
            410,
            json!({"reason": "Unregistered", "timestamp": 1700000000000u64}),
        ),
        _ => json_reply(400, json!({"reason": "BadDeviceToken"})),
    }
}

#[tokio::test]
async fn apns_sends_over_http2_with_a_verified_provider_token() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let public_key = key.public_key_pem();
    let fake = Fake::start(checked(
        move |seen| apns_wire(seen, &public_key),
        apple_answer,
    ))
    .await;
    let providers = providers(ProvidersConfig::default());
    let settings = json!({
        "team_id": TEAM_ID, "key_id": KEY_ID, "private_key": key.serialize_pem(),
        "bundle_id": "com.example.app", "base_url": fake.base,
    });
    let content = json!({"title": "Hi", "body": "You have mail", "data": {"thread": "t1"}});
    let push = |tokens: Value, content: &Value| {
        outgoing(
            "apns",
            "push",
            settings.clone(),
            content.clone(),
            Some(json!({"tokens": tokens})),
        )
    };

    let attempt = providers.send(&push(json!([OK, GONE]), &content)).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");
    assert_eq!(attempt.logs.len(), 2);
    assert_eq!(
        attempt.logs[1].response.as_ref().map(|r| r.status),
        Some(410)
    );

    let attempt = providers
        .send(&push(json!([GONE, BAD, "not-hex"]), &content))
        .await;
    assert!(matches!(attempt.outcome, Outcome::Failed(_)), "{attempt:?}");
    assert_eq!(
        attempt.logs.len(),
        2,
        "the non-hex token is refused before sending"
    );

    let mut silent = content.clone();
    silent["delivery_type"] = json!("silent");
    let attempt = providers.send(&push(json!([OK]), &silent)).await;
    assert_eq!(attempt.outcome, Outcome::Sent, "{attempt:?}");

    let requests = fake.requests();
    let jwt = requests[0].header("authorization");
    assert_redacted(&attempt, jwt.trim_start_matches("bearer "));
    // One cached JWT for all sends; apns-id is derived from (message id, token), so stable.
    assert!(requests.iter().all(|r| r.header("authorization") == jwt));
    let ids: Vec<&str> = requests.iter().map(|r| r.header("apns-id")).collect();
    assert_eq!(ids[0], ids[4], "same message and token, same apns-id");
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn apns_rejects_unusable_settings() {
    let providers = providers(ProvidersConfig::default());
    let settings = json!({"team_id": TEAM_ID, "key_id": KEY_ID, "private_key": "not a key",
                          "bundle_id": "b", "base_url": "http://127.0.0.1:9"});
    let content = json!({"title": "t", "body": "b"});
    let loud = json!({"title": "t", "body": "b", "delivery_type": "loud"});
    let tokens = Some(json!({"tokens": [OK]}));
    let cases = [
        (&content, tokens.clone(), "private_key"),
        (&content, None, "no push tokens"),
        (&loud, tokens, "delivery_type"),
    ];
    for (content, channel_data, reason) in cases {
        let out = outgoing(
            "apns",
            "push",
            settings.clone(),
            content.clone(),
            channel_data,
        );
        let attempt = providers.send(&out).await;
        assert!(
            matches!(attempt.outcome, Outcome::Failed(ref r) if r.contains(reason)),
            "{reason}: {attempt:?}"
        );
    }
}
