//! Deterministic apply of [`RunsCommand`]: time only from the leader-stamped `now_ms`, every id
//! minted by the leader before proposing, every command checked before its first write.

use serde_json::{json, Map, Value};

use super::counts;
use super::model::*;
use super::query::{load_message, load_run, matches, scan_keys, to_json};
use super::{RunsCommand, RunsReply};
use crate::apply::{encode_json, key_or_corrupt};
use crate::error::{Error, Result};
use crate::keys::{self, TAG_CANCEL_INDEX, TAG_FEED, TAG_FEED_COUNTS, TAG_IDEMPOTENCY};
use crate::model::RecipientRef;
use crate::store::Store;
use crate::ShardReply;

/// Apply one runs command. Domain refusals are `ShardReply::Invalid`; store failures `Err`.
pub fn apply(store: &mut dyn Store, now_ms: u64, cmd: &RunsCommand) -> Result<ShardReply> {
    let reply = match cmd {
        RunsCommand::Record(runs) => {
            let parsed = match runs.iter().map(check_run).collect::<Check<Vec<_>>>() {
                Ok(p) => p,
                Err(e) => return Ok(ShardReply::Invalid(e)),
            };
            let mut created = Vec::with_capacity(runs.len());
            for (run, docs) in runs.iter().zip(parsed) {
                created.push(record(store, now_ms, run, docs, false)?);
            }
            RunsReply::Recorded(created)
        }
        RunsCommand::Resume { run } => {
            let docs = match check_run(run) {
                Ok(d) => d,
                Err(e) => return Ok(ShardReply::Invalid(e)),
            };
            RunsReply::Recorded(vec![record(store, now_ms, run, docs, true)?])
        }
        RunsCommand::ClaimIdempotency {
            key,
            body_hash,
            workflow_run_id,
            expires_ms,
        } => {
            let k = key_or_corrupt(keys::single(TAG_IDEMPOTENCY, key))?;
            if let Some(raw) = store.get(&k)? {
                let rec: IdempotencyRecord = decode(&raw, "idempotency record")?;
                if rec.expires_ms > now_ms {
                    if rec.body_hash != *body_hash {
                        return Ok(ShardReply::Invalid(
                            "Idempotency-Key was already used with a different request body".into(),
                        ));
                    }
                    return Ok(ShardReply::Runs(RunsReply::Idempotency {
                        workflow_run_id: rec.workflow_run_id,
                        replayed: true,
                    }));
                }
            }
            let rec = IdempotencyRecord {
                body_hash: body_hash.clone(),
                workflow_run_id: workflow_run_id.clone(),
                expires_ms: *expires_ms,
            };
            store.put(&k, &encode_json(&rec));
            RunsReply::Idempotency {
                workflow_run_id: workflow_run_id.clone(),
                replayed: false,
            }
        }
        RunsCommand::Cancel {
            workflow,
            cancellation_key,
            recipients,
        } => RunsReply::Count(cancel(
            store,
            now_ms,
            workflow,
            cancellation_key,
            recipients,
        )?),
        RunsCommand::Delivery {
            message_id,
            outcome,
            logs,
        } => RunsReply::Count(u64::from(delivery(
            store, now_ms, message_id, outcome, logs,
        )?)),
        RunsCommand::SetEngagement {
            message_ids,
            change,
        } => {
            let change = match check_engagement(change) {
                Ok(c) => c,
                Err(e) => return Ok(ShardReply::Invalid(e)),
            };
            let mut out = Vec::new();
            for id in message_ids {
                if let Some(m) = engage(store, now_ms, id, &change)? {
                    out.push(to_json(&m));
                }
            }
            RunsReply::Messages(out)
        }
        RunsCommand::BulkEngagement {
            channel_id,
            filter,
            change,
        } => {
            let change = match check_engagement(change) {
                Ok(c) => c,
                Err(e) => return Ok(ShardReply::Invalid(e)),
            };
            let Some(r) = &filter.recipient else {
                return Ok(ShardReply::Invalid("a recipient is required".into()));
            };
            let prefix = key_or_corrupt(keys::segments(
                TAG_FEED,
                &[&r.collection, &r.id, channel_id],
            ))?;
            let mut n = 0;
            for key in scan_keys(store, &prefix, None, None, usize::MAX)? {
                let Some(id) = keys::last_segment(&key, 3) else {
                    continue;
                };
                let Some(m) = load_message(store, &id)? else {
                    continue;
                };
                if matches(&m, filter) && engage(store, now_ms, &id, &change)?.is_some() {
                    n += 1;
                }
            }
            RunsReply::Count(n)
        }
    };
    Ok(ShardReply::Runs(reply))
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// A validation outcome: the message of an `Invalid` reply on failure.
type Check<T> = std::result::Result<T, String>;

fn parse_json(what: &str, s: &str) -> Check<Value> {
    serde_json::from_str(s).map_err(|e| format!("{what} is not valid JSON: {e}"))
}

/// Check that `s` is JSON and keep it as text.
fn check_raw(what: &str, s: &str) -> Check<RawJson> {
    raw_json(s.to_owned()).map_err(|e| format!("{what} is not valid JSON: {e}"))
}

/// A run's JSON documents, parsed once by [`check_run`] and written by [`record`].
struct RunDocs {
    data: Value,
    resume_state: Option<Value>,
    /// One per step, in order.
    step_data: Vec<Value>,
    /// `(content, recipient snapshot)` per message, in order.
    messages: Vec<(RawJson, RawJson)>,
}

/// Check everything `record` needs before any write, parsing each document once.
fn check_run(run: &NewRun) -> Check<RunDocs> {
    run.recipient.validate()?;
    for id in std::iter::once(&run.run_id).chain(run.messages.iter().map(|m| &m.id)) {
        if crate::ids::slot_of_id(id).is_none() {
            return Err(format!("`{id}` is not a Herald id"));
        }
    }
    if let Some(u) = &run.identify {
        u.recipient.validate()?;
        parse_json("identify properties", &u.properties)?;
    }
    Ok(RunDocs {
        data: parse_json("run data", &run.data)?,
        resume_state: run
            .resume_state
            .as_deref()
            .map(|s| parse_json("resume state", s))
            .transpose()?,
        step_data: run
            .steps
            .iter()
            .map(|step| parse_json("step data", &step.data))
            .collect::<Check<_>>()?,
        messages: run
            .messages
            .iter()
            .map(|m| {
                Ok((
                    check_raw("message content", &m.content)?,
                    check_raw("recipient snapshot", &m.recipient_snapshot)?,
                ))
            })
            .collect::<Check<_>>()?,
    })
}

fn check_engagement(change: &Engagement) -> Check<Engagement> {
    if let Engagement::Interacted { metadata } = change {
        if !metadata.is_empty() && !parse_json("metadata", metadata)?.is_object() {
            return Err("metadata must be a JSON object".into());
        }
    }
    Ok(change.clone())
}

/// Record a run (or, with `resume`, replace a paused run by its continuation). Returns whether it
/// wrote anything.
fn record(
    store: &mut dyn Store,
    now_ms: u64,
    run: &NewRun,
    docs: RunDocs,
    resume: bool,
) -> Result<bool> {
    let run_key = key_or_corrupt(keys::single(keys::TAG_RUN, &run.run_id))?;
    let previous = load_run(store, &run.run_id)?;
    let mut events: Vec<Value> = Vec::new();
    let mut message_ids: Vec<String> = Vec::new();
    let mut error_count = 0;
    let inserted_ms;
    match (previous, resume) {
        (Some(_), false) => return Ok(false),
        (None, true) => return Ok(false),
        (Some(prev), true) => {
            if prev.status != RunStatus::Paused.as_str() {
                return Ok(false);
            }
            unindex_paused(store, &prev)?;
            events = prev.events;
            message_ids = prev.message_ids;
            error_count = prev.error_count;
            inserted_ms = prev.inserted_ms;
        }
        (None, false) => {
            if let Some(scope) = &run.once_scope {
                let r = &run.recipient;
                let marker = key_or_corrupt(keys::segments(
                    keys::TAG_ONCE,
                    &[&run.workflow, &r.collection, &r.id, scope],
                ))?;
                if store.get(&marker)?.is_some() {
                    return Ok(false);
                }
                store.put(&marker, &[]);
            }
            if let Some(u) = &run.identify {
                if let Err(e) = crate::apply::identify(store, now_ms, u)? {
                    // Checked in `check_run`; a refusal here means the layout check failed.
                    return Err(Error::Corrupt(format!("inline identify: {e}")));
                }
            }
            inserted_ms = now_ms;
        }
    }
    let data = docs.data;
    for (step, step_data) in run.steps.iter().zip(docs.step_data) {
        if step.status == "error" {
            error_count += 1;
        }
        events.push(json!({
            "id": format!("{}-{}", run.run_id, events.len()),
            "event": step.event,
            "status": if step.status == "error" { "error" } else { "ok" },
            "step_ref": step.step_ref,
            "step_type": step.step_type,
            "data": step_data,
            "inserted_ms": now_ms,
        }));
    }
    // Every message keeps the trigger's data as the text it came in (checked in `check_run`).
    let message_data =
        raw_json(run.data.clone()).map_err(|e| Error::Corrupt(format!("run data: {e}")))?;
    for (m, (content, snapshot)) in run.messages.iter().zip(docs.messages) {
        create_message(store, now_ms, run, &message_data, m, content, snapshot)?;
        message_ids.push(m.id.clone());
    }
    let stored = StoredRun {
        id: run.run_id.clone(),
        workflow_run_id: run.workflow_run_id.clone(),
        workflow: run.workflow.clone(),
        workflow_version: run.workflow_version,
        recipient: run.recipient.clone(),
        actor: run.actor.clone(),
        tenant: run.tenant.clone(),
        cancellation_key: run.cancellation_key.clone(),
        status: run.status.as_str().to_owned(),
        data,
        error_count,
        events,
        message_ids,
        resume_at_ms: run.resume_at_ms,
        resume_state: docs.resume_state,
        inserted_ms,
        updated_ms: now_ms,
    };
    store.put(&run_key, &encode_json(&stored));
    if run.status == RunStatus::Paused {
        if let Some(at) = run.resume_at_ms {
            store.put(
                &key_or_corrupt(keys::due(keys::TAG_TIMER, at, &run.run_id))?,
                &[],
            );
        }
        if let Some(ck) = &run.cancellation_key {
            let k = keys::segments(TAG_CANCEL_INDEX, &[&run.workflow, ck, &run.run_id]);
            store.put(&key_or_corrupt(k)?, &[]);
        }
    }
    Ok(true)
}

/// Drop the timer and cancel-index rows of a paused run.
fn unindex_paused(store: &mut dyn Store, run: &StoredRun) -> Result<()> {
    if let Some(at) = run.resume_at_ms {
        store.delete(&key_or_corrupt(keys::due(keys::TAG_TIMER, at, &run.id))?);
    }
    if let Some(ck) = &run.cancellation_key {
        let k = keys::segments(TAG_CANCEL_INDEX, &[&run.workflow, ck, &run.id]);
        store.delete(&key_or_corrupt(k)?);
    }
    Ok(())
}

fn create_message(
    store: &mut dyn Store,
    now_ms: u64,
    run: &NewRun,
    data: &RawJson,
    m: &NewMessage,
    content: RawJson,
    recipient_snapshot: RawJson,
) -> Result<()> {
    let r = &run.recipient;
    let queued = m.status == QUEUED;
    let msg = StoredMessage {
        id: m.id.clone(),
        channel_id: m.channel_id.clone(),
        channel_key: m.channel_key.clone(),
        channel_type: m.channel_type.clone(),
        recipient: r.clone(),
        actors: run.actor.iter().cloned().collect(),
        tenant: run.tenant.clone(),
        workflow: run.workflow.clone(),
        workflow_version: run.workflow_version,
        categories: run.categories.clone(),
        step_ref: m.step_ref.clone(),
        branch_path: m.branch_path.clone(),
        workflow_run_id: run.workflow_run_id.clone(),
        run_id: run.run_id.clone(),
        status: m.status.clone(),
        seen_ms: None,
        read_ms: None,
        interacted_ms: None,
        link_clicked_ms: None,
        archived_ms: None,
        inserted_ms: now_ms,
        updated_ms: now_ms,
        data: data.clone(),
        content,
        metadata: None,
        recipient_snapshot,
        attempts: 0,
        outbox_due_ms: queued.then_some(now_ms),
        logs: 0,
        // Event 0 is this row (`created_event`); later ones get rows from 1.
        events: 1,
        created_event: Some(format!("message.{}", m.status)),
    };
    save_message(store, &msg)?;
    let idx = keys::segments(keys::TAG_RECIPIENT_MSG, &[&r.collection, &r.id, &m.id]);
    store.put(&key_or_corrupt(idx)?, &[]);
    if queued {
        store.put(
            &key_or_corrupt(keys::due(keys::TAG_OUTBOX, now_ms, &m.id))?,
            &[],
        );
    }
    if msg.is_in_app() {
        let feed = keys::segments(TAG_FEED, &[&r.collection, &r.id, &m.channel_id, &m.id]);
        store.put(&key_or_corrupt(feed)?, &[]);
        adjust_counts(store, &msg, None)?;
    }
    Ok(())
}

fn save_message(store: &mut dyn Store, m: &StoredMessage) -> Result<()> {
    store.put(
        &key_or_corrupt(keys::single(keys::TAG_MESSAGE, &m.id))?,
        &encode_json(m),
    );
    Ok(())
}

fn add_event(
    store: &mut dyn Store,
    now_ms: u64,
    m: &mut StoredMessage,
    kind: &str,
    data: Option<Value>,
) -> Result<()> {
    let event = m.event_json(m.events, kind, now_ms, data);
    let key = keys::sequenced(keys::TAG_MESSAGE_EVENT, &m.id, m.events);
    store.put(&key_or_corrupt(key)?, &encode_json(&event));
    m.events += 1;
    Ok(())
}

/// Record an attempt's result. Whether it was recorded: not for a missing message, nor for one
/// no longer waiting (a duplicate result after failover), which changes nothing.
fn delivery(
    store: &mut dyn Store,
    now_ms: u64,
    id: &str,
    outcome: &DeliveryOutcome,
    logs: &[String],
) -> Result<bool> {
    let Some(mut m) = load_message(store, id)? else {
        return Ok(false);
    };
    let Some(due) = m.outbox_due_ms.take() else {
        return Ok(false);
    };
    store.delete(&key_or_corrupt(keys::due(keys::TAG_OUTBOX, due, id))?);
    m.attempts += 1;
    for log in logs {
        let row = log_row(log, &format!("{}-{}", m.id, m.logs), now_ms, m.attempts);
        let key = keys::sequenced(keys::TAG_DELIVERY_LOG, &m.id, m.logs);
        store.put(&key_or_corrupt(key)?, row.as_bytes());
        m.logs += 1;
    }
    let (status, reason) = match outcome {
        DeliveryOutcome::Sent => (SENT, None),
        DeliveryOutcome::Delivered => (DELIVERED, None),
        DeliveryOutcome::Retry {
            retry_at_ms,
            reason,
        } => {
            store.put(
                &key_or_corrupt(keys::due(keys::TAG_OUTBOX, *retry_at_ms, id))?,
                &[],
            );
            m.outbox_due_ms = Some(*retry_at_ms);
            (DELIVERY_ATTEMPTED, Some(reason))
        }
        DeliveryOutcome::Undelivered { reason } => (UNDELIVERED, Some(reason)),
    };
    m.status = status.to_owned();
    m.updated_ms = now_ms;
    let data = reason.map(|r| json!({ "reason": r, "attempt": m.attempts }));
    add_event(store, now_ms, &mut m, &format!("message.{status}"), data)?;
    save_message(store, &m)?;
    Ok(true)
}

/// A delivery log row: the dispatcher's log (a JSON object) with the row's `id`, `inserted_ms`
/// and `attempt` in front. Spliced as text: a log holds the request and response bodies, and
/// parsing it into a tree to add three fields cost more than the rest of a delivery's apply.
/// Anything but a JSON object is stored as `null`.
pub(super) fn log_row(log: &str, id: &str, now_ms: u64, attempt: u32) -> String {
    let Some(fields) = serde_json::from_str::<&serde_json::value::RawValue>(log)
        .ok()
        .and_then(|raw| raw.get().strip_prefix('{'))
    else {
        return "null".to_owned();
    };
    let head = format!(
        "{{\"id\":{},\"inserted_ms\":{now_ms},\"attempt\":{attempt}",
        Value::String(id.to_owned())
    );
    if fields.trim_start().starts_with('}') {
        format!("{head}}}")
    } else {
        format!("{head},{fields}")
    }
}

/// Apply an engagement change; `None` when the message is missing.
fn engage(
    store: &mut dyn Store,
    now_ms: u64,
    id: &str,
    change: &Engagement,
) -> Result<Option<StoredMessage>> {
    let Some(mut m) = load_message(store, id)? else {
        return Ok(None);
    };
    let before = m.clone();
    let set = |t: &mut Option<u64>| *t = Some(t.unwrap_or(now_ms));
    match change {
        Engagement::Seen => set(&mut m.seen_ms),
        Engagement::Unseen => m.seen_ms = None,
        Engagement::Read => set(&mut m.read_ms),
        Engagement::Unread => m.read_ms = None,
        Engagement::Archived => set(&mut m.archived_ms),
        Engagement::Unarchived => m.archived_ms = None,
        Engagement::Interacted { metadata } => {
            set(&mut m.interacted_ms);
            set(&mut m.read_ms);
            if let Ok(Value::Object(meta)) = serde_json::from_str::<Value>(metadata) {
                m.metadata = Some(Value::Object(meta));
            }
        }
        Engagement::LinkClicked => set(&mut m.link_clicked_ms),
    }
    if m.engagement_state() == before.engagement_state() {
        return Ok(Some(m));
    }
    m.updated_ms = now_ms;
    add_event(store, now_ms, &mut m, change.event(), None)?;
    if m.is_in_app() {
        adjust_counts(store, &m, Some(&before))?;
    }
    save_message(store, &m)?;
    Ok(Some(m))
}

/// Move `after`'s contribution into the feed counters (and take `before`'s out).
fn adjust_counts(
    store: &mut dyn Store,
    after: &StoredMessage,
    before: Option<&StoredMessage>,
) -> Result<()> {
    let r = &after.recipient;
    let key = key_or_corrupt(keys::segments(
        TAG_FEED_COUNTS,
        &[&r.collection, &r.id, &after.channel_id],
    ))?;
    // A merge, not a read-modify-write: the row is usually in an SST file by now, and reading it
    // was the largest point read of a trigger.
    let mut steps = Vec::with_capacity(2);
    if let Some(b) = before {
        steps.push(counts::step(b, false));
    }
    steps.push(counts::step(after, true));
    store.merge(&key, &counts::operand(&steps));
    Ok(())
}

fn cancel(
    store: &mut dyn Store,
    now_ms: u64,
    workflow: &str,
    cancellation_key: &str,
    recipients: &[RecipientRef],
) -> Result<u64> {
    let prefix = key_or_corrupt(keys::segments(
        TAG_CANCEL_INDEX,
        &[workflow, cancellation_key],
    ))?;
    let mut n = 0;
    for key in scan_keys(store, &prefix, None, None, usize::MAX)? {
        let Some(run_id) = keys::last_segment(&key, 2) else {
            continue;
        };
        let Some(mut run) = load_run(store, &run_id)? else {
            store.delete(&key);
            continue;
        };
        if !recipients.is_empty() && !recipients.contains(&run.recipient) {
            continue;
        }
        if run.status != RunStatus::Paused.as_str() {
            continue;
        }
        unindex_paused(store, &run)?;
        run.status = RunStatus::Cancelled.as_str().to_owned();
        run.updated_ms = now_ms;
        run.resume_at_ms = None;
        let mut event = Map::new();
        event.insert(
            "id".into(),
            json!(format!("{}-{}", run.id, run.events.len())),
        );
        event.insert("event".into(), json!("workflow_run_cancelled"));
        event.insert("status".into(), json!("ok"));
        event.insert("inserted_ms".into(), json!(now_ms));
        run.events.push(Value::Object(event));
        store.put(
            &key_or_corrupt(keys::single(keys::TAG_RUN, &run.id))?,
            &encode_json(&run),
        );
        n += 1;
    }
    Ok(n)
}
