//! Recipient model types that cross the network inside [`crate::ShardCommand`] / [`crate::ShardReply`].
//!
//! They travel as bincode (serde mode), so JSON documents are carried as `String`s of serialized JSON
//! (no `serde_json::Value`, no `flatten`/`untagged`/`skip_serializing_if`). The HTTP layer validated
//! them before they got here; `apply` still refuses what would corrupt the key layout.

use serde::{Deserialize, Serialize};

/// Collection holding users (Knock's `gid://Object/$users/<id>`).
pub const USERS_COLLECTION: &str = "$users";
/// Collection holding tenants.
pub const TENANTS_COLLECTION: &str = "$tenants";
/// Largest id (in bytes) `apply` accepts; the HTTP layer enforces Knock's 255 characters first.
pub const MAX_ID_BYTES: usize = 1024;

/// A user (collection `$users`), an object, or a tenant (collection `$tenants`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecipientRef {
    pub collection: String,
    pub id: String,
}

impl RecipientRef {
    pub fn user(id: impl Into<String>) -> Self {
        Self {
            collection: USERS_COLLECTION.to_owned(),
            id: id.into(),
        }
    }

    pub fn object(collection: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            collection: collection.into(),
            id: id.into(),
        }
    }

    pub fn tenant(id: impl Into<String>) -> Self {
        Self::object(TENANTS_COLLECTION, id)
    }

    pub fn is_user(&self) -> bool {
        self.collection == USERS_COLLECTION
    }

    /// The key hashed to find the shard: the user id, or `collection/id`.
    pub fn recipient_key(&self) -> String {
        if self.is_user() {
            self.id.clone()
        } else {
            format!("{}/{}", self.collection, self.id)
        }
    }

    /// Structural check done by `apply` itself (the HTTP layer checks Knock's stricter rules).
    pub fn validate(&self) -> Result<(), String> {
        check_name("collection", &self.collection)?;
        check_name("id", &self.id)
    }
}

pub(crate) fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if s.len() > MAX_ID_BYTES {
        return Err(format!("{what} longer than {MAX_ID_BYTES} bytes"));
    }
    Ok(())
}

/// Identify / set of one recipient: merge `properties` into the stored ones (top-level keys; a
/// `null` value is stored as `null`), set each channel data row, deep-merge each preference set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientUpsert {
    pub recipient: RecipientRef,
    /// A JSON object.
    pub properties: String,
    pub channel_data: Vec<ChannelDataEntry>,
    pub preferences: Vec<PreferenceEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDataEntry {
    pub channel_id: String,
    /// The JSON object stored as the channel's `data`.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferenceEntry {
    pub set_id: String,
    /// A JSON object: `channel_types`, `channels`, `workflows`, `categories`, `commercial_subscribed`.
    pub set: String,
}

/// A recipient as stored, for rendering by the HTTP layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientView {
    pub recipient: RecipientRef,
    /// A JSON object of every stored property (including `name`, `email`, `created_at`, ...).
    pub properties: String,
    /// When the recipient was first written (leader time); also its position in lists.
    pub inserted_ms: u64,
    pub updated_ms: u64,
    /// Filled only when the query asked for preferences; ordered by set id.
    pub preferences: Vec<PreferenceEntry>,
}

impl RecipientView {
    /// Position of this recipient in its collection's insertion-ordered listing.
    pub fn position(&self) -> ListPosition {
        ListPosition {
            inserted_ms: self.inserted_ms,
            id: self.recipient.id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDataView {
    pub recipient: RecipientRef,
    pub channel_id: String,
    /// JSON object.
    pub data: String,
    pub updated_ms: u64,
}

/// Everything a user merge copies from the secondary recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientSnapshot {
    pub view: RecipientView,
    pub channel_data: Vec<ChannelDataEntry>,
    pub preferences: Vec<PreferenceEntry>,
}

/// A position in a collection listing: `(inserted_ms, id)` is unique and totally ordered across all
/// shards, so a cursor holding it continues a scatter/gather list exactly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListPosition {
    pub inserted_ms: u64,
    pub id: String,
}

/// One shard's part of an environment-wide list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    pub collection: String,
    /// Exclusive lower bound.
    pub lower: Option<ListPosition>,
    /// Exclusive upper bound.
    pub upper: Option<ListPosition>,
    /// Scan from the upper end down (newest first).
    pub descending: bool,
    /// Maximum number of recipients returned.
    pub limit: u32,
    pub include_preferences: bool,
    /// Only the recipient with this id.
    pub id_equals: Option<String>,
    /// Only recipients whose `name` property equals this.
    pub name_equals: Option<String>,
}
