//! Runs state machine: idempotent recording, exact feed counters, outbox lifecycle, cancel, and
//! idempotency claims.

use super::*;
use crate::ids::{make_id, run_id};
use crate::{apply as apply_cmd, query as run_q, MemStore, ShardCommand, ShardQuery, ShardReply};

fn msg(id: &str, channel_type: &str, status: &str) -> NewMessage {
    NewMessage {
        id: id.into(),
        channel_id: "chan-1".into(),
        channel_key: "in-app".into(),
        channel_type: channel_type.into(),
        step_ref: "s1".into(),
        branch_path: vec![],
        status: status.into(),
        content: r#"{"blocks":[]}"#.into(),
        recipient_snapshot: r#"{"user_id":"u1"}"#.into(),
    }
}

fn run(user: &str, wf_run: &str, messages: Vec<NewMessage>, status: RunStatus) -> NewRun {
    NewRun {
        run_id: run_id(1, 1, wf_run, user),
        workflow_run_id: wf_run.into(),
        workflow: "wf".into(),
        workflow_version: 1,
        categories: vec!["cat".into()],
        recipient: RecipientRef::user(user),
        actor: None,
        tenant: None,
        cancellation_key: Some("ck".into()),
        data: r#"{"a":1}"#.into(),
        identify: None,
        status,
        steps: vec![],
        messages,
        resume_at_ms: (status == RunStatus::Paused).then_some(50),
        resume_state: None,
        once_scope: None,
    }
}

fn cmd(store: &mut MemStore, now: u64, c: RunsCommand) -> RunsReply {
    match apply_cmd(store, now, &ShardCommand::Runs(c)) {
        ShardReply::Runs(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

/// Record, at `now`, a completed run of workflow run `wr` for `u1` with one message.
fn record_message(s: &mut MemStore, now: u64, id: &str, channel_type: &str, status: &str) {
    let r = run(
        "u1",
        "wr",
        vec![msg(id, channel_type, status)],
        RunStatus::Completed,
    );
    cmd(s, now, RunsCommand::Record(vec![r]));
}

fn q(store: &MemStore, rq: RunsQuery) -> RunsReply {
    match run_q(store, &ShardQuery::Runs(rq)) {
        ShardReply::Runs(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn feed(store: &MemStore, archived: ArchivedFilter) -> (usize, FeedCounts) {
    match q(
        store,
        RunsQuery::Feed {
            recipient: RecipientRef::user("u1"),
            channel_id: "chan-1".into(),
            filter: MessageFilter {
                archived,
                ..Default::default()
            },
            page: Page {
                limit: 50,
                ..Default::default()
            },
        },
    ) {
        RunsReply::Feed { items, counts } => (items.len(), counts),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn recording_twice_creates_nothing_new() {
    let mut s = MemStore::new();
    let m1 = make_id(10, 1, [1; 10]);
    let r = run(
        "u1",
        "wr",
        vec![msg(&m1, IN_APP_FEED, DELIVERED)],
        RunStatus::Completed,
    );
    assert_eq!(
        cmd(&mut s, 10, RunsCommand::Record(vec![r.clone()])),
        RunsReply::Recorded(vec![true])
    );
    let before = s.clone();
    assert_eq!(
        cmd(&mut s, 11, RunsCommand::Record(vec![r])),
        RunsReply::Recorded(vec![false])
    );
    assert_eq!(s, before);
    assert_eq!(feed(&s, ArchivedFilter::Exclude).1.total, 1);
}

#[test]
fn feed_counters_follow_engagement_exactly() {
    let mut s = MemStore::new();
    let ids: Vec<String> = (0..3).map(|i| make_id(10 + i, 1, [i as u8; 10])).collect();
    let msgs = ids
        .iter()
        .map(|id| msg(id, IN_APP_FEED, DELIVERED))
        .collect();
    cmd(
        &mut s,
        10,
        RunsCommand::Record(vec![run("u1", "wr", msgs, RunStatus::Completed)]),
    );
    let c = feed(&s, ArchivedFilter::Exclude).1;
    assert_eq!((c.total, c.unread, c.unseen), (3, 3, 3));
    let set = |s: &mut MemStore, ids: &[String], change| {
        cmd(
            s,
            20,
            RunsCommand::SetEngagement {
                message_ids: ids.to_vec(),
                change,
            },
        )
    };
    set(&mut s, &ids[..2], Engagement::Seen);
    set(&mut s, &ids[..1], Engagement::Read);
    set(&mut s, &ids[..1], Engagement::Read); // twice: no double count
    set(&mut s, &ids[2..], Engagement::Archived);
    let (n, c) = feed(&s, ArchivedFilter::Exclude);
    assert_eq!((n, c.total, c.unread, c.unseen), (2, 2, 1, 0));
    assert_eq!(
        (c.archived_total, c.archived_unread, c.archived_unseen),
        (1, 1, 1)
    );
    assert_eq!(feed(&s, ArchivedFilter::Only).0, 1);
    let bulk = cmd(
        &mut s,
        30,
        RunsCommand::BulkEngagement {
            channel_id: "chan-1".into(),
            filter: MessageFilter {
                recipient: Some(RecipientRef::user("u1")),
                ..Default::default()
            },
            change: Engagement::Read,
        },
    );
    assert_eq!(bulk, RunsReply::Count(3));
    let c = feed(&s, ArchivedFilter::Exclude).1;
    assert_eq!((c.unread, c.archived_unread), (0, 0));
}

#[test]
fn outbox_retries_then_finishes_once() {
    let mut s = MemStore::new();
    let m = make_id(10, 1, [9; 10]);
    record_message(&mut s, 10, &m, "http", QUEUED);
    assert_eq!(due_rows(&s, Queue::Outbox, 0, 10, 10).unwrap().len(), 1);
    let log = r#"{"request":{"method":"POST"},"response":{"status":500}}"#.to_string();
    let deliver = |s: &mut MemStore, now, outcome| {
        cmd(
            s,
            now,
            RunsCommand::Delivery {
                message_id: m.clone(),
                outcome,
                logs: vec![log.clone()],
            },
        )
    };
    let retry = DeliveryOutcome::Retry {
        retry_at_ms: 100,
        reason: "500".into(),
    };
    assert_eq!(deliver(&mut s, 11, retry), RunsReply::Count(1));
    assert!(due_rows(&s, Queue::Outbox, 0, 99, 10).unwrap().is_empty());
    assert_eq!(due_rows(&s, Queue::Outbox, 0, 100, 10).unwrap()[0].id, m);
    let delivered = DeliveryOutcome::Delivered;
    assert_eq!(deliver(&mut s, 100, delivered), RunsReply::Count(1));
    // A duplicate result after failover changes nothing.
    assert_eq!(
        deliver(&mut s, 101, DeliveryOutcome::Sent),
        RunsReply::Count(0)
    );
    let stored = load_message(&s, &m).unwrap().unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.attempts, stored.logs),
        (DELIVERED, 2, 2)
    );
    assert!(due_rows(&s, Queue::Outbox, 0, u64::MAX - 1, 10)
        .unwrap()
        .is_empty());
    let logs: Vec<serde_json::Value> = load_rows(&s, &m)
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    let summary: Vec<_> = logs
        .iter()
        .map(|l| {
            (
                l["id"].clone(),
                l["inserted_ms"].clone(),
                l["attempt"].clone(),
                l["request"]["method"].clone(),
            )
        })
        .collect();
    use serde_json::json;
    assert_eq!(
        summary,
        vec![
            (json!(format!("{m}-0")), json!(11), json!(1), json!("POST")),
            (json!(format!("{m}-1")), json!(100), json!(2), json!("POST")),
        ]
    );
}

#[test]
fn delivery_log_rows_put_their_fields_in_front_of_the_log() {
    let row = |log: &str| apply::log_row(log, "m-0", 7, 2);
    assert_eq!(
        row(r#" {"service_name":"webhook","response":null} "#),
        r#"{"id":"m-0","inserted_ms":7,"attempt":2,"service_name":"webhook","response":null}"#
    );
    assert_eq!(row("{ }"), r#"{"id":"m-0","inserted_ms":7,"attempt":2}"#);
    for not_an_object in ["[1]", "\"x\"", "{", "{} x", ""] {
        assert_eq!(row(not_an_object), "null", "{not_an_object:?}");
    }
}

#[test]
fn a_queued_message_is_handed_over_as_its_row_would_be_sent() {
    let mut s = MemStore::new();
    let m = make_id(10, 1, [9; 10]);
    let r = run(
        "u1",
        "wr",
        vec![
            msg(&m, "http", QUEUED),
            msg(&make_id(10, 1, [8; 10]), "in_app_feed", "delivered"),
        ],
        RunStatus::Completed,
    );
    let record = RunsCommand::Record(vec![r]);
    let handed: Vec<Sendable> = record.queued_now(10).collect();
    cmd(&mut s, 10, record);
    let stored = load_message(&s, &m).unwrap().unwrap();
    assert_eq!(handed, vec![stored.into_sendable().unwrap()]);
    assert!(in_outbox(&s, 10, &m).unwrap());
    assert!(!in_outbox(&s, 11, &m).unwrap(), "another due time");
    cmd(
        &mut s,
        12,
        RunsCommand::Delivery {
            message_id: m.clone(),
            outcome: DeliveryOutcome::Delivered,
            logs: vec![],
        },
    );
    assert!(
        !in_outbox(&s, 10, &m).unwrap(),
        "a sent message waits no more"
    );
    assert_eq!(load_message(&s, &m).unwrap().unwrap().into_sendable(), None);
}

fn load_rows(s: &MemStore, m: &str) -> Vec<String> {
    match q(s, RunsQuery::DeliveryLogs(m.into())) {
        RunsReply::Rows(r) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn cancel_stops_paused_runs_only() {
    let mut s = MemStore::new();
    cmd(
        &mut s,
        10,
        RunsCommand::Record(vec![
            run("u1", "a", vec![], RunStatus::Paused),
            run("u2", "b", vec![], RunStatus::Completed),
        ]),
    );
    assert_eq!(due_rows(&s, Queue::Timers, 0, 50, 10).unwrap().len(), 1);
    let n = cmd(
        &mut s,
        20,
        RunsCommand::Cancel {
            workflow: "wf".into(),
            cancellation_key: "ck".into(),
            recipients: vec![],
        },
    );
    assert_eq!(n, RunsReply::Count(1));
    assert!(due_rows(&s, Queue::Timers, 0, 50, 10).unwrap().is_empty());
    let resumed = cmd(
        &mut s,
        60,
        RunsCommand::Resume {
            run: run("u1", "a", vec![], RunStatus::Completed),
        },
    );
    assert_eq!(
        resumed,
        RunsReply::Recorded(vec![false]),
        "a cancelled run does not resume"
    );
}

#[test]
fn idempotency_claims_replay_and_refuse_other_bodies() {
    let mut s = MemStore::new();
    let claim = |hash: &str, id: &str| RunsCommand::ClaimIdempotency {
        key: "k".into(),
        body_hash: hash.into(),
        workflow_run_id: id.into(),
        expires_ms: 1000,
    };
    assert_eq!(
        cmd(&mut s, 1, claim("h", "r1")),
        RunsReply::Idempotency {
            workflow_run_id: "r1".into(),
            replayed: false
        }
    );
    assert_eq!(
        cmd(&mut s, 2, claim("h", "r2")),
        RunsReply::Idempotency {
            workflow_run_id: "r1".into(),
            replayed: true
        }
    );
    assert!(matches!(
        apply_cmd(&mut s, 3, &ShardCommand::Runs(claim("other", "r3"))),
        ShardReply::Invalid(_)
    ));
    assert_eq!(
        cmd(&mut s, 1001, claim("other", "r4")),
        RunsReply::Idempotency {
            workflow_run_id: "r4".into(),
            replayed: false
        }
    );
}

#[test]
fn message_lists_page_newest_first() {
    let mut s = MemStore::new();
    let ids: Vec<String> = (0..5).map(|i| make_id(10 + i, 1, [i as u8; 10])).collect();
    let msgs = ids.iter().map(|id| msg(id, "http", QUEUED)).collect();
    cmd(
        &mut s,
        10,
        RunsCommand::Record(vec![run("u1", "wr", msgs, RunStatus::Completed)]),
    );
    let page = |older: Option<String>| match q(
        &s,
        RunsQuery::Messages {
            filter: MessageFilter::default(),
            page: Page {
                older_than: older,
                newer_than: None,
                limit: 2,
            },
        },
    ) {
        RunsReply::Messages(m) => m
            .iter()
            .map(|j| serde_json::from_str::<StoredMessage>(j).unwrap().id)
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(page(None), vec![ids[4].clone(), ids[3].clone()]);
    assert_eq!(
        page(Some(ids[3].clone())),
        vec![ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(page(Some(ids[1].clone())), vec![ids[0].clone()]);
}

#[test]
fn once_scope_records_one_run_per_recipient_and_scope() {
    let mut s = MemStore::new();
    let once = |wf_run: &str, scope: &str| NewRun {
        once_scope: Some(scope.into()),
        ..run("u1", wf_run, vec![], RunStatus::Completed)
    };
    let recorded = cmd(
        &mut s,
        1,
        RunsCommand::Record(vec![once("a", ""), once("b", "")]),
    );
    assert_eq!(
        recorded,
        RunsReply::Recorded(vec![true, false]),
        "same batch, same scope"
    );
    let other_tenant = cmd(
        &mut s,
        2,
        RunsCommand::Record(vec![once("c", "t1"), once("d", "t1")]),
    );
    assert_eq!(other_tenant, RunsReply::Recorded(vec![true, false]));
    let every = cmd(
        &mut s,
        3,
        RunsCommand::Record(vec![run("u1", "e", vec![], RunStatus::Completed)]),
    );
    assert_eq!(every, RunsReply::Recorded(vec![true]));
}

#[test]
fn a_message_lists_its_creation_event_from_its_row_then_later_events() {
    let mut s = MemStore::new();
    let id = make_id(10, 1, [7; 10]);
    record_message(&mut s, 10, &id, IN_APP_FEED, SENT);
    // The creation event has no row of its own.
    let event_rows = s
        .iter()
        .filter(|(k, _)| k.first() == Some(&crate::keys::TAG_MESSAGE_EVENT))
        .count();
    assert_eq!(event_rows, 0);
    cmd(
        &mut s,
        20,
        RunsCommand::SetEngagement {
            message_ids: vec![id.clone()],
            change: Engagement::Read,
        },
    );
    let RunsReply::Rows(rows) = q(&s, RunsQuery::Events(id.clone())) else {
        panic!("rows");
    };
    let events: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::from_str(r).expect("event json"))
        .collect();
    assert_eq!(
        events,
        vec![
            serde_json::json!({"id": format!("{id}-0"), "type": "message.sent", "inserted_ms": 10,
                "recipient": RecipientRef::user("u1"), "data": null}),
            serde_json::json!({"id": format!("{id}-1"), "type": "message.read", "inserted_ms": 20,
                "recipient": RecipientRef::user("u1"), "data": null}),
        ]
    );
}
