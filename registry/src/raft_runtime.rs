//! The runtime Raft runs on: a worker thread of its own, so the consensus core,
//! replication, the Raft transport (AppendEntries, votes, forwarded writes), the
//! write proposer and apply never queue behind client work on the main runtime —
//! with thousands of watch streams, one event's fan-out is thousands of tasks that a
//! commit, a heartbeat or a vote would otherwise wait behind.

use anyhow::Context;
use tokio::runtime::{Handle, Runtime};

/// Owns the Raft runtime; dropping it stops the runtime without waiting (Raft has
/// been shut down by then).
pub struct RaftRuntime {
    runtime: Option<Runtime>,
}

impl RaftRuntime {
    /// One worker thread (multi-thread flavour, so a blocking RocksDB write on it
    /// hands the worker role to another thread instead of stalling heartbeats).
    pub fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("waymark-raft")
            .enable_all()
            .build()
            .context("starting the Raft runtime")?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("the Raft runtime lives until drop")
            .handle()
    }
}

impl Drop for RaftRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Not `drop`: this runs inside the main runtime, where a blocking
            // shutdown panics.
            runtime.shutdown_background();
        }
    }
}
