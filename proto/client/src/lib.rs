//! `waymark-client`: the one way a program talks to a Waymark cluster. It owns the
//! address rule, connecting with failover over a list of nodes, what a failed call
//! means (from the server's machine-readable error detail, never its message text),
//! backoff, duration flags, a watch follower that never goes back in index, and a lease
//! keeper. The CLI, the benches, the Jepsen harness and the proxy all use it; it
//! depends on `waymark-proto` only.

mod backoff;
mod channel;
mod classify;
mod client;
mod duration;
mod endpoints;
mod error;
mod leader;
mod lease;
mod tls;
mod watch;

pub use backoff::Backoff;
pub use channel::Channel;
pub use classify::{classify, code_name, status_text, Failure, Origin};
pub use client::{
    acl, catalog, cluster, config, identity, intentions, leases, CallPolicy, Client,
    ConnectOptions, MAX_MESSAGE_BYTES,
};
pub use duration::{duration_to_ms, parse_duration};
pub use endpoints::{display_addr, endpoint_uri, AddrError, Endpoints};
pub use error::ClientError;
pub use leader::{find_leader, leader_addr};
pub use lease::{keep_alive, register_with_lease, KeepAliveError, KeepAliveEvent, LeaseKeeper};
pub use tls::{crypto_provider, ClientTls};
pub use watch::{WatchCursor, WatchFollower, WatchItem};

/// Re-exported so callers match on the same types `classify` returns.
pub use waymark_proto::errors::{Applied, ErrorDetail, Reason, Retry};
