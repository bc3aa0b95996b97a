//! The clients: each workload runs a few sequential client processes against the
//! cluster's public gRPC API and records every operation with its real-time interval.
//!
//! The rules every client follows (Jepsen's): one operation at a time; a write that
//! times out or loses its connection is indeterminate (`info`), never assumed to have
//! failed, and the process that ran it retires, a fresh process id taking over,
//! because a process with an operation possibly still in flight is no longer
//! sequential. Reads change nothing, so any read error is a plain failure (`fail`).

pub mod dns;
pub mod final_reads;
pub mod lease;
pub mod register;
pub mod set;
pub mod stale;
pub mod watch;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use waymark_client::Channel;
use waymark_client::{classify, Client, ConnectOptions};
use waymark_proto::pb::catalog_client::CatalogClient;
use waymark_proto::pb::leases_client::LeasesClient;
use waymark_proto::pb::{Consistency, ListInstancesRequest, ReadOptions};

use crate::cluster::ApiTargets;
use crate::history::{Event, Op, OpRecord, Outcome, Recorder};

/// A workload the user can ask for with `--workload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorkloadKind {
    Register,
    Set,
    Watch,
    Stale,
    Lease,
}

impl FromStr for WorkloadKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "register" => Self::Register,
            "set" => Self::Set,
            "watch" => Self::Watch,
            "stale" => Self::Stale,
            "lease" => Self::Lease,
            other => {
                bail!("unknown workload {other:?} (expected register, set, watch, stale or lease)")
            }
        })
    }
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Set => "set",
            Self::Watch => "watch",
            Self::Stale => "stale",
            Self::Lease => "lease",
        }
    }
}

/// The distinct workloads in a comma-separated `--workload` list.
pub fn parse_kinds(list: &str) -> anyhow::Result<Vec<WorkloadKind>> {
    let mut kinds: Vec<WorkloadKind> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<anyhow::Result<_>>()?;
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        bail!("--workload names no workload");
    }
    Ok(kinds)
}

/// What every client needs: where the nodes are, how to connect, where to record, when
/// to stop.
#[derive(Clone)]
pub struct ClientEnv {
    pub recorder: Recorder,
    /// (node, gRPC address) of every node.
    pub nodes: Vec<(u32, String)>,
    /// TLS and the ACL token, in secure runs.
    pub connect: ConnectOptions,
    pub stop: CancellationToken,
    /// How long an operation may take before the client gives up on it (`info`).
    pub op_timeout: Duration,
    process_ids: Arc<AtomicU64>,
}

impl ClientEnv {
    pub fn new(
        recorder: Recorder,
        targets: ApiTargets,
        stop: CancellationToken,
        op_timeout: Duration,
    ) -> Self {
        Self {
            recorder,
            nodes: targets.nodes,
            connect: targets.connect,
            stop,
            op_timeout,
            process_ids: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The same clients' setting under another stop token (process ids stay unique).
    pub fn with_stop(&self, stop: CancellationToken) -> Self {
        Self {
            stop,
            ..self.clone()
        }
    }

    /// The same with another operation timeout.
    pub fn with_op_timeout(&self, op_timeout: Duration) -> Self {
        Self {
            op_timeout,
            ..self.clone()
        }
    }

    /// A fresh client process id.
    pub fn next_process(&self) -> u64 {
        self.process_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The node and address client slot `slot` talks to: slots spread over nodes.
    pub fn node_for(&self, slot: usize) -> (u32, String) {
        self.nodes[slot % self.nodes.len()].clone()
    }
}

/// One sequential client process bound to one node.
pub struct Process {
    pub id: u64,
    pub node: u32,
    pub client: CatalogClient<Channel>,
    /// The Leases service over the same connection.
    pub leases: LeasesClient<Channel>,
}

impl Process {
    pub fn new(env: &ClientEnv, slot: usize) -> anyhow::Result<Self> {
        let (node, addr) = env.node_for(slot);
        let channel = Client::lazy_channel(&addr, &env.connect)?;
        Ok(Self {
            id: env.next_process(),
            node,
            client: waymark_client::catalog(channel.clone()),
            leases: waymark_client::leases(channel),
        })
    }
}

/// How an RPC ended, before it is recorded.
pub enum Reply<T> {
    Ok(T),
    /// Definitely no effect (the server refused it before doing anything).
    Fail(String),
    /// Unknown effect.
    Info(String),
}

/// Runs one RPC under the client timeout and sorts its outcome: `Fail` only when the
/// request certainly had no effect (see [`never_applied`]); every other error is
/// `Info` (for writes, UNAVAILABLE or a dropped connection may come after the entry
/// reached the log).
pub async fn call<T, F>(env: &ClientEnv, rpc: F) -> Reply<T>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(env.op_timeout, rpc).await {
        Err(_) => Reply::Info(format!("timed out after {:?}", env.op_timeout)),
        Ok(Ok(reply)) => Reply::Ok(reply.into_inner()),
        Ok(Err(status)) if never_applied(&status) => Reply::Fail(status_text(&status)),
        Ok(Err(status)) => Reply::Info(status_text(&status)),
    }
}

/// Runs one read RPC under the client timeout. A read changes nothing, so every way it
/// can go wrong is a plain failure; the error keeps its code for callers to whom one
/// code is an answer (NOT_FOUND for a key that does not exist).
pub async fn read_call<T, F>(env: &ClientEnv, rpc: F) -> Result<T, (Option<Code>, String)>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(env.op_timeout, rpc).await {
        Err(_) => Err((None, format!("timed out after {:?}", env.op_timeout))),
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err((Some(status.code()), status_text(&status))),
    }
}

/// A consistent read of every instance of `service`, passing or not.
pub fn consistent_list(service: &str) -> ListInstancesRequest {
    ListInstancesRequest {
        service: service.into(),
        read: Some(ReadOptions {
            consistency: Consistency::Consistent as i32,
            max_stale_ms: 0,
        }),
        passing_only: false,
    }
}

/// How an error status is written into the history: its code, then its message.
pub fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Errors that prove the write had no effect: the server's error detail says it was
/// not applied (no leader to propose to, a refused argument, a compare-and-set
/// mismatch), or this client could not even connect. A status without a detail proves
/// nothing, whatever its code or text. Without this, every client of a dead node would
/// retire on its first try.
fn never_applied(status: &tonic::Status) -> bool {
    classify(status).certainly_not_applied()
}

/// Records one finished operation.
pub fn record(
    env: &ClientEnv,
    process: &Process,
    op: Op,
    start: u64,
    outcome: Outcome,
    error: Option<String>,
) {
    env.recorder.record(Event::Op(OpRecord {
        process: process.id,
        node: process.node,
        op,
        start,
        end: env.recorder.now(),
        outcome,
        error,
    }));
}

/// A short pause between a client's operations, so a handful of clients keep the
/// cluster busy without drowning the checker in operations.
/// After a failure the pause is longer: the node is likely down or leaderless, and
/// hammering it only fills the history with identical failures.
pub async fn pace(env: &ClientEnv, last: Outcome) {
    let pause = match last {
        Outcome::Ok => Duration::from_millis(10),
        Outcome::Fail | Outcome::Info => Duration::from_millis(200),
    };
    tokio::select! {
        _ = env.stop.cancelled() => {}
        _ = tokio::time::sleep(pause) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_proto::errors::{Applied, ErrorDetail, Reason, Retry};

    /// A status as the server sends it, rebuilt from its details bytes as a client
    /// receives it.
    fn received(detail: ErrorDetail, code: Code, message: &str) -> tonic::Status {
        let s = detail.status(code, message);
        tonic::Status::with_details(s.code(), s.message(), s.details().to_vec().into())
    }

    #[test]
    fn the_detail_decides_what_was_never_applied() {
        let no_leader = ErrorDetail::new(Reason::NoLeader, Retry::OtherNode, Applied::No);
        assert!(never_applied(&received(no_leader, Code::Unavailable, "")));
        let cas = ErrorDetail::new(Reason::CasMismatch, Retry::Never, Applied::No);
        assert!(never_applied(&received(cas, Code::FailedPrecondition, "")));
        assert!(never_applied(&received(
            ErrorDetail::invalid_argument("service"),
            Code::InvalidArgument,
            ""
        )));
        let timeout = ErrorDetail::new(Reason::Timeout, Retry::Here, Applied::Maybe);
        assert!(!never_applied(&received(timeout, Code::Unavailable, "")));
    }

    #[test]
    fn message_text_proves_nothing() {
        // The texts the harness used to match: without a detail, they are `info`.
        for text in ["no leader is known to node 2", "tcp connect error"] {
            assert!(!never_applied(&tonic::Status::unavailable(text)), "{text}");
        }
        assert!(!never_applied(&tonic::Status::invalid_argument("bad")));
    }
}
