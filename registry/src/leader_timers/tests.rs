//! Unit tests of `LeaderTimers` with synthetic instants: lease deadlines (never early,
//! a new term extends every lease, refused renewals once expired, retries) and reaping.

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
    assert!(timers.renew(1, TTL, t0 + ms(3_000)));
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
fn the_lease_early_control_ends_inherited_leases_at_a_new_term() {
    let c = catalog();
    let t0 = Instant::now();
    let mut timers = LeaderTimers::without_new_leader_extension();
    // A follower first (which forgets everything else), then leader: lease 1 is
    // inherited, and ended at once rather than after its TTL.
    assert!(timers.due(t0, None, &c).is_empty());
    assert!(ends_lease(&timers.due(t0, Some(1), &c)));
    let mut safe = LeaderTimers::default();
    assert!(!ends_lease(&safe.due(t0, Some(1), &c)));
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

/// `EndLease` commands for `lease_id` in `cmds`.
fn ends(cmds: &[Command], lease_id: u64) -> bool {
    cmds.iter()
        .any(|c| matches!(c, Command::EndLease { lease_id: l, .. } if *l == lease_id))
}

#[test]
fn every_renewal_moves_the_deadline_to_a_full_ttl_after_it() {
    let c = catalog();
    let t0 = Instant::now();
    let mut timers = LeaderTimers::default();
    timers.due(t0, Some(1), &c);
    // Keep-alives every 4 s for 40 s: each one lands before the deadline it extends.
    for k in 1..=10u64 {
        let at = t0 + ms(4_000 * k);
        assert!(!ends_lease(&timers.due(at, Some(1), &c)), "tick at {k}");
        assert!(timers.renew(1, TTL, at), "keep-alive {k}");
    }
    let last = 40_000;
    assert!(!ends_lease(&timers.due(
        t0 + ms(last + TTL - 1),
        Some(1),
        &c
    )));
    assert!(ends_lease(&timers.due(t0 + ms(last + TTL), Some(1), &c)));
}

#[test]
fn a_keep_alive_once_the_deadline_has_passed_is_refused() {
    let c = catalog();
    let t0 = Instant::now();
    let mut timers = LeaderTimers::default();
    timers.due(t0, Some(1), &c);
    // At the deadline itself, even before the pass that would propose the end.
    assert!(!timers.renew(1, TTL, t0 + ms(TTL)));
    assert!(ends_lease(&timers.due(t0 + ms(TTL), Some(1), &c)));
    // The EndLease may still commit: a renewal now would grant time that commit
    // takes away. Refused, and the end stays due.
    assert!(!timers.renew(1, TTL, t0 + ms(TTL + 200)));
    assert!(ends_lease(&timers.due(t0 + ms(TTL + 1_000), Some(1), &c)));
    // Just before the deadline a keep-alive still counts.
    let mut timers = LeaderTimers::default();
    timers.due(t0, Some(1), &c);
    assert!(timers.renew(1, TTL, t0 + ms(TTL - 1)));
    assert!(!ends_lease(&timers.due(t0 + ms(TTL), Some(1), &c)));
}

#[test]
fn a_failed_end_is_proposed_again_until_the_lease_is_gone() {
    let mut c = catalog();
    let t0 = Instant::now();
    let mut timers = LeaderTimers::default();
    timers.due(t0, Some(1), &c);
    assert!(ends_lease(&timers.due(t0 + ms(TTL), Some(1), &c)));
    // No commit arrives (the proposal failed): proposed again every RETRY_AFTER.
    let retry = RETRY_AFTER.as_millis() as u64;
    for k in 1..=5u64 {
        let at = TTL + k * retry;
        assert!(
            !ends_lease(&timers.due(t0 + ms(at - 100), Some(1), &c)),
            "{k}"
        );
        assert!(
            ends_lease(&timers.due(t0 + ms(at), Some(1), &c)),
            "retry {k}"
        );
    }
    // Once the end is applied the lease is gone and nothing more is proposed.
    c.apply(
        4,
        &Command::EndLease {
            lease_id: 1,
            reason: "expired".into(),
        },
    );
    assert!(!ends_lease(&timers.due(
        t0 + ms(TTL + 10 * retry),
        Some(1),
        &c
    )));
}

#[test]
fn a_term_change_on_the_same_node_drops_an_expiry_already_decided() {
    let c = catalog();
    let t0 = Instant::now();
    let mut timers = LeaderTimers::default();
    timers.due(t0, Some(1), &c);
    assert!(ends_lease(&timers.due(t0 + ms(TTL), Some(1), &c)));
    // Deposed and re-elected between two passes (never seen as follower): the old
    // term's decision and deadline go; the lease gets a full TTL from the new term.
    let t1 = TTL + 50;
    assert!(!ends_lease(&timers.due(t0 + ms(t1), Some(2), &c)));
    assert!(timers.renew(1, TTL, t0 + ms(t1 + 10)));
    assert!(!ends_lease(&timers.due(
        t0 + ms(t1 + 10 + TTL - 1),
        Some(2),
        &c
    )));
    assert!(ends_lease(&timers.due(t0 + ms(t1 + 10 + TTL), Some(2), &c)));
}

#[test]
fn a_deposed_leaders_deadlines_do_not_expire_leases_on_the_new_leader() {
    let c = catalog();
    let t0 = Instant::now();
    // Node A leads term 1 and renewed the lease at 1 s (deadline 6 s). Node B was a
    // follower, then wins term 2 at 5.5 s without having seen that keep-alive.
    let (mut a, mut b) = (LeaderTimers::default(), LeaderTimers::default());
    a.due(t0, Some(1), &c);
    assert!(a.renew(1, TTL, t0 + ms(1_000)));
    b.due(t0, None, &c);
    let elected = 5_500;
    assert!(b.due(t0 + ms(elected), Some(2), &c).is_empty());
    // A still believes it leads at 6 s and decides the end (its proposal cannot
    // commit in term 1 any more); B's clock is its own: a full TTL from its election.
    assert!(ends_lease(&a.due(t0 + ms(6_000), Some(1), &c)));
    for at in [6_000, 8_000, elected + TTL - 1] {
        assert!(!ends_lease(&b.due(t0 + ms(at), Some(2), &c)), "at {at}");
    }
    assert!(ends_lease(&b.due(t0 + ms(elected + TTL), Some(2), &c)));
    // Once A learns it is a follower it forgets everything.
    assert!(a.due(t0 + ms(6_100), None, &c).is_empty());
    assert!(a.deadlines.is_empty() && a.proposed.is_empty());
}

/// A small deterministic generator (an LCG), so the run below is the same every time.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// A simulated minute of leadership (ticks every 100 ms, a re-election, a spell as
/// follower) with three leases kept alive at random gaps, some longer than the TTL,
/// and every proposal failing. Against a model of the time granted to clients:
/// - never early: an `EndLease` only once the granted time has run out;
/// - a keep-alive is refused exactly when the granted time has run out;
/// - late by at most one tick, and a failed end is proposed again within
///   `RETRY_AFTER` + one tick.
#[test]
fn a_simulated_minute_never_expires_early_and_always_retries() {
    const TICK: u64 = 100;
    let mut c = Catalog::default();
    for (i, ttl) in [2_000u64, 5_000, 3_000].into_iter().enumerate() {
        c.apply(i as u64 + 1, &Command::CreateLease { ttl_ms: ttl });
    }
    let leases: Vec<(u64, u64)> = c.leases().map(|l| (l.id, l.ttl_ms)).collect();
    let role = |at: u64| match at {
        0..20_000 => Some(1),
        20_000..30_000 => Some(2),
        30_000..31_000 => None,
        _ => Some(4),
    };
    let t0 = Instant::now();
    let mut timers = LeaderTimers::default();
    let mut rng = Lcg(7);
    // Per lease: granted until (ms), next keep-alive (ms), last end proposed (ms).
    let mut granted: Vec<u64> = leases.iter().map(|(_, ttl)| *ttl).collect();
    let mut next_keep_alive: Vec<u64> = leases.iter().map(|_| 500 + rng.below(3_000)).collect();
    let mut last_end: Vec<Option<u64>> = vec![None; leases.len()];
    let (mut refused, mut ended) = (0, 0);
    let mut term = None;
    for now in (0..60_000).step_by(TICK as usize) {
        // Keep-alives that arrive before this tick, in time order per lease.
        for (i, (id, ttl)) in leases.iter().enumerate() {
            while next_keep_alive[i] < now {
                let at = next_keep_alive[i];
                next_keep_alive[i] += 500 + rng.below(6_500);
                if role(at).is_none() || role(at) != term {
                    continue; // Sent to another node.
                }
                let renewed = timers.renew(*id, *ttl, t0 + ms(at));
                assert_eq!(renewed, at < granted[i], "lease {id} keep-alive at {at}");
                if renewed {
                    granted[i] = at + ttl;
                } else {
                    refused += 1;
                }
            }
        }
        let leader = role(now);
        if leader.is_some() && leader != term {
            // A new term: every lease is granted a full TTL from now.
            for (i, (_, ttl)) in leases.iter().enumerate() {
                granted[i] = now + ttl;
                last_end[i] = None;
            }
        }
        term = leader;
        let cmds = timers.due(t0 + ms(now), leader, &c);
        for (i, (id, _)) in leases.iter().enumerate() {
            if ends(&cmds, *id) {
                assert!(
                    now >= granted[i],
                    "lease {id} ended at {now}, granted until {}",
                    granted[i]
                );
                last_end[i] = Some(now);
                ended += 1;
            }
            if leader.is_some() && now >= granted[i] + TICK {
                let since = last_end[i].expect("an expired lease's end is proposed");
                assert!(
                    since >= granted[i],
                    "lease {id}: end proposed before it was due"
                );
                assert!(
                    now - since <= RETRY_AFTER.as_millis() as u64 + TICK,
                    "lease {id}: end not proposed again by {now}"
                );
            }
        }
    }
    // The run really went through expiries and refusals.
    assert!(refused > 0 && ended > 5, "refused {refused}, ended {ended}");
}

#[test]
fn an_expired_token_is_deleted_once_per_retry_interval() {
    use crate::model::{AclCommand, NewToken, TokenOrigin, GLOBAL_MANAGEMENT};
    let mut c = Catalog::default();
    let token = NewToken {
        accessor_id: "a".repeat(32),
        secret_hash: "0".repeat(64),
        description: String::new(),
        policies: vec![GLOBAL_MANAGEMENT.into()],
        expires_at_unix_ms: Some(5_000),
        origin: TokenOrigin::Create,
    };
    c.apply(1, &Command::Acl(AclCommand::CreateToken(token)));
    let mut t = LeaderTimers::default();
    let now = Instant::now();
    assert!(t.expired_tokens(now, 4_999, &c).is_empty());
    let due = t.expired_tokens(now, 5_000, &c);
    assert_eq!(
        due,
        [Command::Acl(AclCommand::DeleteToken {
            accessor_id: "a".repeat(32),
            reason: "expired".into()
        })]
    );
    // Not again while that proposal may still commit; again after RETRY_AFTER.
    assert!(t.expired_tokens(now, 6_000, &c).is_empty());
    assert_eq!(t.expired_tokens(now + RETRY_AFTER, 6_000, &c).len(), 1);
}
