//! The messages of a shard's state machine: commands (replicated through the log), queries (served
//! from applied state) and replies. All are bincode-safe (see [`crate::model`]).

use serde::{Deserialize, Serialize};

use crate::model::{
    ChannelDataView, ListQuery, PreferenceEntry, RecipientRef, RecipientSnapshot, RecipientUpsert,
    RecipientView,
};
use crate::runs::{RunsCommand, RunsQuery, RunsReply};

/// A write to one shard. Every recipient named must belong to that shard (the caller routes).
// Commands are built once, serialized into a log entry and dropped: a boxed variant would only add
// an allocation per command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardCommand {
    /// Identify users / set objects and tenants (merge upsert). Reply: `Recipients` in input order.
    Upsert(Vec<RecipientUpsert>),
    /// Delete recipients with their channel data and preference sets.
    /// Reply: `Deleted` (whether each existed), in input order.
    Delete(Vec<RecipientRef>),
    /// Set one channel's data, creating the recipient if missing. Reply: `ChannelData(Some)`.
    SetChannelData {
        recipient: RecipientRef,
        channel_id: String,
        data: String,
    },
    /// Reply: `Unset(existed)`.
    UnsetChannelData {
        recipient: RecipientRef,
        channel_id: String,
    },
    /// Set preference set `set_id` on each recipient (creating missing recipients): replace, or
    /// deep-merge into the stored set when `merge`. Reply: `PreferenceSets`, one per recipient.
    SetPreferences {
        recipients: Vec<RecipientRef>,
        set_id: String,
        set: String,
        merge: bool,
    },
    /// Reply: `Unset(existed)`.
    UnsetPreferences {
        recipient: RecipientRef,
        set_id: String,
    },
    /// Merge a secondary recipient into `target` (Knock's user merge): properties deep-merged with
    /// the target winning conflicts; channel data and preference sets the target lacks are added.
    /// Idempotent. Reply: `Recipient(Some)`, or `NotFound` when the target does not exist.
    MergeInto {
        target: RecipientRef,
        from: RecipientSnapshot,
    },
    /// Workflow runs, messages, feed and outbox ([`crate::runs`]). Reply: `Runs`.
    Runs(RunsCommand),
}

/// A read on one shard's applied state.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardQuery {
    /// Reply: `Recipient`.
    Get {
        recipient: RecipientRef,
        include_preferences: bool,
    },
    /// Reply: `Snapshot`.
    Snapshot(RecipientRef),
    /// Reply: `Recipients`, in the requested direction.
    List(ListQuery),
    /// Reply: `ChannelData` (None when the row is missing), or `NotFound` when the recipient is.
    GetChannelData {
        recipient: RecipientRef,
        channel_id: String,
    },
    /// Reply: `PreferenceSets` ordered by set id, or `NotFound`.
    ListPreferences(RecipientRef),
    /// Reply: `PreferenceSet` (None when the set is missing), or `NotFound`.
    GetPreferences {
        recipient: RecipientRef,
        set_id: String,
    },
    /// Exact number of recipients of a collection on this shard. Reply: `Count`.
    Count { collection: String },
    /// Runs, messages and feeds ([`crate::runs`]). Reply: `Runs`.
    Runs(RunsQuery),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardReply {
    Recipient(Option<RecipientView>),
    Recipients(Vec<RecipientView>),
    Deleted(Vec<bool>),
    ChannelData(Option<ChannelDataView>),
    PreferenceSet(Option<PreferenceEntry>),
    PreferenceSets(Vec<PreferenceEntry>),
    Snapshot(Option<RecipientSnapshot>),
    Unset(bool),
    Count(u64),
    Runs(RunsReply),
    /// The recipient the request is about does not exist.
    NotFound,
    /// The command was refused before changing anything (bad id, malformed JSON document).
    Invalid(String),
    /// The store failed to read. Fatal for a replica: rows written earlier in the same command are
    /// not rolled back, so the replica must stop rather than diverge.
    StoreError(String),
}
