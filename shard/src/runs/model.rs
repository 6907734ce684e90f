//! Workflow recipient runs and messages: what crosses the network (commands, filters) and what is
//! stored (rows as JSON).
//!
//! Network types are bincode-safe like [`crate::model`]: JSON documents travel as `String`s. Stored
//! rows ([`StoredMessage`], [`StoredRun`]) are JSON and never cross the network as structs; replies
//! carry them as JSON strings that the HTTP layer renders in Knock's shapes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{RecipientRef, RecipientUpsert};

/// Delivery status of a message (knock-api.md §7). Exactly one at a time.
pub const QUEUED: &str = "queued";
pub const SENT: &str = "sent";
pub const DELIVERED: &str = "delivered";
pub const DELIVERY_ATTEMPTED: &str = "delivery_attempted";
pub const UNDELIVERED: &str = "undelivered";
pub const NOT_SENT: &str = "not_sent";

/// The in-app channel type: its messages are feed items and count in the feed counters.
pub const IN_APP_FEED: &str = "in_app_feed";

/// The leader-evaluated effects of one trigger for one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    /// [`crate::ids::run_id`] of (workflow_run_id, recipient): a second copy is ignored.
    pub run_id: String,
    pub workflow_run_id: String,
    pub workflow: String,
    pub workflow_version: u64,
    pub categories: Vec<String>,
    pub recipient: RecipientRef,
    pub actor: Option<RecipientRef>,
    pub tenant: Option<String>,
    pub cancellation_key: Option<String>,
    /// Trigger data as the run ended (after `update_data` steps), a JSON object.
    pub data: String,
    /// Inline identify of the recipient carried by the trigger, applied before the run.
    pub identify: Option<RecipientUpsert>,
    pub status: RunStatus,
    /// One per step the run went through, in order.
    pub steps: Vec<RunStep>,
    pub messages: Vec<NewMessage>,
    /// A paused run resumes at this time (a delay step); the cancel index holds it until then.
    pub resume_at_ms: Option<u64>,
    /// Opaque resume state for a paused run (JSON), kept on the run row.
    pub resume_state: Option<String>,
    /// `trigger_frequency` other than every trigger: the scope of "once" (`""` per recipient, the
    /// tenant id per recipient and tenant). A second run in the same scope is not recorded.
    pub once_scope: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    Completed,
    Paused,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Paused => "paused",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// What one step of a run did (becomes a run event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStep {
    pub step_ref: String,
    pub step_type: String,
    /// `ok`, `skipped` or `error`.
    pub status: String,
    /// Event name, e.g. `message_created`, `step_conditions_not_met`, `template_error`.
    pub event: String,
    /// Details (JSON object): reason, error, message id, branch.
    pub data: String,
}

/// A message the run created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    pub id: String,
    pub channel_id: String,
    pub channel_key: String,
    pub channel_type: String,
    pub step_ref: String,
    pub branch_path: Vec<String>,
    /// `queued` (goes to the outbox), `delivered` (in-app) or `not_sent` (sandbox).
    pub status: String,
    /// Rendered content (JSON object in the channel type's shape).
    pub content: String,
    /// `recipient_snapshot` (JSON object: user_id, email, name, ...).
    pub recipient_snapshot: String,
}

/// Outcome of one delivery attempt, decided by the leader's dispatcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeliveryOutcome {
    /// Accepted by the provider (email, sms, push, chat stop here).
    Sent,
    /// Confirmed delivered (webhook 2xx).
    Delivered,
    /// A retryable failure: try again at `retry_at_ms`.
    Retry { retry_at_ms: u64, reason: String },
    /// Terminal failure (or retries exhausted).
    Undelivered { reason: String },
}

/// An engagement change on a message (knock-api.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Engagement {
    Seen,
    Unseen,
    Read,
    Unread,
    Archived,
    Unarchived,
    /// `metadata` is a JSON object or empty.
    Interacted {
        metadata: String,
    },
    LinkClicked,
}

impl Engagement {
    /// Parse a Knock status path segment (`seen`, `unread`, `archive`, ...).
    pub fn parse(action: &str) -> Option<Engagement> {
        Some(match action {
            "seen" => Engagement::Seen,
            "unseen" => Engagement::Unseen,
            "read" => Engagement::Read,
            "unread" => Engagement::Unread,
            "archived" | "archive" => Engagement::Archived,
            "unarchived" | "unarchive" => Engagement::Unarchived,
            "interacted" => Engagement::Interacted {
                metadata: String::new(),
            },
            "link_clicked" => Engagement::LinkClicked,
            _ => return None,
        })
    }

    /// The message event type this change records.
    pub fn event(&self) -> &'static str {
        match self {
            Engagement::Seen => "message.seen",
            Engagement::Unseen => "message.unseen",
            Engagement::Read => "message.read",
            Engagement::Unread => "message.unread",
            Engagement::Archived => "message.archived",
            Engagement::Unarchived => "message.unarchived",
            Engagement::Interacted { .. } => "message.interacted",
            Engagement::LinkClicked => "message.link_clicked",
        }
    }
}

/// Filters of message lists, feeds and bulk channel actions. Empty/None means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFilter {
    /// Only this recipient's messages (uses the recipient index).
    pub recipient: Option<RecipientRef>,
    pub channel_id: Option<String>,
    /// Delivery statuses.
    pub statuses: Vec<String>,
    /// Engagement statuses, each one of `seen unseen read unread archived unarchived interacted
    /// link_clicked`; all must hold.
    pub engagement: Vec<String>,
    pub message_ids: Vec<String>,
    /// Workflow key (`source`).
    pub workflow: Option<String>,
    pub workflow_categories: Vec<String>,
    pub tenants: Vec<String>,
    /// `Some(true)`: only messages with a tenant; `Some(false)`: only without.
    pub has_tenant: Option<bool>,
    pub workflow_run_id: Option<String>,
    pub run_id: Option<String>,
    /// Flat JSON object: every pair must equal the message's trigger data.
    pub trigger_data: Option<String>,
    /// Inclusive/exclusive bounds on inserted time, in ms.
    pub inserted_gte_ms: Option<u64>,
    pub inserted_lt_ms: Option<u64>,
    /// Archived selection for feeds: `exclude` (default), `include` or `only`.
    pub archived: ArchivedFilter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchivedFilter {
    #[default]
    Include,
    Exclude,
    Only,
}

/// A page of a time-ordered list: ids strictly between the bounds, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Only ids older than this one (Knock's `after` cursor on newest-first lists).
    pub older_than: Option<String>,
    /// Only ids newer than this one (Knock's `before`).
    pub newer_than: Option<String>,
    pub limit: u32,
}

/// Exact feed counters of one recipient on one in-app channel, kept by `apply`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCounts {
    /// Not archived.
    pub total: u64,
    pub unread: u64,
    pub unseen: u64,
    /// Archived.
    pub archived_total: u64,
    pub archived_unread: u64,
    pub archived_unseen: u64,
}

/// A JSON document kept as its text: stored, loaded and copied without being parsed into a tree
/// (a message's data, content and recipient snapshot are most of its bytes, and the delivery
/// path loads and rewrites messages without reading them). Parse where read.
pub type RawJson = Box<serde_json::value::RawValue>;

/// Text to [`RawJson`], checking that it is JSON (without building a tree).
pub fn raw_json(text: String) -> std::result::Result<RawJson, serde_json::Error> {
    serde_json::value::RawValue::from_string(text)
}

fn parse_raw(raw: &serde_json::value::RawValue) -> Value {
    // Stored rows were checked when written.
    parse_or_null(raw.get())
}

/// JSON text parsed; text that is not JSON reads as null.
fn parse_or_null(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// What a dispatcher needs to send a message waiting in the outbox. Apply hands the messages a
/// command queues to the leader's dispatcher as these, built from the command
/// ([`super::RunsCommand::queued_now`]), so a new message is sent without reading its row back;
/// rows a scan finds (retries, a new leader) become one through [`StoredMessage::into_sendable`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sendable {
    pub id: String,
    /// The due time of the message's outbox row, which exists as long as the message waits.
    pub due_ms: u64,
    /// Delivery attempts made so far.
    pub attempts: u32,
    pub channel_id: String,
    pub channel_type: String,
    pub recipient: RecipientRef,
    /// The rendered content, JSON text in the channel type's shape.
    pub content: String,
    /// The recipient's properties when the message was made, JSON text.
    pub recipient_snapshot: String,
}

impl Sendable {
    /// The rendered content, parsed (`null` if it is not JSON; apply refuses such a message).
    pub fn content_json(&self) -> Value {
        parse_or_null(&self.content)
    }

    /// The recipient snapshot, parsed (`null` if it is not JSON).
    pub fn recipient_snapshot_json(&self) -> Value {
        parse_or_null(&self.recipient_snapshot)
    }
}

/// A message row. Times are ms since the epoch (leader time).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: String,
    pub channel_id: String,
    pub channel_key: String,
    pub channel_type: String,
    pub recipient: RecipientRef,
    pub actors: Vec<RecipientRef>,
    pub tenant: Option<String>,
    pub workflow: String,
    pub workflow_version: u64,
    pub categories: Vec<String>,
    pub step_ref: String,
    pub branch_path: Vec<String>,
    pub workflow_run_id: String,
    pub run_id: String,
    pub status: String,
    pub seen_ms: Option<u64>,
    pub read_ms: Option<u64>,
    pub interacted_ms: Option<u64>,
    pub link_clicked_ms: Option<u64>,
    pub archived_ms: Option<u64>,
    pub inserted_ms: u64,
    pub updated_ms: u64,
    /// The trigger's data.
    pub data: RawJson,
    /// The rendered content, in the channel type's shape.
    pub content: RawJson,
    pub metadata: Option<Value>,
    pub recipient_snapshot: RawJson,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// The outbox row holding this message, while it waits for a send.
    pub outbox_due_ms: Option<u64>,
    /// Rows written under DELIVERY_LOG / MESSAGE_EVENT (next sequence numbers).
    pub logs: u32,
    pub events: u32,
    /// The type of event 0 (`message.<status at creation>`) when this row stands for it instead of
    /// a MESSAGE_EVENT row: one row fewer per message. Rows written before it existed have the
    /// event row.
    #[serde(default)]
    pub created_event: Option<String>,
}

impl StoredMessage {
    /// This message as its dispatcher sends it; `None` when it is not waiting in the outbox.
    pub fn into_sendable(self) -> Option<Sendable> {
        Some(Sendable {
            due_ms: self.outbox_due_ms?,
            attempts: self.attempts,
            content: Box::<str>::from(self.content).into_string(),
            recipient_snapshot: Box::<str>::from(self.recipient_snapshot).into_string(),
            id: self.id,
            channel_id: self.channel_id,
            channel_type: self.channel_type,
            recipient: self.recipient,
        })
    }

    /// Event number `seq` of this message as stored and listed.
    pub fn event_json(&self, seq: u32, kind: &str, inserted_ms: u64, data: Option<Value>) -> Value {
        serde_json::json!({
            "id": format!("{}-{}", self.id, seq),
            "type": kind,
            "inserted_ms": inserted_ms,
            "recipient": self.recipient,
            "data": data,
        })
    }

    /// The trigger's data, parsed.
    pub fn data_json(&self) -> Value {
        parse_raw(&self.data)
    }

    /// The rendered content, parsed.
    pub fn content_json(&self) -> Value {
        parse_raw(&self.content)
    }

    /// The recipient's properties when the message was made, parsed.
    pub fn recipient_snapshot_json(&self) -> Value {
        parse_raw(&self.recipient_snapshot)
    }

    /// What an engagement change can change: its timestamps and the interaction metadata.
    #[allow(clippy::type_complexity)]
    pub fn engagement_state(&self) -> ([Option<u64>; 5], Option<&Value>) {
        (
            [
                self.seen_ms,
                self.read_ms,
                self.interacted_ms,
                self.link_clicked_ms,
                self.archived_ms,
            ],
            self.metadata.as_ref(),
        )
    }

    pub fn is_in_app(&self) -> bool {
        self.channel_type == IN_APP_FEED
    }

    /// Knock's `engagement_statuses`, in Knock's order.
    pub fn engagement_statuses(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (set, name) in [
            (self.seen_ms, "seen"),
            (self.read_ms, "read"),
            (self.interacted_ms, "interacted"),
            (self.link_clicked_ms, "link_clicked"),
            (self.archived_ms, "archived"),
        ] {
            if set.is_some() {
                out.push(name);
            }
        }
        out
    }
}

/// A recipient-run row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    pub id: String,
    pub workflow_run_id: String,
    pub workflow: String,
    pub workflow_version: u64,
    pub recipient: RecipientRef,
    pub actor: Option<RecipientRef>,
    pub tenant: Option<String>,
    pub cancellation_key: Option<String>,
    pub status: String,
    pub data: Value,
    pub error_count: u32,
    pub events: Vec<Value>,
    pub message_ids: Vec<String>,
    pub resume_at_ms: Option<u64>,
    pub resume_state: Option<Value>,
    pub inserted_ms: u64,
    pub updated_ms: u64,
}

/// An `Idempotency-Key` claim on the key's home shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub body_hash: String,
    pub workflow_run_id: String,
    pub expires_ms: u64,
}

/// A shard's time-ordered queue tables: rows `due_ms | id`, handled by the leader once due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Messages waiting for a provider send (ids are message ids).
    Outbox,
    /// Paused runs waiting for their delay to end (ids are run ids).
    Timers,
}

impl Queue {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Queue::Outbox => crate::keys::TAG_OUTBOX,
            Queue::Timers => crate::keys::TAG_TIMER,
        }
    }
}

/// A due row of a time-ordered queue: a message to send (outbox) or a paused run to resume (timers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueItem {
    pub due_ms: u64,
    /// The message id (outbox) or run id (timers).
    pub id: String,
}
