//! The one place a failure becomes a gRPC status: node errors and rejected outcomes
//! (`ApiError`) turn into a code, a message for people and a machine-readable
//! `ErrorDetail` (reason, where to retry, whether it may have applied, the leader) for
//! clients. Every service of the client API and the Raft listener's forwarded calls
//! go through `status`.

use tonic::{Code, Status};
use waymark_proto::errors::{Applied, ErrorDetail, Reason, Retry};
use waymark_proto::ValidationError;

use crate::acl::AclError;
use crate::model::CasMismatch;
use crate::node::{Node, NodeError};

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A compare-and-set that did not hold, on the named record.
    #[error("{}", cas_message(.record, .mismatch))]
    CasMismatch {
        record: String,
        mismatch: CasMismatch,
    },
    /// The named record does not exist (`what` says which, and at what index).
    #[error("{0}")]
    NotFound(String),
    /// The caller is not authenticated, or not allowed the call.
    #[error(transparent)]
    Acl(#[from] AclError),
    /// A watch's token was deleted or expired while the stream was open.
    #[error("{0}")]
    TokenRevoked(String),
    /// The request cannot succeed as things are (ACLs already bootstrapped).
    #[error("{0}")]
    Conflict(String),
    /// A per-caller limit refused the call (`[limits]`); nothing was done.
    #[error("{0}")]
    Limited(String),
    /// A login's auth method has a `jwks_url` this node has not fetched keys from yet.
    #[error("login unavailable: {0}")]
    JwksUnavailable(#[from] crate::acl::jwks::Unavailable),
    /// The mesh CA has no root yet.
    #[error("{0}")]
    CaNotReady(String),
}

impl ApiError {
    pub fn cas(record: String, mismatch: CasMismatch) -> Self {
        ApiError::CasMismatch { record, mismatch }
    }
}

/// Why a compare-and-set did not commit, e.g. `instance web/web-1 has modify index 42,
/// expected 40`.
fn cas_message(record: &str, m: &CasMismatch) -> String {
    let expected = m.expected;
    match m.current {
        None => format!("{record} does not exist, expected {expected}"),
        Some(current) if expected == 0 => {
            format!("{record} already exists with modify index {current}, expected 0 (absent)")
        }
        Some(current) => format!("{record} has modify index {current}, expected {expected}"),
    }
}

/// The code and detail for a node error.
fn node_error_detail(e: &NodeError) -> (Code, ErrorDetail) {
    use Applied::{Maybe, No};
    let d = ErrorDetail::new;
    match e {
        NodeError::NoLeader { .. } => {
            (Code::Unavailable, d(Reason::NoLeader, Retry::OtherNode, No))
        }
        NodeError::Timeout { applied, .. } => {
            (Code::Unavailable, d(Reason::Timeout, Retry::Here, *applied))
        }
        NodeError::TooStale { .. } => (
            Code::Unavailable,
            d(Reason::StaleRefused, Retry::OtherNode, No),
        ),
        NodeError::Behind { .. } => (
            Code::Unavailable,
            d(Reason::NodeBehind, Retry::OtherNode, No),
        ),
        NodeError::LeaderUnreachable { applied, .. } => (
            Code::Unavailable,
            d(Reason::LeaderUnavailable, Retry::Here, *applied),
        ),
        NodeError::Leader { status, .. } => match ErrorDetail::from_status(status) {
            // The leader's own edge already classified it.
            Some(detail) => (status.code(), detail),
            // A status without detail comes from the transport: the call to the
            // leader failed on the way, after it may have been delivered.
            None => (
                Code::Unavailable,
                d(Reason::LeaderUnavailable, Retry::Here, Maybe),
            ),
        },
        NodeError::QuorumLost(_) => (
            Code::Unavailable,
            d(Reason::LeaderUnavailable, Retry::Here, No),
        ),
        NodeError::Membership(_) => (
            Code::FailedPrecondition,
            d(Reason::Membership, Retry::Never, No),
        ),
        NodeError::ShuttingDown => (
            Code::Unavailable,
            d(Reason::ShuttingDown, Retry::OtherNode, Maybe),
        ),
        NodeError::Internal(_) => (Code::Internal, d(Reason::Internal, Retry::Never, Maybe)),
        NodeError::Invalid(v) => (
            Code::InvalidArgument,
            ErrorDetail::invalid_argument(&v.field),
        ),
    }
}

/// The status for `e`, with the leader `node` knows of attached to its detail.
pub fn status(node: &Node, e: impl Into<ApiError>) -> Status {
    let e = e.into();
    let (code, detail) = match &e {
        ApiError::Node(n) => node_error_detail(n),
        ApiError::Invalid(v) => (
            Code::InvalidArgument,
            ErrorDetail::invalid_argument(&v.field),
        ),
        ApiError::CasMismatch { .. } => (
            Code::FailedPrecondition,
            ErrorDetail::new(Reason::CasMismatch, Retry::Never, Applied::No),
        ),
        ApiError::NotFound(_) => (
            Code::NotFound,
            ErrorDetail::new(Reason::NotFound, Retry::Never, Applied::No),
        ),
        ApiError::Acl(AclError::Unauthenticated(_)) => (
            Code::Unauthenticated,
            ErrorDetail::new(Reason::Unauthenticated, Retry::Never, Applied::No),
        ),
        ApiError::Acl(AclError::Denied { .. }) => (
            Code::PermissionDenied,
            ErrorDetail::new(Reason::PermissionDenied, Retry::Never, Applied::No),
        ),
        ApiError::TokenRevoked(_) => (
            Code::PermissionDenied,
            ErrorDetail::new(Reason::PermissionDenied, Retry::Never, Applied::No),
        ),
        ApiError::Conflict(_) => (
            Code::FailedPrecondition,
            ErrorDetail::new(Reason::Conflict, Retry::Never, Applied::No),
        ),
        ApiError::Limited(_) => (
            Code::ResourceExhausted,
            ErrorDetail::new(Reason::ResourceExhausted, Retry::Here, Applied::No),
        ),
        ApiError::JwksUnavailable(_) => (
            Code::Unavailable,
            ErrorDetail::new(Reason::JwksUnavailable, Retry::Here, Applied::No),
        ),
        ApiError::CaNotReady(_) => (
            Code::Unavailable,
            ErrorDetail::new(Reason::CaNotReady, Retry::Here, Applied::No),
        ),
    };
    let detail = if detail.leader_id.is_some() {
        detail
    } else {
        let view = node.view();
        detail.with_leader(
            view.leader.as_ref().map(|(id, _)| *id),
            Some(view.leader_api_addr()),
        )
    };
    detail.status(code, e.to_string())
}

/// Counts the call in the metrics and turns its failure into a status: how every
/// unary handler of the client API ends.
pub fn respond<T>(
    node: &Node,
    method: &'static str,
    result: Result<T, ApiError>,
) -> Result<tonic::Response<T>, Status> {
    node.metrics
        .observe(method, result.map_err(|e| status(node, e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_mismatch_names_the_record_and_both_indexes() {
        let m = |current, expected| CasMismatch { current, expected };
        let msg = |current, expected| {
            ApiError::cas("instance jepsen/k1".into(), m(current, expected)).to_string()
        };
        assert_eq!(
            msg(Some(42), 40),
            "instance jepsen/k1 has modify index 42, expected 40"
        );
        assert_eq!(
            msg(None, 40),
            "instance jepsen/k1 does not exist, expected 40"
        );
        assert_eq!(
            msg(Some(42), 0),
            "instance jepsen/k1 already exists with modify index 42, expected 0 (absent)"
        );
    }

    #[test]
    fn a_leader_status_keeps_the_leaders_classification() {
        let from_leader = ErrorDetail::new(Reason::CasMismatch, Retry::Never, Applied::No)
            .status(Code::FailedPrecondition, "cas");
        let e = NodeError::Leader {
            leader_id: 1,
            addr: "x".into(),
            status: from_leader,
        };
        let (code, detail) = node_error_detail(&e);
        assert_eq!(code, Code::FailedPrecondition);
        assert_eq!(detail.reason, Reason::CasMismatch);
        // A bare transport failure on the way to the leader may have been delivered.
        let e = NodeError::Leader {
            leader_id: 1,
            addr: "x".into(),
            status: Status::unavailable("connection reset"),
        };
        let (_, detail) = node_error_detail(&e);
        assert_eq!(
            (detail.reason, detail.applied),
            (Reason::LeaderUnavailable, Applied::Maybe)
        );
    }
}
