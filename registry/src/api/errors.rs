//! Maps node errors to gRPC statuses, once, at the API edge.

use tonic::Status;

use crate::node::NodeError;

pub fn node_error_status(e: NodeError) -> Status {
    match &e {
        NodeError::NoLeader { .. }
        | NodeError::Timeout(..)
        | NodeError::TooStale { .. }
        | NodeError::ShuttingDown => Status::unavailable(e.to_string()),
        // The leader's own answer already carries the right code.
        NodeError::Leader { status, .. } => Status::new(status.code(), e.to_string()),
        NodeError::Membership(_) => Status::failed_precondition(e.to_string()),
        NodeError::Raft(_) => Status::internal(e.to_string()),
    }
}
