//! The openraft type configuration: what a log entry carries (`Command`), what applying
//! it returns (`CommandResult`), and what a cluster member is (`Member`).

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::catalog::{Health, InstanceRecord, LeaseRecord, NewInstance};

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

/// A state-machine command: the payload of a normal log entry. Commands are validated
/// before they are proposed; applying one is deterministic and never fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Register(NewInstance),
    Deregister {
        service: String,
        id: String,
    },
    UpdateHealth {
        service: String,
        id: String,
        health: Health,
        output: String,
    },
    /// The new lease's id is this entry's log index.
    CreateLease {
        ttl_ms: u64,
    },
    /// Proposed by the leader when a lease expires, or by a client revoking it.
    EndLease {
        lease_id: u64,
        reason: String,
    },
    /// Proposed by the leader once an instance has been critical for its
    /// `deregister_critical_after`; a no-op if it changed since (`if_modify_index`).
    ReapCritical {
        service: String,
        id: String,
        if_modify_index: u64,
    },
}

/// What applying one log entry produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// A blank or membership entry.
    None,
    Registered(InstanceRecord),
    Deregistered {
        removed: bool,
    },
    HealthUpdated(InstanceRecord),
    InstanceNotFound,
    LeaseCreated(LeaseRecord),
    LeaseEnded {
        existed: bool,
    },
    LeaseNotFound(u64),
    /// A compare-and-set registration whose expectation did not hold; nothing changed.
    /// `current` is the instance's modify index (`None`: it does not exist).
    PreconditionFailed {
        current: Option<u64>,
        expected: u64,
    },
}

openraft::declare_raft_types!(
    /// Waymark's Raft types.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Member>;
