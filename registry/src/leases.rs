//! Leader-side timekeeping: lease deadlines from keep-alives, and how long instances
//! have been critical. Time never enters the state machine: when a deadline passes,
//! the leader proposes an ordinary command (`EndLease`, `ReapCritical`) through Raft.
//!
//! Never early: a lease's deadline is only ever set to "now + TTL" on the leader, after
//! the keep-alive's leadership was confirmed by a quorum, and a node that becomes
//! leader first extends every lease by its full TTL. Late by at most: one TTL (the new
//! leader's extension) + the election time + one tick, after the client's last
//! keep-alive + TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::catalog::Health;
use crate::node::{Node, NodeError};
use crate::raft_types::Command;

/// How often the leader looks for expired leases and instances to reap.
pub const TICK: Duration = Duration::from_millis(100);
/// How long to wait before proposing the same expiry again if the first try failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Default)]
struct KeeperState {
    /// The term in which this node last acted as leader; a new term resets deadlines.
    leader_term: Option<u64>,
    deadlines: HashMap<u64, Instant>,
    /// Expiry or reap proposals in flight, not to be repeated before the instant.
    proposed: HashMap<String, Instant>,
    /// (service, id) → (modify index when first seen critical, since when).
    critical_since: HashMap<(String, String), (u64, Instant)>,
}

/// Lease deadlines and critical-instance timers of this node (used only while leader).
#[derive(Default)]
pub struct LeaseKeeper {
    state: Mutex<KeeperState>,
}

impl LeaseKeeper {
    /// Renews `lease_id` from now on the leader. Returns its TTL, or `None` if the lease
    /// does not exist. The caller must have confirmed leadership with a quorum first.
    pub fn renew(&self, node: &Node, lease_id: u64) -> Option<u64> {
        let ttl = node
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .lease(lease_id)?
            .ttl_ms;
        let mut st = self.state.lock().expect("keeper lock poisoned");
        st.deadlines
            .insert(lease_id, Instant::now() + Duration::from_millis(ttl));
        Some(ttl)
    }

    /// One pass: returns the commands to propose now.
    fn due(&self, node: &Node, now: Instant) -> Vec<Command> {
        let view = node.view();
        let mut st = self.state.lock().expect("keeper lock poisoned");
        if view.state != ServerState::Leader {
            *st = KeeperState::default();
            return Vec::new();
        }
        let catalog = node.catalog.read().expect("catalog lock poisoned");
        let new_term = st.leader_term != Some(view.term);
        if new_term {
            // A new leader knows nothing of keep-alives sent to its predecessor: extend
            // every lease by its full TTL, and restart every critical timer.
            st.deadlines.clear();
            st.critical_since.clear();
            st.proposed.clear();
            st.leader_term = Some(view.term);
        }
        let mut commands = Vec::new();
        let mut live = HashMap::new();
        for lease in catalog.leases() {
            let deadline = *st
                .deadlines
                .entry(lease.id)
                .or_insert_with(|| now + Duration::from_millis(lease.ttl_ms));
            live.insert(lease.id, deadline);
        }
        st.deadlines = live;
        let expired: Vec<u64> = st
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        for lease_id in expired {
            if st.try_propose(format!("lease/{lease_id}"), now) {
                commands.push(Command::EndLease {
                    lease_id,
                    reason: "expired".into(),
                });
            }
        }

        let mut critical = HashMap::new();
        for r in catalog.records() {
            if r.health != Health::Critical || r.deregister_critical_after_ms == 0 {
                continue;
            }
            let key = (r.service.clone(), r.id.clone());
            let since = match st.critical_since.get(&key) {
                Some((modify, since)) if *modify == r.modify_index => *since,
                _ => now,
            };
            critical.insert(key, (r.modify_index, since));
            if now.duration_since(since) >= Duration::from_millis(r.deregister_critical_after_ms)
                && st.try_propose(
                    format!("reap/{}/{}/{}", r.service, r.id, r.modify_index),
                    now,
                )
            {
                commands.push(Command::ReapCritical {
                    service: r.service.clone(),
                    id: r.id.clone(),
                    if_modify_index: r.modify_index,
                });
            }
        }
        st.critical_since = critical;
        let before = now.checked_sub(RETRY_AFTER * 10).unwrap_or(now);
        st.proposed.retain(|_, t| *t > before);
        commands
    }

    /// Runs the timekeeping loop until `shutdown`.
    pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for cmd in node.leases.due(&node, Instant::now()) {
                let node = node.clone();
                // Proposals run beside the loop so a slow commit does not stall timing.
                tokio::spawn(async move {
                    match node.write_as_leader(cmd.clone()).await {
                        Ok((index, _)) => tracing::info!(?cmd, index, "committed leader decision"),
                        Err(NodeError::ShuttingDown) => {}
                        Err(e) => {
                            tracing::warn!(?cmd, error = %e, "could not commit leader decision; will retry")
                        }
                    }
                });
            }
        }
    }
}

impl KeeperState {
    /// True if `key` may be proposed now (not proposed within `RETRY_AFTER`).
    fn try_propose(&mut self, key: String, now: Instant) -> bool {
        match self.proposed.get(&key) {
            Some(at) if now.duration_since(*at) < RETRY_AFTER => false,
            _ => {
                self.proposed.insert(key, now);
                true
            }
        }
    }
}
