//! Leader-side timekeeping as a pure component: lease deadlines from keep-alives, and
//! how long reapable instances have been critical. Events and `now` in, commands out;
//! no clocks, locks or I/O here (the server's `leader_loop` drives it). Time never
//! enters the state machine: when a deadline passes, the leader proposes an ordinary
//! command (`EndLease`, `ReapCritical`, `DeleteToken`) through Raft.
//!
//! Never early: a lease's deadline is only ever set to "now + TTL" on the leader, after
//! the keep-alive's leadership was confirmed by a quorum, and a node that becomes
//! leader first extends every lease by its full TTL. Late by at most: one TTL (the new
//! leader's extension) + the election time + one tick, after the client's last
//! keep-alive + TTL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::model::{AclCommand, Command, InstanceKey};

/// How long to wait before proposing the same decision again if the first try failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A decision in flight, not to be proposed again before `RETRY_AFTER`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Decision {
    EndLease(u64),
    Reap(InstanceKey, u64),
    ExpireToken(String),
}

/// Lease deadlines and critical timers of this node (meaningful only while leader).
#[derive(Debug, Default)]
pub struct LeaderTimers {
    /// The term in which this node last acted as leader; a new term resets deadlines.
    leader_term: Option<u64>,
    deadlines: HashMap<u64, Instant>,
    proposed: HashMap<Decision, Instant>,
    /// Reapable instance → (modify index when first seen critical, since when).
    critical_since: HashMap<InstanceKey, (u64, Instant)>,
    /// UNSAFE CONTROL (`lease-early`): a new term ends inherited leases at once.
    no_new_leader_extension: bool,
}

impl LeaderTimers {
    /// UNSAFE CONTROL (`lease-early`): timers whose new terms end every lease they
    /// inherit at once instead of extending it by its TTL.
    pub fn without_new_leader_extension() -> Self {
        Self {
            no_new_leader_extension: true,
            ..Self::default()
        }
    }

    /// Renews `lease_id` (with TTL `ttl_ms`) from `now`, and says whether it did. The
    /// caller must have confirmed its leadership with a quorum first, and may grant
    /// the client time only on `true`.
    ///
    /// A lease whose deadline has already passed is not renewed: this leader has
    /// decided to end it (or will at its next pass), and an `EndLease` it proposed may
    /// still be on its way to commit; renewing would let that commit remove the lease
    /// within the TTL just granted (an early expiry).
    pub fn renew(&mut self, lease_id: u64, ttl_ms: u64, now: Instant) -> bool {
        if self.deadlines.get(&lease_id).is_some_and(|d| *d <= now) {
            return false;
        }
        self.deadlines
            .insert(lease_id, now + Duration::from_millis(ttl_ms));
        true
    }

    /// One pass at `now`: the commands to propose. `leader_term` is this node's term
    /// if it is the leader, `None` otherwise (then everything is forgotten: a later
    /// term starts afresh).
    pub fn due(
        &mut self,
        now: Instant,
        leader_term: Option<u64>,
        catalog: &Catalog,
    ) -> Vec<Command> {
        let Some(term) = leader_term else {
            *self = LeaderTimers {
                no_new_leader_extension: self.no_new_leader_extension,
                ..LeaderTimers::default()
            };
            return Vec::new();
        };
        if self.leader_term != Some(term) {
            // A new leader knows nothing of keep-alives sent to its predecessor: extend
            // every lease by its full TTL, and restart every critical timer.
            let deadlines = std::mem::take(&mut self.deadlines);
            let unsafe_no_extension = self.no_new_leader_extension;
            *self = LeaderTimers {
                leader_term: Some(term),
                // Renewals already made in this term (after their quorum checks) stand.
                deadlines: if self.leader_term.is_none() {
                    deadlines
                } else {
                    HashMap::new()
                },
                no_new_leader_extension: unsafe_no_extension,
                ..LeaderTimers::default()
            };
            if unsafe_no_extension {
                // UNSAFE CONTROL (`lease-early`): every inherited lease not renewed in
                // this term is due now.
                for lease in catalog.leases() {
                    self.deadlines.entry(lease.id).or_insert(now);
                }
            }
        }
        let mut commands = Vec::new();
        let mut live = HashMap::new();
        for lease in catalog.leases() {
            let deadline = *self
                .deadlines
                .get(&lease.id)
                .unwrap_or(&(now + Duration::from_millis(lease.ttl_ms)));
            live.insert(lease.id, deadline);
            if deadline <= now && self.try_propose(Decision::EndLease(lease.id), now) {
                commands.push(Command::EndLease {
                    lease_id: lease.id,
                    reason: "expired".into(),
                });
            }
        }
        self.deadlines = live;

        let mut critical = HashMap::new();
        for r in catalog.reapable() {
            let key = (r.service.clone(), r.id.clone());
            let since = match self.critical_since.get(&key) {
                Some((modify, since)) if *modify == r.modify_index => *since,
                _ => now,
            };
            critical.insert(key.clone(), (r.modify_index, since));
            let after = Duration::from_millis(r.deregister_critical_after_ms);
            if now.duration_since(since) >= after
                && self.try_propose(Decision::Reap(key, r.modify_index), now)
            {
                commands.push(Command::ReapCritical {
                    service: r.service.clone(),
                    id: r.id.clone(),
                    if_modify_index: r.modify_index,
                });
            }
        }
        self.critical_since = critical;
        let forget_before = now.checked_sub(RETRY_AFTER * 10).unwrap_or(now);
        self.proposed.retain(|_, at| *at > forget_before);
        commands
    }

    /// The ACL tokens to delete at `now_unix_ms` (their wall-clock expiry has passed;
    /// every node already refuses them on use). Call after `due` in the same pass,
    /// only while leader.
    pub fn expired_tokens(
        &mut self,
        now: Instant,
        now_unix_ms: u64,
        catalog: &Catalog,
    ) -> Vec<Command> {
        let expired: Vec<String> = catalog
            .expired_tokens(now_unix_ms)
            .map(str::to_string)
            .collect();
        expired
            .into_iter()
            .filter(|a| self.try_propose(Decision::ExpireToken(a.clone()), now))
            .map(|accessor_id| {
                Command::Acl(AclCommand::DeleteToken {
                    accessor_id,
                    reason: "expired".into(),
                })
            })
            .collect()
    }

    /// True if `decision` may be proposed now (not proposed within `RETRY_AFTER`).
    fn try_propose(&mut self, decision: Decision, now: Instant) -> bool {
        match self.proposed.get(&decision) {
            Some(at) if now.duration_since(*at) < RETRY_AFTER => false,
            _ => {
                self.proposed.insert(decision, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests;
