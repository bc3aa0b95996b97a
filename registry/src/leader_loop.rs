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
    let mut ca_bootstrap = CaBootstrap::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let view = node.view();
        let leader_term = (view.state == ServerState::Leader).then_some(view.term);
        let mut due = {
            let catalog = node.catalog.read().expect("catalog lock poisoned");
            let mut timers = node.timers.lock().expect("timers lock poisoned");
            let now = Instant::now();
            let mut due = timers.due(now, leader_term, &catalog);
            if leader_term.is_some() {
                due.extend(timers.expired_tokens(now, crate::acl::now_unix_ms(), &catalog));
            }
            due
        };
        if leader_term.is_some() {
            due.extend(ca_bootstrap.due(&node));
        }
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

/// The leader's creation of the mesh CA's first root: proposed when the catalog has
/// none, and again after `RETRY_AFTER` if that proposal has not been applied (a
/// leader change lost it). Two proposals are harmless: the first applied wins.
#[derive(Default)]
struct CaBootstrap {
    last_attempt: Option<Instant>,
}

impl CaBootstrap {
    const RETRY_AFTER: Duration = Duration::from_secs(2);

    fn due(&mut self, node: &Node) -> Option<Command> {
        let initialized = node
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .active_root()
            .is_some();
        let now = Instant::now();
        if initialized
            || self
                .last_attempt
                .is_some_and(|t| now.duration_since(t) < Self::RETRY_AFTER)
        {
            return None;
        }
        self.last_attempt = Some(now);
        match crate::identity::initial_root_command(&node.mesh) {
            Ok(cmd) => Some(cmd),
            Err(e) => {
                tracing::error!(error = %e, "could not create the mesh CA root");
                None
            }
        }
    }
}
