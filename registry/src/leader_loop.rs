//! The thin loop that drives `LeaderTimers`: every tick it reads this node's role and
//! the catalog, asks the timers what is due, and proposes those commands through Raft
//! on the server's task tracker (so a slow commit does not stall timekeeping).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::model::Command;
use crate::node::{Node, NodeError};

/// How often the leader looks for expired leases and tokens, and instances to reap.
pub const TICK: Duration = Duration::from_millis(100);

/// Runs until `shutdown`.
pub async fn run(node: Arc<Node>, tracker: TaskTracker, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let view = node.view();
        let leader_term = (view.state == ServerState::Leader).then_some(view.term);
        let due = {
            let catalog = node.catalog.read().expect("catalog lock poisoned");
            let mut timers = node.timers.lock().expect("timers lock poisoned");
            let now = Instant::now();
            let mut due = timers.due(now, leader_term, &catalog);
            if leader_term.is_some() {
                due.extend(timers.expired_tokens(now, crate::acl::now_unix_ms(), &catalog));
            }
            due
        };
        for cmd in due {
            let span = tracing::info_span!("leader_decision", command = cmd.name());
            tracker.spawn(propose(node.clone(), cmd, shutdown.clone()).instrument(span));
        }
    }
}

async fn propose(node: Arc<Node>, cmd: Command, shutdown: CancellationToken) {
    let name = cmd.name();
    let outcome = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = node.write_as_leader(cmd) => r,
    };
    match outcome {
        Ok((index, _)) => tracing::info!(index, command = name, "committed leader decision"),
        Err(NodeError::ShuttingDown) => {}
        Err(e) => {
            tracing::warn!(command = name, error = %e, "could not commit leader decision; will retry")
        }
    }
}
