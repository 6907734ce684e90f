//! HTTP tests of messages, the in-app feed and workflow recipient runs, over the in-memory backend
//! of `tests.rs`. Runs and messages are recorded straight through the shard command the workflow
//! engine uses (`RunsCommand::Record`), for recipients on different shards.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use herald_shard::ids::{make_id, run_id};
use herald_shard::runs::{
    DeliveryOutcome, NewMessage, NewRun, RunStatus, RunStep, RunsCommand, RunsReply,
};
use herald_shard::{slot_of, RecipientRef, ShardCommand, ShardReply};
use serde_json::{json, Value};

use super::render::{iso, parse_iso};
use super::tests::{assert_knock_error, is_iso, Harness};
use crate::backend::Backend;

const FEED: &str = "7b5c1a4e-0000-4000-8000-000000000001";
const HOOK: &str = "7b5c1a4e-0000-4000-8000-000000000002";

/// A message to record: (channel id, channel type, status, content).
struct Msg(&'static str, &'static str, &'static str, Value);

fn in_app() -> Msg {
    Msg(
        FEED,
        "in_app_feed",
        "delivered",
        json!({"blocks": [{"type": "markdown", "name": "body", "content": "hi", "rendered": "<p>hi</p>"}]}),
    )
}

fn webhook() -> Msg {
    Msg(
        HOOK,
        "http",
        "queued",
        json!({"method": "POST", "url": "https://h.example/x", "body": {"a": 1}}),
    )
}

/// What a trigger carried besides its messages.
#[derive(Clone)]
struct Trigger {
    workflow: &'static str,
    tenant: Option<&'static str>,
    data: Value,
    actor: Option<RecipientRef>,
    steps: Vec<RunStep>,
    status: RunStatus,
}

fn trigger(workflow: &'static str) -> Trigger {
    Trigger {
        workflow,
        tenant: None,
        data: json!({}),
        actor: None,
        steps: vec![],
        status: RunStatus::Completed,
    }
}

/// Records runs with ids that grow one second per id, so creation order is id order.
struct Seeder<'a> {
    h: &'a Harness,
    ms: u64,
    n: u8,
}

impl<'a> Seeder<'a> {
    fn new(h: &'a Harness) -> Self {
        Seeder {
            h,
            ms: 1_600_000_000_000,
            n: 0,
        }
    }

    fn next(&mut self, r: &RecipientRef) -> (u64, u16, [u8; 10]) {
        self.ms += 1000;
        self.n += 1;
        (self.ms, slot_of(&r.recipient_key()), [self.n; 10])
    }

    /// Record one run of `t` for `r`; returns (run id, workflow run id, message ids).
    async fn run(
        &mut self,
        r: &RecipientRef,
        t: &Trigger,
        msgs: Vec<Msg>,
    ) -> (String, String, Vec<String>) {
        let (ms, slot, _) = self.next(r);
        let wf_run = format!("wr-{}", self.n);
        let rid = run_id(ms, slot, &wf_run, &r.recipient_key());
        let messages: Vec<NewMessage> = msgs
            .into_iter()
            .map(|Msg(channel, channel_type, status, content)| {
                let (ms, slot, entropy) = self.next(r);
                NewMessage {
                    id: make_id(ms, slot, entropy),
                    channel_id: channel.into(),
                    channel_key: channel_type.into(),
                    channel_type: channel_type.into(),
                    step_ref: format!("{channel_type}_1"),
                    branch_path: vec![],
                    status: status.into(),
                    content: content.to_string(),
                    recipient_snapshot: json!({"user_id": r.id}).to_string(),
                }
            })
            .collect();
        let ids = messages.iter().map(|m| m.id.clone()).collect();
        let run = NewRun {
            run_id: rid.clone(),
            workflow_run_id: wf_run.clone(),
            workflow: t.workflow.into(),
            workflow_version: 3,
            categories: vec![format!("{}-cat", t.workflow)],
            recipient: r.clone(),
            actor: t.actor.clone(),
            tenant: t.tenant.map(str::to_owned),
            cancellation_key: None,
            data: t.data.to_string(),
            identify: None,
            status: t.status,
            steps: t.steps.clone(),
            messages,
            resume_at_ms: None,
            resume_state: None,
            once_scope: None,
        };
        let reply = self
            .h
            .backend
            .write(
                self.h.backend.owner(r),
                ShardCommand::Runs(RunsCommand::Record(vec![run])),
            )
            .await
            .unwrap();
        assert_eq!(reply, ShardReply::Runs(RunsReply::Recorded(vec![true])));
        (rid, wf_run, ids)
    }
}

/// `n` users on `n` different shards.
fn users(h: &Harness, n: usize) -> Vec<RecipientRef> {
    let mut out: Vec<RecipientRef> = Vec::new();
    for i in 0.. {
        let r = RecipientRef::user(format!("user-{i}"));
        if out
            .iter()
            .all(|o| h.backend.owner(o) != h.backend.owner(&r))
        {
            out.push(r);
        }
        if out.len() == n {
            return out;
        }
    }
    unreachable!()
}

/// Percent-encode a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn item_ids(page: &Value, list: &str) -> Vec<String> {
    page[list]
        .as_array()
        .unwrap_or_else(|| panic!("no `{list}` in {page}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn ok(h: &Harness, uri: &str) -> Value {
    let (s, v) = h.get(uri).await;
    assert_eq!(s, StatusCode::OK, "GET {uri}: {v}");
    v
}

async fn items(h: &Harness, uri: &str) -> Vec<String> {
    item_ids(&ok(h, uri).await, "items")
}

/// A GET of `uri` must be refused with `status` and Knock's `code`, changing nothing.
async fn refused_get(h: &Harness, uri: &str, status: StatusCode, code: &str) {
    h.refused(Method::GET, uri, Body::empty(), status, code)
        .await;
}

/// A `method` request to `uri` with the JSON `body` must be refused with `status` and Knock's
/// `code`, changing nothing.
async fn refused_json(
    h: &Harness,
    method: Method,
    uri: &str,
    body: Value,
    status: StatusCode,
    code: &str,
) {
    h.refused(method, uri, Body::from(body.to_string()), status, code)
        .await;
}

/// How many `items` the first page of `uri` holds.
async fn item_count(h: &Harness, uri: &str) -> usize {
    items(h, uri).await.len()
}

/// Follow `page_info.after` to the end; every page but the first names its predecessor.
async fn all_pages(h: &Harness, uri: &str, list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut page = ok(h, uri).await;
    assert_eq!(page["page_info"]["before"], Value::Null);
    loop {
        out.extend(item_ids(&page, list));
        let Some(after) = page["page_info"]["after"].as_str().map(str::to_owned) else {
            return out;
        };
        page = ok(h, &format!("{uri}&after={after}")).await;
        assert_eq!(page["page_info"]["before"], page[list][0]["id"]);
    }
}

fn feed_meta(v: &Value) -> (u64, u64, u64) {
    let m = &v["meta"];
    assert_eq!(m["__typename"], "FeedMetadata");
    (
        m["total_count"].as_u64().unwrap(),
        m["unread_count"].as_u64().unwrap(),
        m["unseen_count"].as_u64().unwrap(),
    )
}

async fn meta_of(h: &Harness, user: &str, query: &str) -> (u64, u64, u64) {
    feed_meta(&ok(h, &format!("/v1/users/{user}/feeds/{FEED}?{query}")).await)
}

#[tokio::test]
async fn message_lists_filter_and_page_across_shards() {
    let h = Harness::new();
    let mut s = Seeder::new(&h);
    let u = users(&h, 3);
    let mut all = Vec::new();
    let mut runs = Vec::new();
    for i in 0..3 {
        for (k, r) in u.iter().enumerate() {
            let mut t = trigger(if k == 2 { "digest" } else { "welcome" });
            t.tenant = (k == 2).then_some("t1");
            t.data = json!({"n": i, "kind": "x"});
            let msgs = if k == 1 && i == 0 {
                vec![in_app(), webhook()]
            } else {
                vec![in_app()]
            };
            let (rid, wr, ids) = s.run(r, &t, msgs).await;
            runs.push((rid, wr, ids.clone()));
            all.extend(ids);
        }
    }
    let project = RecipientRef::object("projects", "p1");
    let (_, _, p_ids) = s.run(&project, &trigger("welcome"), vec![in_app()]).await;
    all.extend(p_ids.clone());
    all.sort_by(|a, b| b.cmp(a));

    // Paging after the cursor, newest first across every shard.
    assert_eq!(
        all_pages(&h, "/v1/messages?page_size=3", "items").await,
        all
    );
    let page = ok(&h, "/v1/messages?page_size=50").await;
    assert_eq!(item_ids(&page, "items"), all);
    assert_eq!(
        page["page_info"],
        json!({"__typename": "PageInfo", "page_size": 50, "after": null, "before": null})
    );
    // `before` is the page just newer than the cursor.
    let back = ok(&h, &format!("/v1/messages?page_size=2&before={}", all[4])).await;
    assert_eq!(item_ids(&back, "items"), all[2..4]);
    assert_eq!(back["page_info"]["before"], json!(all[2]));
    assert_eq!(back["page_info"]["after"], json!(all[3]));
    let top = ok(&h, &format!("/v1/messages?before={}", all[2])).await;
    assert_eq!(item_ids(&top, "items"), all[..2]);
    assert_eq!(top["page_info"]["before"], Value::Null);

    // Filters.
    for (q, n) in [
        ("source=digest".to_owned(), 3),
        ("tenant=t1".into(), 3),
        ("has_tenant=false".into(), 8),
        ("has_tenant=true".into(), 3),
        ("workflow_categories[]=welcome-cat".into(), 8),
        ("channel_id=webhook".into(), 1),
        (format!("channel_id={HOOK}"), 1),
        ("status[]=queued".into(), 1),
        ("status[]=queued&status[]=delivered".into(), 11),
        (
            "engagement_status[]=unread&engagement_status[]=unseen".into(),
            11,
        ),
        ("engagement_status[]=read".into(), 0),
    ] {
        assert_eq!(item_count(&h, &format!("/v1/messages?{q}")).await, n, "{q}");
    }
    let q = format!("message_ids[]={}&message_ids[]={}", all[0], all[5]);
    assert_eq!(
        items(&h, &format!("/v1/messages?{q}")).await,
        vec![all[0].clone(), all[5].clone()]
    );
    let (rid, wr, ids) = &runs[1];
    assert_eq!(
        item_count(&h, &format!("/v1/messages?workflow_run_id={wr}")).await,
        2
    );
    let mut by_run = items(&h, &format!("/v1/messages?workflow_recipient_run_id={rid}")).await;
    by_run.sort();
    assert_eq!(&by_run, ids);
    let td = enc(r#"{"n":1,"kind":"x"}"#);
    assert_eq!(
        item_count(&h, &format!("/v1/messages?trigger_data={td}")).await,
        3
    );

    // inserted_at in both encodings, against the rendered times.
    let times: Vec<(String, u64)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                parse_iso(m["inserted_at"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let pivot = times[5].1;
    let at = enc(&iso(pivot));
    let expect = |f: &dyn Fn(u64) -> bool| -> Vec<String> {
        times
            .iter()
            .filter(|(_, t)| f(*t))
            .map(|(id, _)| id.clone())
            .collect()
    };
    assert_eq!(
        items(&h, &format!("/v1/messages?inserted_at[gte]={at}")).await,
        expect(&|t| t >= pivot)
    );
    assert_eq!(
        items(&h, &format!("/v1/messages?inserted_at.gt={at}")).await,
        expect(&|t| t > pivot)
    );
    assert_eq!(
        items(&h, &format!("/v1/messages?inserted_at.lte={at}")).await,
        expect(&|t| t <= pivot)
    );
    assert_eq!(
        items(
            &h,
            &format!(
                "/v1/messages?inserted_at%5Blt%5D={at}&inserted_at[gte]={}",
                enc(&iso(pivot - 1))
            )
        )
        .await,
        expect(&|t| t == pivot - 1)
    );

    // Per recipient: only that recipient, only its shard.
    let a = &u[0].id;
    let mine = items(&h, &format!("/v1/users/{a}/messages?page_size=2")).await;
    assert_eq!(mine.len(), 2);
    let mine = all_pages(&h, &format!("/v1/users/{a}/messages?page_size=2"), "items").await;
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|id| all.contains(id)));
    assert_eq!(
        item_count(&h, &format!("/v1/users/{a}/messages?source=digest")).await,
        0
    );
    assert_eq!(item_count(&h, "/v1/users/nobody/messages").await, 0);
    let objs = ok(&h, "/v1/objects/projects/p1/messages").await;
    assert_eq!(item_ids(&objs, "items"), p_ids);
    assert_eq!(
        objs["items"][0]["recipient"],
        json!({"id": "p1", "collection": "projects"})
    );
}

#[tokio::test]
async fn one_message_its_content_events_logs_and_activities() {
    let h = Harness::new();
    let mut s = Seeder::new(&h);
    let a = RecipientRef::user("ann");
    let mut t = trigger("welcome");
    t.tenant = Some("t1");
    t.actor = Some(RecipientRef::user("boss"));
    t.data = json!({"name": "Ann"});
    let chat = json!({"connection": {"access_token": "xoxb-secret"}, "markdown_body": "*hi*", "summary": "hi", "json_content": null});
    let (rid, wr, ids) = s
        .run(
            &a,
            &t,
            vec![
                in_app(),
                webhook(),
                Msg("email-chan", "email", "queued", json!({"from": "f@x.io", "to": "ann@x.io", "subject_line": "Hi", "html_body": "<p>Hi</p>", "text_body": "Hi"})),
                Msg("push-chan", "push", "queued", json!({"tokens": ["tok-1", "tok-2"], "title": "T", "body": "B", "data": {"k": 1}})),
                Msg("chat-chan", "chat", "queued", chat),
                Msg("sms-chan", "sms", "queued", json!({"to": "+15550000", "body": "yo"})),
            ],
        )
        .await;
    let [feed_id, hook_id, email_id, push_id, chat_id, sms_id] = &ids[..] else {
        unreachable!()
    };

    let m = ok(&h, &format!("/v1/messages/{feed_id}")).await;
    assert_eq!(m["__typename"], "Message");
    assert_eq!(m["id"], json!(feed_id));
    assert_eq!(m["channel_id"], FEED);
    assert_eq!(
        m["channel"],
        json!({"id": FEED, "key": "in-app", "name": "in-app", "type": "in_app_feed", "provider": "knock",
               "created_at": "1970-01-01T00:00:00Z", "updated_at": "1970-01-01T00:00:00Z"})
    );
    assert_eq!(m["recipient"], "ann");
    assert_eq!(m["actors"], json!(["boss"]));
    assert_eq!(
        (m["tenant"].clone(), m["workflow"].clone()),
        (json!("t1"), json!("welcome"))
    );
    assert_eq!(
        m["source"],
        json!({"__typename": "NotificationSource", "key": "welcome", "version_id": "3", "categories": ["welcome-cat"],
               "step_ref": "in_app_feed_1", "type": "workflow", "workflow_run_id": wr, "workflow_recipient_run_id": rid})
    );
    assert_eq!(
        (m["status"].clone(), m["engagement_statuses"].clone()),
        (json!("delivered"), json!([]))
    );
    for k in [
        "seen_at",
        "read_at",
        "interacted_at",
        "link_clicked_at",
        "clicked_at",
        "archived_at",
        "scheduled_at",
        "metadata",
    ] {
        assert_eq!(m[k], Value::Null, "{k}");
    }
    assert!(is_iso(&m["inserted_at"]) && is_iso(&m["updated_at"]));
    assert_eq!(m["data"], json!({"name": "Ann"}));
    assert_eq!(m["recipient_snapshot"], json!({"user_id": "ann"}));
    // A channel unknown to the meta group falls back to what the message holds.
    let e = ok(&h, &format!("/v1/messages/{email_id}")).await;
    assert_eq!(
        (
            e["channel"]["id"].clone(),
            e["channel"]["type"].clone(),
            e["channel"]["name"].clone()
        ),
        (json!("email-chan"), json!("email"), Value::Null)
    );

    let data = |id: &String| {
        let h = &h;
        let id = id.clone();
        async move {
            let c = ok(h, &format!("/v1/messages/{id}/content")).await;
            assert_eq!(c["__typename"], "MessageContents");
            assert_eq!(c["message_id"], json!(id));
            assert!(is_iso(&c["inserted_at"]));
            c["data"].clone()
        }
    };
    assert_eq!(
        data(feed_id).await,
        json!({"blocks": [{"type": "markdown", "name": "body", "content": "hi", "rendered": "<p>hi</p>"}]})
    );
    assert_eq!(
        data(hook_id).await,
        json!({"method": "POST", "url": "https://h.example/x", "body": {"a": 1}})
    );
    assert_eq!(
        data(email_id).await,
        json!({"from": "f@x.io", "to": "ann@x.io", "subject_line": "Hi", "html_body": "<p>Hi</p>", "text_body": "Hi"})
    );
    assert_eq!(
        data(push_id).await,
        json!({"token": "tok-1", "title": "T", "body": "B", "data": {"k": 1}})
    );
    let c = data(chat_id).await;
    assert_eq!(
        c,
        json!({"connection": null, "template": {"markdown_body": "*hi*", "summary": "hi", "json_content": null}})
    );
    assert!(
        !c.to_string().contains("xoxb"),
        "chat connections are never rendered"
    );
    assert_eq!(data(sms_id).await, json!({"to": "+15550000", "body": "yo"}));
    let batch = ok(&h, &format!("/v1/messages/batch/content?message_ids[]={sms_id}&message_ids[]={}&message_ids[]=bad&message_ids[]={push_id}", make_id(1, 1, [9; 10]))).await;
    let got: Vec<&Value> = batch
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["message_id"])
        .collect();
    assert_eq!(got, vec![&json!(sms_id), &json!(push_id)]);

    // A delivery attempt: its log and its event.
    let log = json!({"service_name": "webhook", "request": {"method": "POST", "host": "h.example", "path": "/x", "query": null, "headers": {}, "body": {"a": 1}},
                     "response": {"status": 200, "headers": {}, "body": "ok"}});
    let shard = h.backend.shard_for_id(hook_id).unwrap();
    let cmd = RunsCommand::Delivery {
        message_id: hook_id.clone(),
        outcome: DeliveryOutcome::Delivered,
        logs: vec![log.to_string()],
    };
    h.backend
        .write(shard, ShardCommand::Runs(cmd))
        .await
        .unwrap();
    let logs = ok(&h, &format!("/v1/messages/{hook_id}/delivery_logs")).await;
    let l = &logs["items"][0];
    assert_eq!(logs["items"].as_array().unwrap().len(), 1);
    assert_eq!(l["__typename"], "MessageDeliveryLog");
    assert_eq!(
        (
            l["service_name"].clone(),
            l["request"].clone(),
            l["response"].clone()
        ),
        (
            json!("webhook"),
            log["request"].clone(),
            log["response"].clone()
        )
    );
    assert!(l["id"].is_string() && is_iso(&l["inserted_at"]) && l.get("environment_id").is_some());
    let events = ok(&h, &format!("/v1/messages/{hook_id}/events")).await;
    let kinds: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["type"])
        .collect();
    assert_eq!(kinds, vec!["message.queued", "message.delivered"]);
    let ev = &events["items"][0];
    assert_eq!(
        (ev["__typename"].clone(), ev["recipient"].clone()),
        (json!("MessageEvent"), json!("ann"))
    );
    assert!(is_iso(&ev["inserted_at"]) && ev.get("data").is_some());
    assert_eq!(
        ok(&h, &format!("/v1/messages/{hook_id}")).await["status"],
        "delivered"
    );
    // Events page in memory by their ids.
    let first = ok(&h, &format!("/v1/messages/{hook_id}/events?page_size=1")).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let after = first["page_info"]["after"].as_str().unwrap().to_owned();
    assert_eq!(after, events["items"][0]["id"].as_str().unwrap());
    let second = ok(
        &h,
        &format!("/v1/messages/{hook_id}/events?page_size=1&after={after}"),
    )
    .await;
    assert_eq!(second["items"][0], events["items"][1]);
    assert_eq!(second["page_info"]["after"], Value::Null);
    assert_eq!(second["page_info"]["before"], events["items"][1]["id"]);

    let acts = ok(&h, &format!("/v1/messages/{feed_id}/activities")).await;
    let act = &acts["items"][0];
    assert_eq!(act["__typename"], "Activity");
    assert_eq!(act["actor"]["__typename"], "User");
    assert_eq!(act["actor"]["id"], "boss");
    assert_eq!(act["recipient"]["id"], "ann");
    assert_eq!(act["recipient"]["updated_at"], act["inserted_at"]);
    assert_eq!(act["data"], json!({"name": "Ann"}));
    let td = enc(r#"{"name":"Bob"}"#);
    let uri = format!("/v1/messages/{feed_id}/activities?trigger_data={td}");
    assert_eq!(item_count(&h, &uri).await, 0);
}

#[tokio::test]
async fn status_changes_keep_feed_counts_exact() {
    let h = Harness::new();
    let mut s = Seeder::new(&h);
    let u = users(&h, 2);
    let (a, b) = (u[0].id.clone(), u[1].id.clone());
    let (_, _, am) = s
        .run(
            &u[0],
            &trigger("welcome"),
            vec![in_app(), in_app(), in_app(), in_app(), webhook()],
        )
        .await;
    let (_, _, bm) = s
        .run(&u[1], &trigger("welcome"), vec![in_app(), in_app()])
        .await;
    assert_eq!(meta_of(&h, &a, "").await, (4, 4, 4));

    let (st, m) = h
        .put(&format!("/v1/messages/{}/seen", am[0]), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["engagement_statuses"], json!(["seen"]));
    assert!(is_iso(&m["seen_at"]));
    assert_eq!(meta_of(&h, &a, "").await, (4, 4, 3));
    h.put(&format!("/v1/messages/{}/read", am[0]), json!({}))
        .await;
    let (st, m) = h
        .put(
            &format!("/v1/messages/{}/interacted", am[1]),
            json!({"metadata": {"button": "ok", "n": 2}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["engagement_statuses"], json!(["read", "interacted"]));
    assert_eq!(m["metadata"], json!({"button": "ok", "n": 2}));
    assert!(is_iso(&m["interacted_at"]) && is_iso(&m["read_at"]));
    assert_eq!(meta_of(&h, &a, "").await, (4, 2, 3));
    let (st, m) = h.delete(&format!("/v1/messages/{}/unread", am[1])).await;
    assert_eq!((st, m["read_at"].clone()), (StatusCode::OK, Value::Null));
    h.delete(&format!("/v1/messages/{}/seen", am[0])).await;
    assert_eq!(meta_of(&h, &a, "").await, (4, 3, 4));
    let (_, m) = h
        .put(&format!("/v1/messages/{}/archived", am[3]), json!(null))
        .await;
    assert!(is_iso(&m["archived_at"]));
    assert_eq!(meta_of(&h, &a, "").await, (3, 2, 3));
    assert_eq!(meta_of(&h, &a, "archived=only").await, (1, 1, 1));
    assert_eq!(meta_of(&h, &a, "archived=include").await, (4, 3, 4));
    // Non-feed messages take status changes but count in no feed.
    let (st, _) = h
        .put(&format!("/v1/messages/{}/read", am[4]), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(meta_of(&h, &a, "archived=include").await, (4, 3, 4));

    // Batch across shards: request order, unknown ids left out.
    let unknown = make_id(5, 5, [5; 10]);
    let (st, v) = h
        .post(
            "/v1/messages/batch/read",
            json!({"message_ids": [am[2], "nope", bm[0], unknown, am[2]]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let got: Vec<&Value> = v.as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(got, vec![&json!(am[2]), &json!(bm[0])]);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["__typename"] == "Message" && is_iso(&m["read_at"])));
    assert_eq!(meta_of(&h, &a, "").await, (3, 1, 3));
    assert_eq!(meta_of(&h, &b, "").await, (2, 1, 2));
    h.post(
        "/v1/messages/batch/seen",
        json!({"message_ids": [am[0], am[1], am[2], bm[1]]}),
    )
    .await;
    assert_eq!(meta_of(&h, &a, "").await, (3, 1, 0));
    assert_eq!(meta_of(&h, &b, "").await, (2, 1, 1));
    let (_, v) = h
        .post(
            "/v1/messages/batch/unarchived",
            json!({"message_ids": [am[3]]}),
        )
        .await;
    assert_eq!(v[0]["archived_at"], Value::Null);
    assert_eq!(meta_of(&h, &a, "").await, (4, 2, 1));
    let (_, v) = h
        .post(
            "/v1/messages/batch/interacted",
            json!({"message_ids": [bm[1]], "metadata": {"x": true}}),
        )
        .await;
    assert_eq!(v[0]["metadata"], json!({"x": true}));
    assert_eq!(meta_of(&h, &b, "").await, (2, 0, 1));
    let (_, v) = h
        .post("/v1/messages/batch/unseen", json!({"message_ids": [bm[1]]}))
        .await;
    assert_eq!(v[0]["seen_at"], Value::Null);
    h.post("/v1/messages/batch/unread", json!({"message_ids": [bm[1]]}))
        .await;
    h.post(
        "/v1/messages/batch/archived",
        json!({"message_ids": [bm[0]]}),
    )
    .await;
    assert_eq!(meta_of(&h, &b, "").await, (1, 1, 1));
    assert_eq!(meta_of(&h, &b, "archived=only").await, (1, 0, 1));

    // Every change is an event.
    let ev = ok(&h, &format!("/v1/messages/{}/events", am[0])).await;
    let kinds: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "message.delivered",
            "message.seen",
            "message.read",
            "message.unseen",
            "message.seen"
        ]
    );
    // Message lists see the engagement.
    let uri = format!("/v1/users/{a}/messages?engagement_status[]=read");
    assert_eq!(item_count(&h, &uri).await, 3);
}

#[tokio::test]
async fn feed_items_modes_filters_and_paging() {
    let h = Harness::new();
    let mut s = Seeder::new(&h);
    let ann = RecipientRef::user("ann");
    let mut t = trigger("welcome");
    t.data = json!({"name": "x", "nested": {"k": 1}, "list": [1]});
    t.actor = Some(RecipientRef::user("boss"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.extend(
            s.run(&ann, &t, vec![in_app(), webhook()])
                .await
                .2
                .into_iter()
                .step_by(2),
        );
    }
    let mut d = trigger("digest");
    d.tenant = Some("t1");
    ids.extend(s.run(&ann, &d, vec![in_app()]).await.2);
    ids.reverse();

    let v = ok(&h, &format!("/v1/users/ann/feeds/{FEED}")).await;
    assert_eq!(item_ids(&v, "entries"), ids);
    assert_eq!(feed_meta(&v), (4, 4, 4));
    assert_eq!(v["vars"], json!({}));
    assert_eq!(
        v["page_info"],
        json!({"__typename": "PageInfo", "page_size": 50, "after": null, "before": null})
    );
    let e = &v["entries"][1];
    assert_eq!(e["__typename"], "FeedItem");
    assert_eq!(e["__cursor"], e["id"]);
    assert_eq!(
        e["source"],
        json!({"__typename": "NotificationSource", "key": "welcome", "version_id": "3", "categories": ["welcome-cat"], "step_ref": "in_app_feed_1"})
    );
    assert_eq!(
        e["data"],
        json!({"name": "x", "nested": {"k": 1}, "list": [1]})
    );
    assert_eq!(
        (e["actors"][0]["id"].clone(), e["total_actors"].clone()),
        (json!("boss"), json!(1))
    );
    assert_eq!(e["actors"][0]["updated_at"], e["inserted_at"]);
    assert_eq!(
        (
            e["total_activities"].clone(),
            e["activities"][0]["__typename"].clone()
        ),
        (json!(1), json!("Activity"))
    );
    assert_eq!(e["blocks"][0]["rendered"], "<p>hi</p>");
    assert_eq!(e["tenant"], Value::Null);
    assert!(is_iso(&e["inserted_at"]) && is_iso(&e["updated_at"]));
    for k in [
        "read_at",
        "seen_at",
        "interacted_at",
        "link_clicked_at",
        "clicked_at",
        "archived_at",
    ] {
        assert_eq!(e[k], Value::Null, "{k}");
    }
    // By key too; unknown users read empty; settings.
    assert_eq!(ok(&h, "/v1/users/ann/feeds/in-app").await, v);
    let empty = ok(&h, &format!("/v1/users/ghost/feeds/{FEED}")).await;
    assert_eq!(
        (empty["entries"].clone(), feed_meta(&empty)),
        (json!([]), (0, 0, 0))
    );
    assert_eq!(
        ok(&h, "/v1/users/ann/feeds/in-app/settings").await,
        json!({"features": {"branding_required": false}})
    );

    // Compact mode and exclude.
    let c = ok(
        &h,
        &format!("/v1/users/ann/feeds/{FEED}?mode=compact&locale=fr"),
    )
    .await;
    let ce = &c["entries"][1];
    assert!(ce.get("activities").is_none() && ce.get("total_activities").is_none());
    assert_eq!(ce["data"], json!({"name": "x"}));
    assert_eq!(ce["actors"].as_array().unwrap().len(), 1);
    let x = ok(
        &h,
        &format!(
            "/v1/users/ann/feeds/{FEED}?exclude={}",
            enc("entries.archived_at, meta.unseen_count,entries.source.version_id")
        ),
    )
    .await;
    let xe = &x["entries"][0];
    assert!(
        xe.get("archived_at").is_none()
            && xe["source"].get("version_id").is_none()
            && xe["source"]["key"].is_string()
    );
    assert!(x["meta"].get("unseen_count").is_none() && x["meta"]["unread_count"].is_u64());

    // Paging with the cursor; `before` gives the items just newer.
    let base = format!("/v1/users/ann/feeds/{FEED}?page_size=2");
    assert_eq!(all_pages(&h, &base, "entries").await, ids);
    let newer = ok(&h, &format!("{base}&before={}", ids[2])).await;
    assert_eq!(item_ids(&newer, "entries"), ids[..2]);
    let newer = ok(
        &h,
        &format!("/v1/users/ann/feeds/{FEED}?page_size=1&before={}", ids[2]),
    )
    .await;
    assert_eq!(item_ids(&newer, "entries"), ids[1..2]);
    assert_eq!(newer["page_info"]["before"], json!(ids[1]));

    // Filters; the counts ignore source/tenant filters (documented) but follow status/archived.
    let q = |query: String| {
        let h = &h;
        async move { ok(h, &format!("/v1/users/ann/feeds/{FEED}?{query}")).await }
    };
    let dg = q("source=digest".into()).await;
    assert_eq!(
        (item_ids(&dg, "entries"), feed_meta(&dg)),
        (vec![ids[0].clone()], (4, 4, 4))
    );
    assert_eq!(item_ids(&q("tenant=t1".into()).await, "entries"), ids[..1]);
    assert_eq!(
        item_ids(&q("has_tenant=false".into()).await, "entries"),
        ids[1..]
    );
    assert_eq!(
        item_ids(
            &q("workflow_categories[]=welcome-cat".into()).await,
            "entries"
        )
        .len(),
        3
    );
    assert_eq!(
        item_ids(
            &q(format!("trigger_data={}", enc(r#"{"name":"x"}"#))).await,
            "entries"
        )
        .len(),
        3
    );
    h.post("/v1/messages/batch/read", json!({"message_ids": [ids[1]]}))
        .await;
    h.post(
        "/v1/messages/batch/seen",
        json!({"message_ids": [ids[1], ids[2]]}),
    )
    .await;
    let unread = q("status=unread".into()).await;
    assert_eq!(
        (item_ids(&unread, "entries").len(), feed_meta(&unread)),
        (3, (3, 3, 2))
    );
    let read = q("status=read".into()).await;
    assert_eq!(
        (item_ids(&read, "entries"), feed_meta(&read).0),
        (vec![ids[1].clone()], 1)
    );
    assert_eq!(feed_meta(&q("status=unseen".into()).await).0, 2);
    assert_eq!(feed_meta(&q("status=seen".into()).await).0, 2);
    assert_eq!(feed_meta(&q("status=all".into()).await).0, 4);
    h.put(&format!("/v1/messages/{}/archived", ids[3]), json!({}))
        .await;
    assert_eq!(item_ids(&q(String::new()).await, "entries"), ids[..3]);
    let only = q("archived=only".into()).await;
    assert_eq!(
        (item_ids(&only, "entries"), feed_meta(&only)),
        (vec![ids[3].clone()], (1, 1, 1))
    );
    assert!(is_iso(&only["entries"][0]["archived_at"]));
    let inc = q("archived=include".into()).await;
    assert_eq!(
        (item_ids(&inc, "entries"), feed_meta(&inc)),
        (ids.clone(), (4, 3, 2))
    );
    assert_eq!(
        feed_meta(&q("archived=include&status=read".into()).await).0,
        1
    );

    // Only in-app feed channels have feeds.
    for uri in [
        format!("/v1/users/ann/feeds/{HOOK}"),
        "/v1/users/ann/feeds/webhook/settings".to_owned(),
        "/v1/users/ann/feeds/nope".to_owned(),
    ] {
        refused_get(&h, &uri, StatusCode::NOT_FOUND, "resource_missing").await;
    }
}

#[tokio::test]
async fn channel_bulk_updates_recipients_feeds() {
    let h = Harness::new();
    let mut s = Seeder::new(&h);
    let u = users(&h, 2);
    let (a, b) = (u[0].id.clone(), u[1].id.clone());
    let p1 = RecipientRef::object("projects", "p1");
    s.run(&u[0], &trigger("welcome"), vec![in_app(), in_app()])
        .await;
    s.run(&u[0], &trigger("digest"), vec![in_app()]).await;
    s.run(&u[1], &trigger("welcome"), vec![in_app(), in_app()])
        .await;
    s.run(&p1, &trigger("welcome"), vec![in_app()]).await;

    let (st, op) = h
        .post(
            "/v1/channels/in-app/messages/bulk/read",
            json!({"user_ids": [a]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{op}");
    assert_eq!(op["__typename"], "BulkOperation");
    assert_eq!(
        (
            op["status"].clone(),
            op["success_count"].clone(),
            op["processed_rows"].clone()
        ),
        (json!("completed"), json!(3), json!(3))
    );
    assert_eq!(
        (op["error_count"].clone(), op["error_items"].clone()),
        (json!(0), json!([]))
    );
    for k in ["inserted_at", "updated_at", "started_at", "completed_at"] {
        assert!(is_iso(&op[k]), "{k}");
    }
    assert_eq!(
        ok(
            &h,
            &format!("/v1/bulk_operations/{}", op["id"].as_str().unwrap())
        )
        .await,
        op
    );
    assert_eq!(meta_of(&h, &a, "").await, (3, 0, 3));
    assert_eq!(meta_of(&h, &b, "").await, (2, 2, 2));

    // The feed client's "mark all seen" with its own filters: one workflow only.
    let (_, op) = h
        .post(
            &format!("/v1/channels/{FEED}/messages/bulk/seen"),
            json!({"user_ids": [a], "workflows": ["digest"], "archived": "exclude"}),
        )
        .await;
    assert_eq!(op["success_count"], 1);
    assert_eq!(meta_of(&h, &a, "").await, (3, 0, 2));
    // recipient_ids take objects; engagement_status narrows.
    h.put(
        &format!(
            "/v1/messages/{}/read",
            items(&h, &format!("/v1/users/{b}/messages")).await[0]
        ),
        json!({}),
    )
    .await;
    let (_, op) = h
        .post(
            "/v1/channels/in-app/messages/bulk/archive",
            json!({"recipient_ids": [b, {"id": "p1", "collection": "projects"}], "engagement_status": "unread"}),
        )
        .await;
    assert_eq!(op["success_count"], 2);
    assert_eq!(meta_of(&h, &b, "").await, (1, 0, 1));
    assert_eq!(meta_of(&h, &b, "archived=only").await, (1, 1, 1));
    let (_, op) = h
        .post(
            "/v1/channels/in-app/messages/bulk/unarchived",
            json!({"user_ids": [b], "newer_than": "2000-01-01T00:00:00Z", "has_tenant": false}),
        )
        .await;
    assert_eq!(op["success_count"], 2);
    assert_eq!(meta_of(&h, &b, "").await, (2, 1, 2));
    let (_, op) = h
        .post(
            "/v1/channels/in-app/messages/bulk/unread",
            json!({"user_ids": [a], "older_than": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(op["success_count"], 0);
    let (_, op) = h
        .post(
            "/v1/channels/in-app/messages/bulk/unseen",
            json!({"user_ids": [a], "trigger_data": "{}", "tenants": []}),
        )
        .await;
    assert_eq!(op["success_count"], 3);

    let uri = "/v1/channels/in-app/messages/bulk/read";
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    for bad in [
        json!({}),
        json!({"user_ids": []}),
        json!({"user_ids": "a"}),
        json!({"recipient_ids": [7]}),
        json!({"user_ids": [a], "archived": "sometimes"}),
        json!({"user_ids": [a], "engagement_status": "loved"}),
        json!({"user_ids": [a], "trigger_data": {"x": {"y": 1}}}),
        json!({"user_ids": [a], "newer_than": "soon"}),
        json!({"user_ids": [a], "has_tenant": "yes"}),
    ] {
        refused_json(&h, Method::POST, uri, bad, unprocessable, "invalid_params").await;
    }
    let good = json!({"user_ids": [a]});
    refused_json(
        &h,
        Method::POST,
        "/v1/channels/in-app/messages/bulk/delete",
        good.clone(),
        unprocessable,
        "invalid_params",
    )
    .await;
    refused_json(
        &h,
        Method::POST,
        "/v1/channels/webhook/messages/bulk/read",
        good.clone(),
        unprocessable,
        "invalid_params",
    )
    .await;
    refused_json(
        &h,
        Method::POST,
        "/v1/channels/nope/messages/bulk/read",
        good.clone(),
        StatusCode::NOT_FOUND,
        "resource_missing",
    )
    .await;
    let (st, v) = h
        .post("/v1/channels/in-app/messages/bulk/explode", good)
        .await;
    assert_eq!(
        (st, v),
        (
            StatusCode::NOT_FOUND,
            json!({"errors": {"detail": "404 Not Found"}})
        )
    );
}

#[tokio::test]
async fn workflow_recipient_runs_list_and_get() {
    let h = Harness::new();
    let mut s = Seeder::new(&h);
    let u = users(&h, 3);
    let p1 = RecipientRef::object("projects", "p1");
    let ok_step = RunStep {
        step_ref: "in_app_feed_1".into(),
        step_type: "channel".into(),
        status: "ok".into(),
        event: "message_created".into(),
        data: "{}".into(),
    };
    let bad_step = RunStep {
        step_ref: "email_1".into(),
        step_type: "channel".into(),
        status: "error".into(),
        event: "template_error".into(),
        data: r#"{"error":"boom"}"#.into(),
    };
    let mut w = trigger("welcome");
    w.steps = vec![ok_step.clone()];
    w.actor = Some(p1.clone());
    let mut d = trigger("digest");
    d.tenant = Some("t1");
    d.steps = vec![ok_step, bad_step];
    let mut paused = trigger("welcome");
    paused.status = RunStatus::Paused;
    let mut runs = vec![
        s.run(&u[0], &w, vec![in_app()]).await.0,
        s.run(&u[1], &d, vec![]).await.0,
        s.run(&u[2], &paused, vec![]).await.0,
        s.run(&p1, &w, vec![]).await.0,
    ];
    let created: Vec<u64> = runs
        .iter()
        .map(|r| herald_shard::ids::time_of_id(r).unwrap())
        .collect();
    runs.reverse();

    let v = ok(&h, "/v1/workflow_recipient_runs").await;
    assert_eq!(item_ids(&v, "items"), runs);
    let r = &v["items"][3];
    assert_eq!(
        (
            r["__typename"].clone(),
            r["workflow"].clone(),
            r["recipient"].clone(),
            r["actor"].clone(),
            r["status"].clone()
        ),
        (
            json!("WorkflowRecipientRun"),
            json!("welcome"),
            json!(u[0].id),
            json!({"id": "p1", "collection": "projects"}),
            json!("completed")
        )
    );
    assert_eq!(
        (
            r["trigger_source"].clone(),
            r["error_count"].clone(),
            r["tenant"].clone()
        ),
        (json!({"type": "api"}), json!(0), Value::Null)
    );
    assert!(
        r["workflow_run_id"].is_string() && is_iso(&r["inserted_at"]) && is_iso(&r["updated_at"])
    );
    assert!(r.get("events").is_none());
    assert_eq!(
        all_pages(&h, "/v1/workflow_recipient_runs?page_size=1", "items").await,
        runs
    );
    let back = ok(
        &h,
        &format!("/v1/workflow_recipient_runs?page_size=1&before={}", runs[2]),
    )
    .await;
    assert_eq!(item_ids(&back, "items"), runs[1..2]);

    let count = |q: String| {
        let h = &h;
        async move { items(h, &format!("/v1/workflow_recipient_runs?{q}")).await }
    };
    assert_eq!(count("workflow=welcome".into()).await.len(), 3);
    assert_eq!(count("status[]=paused".into()).await, vec![runs[1].clone()]);
    assert_eq!(
        count("status[]=paused&status[]=completed".into())
            .await
            .len(),
        4
    );
    assert_eq!(count("tenant=t1".into()).await, vec![runs[2].clone()]);
    assert_eq!(count("has_errors=true".into()).await, vec![runs[2].clone()]);
    assert_eq!(count("has_errors=false".into()).await.len(), 3);
    assert_eq!(
        count(format!("recipient={}", u[0].id)).await,
        vec![runs[3].clone()]
    );
    for q in [
        "recipient[id]=p1&recipient[collection]=projects",
        "recipient.id=p1&recipient.collection=projects",
    ] {
        assert_eq!(count(q.into()).await, vec![runs[0].clone()], "{q}");
    }
    assert_eq!(
        count(format!(
            "recipient={}",
            enc(r#"{"id":"p1","collection":"projects"}"#)
        ))
        .await,
        vec![runs[0].clone()]
    );
    let wr = v["items"][2]["workflow_run_id"].as_str().unwrap();
    assert_eq!(
        count(format!("workflow_run_id={wr}")).await,
        vec![runs[2].clone()]
    );
    let at = |ms: u64| enc(&iso(ms));
    assert_eq!(
        count(format!("starting_at={}", at(created[1]))).await,
        runs[..3]
    );
    assert_eq!(
        count(format!("ending_at={}", at(created[1]))).await,
        runs[2..]
    );
    assert_eq!(
        count(format!(
            "starting_at={}&ending_at={}",
            at(created[1]),
            at(created[2])
        ))
        .await,
        runs[1..3]
    );

    let (st, one) = h
        .get(&format!("/v1/workflow_recipient_runs/{}", runs[2]))
        .await;
    assert_eq!(st, StatusCode::OK, "{one}");
    assert_eq!(
        (one["tenant"].clone(), one["error_count"].clone()),
        (json!("t1"), json!(1))
    );
    let events = one["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            events[1]["event"].clone(),
            events[1]["status"].clone(),
            events[1]["step_ref"].clone(),
            events[1]["step_type"].clone(),
            events[1]["data"].clone()
        ),
        (
            json!("template_error"),
            json!("error"),
            json!("email_1"),
            json!("channel"),
            json!({"error": "boom"})
        )
    );
    assert!(
        events[0]["id"].is_string()
            && is_iso(&events[0]["inserted_at"])
            && events[0].get("inserted_ms").is_none()
    );

    let missing = make_id(1, 1, [1; 10]);
    for uri in [
        format!("/v1/workflow_recipient_runs/{missing}"),
        "/v1/workflow_recipient_runs/nope".into(),
    ] {
        refused_get(&h, &uri, StatusCode::NOT_FOUND, "resource_missing").await;
    }
    for q in [
        "status[]=bogus",
        "has_errors=maybe",
        "starting_at=soon",
        "recipient[id]=p1&recipient[collection]=%24users2&recipient[x][y]=1",
        "after=zzz",
        "page_size=0",
    ] {
        refused_get(
            &h,
            &format!("/v1/workflow_recipient_runs?{q}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
        )
        .await;
    }
}

#[tokio::test]
async fn bad_message_requests_are_refused_and_change_nothing() {
    let h = Harness::new();
    let mut s = Seeder::new(&h);
    let (_, _, ids) = s
        .run(
            &RecipientRef::user("ann"),
            &trigger("welcome"),
            vec![in_app()],
        )
        .await;
    let id = &ids[0];
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    for q in [
        "page_size=0",
        "page_size=51",
        "page_size=x",
        "status[]=lost",
        "engagement_status[]=loved",
        "trigger_data=%7B%22a%22%3A%7B%22b%22%3A1%7D%7D",
        "trigger_data=nope",
        "inserted_at[gte]=yesterday",
        "inserted_at[near]=2024-01-01T00:00:00Z",
        "inserted_at=2024-01-01T00:00:00Z",
        "has_tenant=maybe",
        "after=not-a-cursor",
    ] {
        for base in ["/v1/messages", "/v1/users/ann/messages"] {
            refused_get(&h, &format!("{base}?{q}"), unprocessable, "invalid_params").await;
        }
    }
    for q in [
        "status=lost",
        "archived=never",
        "mode=tiny",
        "exclude=a.b.c.d",
        "page_size=99",
        "before=zz",
    ] {
        let uri = format!("/v1/users/ann/feeds/{FEED}?{q}");
        refused_get(&h, &uri, unprocessable, "invalid_params").await;
    }
    let unknown = make_id(7, 7, [7; 10]);
    for m in [unknown.as_str(), "nope", "1jNaXzB2RZX3LY8wVQnfCKyPnv7"] {
        for suffix in ["", "/content", "/events", "/delivery_logs", "/activities"] {
            refused_get(
                &h,
                &format!("/v1/messages/{m}{suffix}"),
                StatusCode::NOT_FOUND,
                "resource_missing",
            )
            .await;
        }
        for method in [Method::PUT, Method::DELETE] {
            h.refused(
                method,
                &format!("/v1/messages/{m}/read"),
                Body::empty(),
                StatusCode::NOT_FOUND,
                "resource_missing",
            )
            .await;
        }
    }
    for meta in [
        json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}),
        json!({"a": {"b": 1}}),
        json!("x"),
    ] {
        let b = json!({"metadata": meta});
        refused_json(
            &h,
            Method::PUT,
            &format!("/v1/messages/{id}/interacted"),
            b.clone(),
            unprocessable,
            "invalid_params",
        )
        .await;
        let mut b = b;
        b["message_ids"] = json!([id]);
        refused_json(
            &h,
            Method::POST,
            "/v1/messages/batch/interacted",
            b,
            unprocessable,
            "invalid_params",
        )
        .await;
    }
    for b in [
        json!({}),
        json!({"message_ids": []}),
        json!({"message_ids": [1]}),
        json!({"message_ids": id}),
    ] {
        refused_json(
            &h,
            Method::POST,
            "/v1/messages/batch/read",
            b,
            unprocessable,
            "invalid_params",
        )
        .await;
    }
    h.refused(
        Method::POST,
        "/v1/messages/batch/read",
        Body::from("{"),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    refused_get(
        &h,
        "/v1/messages/batch/content",
        unprocessable,
        "invalid_params",
    )
    .await;
    // Unknown actions are unrouted paths.
    for (m, uri) in [
        (Method::PUT, format!("/v1/messages/{id}/unread")),
        (Method::PUT, format!("/v1/messages/{id}/bogus")),
        (Method::DELETE, format!("/v1/messages/{id}/interacted")),
        (Method::POST, "/v1/messages/batch/link_clicked".to_owned()),
    ] {
        let (st, v) = h.call(m, &uri, Some(json!({"message_ids": [id]}))).await;
        assert_eq!(
            (st, v),
            (
                StatusCode::NOT_FOUND,
                json!({"errors": {"detail": "404 Not Found"}})
            ),
            "{uri}"
        );
    }
    let (st, v) = h.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(
        (st, v["engagement_statuses"].clone()),
        (StatusCode::OK, json!([]))
    );
    assert_knock_error(
        &h.get("/v1/messages/nope").await.1,
        StatusCode::NOT_FOUND,
        "resource_missing",
    );
}
