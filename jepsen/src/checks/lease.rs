//! The `lease` checker: holds the lease workload's history to the lease promises.
//!
//! - **Never early** (`early-expiry`). A keep-alive acknowledged with a TTL `T` was
//!   renewed on the leader at some time after the request started at `s`, so the lease
//!   exists throughout `[creation, s + T]`. The server saying it is gone (a keep-alive
//!   answered 0), or an observer's consistent read finding its instance absent (after
//!   the registration was acknowledged), that ended before `s + T` shows an expiry that
//!   came early, unless a revoke of that lease had been sent by then.
//! - **Revoked means gone** (`alive-after-revoke`): after a revoke acknowledged as done,
//!   no read finds the instance and no keep-alive is granted a TTL.
//! - **Late by at most the documented bound** (`late-expiry`). For a lease the client
//!   let go, the expiry is due at `r + T`, `r` the end of the last keep-alive sent (any
//!   outcome but a certain failure: an unanswered one may still have renewed it). It
//!   is observed between the last read that still found the instance and the first
//!   that did not. The server promises at most one TTL (a new leader's extension) plus
//!   an election plus one leader tick beyond `r + T`. A fault can leave the cluster
//!   without a leader for as long as it lasts, and every new leader extends every
//!   lease, so the bound counts from `r + T` or from a few seconds after the last fault
//!   before the observation ended, whichever is later; a lease still there longer than
//!   that, plus slack, is late. The run ends with every lease abandoned and the faults
//!   healed, and the observers watch them all go (`workload::lease::drain`), so a lease
//!   that never ends is caught too. How late each expiry was after `r + T` is measured
//!   (`expiry_late_ms_*`).

use std::collections::BTreeMap;

use super::{evidence_line, op_events, secs, Anomaly, CheckContext, CheckerReport};
use crate::history::{Event, Nanos, Op, OpRecord, Outcome};

/// The servers' election timeout ceiling (`election_timeout_max_ms`, the harness runs
/// them with the default).
const ELECTION_MAX_MS: u64 = 600;
/// The leader's expiry pass runs this often (`leader_loop::TICK`).
const LEADER_TICK_MS: u64 = 100;
/// Scheduling and commit slack on a loaded two-core machine.
const SLACK_MS: u64 = 500;
/// After a fault heals, a restarted or resumed cluster has elected a leader within
/// this long (a restart of every node included); the bound counts from then.
const AFTER_FAULT_MS: u64 = 3_000;

const MS: u64 = 1_000_000;

/// Everything the history says about one lease.
#[derive(Default)]
struct LeaseOps<'a> {
    created: Option<(&'a Event, &'a OpRecord, u64)>,
    attached: Vec<(&'a Event, &'a OpRecord)>,
    /// The instance registered under it.
    instance: Option<&'a str>,
    keep_alives: Vec<(&'a Event, &'a OpRecord, Option<u64>)>,
    /// Consistent reads begun after the registration was acknowledged: whether they
    /// found the instance.
    reads: Vec<(&'a Event, &'a OpRecord, bool)>,
    revokes: Vec<(&'a Event, &'a OpRecord, Option<bool>)>,
}

impl LeaseOps<'_> {
    /// When the first acknowledged registration of its instance ended.
    fn attached_at(&self) -> Option<Nanos> {
        self.attached.iter().map(|(_, op)| op.end).min()
    }
}

/// Checks the lease workload's operations in `events`.
pub fn check(events: &[Event], _ctx: &CheckContext) -> CheckerReport {
    let mut leases: BTreeMap<u64, LeaseOps> = BTreeMap::new();
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();
    let mut count = |name: &str| *stats.entry(name.to_string()).or_insert(0) += 1;
    let mut scans = Vec::new();
    for (event, op) in op_events(events) {
        let ok = op.outcome == Outcome::Ok;
        match &op.op {
            Op::LeaseCreate {
                lease_id: Some(id),
                granted_ms: Some(ttl),
                ..
            } if ok => {
                count("leases_created");
                leases.entry(*id).or_default().created = Some((event, op, *ttl));
            }
            Op::LeaseAttach { lease_id, id, .. } if ok => {
                let entry = leases.entry(*lease_id).or_default();
                entry.attached.push((event, op));
                entry.instance = Some(id);
            }
            Op::KeepAlive {
                lease_id,
                granted_ms,
            } if op.outcome != Outcome::Fail => {
                if *granted_ms == Some(0) {
                    count("keepalives_gone");
                } else if ok {
                    count("keepalives_ok");
                }
                let entry = leases.entry(*lease_id).or_default();
                entry.keep_alives.push((event, op, *granted_ms));
            }
            Op::LeaseScan { ids: Some(ids), .. } if ok => {
                count("lease_scans_ok");
                scans.push((event, op, ids));
            }
            Op::LeaseRevoke {
                lease_id, revoked, ..
            } if op.outcome != Outcome::Fail => {
                if ok {
                    count("revokes_ok");
                }
                let entry = leases.entry(*lease_id).or_default();
                entry.revokes.push((event, op, *revoked));
            }
            _ => {}
        }
    }
    // Each scan is a read of every lease whose instance was registered before it began.
    for ops in leases.values_mut() {
        let (Some(id), Some(attached)) = (ops.instance, ops.attached_at()) else {
            continue;
        };
        for (event, op, ids) in scans.iter().filter(|(_, op, _)| op.start > attached) {
            let present = ids.binary_search_by(|i| i.as_str().cmp(id)).is_ok();
            ops.reads.push((*event, *op, present));
        }
    }
    let faults: Vec<(Nanos, Nanos)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Fault(f) => Some((f.start, f.end)),
            _ => None,
        })
        .collect();
    let mut anomalies = Vec::new();
    let mut lateness_ms = Vec::new();
    for (lease_id, ops) in &leases {
        if let Some(a) = early_expiry(*lease_id, ops) {
            anomalies.push(a);
        }
        anomalies.extend(alive_after_revoke(*lease_id, ops));
        if let Some(expiry) = observed_expiry(ops) {
            lateness_ms.push(expiry.late_at_most / MS);
            if let Some(a) = late_expiry(*lease_id, &expiry, &faults) {
                anomalies.push(a);
            }
        }
    }
    stats.insert("expiries_observed".into(), lateness_ms.len() as u64);
    lateness_ms.sort_unstable();
    if let Some(max) = lateness_ms.last() {
        stats.insert("expiry_late_ms_max".into(), *max);
        stats.insert(
            "expiry_late_ms_median".into(),
            lateness_ms[lateness_ms.len() / 2],
        );
    }
    CheckerReport::from_findings("lease", anomalies, stats)
}

/// The latest moment an acknowledged renewal (or the creation) guarantees the lease
/// until, with the operation that guarantees it.
fn guaranteed_until<'a>(ops: &LeaseOps<'a>) -> Option<(Nanos, &'a Event)> {
    let created = ops
        .created
        .map(|(event, op, ttl)| (op.start + ttl * MS, event));
    let renewed =
        ops.keep_alives
            .iter()
            .filter_map(|(event, op, granted)| match (op.outcome, granted) {
                (Outcome::Ok, Some(ttl)) if *ttl > 0 => Some((op.start + ttl * MS, *event)),
                _ => None,
            });
    created.into_iter().chain(renewed).max_by_key(|(t, _)| *t)
}

/// The first sign the lease was gone before its guarantee ran out, if any.
fn early_expiry(lease_id: u64, ops: &LeaseOps) -> Option<Anomaly> {
    let (until, guarantee) = guaranteed_until(ops)?;
    let gone_keep_alives = ops
        .keep_alives
        .iter()
        .filter(|(_, op, granted)| op.outcome == Outcome::Ok && *granted == Some(0))
        .map(|(event, op, _)| (*event, *op, "a keep-alive was answered 0 (gone)"));
    let absent_reads = ops
        .reads
        .iter()
        .filter(|(_, _, present)| !present)
        .map(|(event, op, _)| (*event, *op, "a consistent read found its instance absent"));
    let revoke_sent = |by: Nanos| ops.revokes.iter().any(|(_, op, _)| op.start < by);
    gone_keep_alives
        .chain(absent_reads)
        .filter(|(_, op, _)| op.end < until && !revoke_sent(op.end))
        .min_by_key(|(_, op, _)| op.end)
        .map(|(event, op, what)| Anomaly {
            kind: "early-expiry".into(),
            description: format!(
                "lease {lease_id} was gone at {} ({what}) although an acknowledged renewal \
                 guaranteed it until {}: {} ms early",
                secs(op.end),
                secs(until),
                (until - op.end) / MS
            ),
            window: Some((op.start, until)),
            evidence: vec![evidence_line(guarantee), evidence_line(event)],
        })
}

/// Reads that found the instance, and keep-alives granted a TTL, after a revoke was
/// acknowledged as done.
fn alive_after_revoke(lease_id: u64, ops: &LeaseOps) -> Vec<Anomaly> {
    let Some((revoke_event, revoke)) = ops
        .revokes
        .iter()
        .filter(|(_, op, revoked)| op.outcome == Outcome::Ok && *revoked == Some(true))
        .map(|(event, op, _)| (*event, *op))
        .min_by_key(|(_, op)| op.end)
    else {
        return Vec::new();
    };
    let found = ops
        .reads
        .iter()
        .filter(|(_, op, present)| *present && op.start > revoke.end)
        .map(|(event, op, _)| (*event, *op, "a consistent read found its instance"));
    let renewed = ops
        .keep_alives
        .iter()
        .filter(|(_, op, granted)| {
            op.outcome == Outcome::Ok && granted.is_some_and(|t| t > 0) && op.start > revoke.end
        })
        .map(|(event, op, _)| (*event, *op, "a keep-alive was granted a TTL"));
    found
        .chain(renewed)
        .map(|(event, op, what)| Anomaly {
            kind: "alive-after-revoke".into(),
            description: format!(
                "lease {lease_id} was revoked by {} but at {} {what}",
                secs(revoke.end),
                secs(op.end)
            ),
            window: Some((revoke.start, op.end)),
            evidence: vec![evidence_line(revoke_event), evidence_line(event)],
        })
        .collect()
}

/// An expiry the client waited for: when it was due, and the reads around it.
struct ObservedExpiry<'a> {
    due: Nanos,
    /// The last read that still found the instance (it was not gone at its start).
    last_present: Option<(&'a Event, &'a OpRecord)>,
    /// How late it was at most: the first read that found it gone, minus `due`.
    late_at_most: Nanos,
    ttl_ms: u64,
}

/// For a lease let go (no revoke sent) and then seen gone by a read: the expiry.
fn observed_expiry<'a>(ops: &LeaseOps<'a>) -> Option<ObservedExpiry<'a>> {
    if !ops.revokes.is_empty() || ops.attached.is_empty() {
        return None;
    }
    let (_, created, ttl_ms) = ops.created?;
    let last_renewal = ops
        .keep_alives
        .iter()
        .map(|(_, op, _)| op.end)
        .chain([created.end])
        .max()?;
    let due = last_renewal + ttl_ms * MS;
    let first_absent = ops
        .reads
        .iter()
        .filter(|(_, op, present)| !present && op.start > last_renewal)
        .map(|(_, op, _)| op.end)
        .min()?;
    let last_present = ops
        .reads
        .iter()
        .filter(|(_, op, present)| *present && op.start < first_absent)
        .max_by_key(|(_, op, _)| op.start)
        .map(|(event, op, _)| (*event, *op));
    Some(ObservedExpiry {
        due,
        last_present,
        late_at_most: first_absent.saturating_sub(due),
        ttl_ms,
    })
}

/// A lease found still there longer after it was due (or after the cluster had a
/// leader again) than the server promises.
fn late_expiry(
    lease_id: u64,
    expiry: &ObservedExpiry,
    faults: &[(Nanos, Nanos)],
) -> Option<Anomaly> {
    let (event, op) = expiry.last_present?;
    let recovered = faults
        .iter()
        .filter(|(from, _)| *from < op.start)
        .map(|(_, until)| until + AFTER_FAULT_MS * MS)
        .max()
        .unwrap_or(0);
    let counted_from = expiry.due.max(recovered);
    let bound = (expiry.ttl_ms + ELECTION_MAX_MS + LEADER_TICK_MS + SLACK_MS) * MS;
    let late_at_least = op.start.saturating_sub(counted_from);
    (late_at_least > bound).then(|| Anomaly {
        kind: "late-expiry".into(),
        description: format!(
            "lease {lease_id} was due to expire at {}{} but its instance was still there at \
             {}, {} ms later (the promise: at most {} ms)",
            secs(expiry.due),
            if recovered > expiry.due {
                format!(" (the last fault before was over by {})", secs(recovered))
            } else {
                String::new()
            },
            secs(op.start),
            late_at_least / MS,
            bound / MS
        ),
        window: Some((counted_from, op.start)),
        evidence: vec![evidence_line(event)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::kinds;
    use crate::history::FaultRecord;

    fn op(process: u64, op: Op, start_ms: u64, end_ms: u64, outcome: Outcome) -> Event {
        Event::Op(OpRecord {
            process,
            node: 1,
            op,
            start: start_ms * MS,
            end: end_ms * MS,
            outcome,
            error: None,
        })
    }

    fn create(lease_id: u64, at: u64) -> Event {
        let op_ = Op::LeaseCreate {
            ttl_ms: 2_000,
            lease_id: Some(lease_id),
            granted_ms: Some(2_000),
            index: Some(1),
        };
        op(1, op_, at, at + 5, Outcome::Ok)
    }

    fn attach(lease_id: u64, at: u64) -> Event {
        let op_ = Op::LeaseAttach {
            lease_id,
            id: format!("l{lease_id}"),
            index: Some(2),
        };
        op(1, op_, at, at + 5, Outcome::Ok)
    }

    fn keep_alive(lease_id: u64, at: u64, granted: u64) -> Event {
        let op_ = Op::KeepAlive {
            lease_id,
            granted_ms: Some(granted),
        };
        op(1, op_, at, at + 5, Outcome::Ok)
    }

    /// An observer's scan that did or did not find the lease's instance.
    fn read(lease_id: u64, at: u64, present: bool) -> Event {
        let ids = if present {
            vec![format!("l{lease_id}")]
        } else {
            Vec::new()
        };
        let op_ = Op::LeaseScan {
            ids: Some(ids),
            index: Some(3),
        };
        op(9, op_, at, at + 5, Outcome::Ok)
    }

    fn revoke(lease_id: u64, at: u64) -> Event {
        let op_ = Op::LeaseRevoke {
            lease_id,
            revoked: Some(true),
            index: Some(4),
        };
        op(1, op_, at, at + 5, Outcome::Ok)
    }

    fn fault(from_ms: u64, until_ms: u64) -> Event {
        Event::Fault(FaultRecord {
            fault: "partition".into(),
            detail: "isolate-leader".into(),
            nodes: vec![1],
            start: from_ms * MS,
            end: until_ms * MS,
            in_effect: Some((from_ms * MS, until_ms * MS)),
            alone: vec![1],
        })
    }

    fn check_(events: &[Event]) -> CheckerReport {
        check(events, &CheckContext::default())
    }

    /// A lease held with renewals every 600 ms until 3 s, then let go: due at 5.005 s.
    fn held_then_let_go() -> Vec<Event> {
        let mut h = vec![create(7, 0), attach(7, 10)];
        for at in (600..=3_000).step_by(600) {
            h.push(keep_alive(7, at, 2_000));
        }
        h
    }

    #[test]
    fn an_expiry_after_the_guarantee_and_within_the_bound_is_valid() {
        let mut h = held_then_let_go();
        h.extend([
            read(7, 3_200, true),
            read(7, 5_000, true),
            read(7, 5_300, false),
        ]);
        let report = check_(&h);
        assert_eq!(kinds(&report), Vec::<&str>::new());
        assert_eq!(report.stats["expiries_observed"], 1);
        // Due at 3.005 + 2 = 5.005 s; first seen gone by 5.305 s.
        assert_eq!(report.stats["expiry_late_ms_max"], 300);
    }

    #[test]
    fn a_read_finding_the_instance_gone_within_the_ttl_is_early() {
        let mut h = held_then_let_go();
        // Renewed at 3.0 s for 2 s: it must be there until 5.0 s.
        h.push(read(7, 4_000, false));
        let report = check_(&h);
        assert_eq!(kinds(&report), vec!["early-expiry"]);
        assert!(report.anomalies[0].description.contains("995 ms early"));
    }

    #[test]
    fn a_keep_alive_answered_gone_within_the_ttl_is_early() {
        let mut h = held_then_let_go();
        h.push(keep_alive(7, 3_500, 0));
        assert_eq!(kinds(&check_(&h)), vec!["early-expiry"]);
    }

    #[test]
    fn a_revoke_explains_a_lease_gone_early() {
        let mut h = held_then_let_go();
        h.extend([revoke(7, 3_100), read(7, 3_200, false)]);
        assert_eq!(kinds(&check_(&h)), Vec::<&str>::new());
    }

    #[test]
    fn an_absent_read_before_the_registration_was_acknowledged_proves_nothing() {
        let h = vec![create(7, 0), read(7, 2, false), attach(7, 10)];
        assert_eq!(kinds(&check_(&h)), Vec::<&str>::new());
    }

    #[test]
    fn anything_alive_after_an_acknowledged_revoke_is_flagged() {
        let mut h = held_then_let_go();
        h.extend([
            revoke(7, 3_100),
            read(7, 3_200, true),
            keep_alive(7, 3_300, 2_000),
        ]);
        assert_eq!(
            kinds(&check_(&h)),
            vec!["alive-after-revoke", "alive-after-revoke"]
        );
    }

    #[test]
    fn a_lease_still_there_far_past_the_bound_without_faults_is_late() {
        let mut h = held_then_let_go();
        // Due at 5.005 s; the bound is 2 + 0.6 + 0.1 + 0.5 s more: 8.205 s.
        h.extend([read(7, 8_500, true), read(7, 8_700, false)]);
        assert_eq!(kinds(&check_(&h)), vec!["late-expiry"]);
    }

    #[test]
    fn after_a_fault_the_bound_counts_from_its_end() {
        let mut h = held_then_let_go();
        // The fault ends at 7 s: the bound runs from 10 s (a leader again) to 13.2 s.
        h.extend([
            fault(4_000, 7_000),
            read(7, 13_000, true),
            read(7, 13_200, false),
        ]);
        let report = check_(&h);
        assert_eq!(kinds(&report), Vec::<&str>::new());
        assert_eq!(report.stats["expiry_late_ms_max"], 8_200);
        // Still there at 13.5 s: late even so.
        let mut h = held_then_let_go();
        h.extend([
            fault(4_000, 7_000),
            read(7, 13_500, true),
            read(7, 13_700, false),
        ]);
        assert_eq!(kinds(&check_(&h)), vec!["late-expiry"]);
    }

    #[test]
    fn an_unanswered_keep_alive_may_have_renewed_the_lease() {
        let mut h = held_then_let_go();
        // Sent at 4.0 s, never answered: it may have renewed the lease until 6.0 s+.
        let unanswered = Op::KeepAlive {
            lease_id: 7,
            granted_ms: None,
        };
        h.push(op(2, unanswered, 4_000, 5_000, Outcome::Info));
        h.extend([read(7, 6_000, true), read(7, 7_100, false)]);
        let report = check_(&h);
        assert_eq!(kinds(&report), Vec::<&str>::new());
        // Due at 5.0 + 2 = 7.0 s.
        assert_eq!(report.stats["expiry_late_ms_max"], 105);
    }
}
