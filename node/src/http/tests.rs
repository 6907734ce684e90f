//! HTTP-level tests: `router()` over an in-test [`Backend`] that applies commands to
//! `herald_shard::MemStore`s (one per shard) directly. The backend asserts that every command
//! reaches the shard owning its recipients, so routing mistakes fail here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use herald_shard::{
    apply, query, shard_of_slot, slot_of, MemStore, RecipientRef, ShardCommand, ShardId,
    ShardQuery, ShardReply,
};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::backend::{ApiKeys, Backend, BoxFuture};
use crate::error::Error;

pub(super) const SHARDS: u32 = 4;
pub(super) const SK: &str = "sk_test_123";

pub(super) struct TestBackend {
    stores: Vec<Mutex<MemStore>>,
    clock: AtomicU64,
    meta: Mutex<BTreeMap<(String, String), Value>>,
}

impl TestBackend {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(TestBackend {
            stores: (0..SHARDS).map(|_| Mutex::new(MemStore::new())).collect(),
            clock: AtomicU64::new(1_700_000_000_000),
            meta: Mutex::new(BTreeMap::new()),
        })
    }

    pub(super) fn snapshot(&self) -> (Vec<MemStore>, usize) {
        let stores = self
            .stores
            .iter()
            .map(|s| s.lock().unwrap().clone())
            .collect();
        (stores, self.meta.lock().unwrap().len())
    }

    pub(super) fn owner(&self, r: &RecipientRef) -> ShardId {
        self.shard_for(&r.recipient_key())
    }

    fn check_routing(&self, shard: ShardId, cmd: &ShardCommand) {
        let refs: Vec<&RecipientRef> = match cmd {
            ShardCommand::Upsert(v) => v.iter().map(|u| &u.recipient).collect(),
            ShardCommand::Delete(v) => v.iter().collect(),
            ShardCommand::SetChannelData { recipient, .. }
            | ShardCommand::UnsetChannelData { recipient, .. }
            | ShardCommand::UnsetPreferences { recipient, .. } => vec![recipient],
            ShardCommand::SetPreferences { recipients, .. } => recipients.iter().collect(),
            ShardCommand::MergeInto { target, .. } => vec![target],
            ShardCommand::Runs(_) => vec![],
        };
        for r in refs {
            assert_eq!(self.owner(r), shard, "{r:?} sent to the wrong shard");
        }
    }
}

impl Backend for TestBackend {
    fn shard_for(&self, recipient_key: &str) -> ShardId {
        shard_of_slot(slot_of(recipient_key), SHARDS)
    }

    fn shards(&self) -> Vec<ShardId> {
        (0..SHARDS).collect()
    }

    fn write(&self, shard: ShardId, cmd: ShardCommand) -> BoxFuture<'_, Result<ShardReply, Error>> {
        self.check_routing(shard, &cmd);
        let now = self.clock.fetch_add(1, Ordering::SeqCst);
        let reply = apply(&mut *self.stores[shard as usize].lock().unwrap(), now, &cmd);
        Box::pin(async move { Ok(reply) })
    }

    fn read(&self, shard: ShardId, q: ShardQuery) -> BoxFuture<'_, Result<ShardReply, Error>> {
        let reply = query(&*self.stores[shard as usize].lock().unwrap(), &q);
        Box::pin(async move { Ok(reply) })
    }

    fn channels(&self) -> Vec<crate::backend::ChannelRecord> {
        let channel = |id: &str, key: &str, channel_type: &str, provider: &str| {
            crate::backend::ChannelRecord {
                id: id.into(),
                key: key.into(),
                name: key.into(),
                channel_type: channel_type.into(),
                provider: provider.into(),
                settings: Value::Null,
                sandbox: false,
                created_ms: 0,
                updated_ms: 0,
            }
        };
        vec![
            channel(
                "7b5c1a4e-0000-4000-8000-000000000001",
                "in-app",
                "in_app_feed",
                "knock",
            ),
            channel(
                "7b5c1a4e-0000-4000-8000-000000000002",
                "webhook",
                "http",
                "webhook",
            ),
        ]
    }

    fn workflow(&self, _key: &str) -> Option<Arc<crate::meta::WorkflowRecord>> {
        None
    }

    fn workflows(&self) -> Vec<crate::meta::WorkflowRecord> {
        Vec::new()
    }

    fn compiled_workflow(
        &self,
        _key: &str,
        _version: u64,
    ) -> Option<Arc<herald_shard::engine::CompiledWorkflow>> {
        None
    }

    fn catalog_write(&self, _cmd: crate::meta::MetaCommand) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Err(Error::Internal("no catalog in the recipients tests".into())) })
    }

    fn trigger(
        &self,
        _shard: ShardId,
        _trigger: crate::workflows::ShardTrigger,
    ) -> BoxFuture<'_, Result<ShardReply, Error>> {
        Box::pin(async {
            Err(Error::Internal(
                "no triggers in the recipients tests".into(),
            ))
        })
    }

    fn api_keys(&self) -> Option<ApiKeys> {
        Some(ApiKeys {
            secret_key: SK.into(),
            public_key: "pk_test".into(),
            service_token: "st".into(),
        })
    }

    fn meta_put(&self, table: &str, key: &str, value: Value) -> BoxFuture<'_, Result<(), Error>> {
        self.meta
            .lock()
            .unwrap()
            .insert((table.into(), key.into()), value);
        Box::pin(async { Ok(()) })
    }

    fn meta_get(&self, table: &str, key: &str) -> BoxFuture<'_, Result<Option<Value>, Error>> {
        let v = self
            .meta
            .lock()
            .unwrap()
            .get(&(table.to_owned(), key.to_owned()))
            .cloned();
        Box::pin(async move { Ok(v) })
    }
}

pub(super) struct Harness {
    pub(super) backend: Arc<TestBackend>,
    app: axum::Router,
}

impl Harness {
    pub(super) fn new() -> Self {
        let backend = TestBackend::new();
        let app = super::router(backend.clone());
        Harness { backend, app }
    }

    pub(super) async fn raw(
        &self,
        method: Method,
        uri: &str,
        auth: Option<&str>,
        body: Body,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req = req.header("idempotency-key", "stainless-python-retry-1");
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, v)
    }

    pub(super) async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body
            .map(|b| Body::from(b.to_string()))
            .unwrap_or_else(Body::empty);
        self.raw(method, uri, Some(&format!("Bearer {SK}")), body)
            .await
    }

    pub(super) async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }

    pub(super) async fn put(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, uri, Some(body)).await
    }

    pub(super) async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, uri, Some(body)).await
    }

    pub(super) async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, uri, None).await
    }

    /// Send a request that must be refused with a Knock error body and change nothing.
    pub(super) async fn refused(
        &self,
        method: Method,
        uri: &str,
        body: Body,
        status: StatusCode,
        code: &str,
    ) {
        let before = self.backend.snapshot();
        let (s, v) = self
            .raw(method.clone(), uri, Some(&format!("Bearer {SK}")), body)
            .await;
        assert_eq!(s, status, "{method} {uri}: {v}");
        assert_knock_error(&v, status, code);
        assert!(
            self.backend.snapshot() == before,
            "{method} {uri} changed state"
        );
    }
}

pub(super) fn assert_knock_error(v: &Value, status: StatusCode, code: &str) {
    assert_eq!(v["code"], json!(code), "{v}");
    assert_eq!(v["status"], json!(status.as_u16()), "{v}");
    assert!(v["message"].is_string() && v["type"].is_string(), "{v}");
}

pub(super) fn is_iso(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.ends_with('Z')
            && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .is_ok()
    })
}

fn ids(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn auth_and_unknown_routes() {
    let h = Harness::new();
    let (s, v) = h
        .raw(Method::GET, "/v1/users/u1", None, Body::empty())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_knock_error(&v, s, "api_key_missing");
    assert_eq!(v["type"], "authentication_error");
    let (s, v) = h
        .raw(
            Method::GET,
            "/v1/users/u1",
            Some("Bearer sk_wrong"),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_knock_error(&v, s, "api_key_invalid");
    let (s, v) = h
        .raw(
            Method::GET,
            "/v1/users/u1",
            Some("Bearer pk_test"),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    for (m, uri) in [
        (Method::GET, "/v1/nope"),
        (Method::POST, "/v1/users/u1"),
        (Method::PATCH, "/v1/tenants/t"),
    ] {
        let (s, v) = h.call(m, uri, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v, json!({"errors": {"detail": "404 Not Found"}}));
    }
}

#[tokio::test]
async fn identify_get_and_merge_upsert() {
    let h = Harness::new();
    let (s, u) = h
        .put("/v1/users/u1", json!({"name": "Ann", "email": "a@x.io", "plan": {"tier": 1}, "created_at": "2024-01-02T03:04:05Z"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["__typename"], "User");
    assert_eq!(u["id"], "u1");
    assert_eq!(u["name"], "Ann");
    assert_eq!(u["plan"], json!({"tier": 1}));
    assert_eq!(u["created_at"], "2024-01-02T03:04:05Z");
    assert!(is_iso(&u["updated_at"]));
    let (_, u) = h
        .put(
            "/v1/users/u1",
            json!({"phone_number": "+1555", "email": null}),
        )
        .await;
    assert_eq!(
        (
            u["name"].clone(),
            u["email"].clone(),
            u["phone_number"].clone()
        ),
        (json!("Ann"), Value::Null, json!("+1555"))
    );
    let (s, g) = h.get("/v1/users/u1").await;
    assert_eq!((s, g), (StatusCode::OK, u));
    let (s, v) = h.get("/v1/users/missing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_knock_error(&v, s, "resource_missing");
    // Percent-encoded ids round-trip.
    let (s, u) = h.put("/v1/users/a%20b%2Fc", json!({})).await;
    assert_eq!((s, u["id"].clone()), (StatusCode::OK, json!("a b/c")));
    assert_eq!(u["created_at"], Value::Null);
}

#[tokio::test]
async fn inline_channel_data_and_preferences() {
    let h = Harness::new();
    let body = json!({
        "channel_data": {"push-chan": {"tokens": ["tok1"]}},
        "preferences": {"default": {"workflows": {"w1": false}}},
    });
    assert_eq!(h.put("/v1/users/u1", body).await.0, StatusCode::OK);
    let (_, u) = h
        .put(
            "/v1/users/u1",
            json!({"preferences": {"default": {"channel_types": {"email": false}}}}),
        )
        .await;
    assert!(
        u.get("preferences").is_none() && u.get("channel_data").is_none(),
        "request-only fields: {u}"
    );
    let (s, cd) = h.get("/v1/users/u1/channel_data/push-chan").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        cd,
        json!({"__typename": "ChannelData", "channel_id": "push-chan", "data": {"tokens": ["tok1"], "devices": [{"token": "tok1"}]}})
    );
    let (s, list) = h.get("/v1/users/u1/preferences").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        list,
        json!([{"__typename": "PreferenceSet", "id": "default", "categories": null,
                "channel_types": {"email": false}, "channels": null, "commercial_subscribed": null,
                "workflows": {"w1": false}}]),
        "inline preferences deep-merge"
    );
}

#[tokio::test]
async fn preference_endpoints() {
    let h = Harness::new();
    // PUT creates the user and replaces by default.
    let (s, p) = h
        .put(
            "/v1/users/u1/preferences/default",
            json!({"workflows": {"a": false}, "commercial_subscribed": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        (p["id"].clone(), p["commercial_subscribed"].clone()),
        (json!("default"), json!(true))
    );
    assert_eq!(h.get("/v1/users/u1").await.0, StatusCode::OK);
    let (_, p) = h
        .put(
            "/v1/users/u1/preferences/default",
            json!({"categories": {"c": true}}),
        )
        .await;
    assert_eq!(
        (p["workflows"].clone(), p["categories"].clone()),
        (Value::Null, json!({"c": true}))
    );
    let merge = json!({"__persistence_strategy__": "merge", "workflows": {"b": {"channel_types": {"sms": false}}}});
    let (_, p) = h.put("/v1/users/u1/preferences/default", merge).await;
    assert_eq!(
        (p["workflows"].clone(), p["categories"].clone()),
        (
            json!({"b": {"channel_types": {"sms": false}}}),
            json!({"c": true})
        )
    );
    let (s, p) = h.get("/v1/users/u1/preferences/tenant-9").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["id"], "tenant-9");
    assert_eq!(p["workflows"], Value::Null);
    let (s, body) = h.delete("/v1/users/u1/preferences/default").await;
    assert_eq!((s, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(h.get("/v1/users/u1/preferences").await.1, json!([]));
    assert_eq!(
        h.get("/v1/users/nobody/preferences").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn channel_data_endpoints() {
    let h = Harness::new();
    let (s, cd) = h
        .put(
            "/v1/users/new-user/channel_data/slack",
            json!({"data": {"connections": [{"incoming_webhook": {"url": "https://x"}}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cd}");
    assert_eq!(cd["__typename"], "ChannelData");
    assert_eq!(
        h.get("/v1/users/new-user").await.0,
        StatusCode::OK,
        "PUT channel_data creates the user"
    );
    assert_eq!(
        h.delete("/v1/users/new-user/channel_data/slack").await.0,
        StatusCode::NO_CONTENT
    );
    let (s, v) = h.get("/v1/users/new-user/channel_data/slack").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_knock_error(&v, s, "resource_missing");
    let (s, cd) = h
        .put(
            "/v1/objects/projects/p1/channel_data/c",
            json!({"data": {"devices": [{"token": "t"}]}}),
        )
        .await;
    assert_eq!(
        (s, cd["data"]["tokens"].clone()),
        (StatusCode::OK, json!(["t"]))
    );
    assert_eq!(h.get("/v1/objects/projects/p1/channel_data/c").await.1, cd);
}

#[tokio::test]
async fn delete_removes_the_user_with_its_rows() {
    let h = Harness::new();
    let empty = h.backend.snapshot();
    h.put("/v1/users/u1", json!({"name": "x", "channel_data": {"c": {"tokens": ["t"]}}, "preferences": {"default": {}}})).await;
    let (s, v) = h.delete("/v1/users/u1").await;
    assert_eq!((s, v), (StatusCode::NO_CONTENT, Value::Null));
    assert!(h.backend.snapshot() == empty, "no rows left behind");
    assert_eq!(h.get("/v1/users/u1").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        h.delete("/v1/users/u1").await.0,
        StatusCode::NO_CONTENT,
        "idempotent"
    );
}

#[tokio::test]
async fn merge_users_across_shards() {
    let h = Harness::new();
    // Find two users on different shards.
    let b = &h.backend;
    let other = (0..100)
        .map(|i| format!("guest-{i}"))
        .find(|g| {
            b.owner(&RecipientRef::user(g.as_str())) != b.owner(&RecipientRef::user("primary"))
        })
        .unwrap();
    h.put("/v1/users/primary", json!({"name": "P", "prefs": {"a": 1}}))
        .await;
    h.put(&format!("/v1/users/{other}"), json!({"name": "G", "email": "g@x", "prefs": {"b": 2},
        "channel_data": {"c1": {"tokens": ["g"]}}, "preferences": {"default": {"workflows": {"w": false}}}})).await;
    let (s, u) = h
        .post("/v1/users/primary/merge", json!({"from_user_id": other}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(
        (u["id"].clone(), u["name"].clone(), u["email"].clone()),
        (json!("primary"), json!("P"), json!("g@x"))
    );
    assert_eq!(u["prefs"], json!({"b": 2, "a": 1}));
    assert_eq!(
        h.get(&format!("/v1/users/{other}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/v1/users/primary/channel_data/c1").await.1["data"]["tokens"],
        json!(["g"])
    );
    assert_eq!(
        h.get("/v1/users/primary/preferences/default").await.1["workflows"],
        json!({"w": false})
    );
    let (s, v) = h
        .post("/v1/users/primary/merge", json!({"from_user_id": other}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    h.refused(
        Method::POST,
        "/v1/users/primary/merge",
        Body::from("{}"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_params",
    )
    .await;
    h.refused(
        Method::POST,
        "/v1/users/primary/merge",
        Body::from(r#"{"from_user_id":"primary"}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_params",
    )
    .await;
}

#[tokio::test]
async fn list_users_pages_exactly_across_shards() {
    let h = Harness::new();
    let all: Vec<String> = (0..11).map(|i| format!("user-{i:02}")).collect();
    for id in &all {
        h.put(&format!("/v1/users/{id}"), json!({"name": id})).await;
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/users?page_size=3".to_owned();
    let mut pages = Vec::new();
    loop {
        let (s, page) = h.get(&uri).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["page_info"]["__typename"], "PageInfo");
        assert_eq!(page["page_info"]["page_size"], 3);
        assert_eq!(page["entries"][0]["__typename"], "User");
        seen.extend(ids(&page));
        pages.push(page.clone());
        match page["page_info"]["after"].as_str() {
            Some(c) => uri = format!("/v1/users?page_size=3&after={c}"),
            None => break,
        }
    }
    assert_eq!(seen, all, "insertion order, every user exactly once");
    assert_eq!(pages.len(), 4);
    assert_eq!(pages[0]["page_info"]["before"], Value::Null);
    // Walk back from the last page with `before`.
    let before = pages[3]["page_info"]["before"].as_str().unwrap();
    let (_, back) = h
        .get(&format!("/v1/users?page_size=3&before={before}"))
        .await;
    assert_eq!(ids(&back), ids(&pages[2]));
    // Newest first.
    let (_, desc) = h.get("/v1/users?order=desc&page_size=4").await;
    assert_eq!(ids(&desc), ["user-10", "user-09", "user-08", "user-07"]);
    let after = desc["page_info"]["after"].as_str().unwrap();
    let (_, desc2) = h
        .get(&format!("/v1/users?order=desc&page_size=4&after={after}"))
        .await;
    assert_eq!(ids(&desc2), ["user-06", "user-05", "user-04", "user-03"]);
}

#[tokio::test]
async fn list_include_preferences_in_every_encoding() {
    let h = Harness::new();
    h.put(
        "/v1/users/u1/preferences/default",
        json!({"workflows": {"w": true}}),
    )
    .await;
    for q in [
        "include[]=preferences",
        "include%5B%5D=preferences",
        "include=preferences",
    ] {
        let (s, page) = h.get(&format!("/v1/users?{q}")).await;
        assert_eq!(s, StatusCode::OK, "{q}: {page}");
        assert_eq!(
            page["entries"][0]["preferences"]["default"]["workflows"],
            json!({"w": true}),
            "{q}"
        );
    }
    let (_, page) = h.get("/v1/users").await;
    assert!(page["entries"][0].get("preferences").is_none());
    h.refused(
        Method::GET,
        "/v1/users?include[0]=preferences",
        Body::empty(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_params",
    )
    .await;
    h.refused(
        Method::GET,
        "/v1/users?include[]=messages",
        Body::empty(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_params",
    )
    .await;
}

#[tokio::test]
async fn objects_nest_properties() {
    let h = Harness::new();
    let (s, o) = h
        .put(
            "/v1/objects/projects/p1",
            json!({"name": "Proj", "owner": {"id": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["__typename"], "Object");
    assert_eq!(o["collection"], "projects");
    assert_eq!(o["properties"], json!({"name": "Proj", "owner": {"id": 1}}));
    assert!(o.get("name").is_none());
    assert!(is_iso(&o["created_at"]) && is_iso(&o["updated_at"]));
    h.put("/v1/objects/projects/p2", json!({})).await;
    h.put("/v1/objects/other/p3", json!({})).await;
    let (_, page) = h.get("/v1/objects/projects?page_size=1").await;
    assert_eq!(ids(&page), ["p1"]);
    let after = page["page_info"]["after"].as_str().unwrap();
    let (_, page) = h
        .get(&format!("/v1/objects/projects?page_size=1&after={after}"))
        .await;
    assert_eq!(
        (ids(&page), page["page_info"]["after"].clone()),
        (vec!["p2".to_owned()], Value::Null)
    );
    assert_eq!(h.get("/v1/objects/projects/p1").await.1, o);
    assert_eq!(
        h.delete("/v1/objects/projects/p1").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.get("/v1/objects/projects/p1").await.0,
        StatusCode::NOT_FOUND
    );
    h.put(
        "/v1/objects/projects/p2/preferences/default",
        json!({"channel_types": {"email": true}}),
    )
    .await;
    assert_eq!(
        h.get("/v1/objects/projects/p2/preferences").await.1[0]["channel_types"],
        json!({"email": true})
    );
    assert_eq!(
        h.get("/v1/objects/projects?include[]=preferences").await.1["entries"][0]["preferences"]
            ["default"]["id"],
        "default"
    );
    h.refused(
        Method::PUT,
        "/v1/objects/$users/u1",
        Body::from("{}"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_params",
    )
    .await;
}

#[tokio::test]
async fn tenants_are_flat_and_filterable() {
    let h = Harness::new();
    let body = json!({"name": "Acme", "region": "eu", "settings": {"branding": {"primary_color": "#fff"}, "preference_set": {"workflows": {"w": false}}}});
    let (s, t) = h.put("/v1/tenants/acme", body).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        (
            t["__typename"].clone(),
            t["id"].clone(),
            t["name"].clone(),
            t["region"].clone()
        ),
        (json!("Tenant"), json!("acme"), json!("Acme"), json!("eu"))
    );
    assert_eq!(t["settings"]["preference_set"]["id"], "default");
    assert_eq!(t["settings"]["branding"]["primary_color"], "#fff");
    let (_, t2) = h.put("/v1/tenants/acme", json!({"plan": "pro"})).await;
    assert_eq!(
        (t2["name"].clone(), t2["plan"].clone()),
        (json!("Acme"), json!("pro")),
        "merge upsert"
    );
    h.put("/v1/tenants/globex", json!({"name": "Globex"})).await;
    h.put("/v1/tenants/initech", json!({})).await;
    assert_eq!(
        ids(&h.get("/v1/tenants").await.1),
        ["acme", "globex", "initech"]
    );
    assert_eq!(ids(&h.get("/v1/tenants?name=Globex").await.1), ["globex"]);
    assert_eq!(
        ids(&h.get("/v1/tenants?tenant_id=initech").await.1),
        ["initech"]
    );
    assert_eq!(
        ids(&h.get("/v1/tenants?tenant_id=nope").await.1),
        Vec::<String>::new()
    );
    assert_eq!(h.get("/v1/tenants/acme").await.1, t2);
    // Tenants are objects in `$tenants`.
    assert_eq!(
        h.get("/v1/objects/$tenants/acme").await.1["properties"]["name"],
        "Acme"
    );
    assert_eq!(h.delete("/v1/tenants/acme").await.0, StatusCode::NO_CONTENT);
    assert_eq!(h.get("/v1/tenants/acme").await.0, StatusCode::NOT_FOUND);
}

fn assert_completed(op: &Value, name: &str, n: u64) {
    assert_eq!(op["__typename"], "BulkOperation");
    assert_eq!(op["name"], name);
    assert_eq!(op["status"], "completed");
    for f in ["estimated_total_rows", "processed_rows", "success_count"] {
        assert_eq!(op[f], json!(n), "{f}: {op}");
    }
    assert_eq!(op["error_count"], 0);
    for f in ["inserted_at", "updated_at", "started_at", "completed_at"] {
        assert!(is_iso(&op[f]), "{f}: {op}");
    }
}

#[tokio::test]
async fn bulk_users() {
    let h = Harness::new();
    let users: Vec<Value> = (0..20)
        .map(|i| json!({"id": format!("b{i}"), "name": format!("B{i}")}))
        .collect();
    let (s, op) = h
        .post("/v1/users/bulk/identify", json!({"users": users}))
        .await;
    assert_eq!(s, StatusCode::OK, "{op}");
    assert_completed(&op, "users.identify", 20);
    let (s, got) = h
        .get(&format!(
            "/v1/bulk_operations/{}",
            op["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!((s, got), (StatusCode::OK, op));
    assert_eq!(h.get("/v1/users/b7").await.1["name"], "B7");
    let (_, op) = h.post("/v1/users/bulk/preferences", json!({"user_ids": ["b1", "b2", "new"], "preferences": {"id": "default", "workflows": {"x": false}}})).await;
    assert_completed(&op, "users.set_preferences", 3);
    assert_eq!(
        h.get("/v1/users/new/preferences/default").await.1["workflows"],
        json!({"x": false})
    );
    let ids: Vec<String> = (0..20).map(|i| format!("b{i}")).collect();
    let (_, op) = h
        .post("/v1/users/bulk/delete", json!({"user_ids": ids}))
        .await;
    assert_completed(&op, "users.delete", 20);
    assert_eq!(ids_of_users(&h).await, ["new"]);
    assert_eq!(
        h.get("/v1/bulk_operations/nope").await.0,
        StatusCode::NOT_FOUND
    );
}

async fn ids_of_users(h: &Harness) -> Vec<String> {
    ids(&h.get("/v1/users").await.1)
}

#[tokio::test]
async fn bulk_objects_and_tenants() {
    let h = Harness::new();
    let (s, op) = h
        .post(
            "/v1/objects/projects/bulk/set",
            json!({"objects": [{"id": "a", "k": 1}, {"id": "b"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{op}");
    assert_completed(&op, "objects.set", 2);
    assert_eq!(
        h.get("/v1/objects/projects/a").await.1["properties"],
        json!({"k": 1})
    );
    let (_, op) = h
        .post(
            "/v1/objects/projects/bulk/delete",
            json!({"object_ids": ["a"]}),
        )
        .await;
    assert_completed(&op, "objects.delete", 1);
    assert_eq!(
        h.get("/v1/objects/projects/a").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, op) = h
        .post(
            "/v1/tenants/bulk/set",
            json!({"tenants": ["t1", {"id": "t2", "name": "Two"}, "t3"]}),
        )
        .await;
    assert_completed(&op, "tenants.set", 3);
    assert_eq!(h.get("/v1/tenants/t2").await.1["name"], "Two");
    let (s, op) = h
        .post(
            "/v1/tenants/bulk/delete?tenant_ids[]=t1&tenant_ids%5B%5D=t3",
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{op}");
    assert_completed(&op, "tenants.delete", 2);
    assert_eq!(ids(&h.get("/v1/tenants").await.1), ["t2"]);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    use StatusCode as S;
    let h = Harness::new();
    h.put("/v1/users/existing", json!({"name": "E"})).await;
    let b = |s: &str| Body::from(s.to_owned());
    let long = "x".repeat(256);
    let cases: Vec<(Method, String, Body, S, &str)> = vec![
        (
            Method::PUT,
            "/v1/users/u1".into(),
            b("{not json"),
            S::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Method::PUT,
            "/v1/users/u1".into(),
            b("[1,2]"),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/u1".into(),
            b(r#"{"email": 5}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/u1".into(),
            b(r#"{"created_at": "soon"}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/u1".into(),
            b(r#"{"channel_data": {"c": {"tokens": "t"}}}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/u1".into(),
            b(r#"{"preferences": {"default": {"workflows": {"w": "no"}}}}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            format!("/v1/users/{long}"),
            b("{}"),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/a%0Ab".into(),
            b("{}"),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/%FF".into(),
            b("{}"),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/u1/preferences/default".into(),
            b(r#"{"nonsense": true}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/u1/preferences/default".into(),
            b(r#"{"__persistence_strategy__": "x"}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/u1/channel_data/c".into(),
            b(r#"{"nodata": {}}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/users/u1/channel_data/c".into(),
            b(r#"{"data": [1]}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/tenants/t1".into(),
            b(r#"{"settings": {"branding": {"logo_url": 3}}}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/tenants/t1".into(),
            b(r#"{"name": ["x"]}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::PUT,
            "/v1/objects/$secret/o".into(),
            b("{}"),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::POST,
            "/v1/users/bulk/identify".into(),
            b(r#"{"users": [{"id": "ok1"}, {"id": ""}]}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::POST,
            "/v1/users/bulk/identify".into(),
            b(r#"{"users": [{"id": "ok1"}, {"name": "no id"}]}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::POST,
            "/v1/users/bulk/identify".into(),
            b(r#"{"users": []}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::POST,
            "/v1/users/bulk/delete".into(),
            b(r#"{"user_ids": ["existing", 7]}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::POST,
            "/v1/users/bulk/preferences".into(),
            b(r#"{"user_ids": ["existing"], "preferences": {"bad": 1}}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::POST,
            "/v1/objects/c/bulk/set".into(),
            b(r#"{"objects": [{"id": "a"}, {"id": "b", "channel_data": {"x": 1}}]}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::POST,
            "/v1/tenants/bulk/set".into(),
            b(r#"{"tenants": ["ok", 5]}"#),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::POST,
            "/v1/tenants/bulk/delete?tenant_ids[0]=existing".into(),
            b("{}"),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::POST,
            "/v1/tenants/bulk/delete".into(),
            b("{}"),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::GET,
            "/v1/users?page_size=0".into(),
            Body::empty(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::GET,
            "/v1/users?page_size=51".into(),
            Body::empty(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::GET,
            "/v1/users?page_size=ten".into(),
            Body::empty(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::GET,
            "/v1/users?after=garbage!".into(),
            Body::empty(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::GET,
            "/v1/users?order=sideways".into(),
            Body::empty(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
        (
            Method::GET,
            "/v1/users?a=1&a[b]=2".into(),
            Body::empty(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_params",
        ),
    ];
    for (m, uri, body, status, code) in cases {
        h.refused(m, &uri, body, status, code).await;
    }
    let too_many: Vec<Value> = (0..1001).map(|i| json!({"id": format!("u{i}")})).collect();
    h.refused(
        Method::POST,
        "/v1/users/bulk/identify",
        Body::from(json!({"users": too_many}).to_string()),
        S::UNPROCESSABLE_ENTITY,
        "invalid_params",
    )
    .await;
    let huge = json!({"blob": "x".repeat(super::BODY_LIMIT)}).to_string();
    h.refused(
        Method::PUT,
        "/v1/users/u1",
        Body::from(huge),
        S::PAYLOAD_TOO_LARGE,
        "request_too_large",
    )
    .await;
    assert_eq!(h.get("/v1/users/existing").await.1["name"], "E");
}

#[test]
fn shard_messages_round_trip_through_bincode() {
    // The messages cross the network as bincode 2 (serde mode); JSON travels as strings.
    use herald_shard::{
        ListPosition, ListQuery, RecipientSnapshot, RecipientUpsert, RecipientView,
    };
    let cfg = bincode::config::standard();
    let view = RecipientView {
        recipient: RecipientRef::user("u"),
        properties: r#"{"a":null}"#.into(),
        inserted_ms: 1,
        updated_ms: 2,
        preferences: vec![],
    };
    let cmds = vec![
        ShardCommand::Upsert(vec![RecipientUpsert {
            recipient: RecipientRef::tenant("t"),
            properties: "{}".into(),
            channel_data: vec![],
            preferences: vec![],
        }]),
        ShardCommand::MergeInto {
            target: RecipientRef::user("a"),
            from: RecipientSnapshot {
                view: view.clone(),
                channel_data: vec![],
                preferences: vec![],
            },
        },
    ];
    for c in cmds {
        let bytes = bincode::serde::encode_to_vec(&c, cfg).unwrap();
        let back: ShardCommand = bincode::serde::decode_from_slice(&bytes, cfg).unwrap().0;
        assert_eq!(back, c);
    }
    let q = ShardQuery::List(ListQuery {
        collection: "c".into(),
        lower: Some(ListPosition {
            inserted_ms: 3,
            id: "i".into(),
        }),
        upper: None,
        descending: true,
        limit: 5,
        include_preferences: true,
        id_equals: None,
        name_equals: Some("n".into()),
    });
    let bytes = bincode::serde::encode_to_vec(&q, cfg).unwrap();
    assert_eq!(
        bincode::serde::decode_from_slice::<ShardQuery, _>(&bytes, cfg)
            .unwrap()
            .0,
        q
    );
    for r in [
        ShardReply::Recipients(vec![view]),
        ShardReply::NotFound,
        ShardReply::Count(9),
    ] {
        let bytes = bincode::serde::encode_to_vec(&r, cfg).unwrap();
        assert_eq!(
            bincode::serde::decode_from_slice::<ShardReply, _>(&bytes, cfg)
                .unwrap()
                .0,
            r
        );
    }
}
