//! The openraft type configuration shared by every group on a node.
//!
//! Payloads are opaque bytes: herald-raft replicates and stores them, the application (herald-node)
//! decodes them in its [`crate::StateMachineLogic`]. Every group (meta and shards) uses the same
//! type config, so one log store, one network and one registry serve them all.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Raft group: `0` is the meta group, shard `s` is group `s + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(pub u32);

impl GroupId {
    pub const META: GroupId = GroupId(0);

    pub fn shard(shard: u32) -> GroupId {
        GroupId(shard + 1)
    }

    /// The shard this group replicates, or `None` for the meta group.
    pub fn as_shard(self) -> Option<u32> {
        self.0.checked_sub(1)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_shard() {
            None => write!(f, "meta"),
            Some(s) => write!(f, "shard-{s}"),
        }
    }
}

/// An application command (request) or its reply, encoded by the application.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload(pub Vec<u8>);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Herald's Raft types. `Node::addr` is the node's QUIC peer address.
    pub TypeConfig:
        D = Payload,
        R = Payload,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = crate::storage::SnapshotData,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
