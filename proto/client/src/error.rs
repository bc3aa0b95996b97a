//! The errors of this crate: one enum, each variant naming the node it concerns.

use std::error::Error as _;

use tonic::Status;

use crate::classify::{classify, status_text, Failure, Origin};
use crate::endpoints::{display_addr, AddrError};
use crate::lease::KeepAliveError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Address(#[from] AddrError),
    /// The ACL token cannot be sent (`reason` says why); nothing was sent.
    #[error("invalid ACL token: {0}")]
    Token(String),
    /// TLS cannot be set up as asked (a CA file that is missing or not PEM, or an
    /// `https://` address without one); nothing was sent.
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection could not be opened; nothing was sent.
    #[error("could not reach a waymark node at {}", display_addr(.addr))]
    Connect {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The call failed: an answer from the server (`CODE: message`), or, for a failure
    /// made on this side, which node was being talked to and why.
    #[error("{}", rpc_text(.addr, .status))]
    Rpc {
        addr: String,
        status: Box<Status>,
        failure: Failure,
    },
    /// A stream that kept failing, or a watch that could not be resumed.
    #[error("{0}")]
    GaveUp(String),
    #[error(transparent)]
    KeepAlive(#[from] KeepAliveError),
}

impl ClientError {
    pub(crate) fn rpc(addr: &str, status: Status) -> Self {
        let failure = classify(&status);
        ClientError::Rpc {
            addr: addr.to_string(),
            status: Box::new(status),
            failure,
        }
    }

    /// The status of a failed call, if this is one.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Rpc { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The classified failure: a failed connect is a failure that applied nothing.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            ClientError::Rpc { failure, .. } => Some(failure.clone()),
            ClientError::Connect { .. } => Some(Failure {
                retry: waymark_proto::errors::Retry::OtherNode,
                applied: waymark_proto::errors::Applied::No,
                origin: crate::Origin::ConnectFailed,
                reason: None,
                leader_api_addr: None,
            }),
            _ => None,
        }
    }
}

fn rpc_text(addr: &str, status: &Status) -> String {
    let text = status_text(status);
    if status.source().is_none() {
        return text;
    }
    // A TLS port hangs up on a plaintext client, or answers with a TLS alert that h2
    // misreads as a frame: either way a transport failure after connecting.
    let hint = if addr.starts_with("http://") && classify(status).origin == Origin::Transport {
        " (if the cluster uses TLS, pass --ca-file or set WAYMARK_CACERT)"
    } else {
        ""
    };
    format!("request to {} failed: {text}{hint}", display_addr(addr))
}

/// `outer: inner: root` for an error and its sources, a cause that repeats the one
/// before it left out (hyper/tonic nest "tcp connect error" twice).
pub(crate) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}
