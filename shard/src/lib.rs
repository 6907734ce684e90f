//! herald-shard: Herald's domain core for one shard of recipients.
//!
//! It owns:
//! - the recipients model (users, objects, tenants as objects in `$tenants`) and the messages of a
//!   shard's state machine ([`ShardCommand`], [`ShardQuery`], [`ShardReply`]);
//! - the shard-local key layout ([`keys`], the only module that knows it);
//! - the deterministic state machine ([`apply`]) and its reads ([`query`]) over the [`Store`] boundary;
//! - recipient -> slot -> shard hashing and rendezvous replica placement ([`slot_of`],
//!   [`shard_of_slot`], [`rendezvous_replicas`]);
//! - the pure workflow engine ([`engine`]): definitions and validation, conditions, preferences,
//!   Liquid templates per channel type, and the planner that walks a workflow for one recipient.
//!
//! ```text
//!   herald-node (HTTP, routing)            herald-raft (log, RocksDB)
//!          |  ShardCommand / ShardQuery            |  Store / StoreRead over (group id ++ key)
//!          v                                       v
//!   apply(store, now_ms, cmd) -> ShardReply    query(store, q) -> ShardReply
//! ```
//!
//! Invariants:
//! - `apply` is deterministic: time only from the leader-stamped `now_ms`, no RNG, no unordered
//!   iteration reaching output or storage. Domain failures are reply variants, never panics.
//! - Messages are bincode-safe (serde without `flatten`/`untagged`/`skip_serializing_if`/`Value`):
//!   JSON documents cross the network as strings.
//!
//! It must not depend on: RocksDB, openraft, tokio, the network, a clock, or herald-node.

pub mod apply;
pub mod command;
pub mod engine;
pub mod error;
pub mod ids;
pub mod json_merge;
pub mod keys;
pub mod model;
pub mod placement;
pub mod runs;
pub mod store;

pub use apply::{apply, query};
pub use command::{ShardCommand, ShardQuery, ShardReply};
pub use error::{Error, Result};
pub use model::{
    ChannelDataEntry, ChannelDataView, ListPosition, ListQuery, PreferenceEntry, RecipientRef,
    RecipientSnapshot, RecipientUpsert, RecipientView, MAX_ID_BYTES, TENANTS_COLLECTION,
    USERS_COLLECTION,
};
pub use placement::{preferred_leaders, rendezvous_replicas, shard_of_slot, slot_of, SLOT_COUNT};
pub use store::{merge_rule, MemStore, Store, StoreRead};

/// Identifies a shard (its Raft group id).
pub type ShardId = u32;
