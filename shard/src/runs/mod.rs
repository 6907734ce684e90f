//! Workflow recipient runs, messages, the in-app feed index and the delivery outbox of one shard.
//!
//! ```text
//!  leader executor: evaluate trigger (crate::engine) ─► RunsCommand::Record(NewRun...) ─┐
//!  leader dispatcher: due_rows ─► provider ─► RunsCommand::Delivery{outcome, logs} ─────┤ Raft log
//!  HTTP: status changes ─► RunsCommand::SetEngagement / BulkEngagement ─────────────────┘
//!                                 apply (deterministic) ─► rows in crate::keys tables
//!  HTTP reads ─► RunsQuery ─► query ─► JSON rows (rendered into Knock shapes by herald-node)
//! ```
//!
//! Invariants:
//! - A run id is derived from (workflow run, recipient): recording it twice changes nothing, so a
//!   retried or replayed trigger creates no second run or message.
//! - Feed counters ([`FeedCounts`]) change in the same `apply` as the message they count, so they
//!   are exact without scanning; `apply` writes them as merge operands ([`counts`]), never reading
//!   them.
//! - A message waiting for a send has exactly one OUTBOX row, named by `outbox_due_ms`.

mod apply;
pub mod counts;
mod model;
mod query;

use serde::{Deserialize, Serialize};

pub use apply::apply;
pub use model::*;
pub use query::{due_rows, first_due, in_outbox, load_message, load_run, query};

use crate::model::RecipientRef;

/// A write to a shard's runs and messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunsCommand {
    /// Record evaluated runs. Reply: `Recorded` (whether each run was new), in input order.
    Record(Vec<NewRun>),
    /// Claim `key` for a trigger (on the key's home shard). Reply: `Idempotency`, or `Invalid` when
    /// the key is live with a different body.
    ClaimIdempotency {
        key: String,
        body_hash: String,
        workflow_run_id: String,
        expires_ms: u64,
    },
    /// Cancel the paused runs of `workflow` with `cancellation_key` (of `recipients`, or all when
    /// empty). Reply: `Count` of runs cancelled.
    Cancel {
        workflow: String,
        cancellation_key: String,
        recipients: Vec<RecipientRef>,
    },
    /// One delivery attempt's result. `logs` are JSON objects without `id`, `inserted_ms` and
    /// `attempt` (apply adds them). Reply: `Count`, 1 when recorded, 0 when the message is
    /// missing or no longer waits (a duplicate result).
    Delivery {
        message_id: String,
        outcome: DeliveryOutcome,
        logs: Vec<String>,
    },
    /// Change the engagement of messages on this shard. Reply: `Messages` (the ones found).
    SetEngagement {
        message_ids: Vec<String>,
        change: Engagement,
    },
    /// Change every matching in-app message of `channel_id` (the recipient filter is required).
    /// Reply: `Count` of messages changed.
    BulkEngagement {
        channel_id: String,
        filter: MessageFilter,
        change: Engagement,
    },
    /// Replace a paused run with its continuation (a delay elapsed). The run's timer row is
    /// removed; a run no longer paused (cancelled meanwhile) is left alone. Reply: `Recorded`.
    Resume { run: NewRun },
}

impl RunsCommand {
    /// The messages applying this command at `now_ms` may queue for an immediate send: new and
    /// resumed runs' queued messages. A run recorded before queues nothing; its dispatcher finds
    /// that out from the outbox row ([`in_outbox`]).
    pub fn queued_now(&self, now_ms: u64) -> impl Iterator<Item = Sendable> + '_ {
        let runs: &[NewRun] = match self {
            RunsCommand::Record(runs) => runs,
            RunsCommand::Resume { run } => std::slice::from_ref(run),
            _ => &[],
        };
        runs.iter().flat_map(move |r| {
            r.messages
                .iter()
                .filter(|m| m.status == QUEUED)
                .map(move |m| Sendable {
                    id: m.id.clone(),
                    due_ms: now_ms,
                    attempts: 0,
                    channel_id: m.channel_id.clone(),
                    channel_type: m.channel_type.clone(),
                    recipient: r.recipient.clone(),
                    content: m.content.clone(),
                    recipient_snapshot: m.recipient_snapshot.clone(),
                })
        })
    }

    /// The due time of the outbox row a failed attempt's retry adds. `None`: it adds none.
    pub fn retry_at(&self) -> Option<u64> {
        match self {
            RunsCommand::Delivery {
                outcome: DeliveryOutcome::Retry { retry_at_ms, .. },
                ..
            } => Some(*retry_at_ms),
            _ => None,
        }
    }

    /// The earliest due time of the timer rows (paused runs) applying this command may add.
    pub fn timer_low(&self) -> Option<u64> {
        let paused = |r: &NewRun| (r.status == RunStatus::Paused).then_some(r.resume_at_ms?);
        match self {
            RunsCommand::Record(runs) => runs.iter().filter_map(paused).min(),
            RunsCommand::Resume { run } => paused(run),
            _ => None,
        }
    }
}

/// Filters of the run list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub statuses: Vec<String>,
    pub tenant: Option<String>,
    pub has_errors: Option<bool>,
    pub recipient: Option<RecipientRef>,
    pub workflow_run_id: Option<String>,
}

/// A read on a shard's runs and messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunsQuery {
    /// Reply: `Message(Some(message))`, or `Message(None)`.
    Message(String),
    /// Reply: `Messages`, newest first.
    Messages { filter: MessageFilter, page: Page },
    /// Reply: `Feed` with the exact counters of the recipient's feed.
    Feed {
        recipient: RecipientRef,
        channel_id: String,
        filter: MessageFilter,
        page: Page,
    },
    /// Delivery logs of a message, oldest first. Reply: `Rows`.
    DeliveryLogs(String),
    /// Events of a message, oldest first. Reply: `Rows`.
    Events(String),
    /// Reply: `Json`.
    Run(String),
    /// Reply: `Runs`, newest first.
    Runs { filter: RunFilter, page: Page },
}

/// Replies of [`RunsCommand`] and [`RunsQuery`]; JSON rows travel as strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunsReply {
    Recorded(Vec<bool>),
    Idempotency {
        workflow_run_id: String,
        replayed: bool,
    },
    Count(u64),
    Message(Option<String>),
    Messages(Vec<String>),
    Feed {
        items: Vec<String>,
        counts: FeedCounts,
    },
    Rows(Vec<String>),
    Json(Option<String>),
    Runs(Vec<String>),
}

#[cfg(test)]
mod tests;
