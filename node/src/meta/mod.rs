//! The meta group (Raft group 0, on every node): what every node needs locally.
//!
//! Holds the cluster's shape (shard count, replication factor), its members, the API keys, the
//! cluster CA (so any member can issue a joining node's certificate) and small cluster-wide records
//! (bulk operations today; workflows and channels later). Placement is *derived*, never stored:
//! shard `s` lives on the top-R members by rendezvous hashing (`herald_shard::rendezvous_replicas`),
//! so every node computes the same answer from the same applied member list.
//!
//! Reads are local ([`MetaView`]); writes are [`MetaCommand`]s proposed to the meta leader.
//!
//! # Correctness
//! [`MetaLogic::apply`] is deterministic: it reads only the command and the applied state; the
//! timestamp comes from the leader-stamped [`MetaEntry`].

mod catalog;
mod keys;
mod view;

use herald_raft::transport::ClusterCa;
use herald_raft::{GroupBatch, GroupState, StateMachineLogic};
use serde::{Deserialize, Serialize};

use crate::backend::ApiKeys;
pub use catalog::{WorkflowRecord, WORKFLOWS_TABLE, WORKFLOW_VERSIONS_TABLE};
pub use view::{ChannelCache, MetaView};

/// Meta table of [`crate::backend::ChannelRecord`]s, keyed by channel key.
pub const CHANNELS_TABLE: &str = "channels";

/// Fixed at bootstrap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub shards: u32,
    pub replication: u32,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    /// HTTP address clients and operators use.
    pub http: String,
    /// QUIC address for Raft and forwarding.
    pub peer: String,
    pub joined_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetaCommand {
    /// The first entry of a cluster's life.
    Bootstrap {
        info: ClusterInfo,
        keys: ApiKeys,
        ca: ClusterCa,
    },
    /// Add a member, or update its addresses (idempotent).
    AddNode {
        id: u64,
        http: String,
        peer: String,
    },
    RemoveNode {
        id: u64,
    },
    /// Create or change a workflow: a definition different from the current one becomes the next
    /// version (1, 2, ...); the same definition changes nothing. New workflows start active.
    PutWorkflow {
        key: String,
        definition_json: String,
    },
    /// Activate or deactivate a workflow. Rejected when the workflow does not exist.
    ActivateWorkflow {
        key: String,
        active: bool,
    },
    /// Create or replace a channel (a [`crate::backend::ChannelRecord`] as JSON), keyed by its key.
    /// Rejected when another channel already has its id.
    PutChannel {
        channel_json: String,
    },
    /// A small JSON record (`value_json`) in a named table.
    PutRecord {
        table: String,
        key: String,
        value_json: String,
    },
}

/// One meta log entry: the leader's clock plus the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaEntry {
    pub now_ms: u64,
    pub cmd: MetaCommand,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    Ok,
    Rejected(String),
}

pub struct MetaLogic;

impl MetaLogic {
    fn apply_entry(state: &mut GroupBatch<'_>, entry: MetaEntry) -> MetaReply {
        match entry.cmd {
            MetaCommand::Bootstrap {
                info,
                keys: api_keys,
                ca,
            } => {
                if matches!(state.get(&keys::info()), Ok(Some(_))) {
                    return MetaReply::Rejected("cluster already bootstrapped".into());
                }
                state.put(&keys::info(), &to_json(&info));
                state.put(&keys::api_keys(), &to_json(&api_keys));
                state.put(&keys::ca(), &to_json(&ca));
                MetaReply::Ok
            }
            MetaCommand::AddNode { id, http, peer } => {
                let joined_ms = match state.get(&keys::member(id)) {
                    Ok(Some(raw)) => serde_json::from_slice::<Member>(&raw)
                        .map(|m| m.joined_ms)
                        .unwrap_or(entry.now_ms),
                    _ => entry.now_ms,
                };
                let member = Member {
                    id,
                    http,
                    peer,
                    joined_ms,
                };
                state.put(&keys::member(id), &to_json(&member));
                MetaReply::Ok
            }
            MetaCommand::RemoveNode { id } => {
                state.delete(&keys::member(id));
                MetaReply::Ok
            }
            MetaCommand::PutWorkflow {
                key,
                definition_json,
            } => catalog::put_workflow(state, entry.now_ms, &key, &definition_json),
            MetaCommand::ActivateWorkflow { key, active } => {
                catalog::activate_workflow(state, entry.now_ms, &key, active)
            }
            MetaCommand::PutChannel { channel_json } => {
                catalog::put_channel(state, entry.now_ms, &channel_json)
            }
            MetaCommand::PutRecord {
                table,
                key,
                value_json,
            } => {
                if serde_json::from_str::<serde_json::Value>(&value_json).is_err() {
                    return MetaReply::Rejected("record is not JSON".into());
                }
                state.put(&keys::record(&table, &key), value_json.as_bytes());
                MetaReply::Ok
            }
        }
    }
}

impl StateMachineLogic for MetaLogic {
    fn apply(&self, state: &mut GroupBatch<'_>, payload: &[u8]) -> Vec<u8> {
        let reply = match crate::codec::decode::<MetaEntry>(payload) {
            Ok(entry) => Self::apply_entry(state, entry),
            Err(e) => MetaReply::Rejected(format!("undecodable meta entry: {e}")),
        };
        crate::codec::encode(&reply).unwrap_or_default()
    }
}

/// Meta values are JSON: small, and readable with RocksDB's `ldb` when debugging.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // These are plain structs of strings and integers: serializing them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
