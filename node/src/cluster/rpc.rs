//! Requests one node sends another over QUIC (inside herald-raft's `WireRequest::App`).

use herald_shard::{ShardCommand, ShardId, ShardQuery, ShardReply};
use serde::{Deserialize, Serialize};

use crate::meta::{MetaCommand, MetaReply};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeRequest {
    /// Propose `cmd` on `shard` (the receiver must lead it).
    ShardWrite { shard: ShardId, cmd: ShardCommand },
    /// Linearizable read on `shard` (the receiver must lead it).
    ShardRead { shard: ShardId, query: ShardQuery },
    /// Evaluate a trigger's recipients on `shard` and record the runs (the receiver must lead it).
    ShardTrigger {
        shard: ShardId,
        trigger: crate::workflows::ShardTrigger,
    },
    /// Propose a meta command (the receiver must lead the meta group).
    MetaWrite { cmd: MetaCommand },
    /// Linearizable barrier on the meta group, then read a record.
    MetaRead { table: String, key: String },
    /// The receiver's view of `shard`'s Raft membership and leader.
    GroupStatus { shard: ShardId },
    /// Leadership hand-off: the leader of `shard` stopped proposing and the receiver holds its
    /// whole log; the receiver starts an election at once. Replies with its view of the group.
    Campaign { shard: ShardId },
}

/// A Raft group as one replica sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub leader: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeReply {
    Shard(ShardReply),
    /// A meta write's reply and the log index it was applied at.
    Meta {
        reply: MetaReply,
        index: u64,
    },
    /// A meta record as JSON text, if present.
    Record(Option<String>),
    Status(Option<GroupStatus>),
    /// The receiver does not lead the group; `leader` is its best knowledge.
    NotLeader {
        leader: Option<u64>,
    },
    /// Anything else; `retryable` tells whether another attempt may succeed.
    Failed {
        retryable: bool,
        message: String,
    },
}
