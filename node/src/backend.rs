//! The boundary between the HTTP API and the cluster.
//!
//! The API layer (`crate::http`) speaks Knock; it never sees Raft, QUIC or RocksDB. Everything it needs
//! from the cluster goes through [`Backend`]: which shard owns a recipient, a write to that shard that
//! resolves only once committed on a quorum and applied, a linearizable read on it, and the small
//! cluster-wide records kept in the meta group (API keys, bulk operations).
//!
//! The production implementation is `crate::cluster::ClusterBackend`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use herald_shard::engine::CompiledWorkflow;

use herald_shard::{ShardCommand, ShardId, ShardQuery, ShardReply};

use crate::error::Error;
use crate::meta::{MetaCommand, WorkflowRecord};
use crate::workflows::ShardTrigger;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The keys an environment accepts, kept in the meta group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiKeys {
    /// `sk_...`: may call every v1 endpoint.
    pub secret_key: String,
    /// `pk_...`: the browser client's key.
    pub public_key: String,
    /// Management API and operator endpoints (`/v1/cluster`, joins).
    pub service_token: String,
}

/// A delivery channel (knock-api.md §5.4), kept in the meta group. `settings` hold the provider's
/// configuration including secrets: never render them to API clients.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChannelRecord {
    /// UUID; routes accept the id or the key.
    pub id: String,
    pub key: String,
    pub name: String,
    /// `email sms push chat in_app_feed http`.
    pub channel_type: String,
    /// Provider name, e.g. `smtp`, `sendgrid`, `twilio`, `fcm`, `apns`, `slack`, `webhook`, `knock` (in-app).
    pub provider: String,
    pub settings: serde_json::Value,
    /// Sandbox channels record messages as `not_sent` without calling the provider.
    pub sandbox: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
}

pub trait Backend: Send + Sync + 'static {
    /// The shard that owns `recipient_key` (`user_id`, or `collection/id` for objects and tenants).
    fn shard_for(&self, recipient_key: &str) -> ShardId;

    /// Every shard of the cluster, for environment-wide lists (scatter/gather).
    fn shards(&self) -> Vec<ShardId>;

    /// Apply `cmd` on `shard`. Resolves once the command is committed on a quorum (fsynced) and applied;
    /// the reply is what `herald_shard::apply` returned.
    fn write(&self, shard: ShardId, cmd: ShardCommand) -> BoxFuture<'_, Result<ShardReply, Error>>;

    /// Linearizable read on `shard`: sees every write acknowledged before it was issued.
    fn read(&self, shard: ShardId, query: ShardQuery) -> BoxFuture<'_, Result<ShardReply, Error>>;

    /// The shard holding a message, recipient run or other Herald id (`None`: not a Herald id).
    fn shard_for_id(&self, id: &str) -> Option<ShardId> {
        let slot = herald_shard::ids::slot_of_id(id)?;
        Some(herald_shard::shard_of_slot(
            slot,
            self.shards().len() as u32,
        ))
    }

    /// Every channel, ordered by key (a local read of the meta group).
    fn channels(&self) -> Vec<ChannelRecord>;

    /// A channel by id or key.
    fn channel(&self, id_or_key: &str) -> Option<ChannelRecord> {
        self.channels()
            .into_iter()
            .find(|c| c.id == id_or_key || c.key == id_or_key)
    }

    /// A workflow's current record (a local read of the meta group).
    fn workflow(&self, key: &str) -> Option<Arc<WorkflowRecord>>;

    /// Every workflow, ordered by key.
    fn workflows(&self) -> Vec<WorkflowRecord>;

    /// One version of a workflow, compiled (cached).
    fn compiled_workflow(&self, key: &str, version: u64) -> Option<Arc<CompiledWorkflow>>;

    /// Write to the catalog (workflows, channels). Resolves once committed and applied on this
    /// node, so the local reads above see it.
    fn catalog_write(&self, cmd: MetaCommand) -> BoxFuture<'_, Result<(), Error>>;

    /// Evaluate a trigger's recipients on `shard` (its leader evaluates and records the runs).
    /// Reply: `ShardReply::Runs(RunsReply::Recorded)`.
    fn trigger(
        &self,
        shard: ShardId,
        trigger: ShardTrigger,
    ) -> BoxFuture<'_, Result<ShardReply, Error>>;

    /// The environment's API keys (a local read of the meta group).
    fn api_keys(&self) -> Option<ApiKeys>;

    /// Store a small cluster-wide JSON record (e.g. table `bulk_operations`) in the meta group.
    fn meta_put(
        &self,
        table: &str,
        key: &str,
        value: serde_json::Value,
    ) -> BoxFuture<'_, Result<(), Error>>;

    /// Read a record written with [`Backend::meta_put`]; sees every acknowledged `meta_put`.
    fn meta_get(
        &self,
        table: &str,
        key: &str,
    ) -> BoxFuture<'_, Result<Option<serde_json::Value>, Error>>;
}
