//! The machine-readable detail every Waymark error status carries: why the call failed,
//! where (if anywhere) to retry it, and whether it may have taken effect.
//!
//! It travels as a standard `google.rpc.ErrorInfo` in the status details (domain
//! [`ERROR_DOMAIN`], `reason` one of [`Reason`], the rest in `metadata`), so any gRPC
//! client can read it; [`ErrorDetail`] is the typed view the server builds and
//! `waymark-client` reads. Clients act on this, never on message text.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every Waymark error.
pub const ERROR_DOMAIN: &str = "waymark.io";

/// The proximate cause (`ErrorInfo.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The serving node knows no leader (an election, or no quorum).
    NoLeader,
    /// The leader could not be reached, or did not answer in time, or lost its quorum.
    LeaderUnavailable,
    /// The request did not complete within the server's request timeout.
    Timeout,
    /// A STALE read refused by its `max_stale_ms` bound.
    StaleRefused,
    /// This node has not applied up to an index the client has already seen.
    NodeBehind,
    /// A compare-and-set whose expected modify index did not hold.
    CasMismatch,
    /// A request field broke a rule (`field` names it).
    InvalidArgument,
    /// The named record does not exist.
    NotFound,
    /// A membership change that cannot be made.
    Membership,
    /// The node is shutting down.
    ShuttingDown,
    /// A bug or storage failure on the server.
    Internal,
    /// The request carried no token where one is required, or an unknown or expired
    /// one.
    Unauthenticated,
    /// The token is valid but its policies do not allow the call (the message names
    /// the rule that is missing).
    PermissionDenied,
    /// The request conflicts with what exists and cannot succeed as it is (ACLs
    /// already bootstrapped).
    Conflict,
    /// A per-caller limit (request rate, open watch streams) was reached; nothing was
    /// done. Back off and retry on the same node.
    ResourceExhausted,
    /// A login's auth method gets its keys from a JWKS URL that this node could not
    /// fetch yet (the message names the URL and the error). Retry here after a
    /// backoff; nothing was done.
    JwksUnavailable,
    /// The mesh CA has no root yet (the leader creates one just after the cluster
    /// forms). Retry here after a backoff; nothing was done.
    CaNotReady,
}

impl Reason {
    const ALL: [Reason; 17] = [
        Reason::NoLeader,
        Reason::LeaderUnavailable,
        Reason::Timeout,
        Reason::StaleRefused,
        Reason::NodeBehind,
        Reason::CasMismatch,
        Reason::InvalidArgument,
        Reason::NotFound,
        Reason::Membership,
        Reason::ShuttingDown,
        Reason::Internal,
        Reason::Unauthenticated,
        Reason::PermissionDenied,
        Reason::Conflict,
        Reason::ResourceExhausted,
        Reason::JwksUnavailable,
        Reason::CaNotReady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoLeader => "NO_LEADER",
            Reason::LeaderUnavailable => "LEADER_UNAVAILABLE",
            Reason::Timeout => "TIMEOUT",
            Reason::StaleRefused => "STALE_REFUSED",
            Reason::NodeBehind => "NODE_BEHIND",
            Reason::CasMismatch => "CAS_MISMATCH",
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::NotFound => "NOT_FOUND",
            Reason::Membership => "MEMBERSHIP",
            Reason::ShuttingDown => "SHUTTING_DOWN",
            Reason::Internal => "INTERNAL",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::Conflict => "CONFLICT",
            Reason::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Reason::JwksUnavailable => "JWKS_UNAVAILABLE",
            Reason::CaNotReady => "CA_NOT_READY",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What the caller should do next (`metadata["retry"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retry {
    /// Retry on the same node (after a backoff).
    Here,
    /// Try another node.
    OtherNode,
    /// Go to the leader (`leader_api_addr`, when known), or any node after a backoff.
    Leader,
    /// Do not retry: the request itself is wrong, or its precondition failed.
    Never,
}

impl Retry {
    pub fn as_str(self) -> &'static str {
        match self {
            Retry::Here => "here",
            Retry::OtherNode => "other-node",
            Retry::Leader => "leader",
            Retry::Never => "never",
        }
    }

    pub fn parse(s: &str) -> Option<Retry> {
        [Retry::Here, Retry::OtherNode, Retry::Leader, Retry::Never]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Whether a failed write may have taken effect (`metadata["applied"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Applied {
    /// Definitely not: it was refused before it was proposed, or it was applied and
    /// changed nothing (a compare-and-set mismatch).
    No,
    /// Perhaps: it was proposed and its outcome is not known (a timeout, a lost
    /// leader). Only a later read can tell.
    Maybe,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::No => "no",
            Applied::Maybe => "maybe",
        }
    }

    pub fn parse(s: &str) -> Option<Applied> {
        match s {
            "no" => Some(Applied::No),
            "maybe" => Some(Applied::Maybe),
            _ => None,
        }
    }
}

/// The typed error detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    pub reason: Reason,
    pub retry: Retry,
    pub applied: Applied,
    /// The leader the serving node knows of, if any.
    pub leader_id: Option<u64>,
    /// Its client API address, if known.
    pub leader_api_addr: Option<String>,
    /// For `InvalidArgument`: the request field, as named in the message.
    pub field: Option<String>,
}

impl ErrorDetail {
    pub fn new(reason: Reason, retry: Retry, applied: Applied) -> Self {
        Self {
            reason,
            retry,
            applied,
            leader_id: None,
            leader_api_addr: None,
            field: None,
        }
    }

    /// A request that is wrong in itself: never retried, never applied.
    pub fn invalid_argument(field: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(Reason::InvalidArgument, Retry::Never, Applied::No)
        }
    }

    pub fn with_leader(mut self, leader_id: Option<u64>, api_addr: Option<String>) -> Self {
        self.leader_id = leader_id;
        self.leader_api_addr = api_addr.filter(|a| !a.is_empty());
        self
    }

    /// The status carrying this detail.
    pub fn status(&self, code: Code, message: impl Into<String>) -> Status {
        let mut metadata = HashMap::new();
        metadata.insert("retry".to_string(), self.retry.as_str().to_string());
        metadata.insert("applied".to_string(), self.applied.as_str().to_string());
        if let Some(id) = self.leader_id {
            metadata.insert("leader_id".to_string(), id.to_string());
        }
        if let Some(addr) = &self.leader_api_addr {
            metadata.insert("leader_api_addr".to_string(), addr.clone());
        }
        if let Some(field) = &self.field {
            metadata.insert("field".to_string(), field.clone());
        }
        Status::with_error_details(
            code,
            message,
            ErrorDetails::with_error_info(self.reason.as_str(), ERROR_DOMAIN, metadata),
        )
    }

    /// The detail a Waymark status carries; `None` for a status without one (from a
    /// proxy in between, the transport, or a server that predates details).
    pub fn from_status(status: &Status) -> Option<ErrorDetail> {
        let details = status.get_error_details();
        let info = details.error_info()?;
        if info.domain != ERROR_DOMAIN {
            return None;
        }
        let get = |k: &str| info.metadata.get(k).map(String::as_str);
        Some(ErrorDetail {
            reason: Reason::parse(&info.reason)?,
            retry: Retry::parse(get("retry")?)?,
            applied: Applied::parse(get("applied")?)?,
            leader_id: get("leader_id").and_then(|s| s.parse().ok()),
            leader_api_addr: get("leader_api_addr").map(str::to_string),
            field: get("field").map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_survives_the_status_round_trip() {
        let detail = ErrorDetail::new(Reason::NoLeader, Retry::OtherNode, Applied::No)
            .with_leader(Some(2), Some("10.0.0.2:8500".into()));
        let status = detail.status(Code::Unavailable, "no leader");
        // Rebuilt from the details bytes alone, as a client receives them.
        let received = Status::with_details(
            status.code(),
            status.message(),
            status.details().to_vec().into(),
        );
        assert_eq!(ErrorDetail::from_status(&received), Some(detail));
    }

    #[test]
    fn invalid_argument_names_the_field() {
        let status = ErrorDetail::invalid_argument("key").status(Code::InvalidArgument, "bad");
        let got = ErrorDetail::from_status(&status).unwrap();
        assert_eq!(got.reason, Reason::InvalidArgument);
        assert_eq!(got.retry, Retry::Never);
        assert_eq!(got.field.as_deref(), Some("key"));
    }

    #[test]
    fn a_status_without_detail_has_none() {
        assert_eq!(ErrorDetail::from_status(&Status::unavailable("x")), None);
    }

    #[test]
    fn every_reason_parses_back() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
    }
}
