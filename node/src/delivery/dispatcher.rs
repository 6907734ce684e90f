//! The dispatcher: on a shard's leader, send the messages waiting in the shard's outbox and
//! record each attempt's result through the shard's executor (another Raft entry).
//!
//! ```text
//!  an applied entry queued messages ──handed over as they are──┐
//!  a retry comes due, a new loop, too many messages ────────────┼─► due rows of the outbox (a
//!                                                               │   scan from the loop's floor,
//!                                                               │   see cluster::wakeups)
//!                                                               ▼
//!      ─► for each message not already in flight (≤ concurrency):
//!      still waiting? (handed: its outbox row; scanned: its message row)
//!      ─► channel (+ channel data for push and chat) ─► Providers::send ─► Delivery{outcome, logs}
//!      ─► executor (group commit with everything else) ─► the outbox row moves or goes
//! ```
//!
//! Invariants:
//! - Only the leader dispatches; a dispatcher stops at the first NotLeader and the next leader's
//!   dispatcher picks the outbox up from applied state, so a message committed as `queued` is sent
//!   even if its leader dies (at least once: a send whose result was not committed is repeated;
//!   providers get the message id as idempotency key).
//! - A message is in flight at most once per dispatcher: the in-flight set holds it from the scan
//!   until its result is committed, when the outbox row has moved. A message handed over and also
//!   found by a scan may come up again after that; the check that it still waits (outbox row or
//!   message row) stops the second send.
//! - Retries follow [`policy::retry_delay`] with jitter; after [`policy::MAX_ATTEMPTS`] attempts
//!   the message is `undelivered`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_raft::GroupReader;
use herald_shard::runs::{self, DeliveryOutcome, Queue, RunsCommand, Sendable, StoredMessage};
use herald_shard::{ShardCommand, ShardQuery, ShardReply};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{policy, uses_channel_data, Outcome, Outgoing, Providers};
use crate::backend::ChannelRecord;
use crate::cluster::{now_ms, QueueFloor, ShardStore, Wakeups};
use crate::meta::{ChannelCache, MetaView};
use crate::metrics as m;

/// Longest sleep without a wake-up (a safety net; due times and notifications drive the loop).
const IDLE: Duration = Duration::from_secs(1);

/// Proposes a delivery result on the shard (the executor). `Err` = this node no longer leads.
pub type Submit = Arc<
    dyn Fn(ShardCommand) -> futures::future::BoxFuture<'static, Result<ShardReply, String>>
        + Send
        + Sync,
>;

/// What a dispatcher needs, shared by all shards of a node.
#[derive(Clone)]
pub struct DispatchDeps {
    pub providers: Arc<Providers>,
    pub view: MetaView,
    /// The meta group: its applied index tells when the channel list may have changed.
    pub meta: herald_raft::Raft,
    pub retry_base: Duration,
    pub concurrency: usize,
}

/// A message to send: handed over by apply (what to send is known) or found by a scan.
enum Due {
    Handed(Sendable),
    Found(String),
}

impl Due {
    fn id(&self) -> &str {
        match self {
            Due::Handed(m) => &m.id,
            Due::Found(id) => id,
        }
    }
}

/// Run the dispatcher of `shard` until `stop` fires or the executor reports lost leadership.
pub async fn run(
    shard: u32,
    reader: GroupReader,
    submit: Submit,
    wake: Arc<Wakeups>,
    deps: DispatchDeps,
    stop: CancellationToken,
) {
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(deps.concurrency));
    let lost = CancellationToken::new();
    let due_gauge = metrics::gauge!(m::OUTBOX_DUE, "shard" => shard.to_string());
    // Look once at start, from floor 0: a new leader inherits the outbox of the previous one. Ids
    // handed over before are readable, so that scan finds them.
    let mut floor = QueueFloor::default();
    drop(wake.outbox.take_handed());
    let mut next_scan = tokio::time::Instant::now();
    let mut channel_cache = ChannelCache::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = lost.cancelled() => return,
            _ = wake.outbox.notified() => {}
            _ = tokio::time::sleep_until(next_scan) => {}
        }
        // Newly queued messages are handed over; only rows due later (retries) and overflow need
        // a scan.
        let mut due: Vec<Due> = wake
            .outbox
            .take_handed()
            .into_iter()
            .map(Due::Handed)
            .collect();
        if tokio::time::Instant::now() >= next_scan || wake.outbox.scan_pending() {
            let pass = floor.read(&wake.outbox, &reader, Queue::Outbox, deps.concurrency * 2);
            match pass {
                Ok(pass) => {
                    // A row already due is being sent (it keeps its row until the result
                    // commits), so that case waits for a wake or the safety net.
                    let wait = match pass.first_due_in() {
                        Some(wait) if !wait.is_zero() => wait.min(IDLE),
                        _ => IDLE,
                    };
                    next_scan = tokio::time::Instant::now() + wait;
                    due.extend(pass.due.into_iter().map(|row| Due::Found(row.id)));
                }
                Err(e) => {
                    tracing::warn!(shard, error = %e, "outbox scan failed");
                    next_scan = tokio::time::Instant::now() + IDLE;
                }
            }
        }
        due_gauge.set(due.len() as f64);
        if due.is_empty() {
            continue;
        }
        // The channel list is re-read only after the meta group applied something.
        let channels = channel_cache.get(&deps.meta, &deps.view);
        for item in due {
            let id = item.id().to_owned();
            if !lock(&in_flight).insert(id.clone()) {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (reader, submit, deps, in_flight, lost, channels) = (
                reader.clone(),
                submit.clone(),
                deps.clone(),
                in_flight.clone(),
                lost.clone(),
                channels.clone(),
            );
            let sending = Sending::start(wake.clone());
            tokio::spawn(async move {
                if let Err(e) = deliver(&reader, &submit, &deps, &channels, item).await {
                    tracing::debug!(shard, message = %id, error = %e, "dispatcher stops");
                    lost.cancel();
                }
                lock(&in_flight).remove(&id);
                drop((permit, sending));
            });
        }
    }
}

/// One send counted in [`Wakeups::sending`] until dropped (also when its task panics).
struct Sending(Arc<Wakeups>);

impl Sending {
    fn start(wake: Arc<Wakeups>) -> Self {
        wake.sending.fetch_add(1, Ordering::Relaxed);
        Sending(wake)
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.sending.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One attempt for one message, and its result proposed. `Err` only when the result could not be
/// committed (leadership lost): the message stays in the outbox for the next leader.
async fn deliver(
    reader: &GroupReader,
    submit: &Submit,
    deps: &DispatchDeps,
    channels: &[ChannelRecord],
    due: Due,
) -> Result<(), String> {
    let store = ShardStore(reader);
    // Only a message still waiting is sent: its result may have been committed since it was
    // handed over or scanned.
    let waiting = match due {
        Due::Handed(m) => runs::in_outbox(&store, m.due_ms, &m.id)
            .map_err(|e| e.to_string())?
            .then_some(m),
        Due::Found(id) => runs::load_message(&store, &id)
            .map_err(|e| e.to_string())?
            .and_then(StoredMessage::into_sendable),
    };
    let Some(msg) = waiting else {
        return Ok(());
    };
    let channel = channels.iter().find(|c| c.id == msg.channel_id);
    let outcome_and_logs = match channel {
        None => (
            DeliveryOutcome::Undelivered {
                reason: format!("channel {} no longer exists", msg.channel_id),
            },
            Vec::new(),
        ),
        Some(channel) => {
            let out = outgoing(&store, &msg, channel);
            let started = std::time::Instant::now();
            let attempt = deps.providers.send(&out).await;
            metrics::histogram!(m::PROVIDER_LATENCY, "provider" => channel.provider.clone())
                .record(started.elapsed().as_secs_f64());
            let outcome = decide(msg.attempts, attempt.outcome, deps.retry_base);
            metrics::counter!(m::DELIVERIES, "provider" => channel.provider.clone(),
                "outcome" => outcome_label(&outcome))
            .increment(1);
            let logs = attempt
                .logs
                .iter()
                .filter_map(|l| serde_json::to_string(l).ok())
                .collect();
            (outcome, logs)
        }
    };
    let (outcome, logs) = outcome_and_logs;
    let cmd = ShardCommand::Runs(RunsCommand::Delivery {
        message_id: msg.id,
        outcome,
        logs,
    });
    submit(cmd).await.map(|_| ())
}

fn outcome_label(o: &DeliveryOutcome) -> &'static str {
    match o {
        DeliveryOutcome::Sent => "sent",
        DeliveryOutcome::Delivered => "delivered",
        DeliveryOutcome::Retry { .. } => "retry",
        DeliveryOutcome::Undelivered { .. } => "undelivered",
    }
}

/// The committed outcome of an attempt: retry with backoff until the attempts run out.
fn decide(attempts: u32, outcome: Outcome, retry_base: Duration) -> DeliveryOutcome {
    match outcome {
        Outcome::Delivered => DeliveryOutcome::Delivered,
        Outcome::Sent => DeliveryOutcome::Sent,
        Outcome::Failed(reason) => DeliveryOutcome::Undelivered { reason },
        Outcome::Retryable(reason) => {
            let attempt = attempts + 1;
            if attempt >= policy::MAX_ATTEMPTS {
                DeliveryOutcome::Undelivered {
                    reason: format!("{reason} (gave up after {attempt} attempts)"),
                }
            } else {
                let delay = policy::retry_delay(attempt, retry_base, rand::random::<f64>());
                DeliveryOutcome::Retry {
                    retry_at_ms: now_ms() + delay.as_millis() as u64,
                    reason,
                }
            }
        }
    }
}

/// Everything the provider needs: the channel's settings, the rendered content, the recipient
/// snapshot and, where the channel type uses it, the recipient's channel data for this channel.
fn outgoing(
    store: &dyn herald_shard::StoreRead,
    msg: &Sendable,
    channel: &ChannelRecord,
) -> Outgoing {
    let channel_data = if uses_channel_data(&msg.channel_type) {
        match herald_shard::query(
            store,
            &ShardQuery::GetChannelData {
                recipient: msg.recipient.clone(),
                channel_id: channel.id.clone(),
            },
        ) {
            ShardReply::ChannelData(Some(c)) => serde_json::from_str::<Value>(&c.data).ok(),
            _ => None,
        }
    } else {
        None
    };
    let mut recipient = msg.recipient_snapshot_json();
    if let Value::Object(r) = &mut recipient {
        r.insert("id".into(), Value::String(msg.recipient.id.clone()));
    }
    Outgoing {
        message_id: msg.id.clone(),
        channel_type: msg.channel_type.clone(),
        provider: channel.provider.clone(),
        settings: channel.settings.clone(),
        content: msg.content_json(),
        recipient,
        channel_data,
    }
}
