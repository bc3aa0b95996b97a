//! Leader-side timekeeping as a pure component: lease deadlines from keep-alives, and
//! how long reapable instances have been critical. Events and `now` in, commands out;
//! no clocks, locks or I/O here (the server's `leader_loop` drives it). Time never
//! enters the state machine: when a deadline passes, the leader proposes an ordinary
//! command (`EndLease`, `ReapCritical`) through Raft.
//!
//! Never early: a lease's deadline is only ever set to "now + TTL" on the leader, after
//! the keep-alive's leadership was confirmed by a quorum, and a node that becomes
//! leader first extends every lease by its full TTL. Late by at most: one TTL (the new
//! leader's extension) + the election time + one tick, after the client's last
//! keep-alive + TTL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::model::{Command, InstanceKey};

/// How long to wait before proposing the same decision again if the first try failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A decision in flight, not to be proposed again before `RETRY_AFTER`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Decision {
    EndLease(u64),
    Reap(InstanceKey, u64),
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
}

impl LeaderTimers {
    /// Renews `lease_id` (with TTL `ttl_ms`) from `now`. The caller must have confirmed
    /// its leadership with a quorum first.
    pub fn renew(&mut self, lease_id: u64, ttl_ms: u64, now: Instant) {
        self.deadlines
            .insert(lease_id, now + Duration::from_millis(ttl_ms));
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
            *self = LeaderTimers::default();
            return Vec::new();
        };
        if self.leader_term != Some(term) {
            // A new leader knows nothing of keep-alives sent to its predecessor: extend
            // every lease by its full TTL, and restart every critical timer.
            let deadlines = std::mem::take(&mut self.deadlines);
            *self = LeaderTimers {
                leader_term: Some(term),
                // Renewals already made in this term (after their quorum checks) stand.
                deadlines: if self.leader_term.is_none() {
                    deadlines
                } else {
                    HashMap::new()
                },
                ..LeaderTimers::default()
            };
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
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Health, LeaseExpiry, NewInstance};

    const TTL: u64 = 5_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A catalog with lease 1 (TTL 5 s) and instance web/a, critical since index 3,
    /// reaped after 1 s critical.
    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.apply(1, &Command::CreateLease { ttl_ms: TTL });
        c.apply(
            2,
            &Command::Register(NewInstance {
                service: "web".into(),
                id: "a".into(),
                address: "10.0.0.1".into(),
                port: 80,
                tags: vec![],
                meta: BTreeMap::new(),
                weight_passing: 1,
                weight_warning: 1,
                lease_id: None,
                on_lease_expiry: LeaseExpiry::Remove,
                deregister_critical_after_ms: 1_000,
                if_modify_index: None,
                initial_health: None,
            }),
        );
        c.apply(3, &critical());
        c
    }

    fn critical() -> Command {
        Command::UpdateHealth {
            service: "web".into(),
            id: "a".into(),
            health: Health::Critical,
            output: "down".into(),
        }
    }

    fn ends_lease(cmds: &[Command]) -> bool {
        cmds.iter()
            .any(|c| matches!(c, Command::EndLease { lease_id: 1, .. }))
    }

    fn reaps(cmds: &[Command]) -> bool {
        cmds.iter()
            .any(|c| matches!(c, Command::ReapCritical { id, .. } if id == "a"))
    }

    #[test]
    fn a_lease_never_expires_before_its_last_renewal_plus_ttl() {
        let c = catalog();
        let t0 = Instant::now();
        let mut timers = LeaderTimers::default();
        assert!(!ends_lease(&timers.due(t0, Some(1), &c)));
        timers.renew(1, TTL, t0 + ms(3_000));
        for at in [4_000, 7_000, 7_999] {
            assert!(
                !ends_lease(&timers.due(t0 + ms(at), Some(1), &c)),
                "at {at}"
            );
        }
        assert!(ends_lease(&timers.due(t0 + ms(8_000), Some(1), &c)));
    }

    #[test]
    fn a_new_term_extends_every_lease_by_its_ttl() {
        let c = catalog();
        let t0 = Instant::now();
        let mut timers = LeaderTimers::default();
        timers.due(t0, Some(1), &c);
        // Due at t0 + 5 s in term 1; term 2 begins at t0 + 4 s with no keep-alive seen.
        assert!(!ends_lease(&timers.due(t0 + ms(4_000), Some(2), &c)));
        assert!(!ends_lease(&timers.due(t0 + ms(5_000), Some(2), &c)));
        assert!(!ends_lease(&timers.due(t0 + ms(8_999), Some(2), &c)));
        assert!(ends_lease(&timers.due(t0 + ms(9_000), Some(2), &c)));
    }

    #[test]
    fn a_follower_decides_nothing_and_forgets() {
        let c = catalog();
        let t0 = Instant::now();
        let mut timers = LeaderTimers::default();
        timers.due(t0, Some(1), &c);
        assert!(timers.due(t0 + ms(60_000), None, &c).is_empty());
        // Leader again later: the lease gets a full TTL from then.
        assert!(!ends_lease(&timers.due(t0 + ms(61_000), Some(3), &c)));
        assert!(ends_lease(&timers.due(t0 + ms(66_000), Some(3), &c)));
    }

    #[test]
    fn reaping_comes_after_exactly_the_configured_critical_time() {
        let mut c = catalog();
        let t0 = Instant::now();
        let mut timers = LeaderTimers::default();
        assert!(!reaps(&timers.due(t0, Some(1), &c)));
        assert!(!reaps(&timers.due(t0 + ms(999), Some(1), &c)));
        let cmds = timers.due(t0 + ms(1_000), Some(1), &c);
        assert!(cmds.contains(&Command::ReapCritical {
            service: "web".into(),
            id: "a".into(),
            if_modify_index: 3,
        }));
        // A change to the instance restarts its clock.
        c.apply(4, &critical());
        assert!(!reaps(&timers.due(t0 + ms(1_500), Some(1), &c)));
        assert!(!reaps(&timers.due(t0 + ms(2_499), Some(1), &c)));
        assert!(reaps(&timers.due(t0 + ms(2_500), Some(1), &c)));
    }

    #[test]
    fn a_decision_is_not_repeated_until_the_retry_interval() {
        let c = catalog();
        let t0 = Instant::now();
        let mut timers = LeaderTimers::default();
        timers.due(t0, Some(1), &c);
        assert!(ends_lease(&timers.due(t0 + ms(5_000), Some(1), &c)));
        assert!(!ends_lease(&timers.due(t0 + ms(5_500), Some(1), &c)));
        assert!(ends_lease(&timers.due(t0 + ms(6_000), Some(1), &c)));
    }
}
