//! The openraft type configuration: a log entry carries a `model::Command`, applying it
//! returns a `model::CommandResult`, and a cluster member is a `Member`.

use openraft::type_config::alias;
use serde::{Deserialize, Serialize};

use crate::model::{Command, CommandResult};

/// Node ids are small positive integers chosen by the operator.
pub type NodeId = u64;

/// A cluster member as stored in Raft membership: where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Client gRPC API address.
    pub api_addr: String,
    /// Raft transport address.
    pub raft_addr: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "raft={} api={}", self.raft_addr, self.api_addr)
    }
}

openraft::declare_raft_types!(
    /// Waymark's Raft types. The leader id is openraft's default (term, node id), the
    /// one 0.9 used, so stored log ids and votes keep their bytes
    /// (`store/format_golden.rs`).
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = Member,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A snapshot is sent from and received into a file chunk by chunk, never held whole
/// in memory for the transfer (`store::snapshot_file`).
pub type SnapshotData = tokio::fs::File;

pub type Raft = openraft::Raft<TypeConfig, crate::store::state_machine::StateMachineStore>;
pub type LogId = alias::LogIdOf<TypeConfig>;
pub type CommittedLeaderId = alias::CommittedLeaderIdOf<TypeConfig>;
pub type Entry = alias::EntryOf<TypeConfig>;
pub type Vote = alias::VoteOf<TypeConfig>;
pub type StoredMembership = alias::StoredMembershipOf<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, Member>;
pub type SnapshotMeta = alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = alias::SnapshotOf<TypeConfig, SnapshotData>;
pub type StorageError = openraft::StorageError<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;

/// The id of the entry at `index` written by the leader of `term`, node `node`.
pub fn log_id(term: u64, node: NodeId, index: u64) -> LogId {
    openraft::LogId::new(
        CommittedLeaderId {
            term,
            node_id: node,
        },
        index,
    )
}

/// Where Raft's metrics are followed (`Raft::metrics`).
pub type MetricsReceiver = alias::WatchReceiverOf<TypeConfig, RaftMetrics>;
