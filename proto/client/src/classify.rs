//! What a failed call means for the caller: retry here, on another node, at the leader,
//! or never; and whether a write may have taken effect. Read from the server's
//! machine-readable detail when it sent one, otherwise from where the error was made
//! and its gRPC code. Never from message text.

use std::error::Error as _;

use tonic::{Code, Status};
use waymark_proto::errors::{Applied, ErrorDetail, Reason, Retry};

/// Where a classification came from, so a caller that must be sure (the Jepsen
/// harness) can tell the server's word from this crate's fallback guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The server's `ErrorDetail`.
    Detail,
    /// Made on this side: the connection could not be opened, so nothing was sent.
    ConnectFailed,
    /// Made on this side after the request may have left: connection lost mid-call,
    /// the request timeout, a broken response.
    Transport,
    /// A status from the server (or something in between) without a detail: only its
    /// code is known.
    CodeOnly,
}

/// A failed call, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub retry: Retry,
    pub applied: Applied,
    pub origin: Origin,
    /// The server's reason, when it sent a detail.
    pub reason: Option<Reason>,
    /// The leader's client API address, when the server named it.
    pub leader_api_addr: Option<String>,
}

impl Failure {
    /// Whether trying again is sensible at all (ignoring whether it is safe).
    pub fn is_retryable(&self) -> bool {
        self.retry != Retry::Never
    }

    /// Whether the call can be sent again: retryable, and either it definitely did not
    /// take effect or doing it twice is harmless (`idempotent`).
    pub fn may_resend(&self, idempotent: bool) -> bool {
        self.is_retryable() && (idempotent || self.applied == Applied::No)
    }

    /// Definitely not applied, on the server's word or because nothing was sent.
    /// A code-only fallback does not count: an old server's code says too little.
    pub fn certainly_not_applied(&self) -> bool {
        self.applied == Applied::No && matches!(self.origin, Origin::Detail | Origin::ConnectFailed)
    }
}

/// Classifies a failed call.
pub fn classify(status: &Status) -> Failure {
    if let Some(d) = ErrorDetail::from_status(status) {
        return Failure {
            retry: d.retry,
            applied: d.applied,
            origin: Origin::Detail,
            reason: Some(d.reason),
            leader_api_addr: d.leader_api_addr,
        };
    }
    let (retry, applied, origin) = if status.source().is_some() {
        // A status with a source error was made by tonic on this side.
        if made_by_failed_connect(status) {
            (Retry::OtherNode, Applied::No, Origin::ConnectFailed)
        } else {
            (Retry::OtherNode, Applied::Maybe, Origin::Transport)
        }
    } else {
        let (retry, applied) = by_code(status.code());
        (retry, applied, Origin::CodeOnly)
    };
    Failure {
        retry,
        applied,
        origin,
        reason: None,
        leader_api_addr: None,
    }
}

/// Whether tonic's connector failed (refused, unreachable, connect timeout): the
/// request never left this process.
fn made_by_failed_connect(status: &Status) -> bool {
    let mut next = status.source();
    while let Some(e) = next {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The fallback for a status without a detail. The request codes (the request itself
/// is wrong, or its precondition failed) are final and had no effect; everything else
/// is a server or network condition after which a write may have happened.
fn by_code(code: Code) -> (Retry, Applied) {
    match code {
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::AlreadyExists
        | Code::OutOfRange
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Unimplemented => (Retry::Never, Applied::No),
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Aborted
        | Code::Unknown => (Retry::OtherNode, Applied::Maybe),
        Code::ResourceExhausted | Code::Internal | Code::DataLoss | Code::Ok => {
            (Retry::Never, Applied::Maybe)
        }
    }
}

/// The canonical gRPC code names, as in the API docs (tonic's `Display` gives prose).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `CODE: message`, then, for a status made on this side, its causes (each once:
/// transport errors nest the same text more than once).
pub fn status_text(status: &Status) -> String {
    let mut text = code_name(status.code()).to_string();
    if !status.message().is_empty() {
        text.push_str(": ");
        text.push_str(status.message());
    }
    let mut last = status.message().to_string();
    let mut next = status.source();
    while let Some(e) = next {
        let part = e.to_string();
        if part != last {
            text.push_str(": ");
            text.push_str(&part);
        }
        last = part;
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_detail(reason: Reason, retry: Retry, applied: Applied, code: Code) -> Status {
        let s = ErrorDetail::new(reason, retry, applied).status(code, "x");
        // As a client receives it: from the details bytes alone.
        Status::with_details(s.code(), s.message(), s.details().to_vec().into())
    }

    #[test]
    fn the_detail_decides_when_present() {
        let s = with_detail(
            Reason::NoLeader,
            Retry::OtherNode,
            Applied::No,
            Code::Unavailable,
        );
        let f = classify(&s);
        assert_eq!(
            (f.retry, f.applied, f.origin),
            (Retry::OtherNode, Applied::No, Origin::Detail)
        );
        assert_eq!(f.reason, Some(Reason::NoLeader));
        assert!(f.certainly_not_applied());
        assert!(f.may_resend(false));

        let s = with_detail(
            Reason::Timeout,
            Retry::Here,
            Applied::Maybe,
            Code::Unavailable,
        );
        let f = classify(&s);
        assert!(!f.certainly_not_applied());
        assert!(
            !f.may_resend(false),
            "a maybe-applied write is not resent blindly"
        );
        assert!(f.may_resend(true));

        let s = with_detail(
            Reason::CasMismatch,
            Retry::Never,
            Applied::No,
            Code::FailedPrecondition,
        );
        let f = classify(&s);
        assert!(f.certainly_not_applied());
        assert!(!f.is_retryable());
    }

    #[test]
    fn leader_address_is_carried() {
        let s = ErrorDetail::new(Reason::LeaderUnavailable, Retry::Leader, Applied::No)
            .with_leader(Some(2), Some("10.0.0.2:8500".into()))
            .status(Code::Unavailable, "go there");
        assert_eq!(
            classify(&s).leader_api_addr.as_deref(),
            Some("10.0.0.2:8500")
        );
    }

    #[test]
    fn without_a_detail_only_the_code_counts() {
        // The message says "no leader", but text is never read.
        let f = classify(&Status::unavailable("no leader is known to node 1"));
        assert_eq!(
            (f.retry, f.applied, f.origin),
            (Retry::OtherNode, Applied::Maybe, Origin::CodeOnly)
        );
        let f = classify(&Status::invalid_argument("bad"));
        assert_eq!((f.retry, f.applied), (Retry::Never, Applied::No));
        assert!(
            !f.certainly_not_applied(),
            "a guess from the code is not certainty"
        );
        assert!(!classify(&Status::not_found("no lease")).is_retryable());
        assert!(classify(&Status::cancelled("reset")).is_retryable());
    }

    #[tokio::test]
    async fn a_refused_connection_is_certainly_not_applied() {
        // A port nothing listens on: bind one, learn it, close it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_lazy();
        let mut client = waymark_proto::pb::cluster_client::ClusterClient::new(channel);
        let status = client
            .status(waymark_proto::pb::StatusRequest {})
            .await
            .unwrap_err();
        let f = classify(&status);
        assert_eq!(f.origin, Origin::ConnectFailed);
        assert!(f.certainly_not_applied());
        assert!(status_text(&status).starts_with("UNAVAILABLE"));
    }

    #[test]
    fn code_names_are_canonical() {
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
        assert_eq!(
            status_text(&Status::not_found("no instance web/web-1")),
            "NOT_FOUND: no instance web/web-1"
        );
        assert_eq!(status_text(&Status::cancelled("")), "CANCELLED");
    }
}
