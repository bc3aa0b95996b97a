//! The set checker: every acknowledged add survives to the final reads, every
//! acknowledged removal stays removed, and nothing is there that no client added.
//!
//! The final reads are the consistent `ListAll`s of the set's service that the harness
//! runs after every workload client has stopped (one per node), so each of them must
//! show the outcome of the whole run on its own.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    evidence_line, op_events, Anomaly, CheckContext, CheckerReport, SET_SERVICE, UNDECIDED,
};
use crate::history::{Event, Op, OpRecord, Outcome};

/// The most ids named in one description, and the most ops quoted as evidence.
const MAX_NAMED: usize = 10;
const MAX_EVIDENCE: usize = 30;

/// An operation with the history line it came from.
type OpRef<'a> = (&'a Event, &'a OpRecord);

/// Everything the clients did to one id.
#[derive(Default)]
struct IdOps<'a> {
    adds: Vec<OpRef<'a>>,
    removes: Vec<OpRef<'a>>,
}

impl<'e> IdOps<'e> {
    fn add_with(&self, outcome: Outcome) -> Option<OpRef<'e>> {
        self.adds
            .iter()
            .copied()
            .find(|(_, r)| r.outcome == outcome)
    }

    /// An acknowledged add with no removal that may have happened must be there: a
    /// failed removal had no effect, an unknown one may have.
    fn must_be_present(&self) -> Option<OpRef<'e>> {
        let maybe_removed = self
            .removes
            .iter()
            .any(|(_, r)| matches!(r.outcome, Outcome::Ok | Outcome::Info));
        self.add_with(Outcome::Ok).filter(|_| !maybe_removed)
    }

    /// An acknowledged removal that removed the instance, or that ran after its add was
    /// acknowledged, leaves it gone for good: each id is added only once.
    fn must_be_absent(&self) -> Option<OpRef<'e>> {
        let acked_add_end = self.add_with(Outcome::Ok).map(|(_, a)| a.end);
        self.removes.iter().copied().find(|(_, r)| {
            r.outcome == Outcome::Ok
                && (matches!(
                    r.op,
                    Op::Remove {
                        removed: Some(true),
                        ..
                    }
                ) || acked_add_end.is_some_and(|end| end <= r.start))
        })
    }
}

/// An acknowledged removal that found nothing to remove (`removed: false`) although
/// the id's add was acknowledged before the removal started, and no other removal
/// could have taken it away first: the add was lost, even if no final read can show
/// it any more (the id is meant to be gone by then).
fn found_nothing_after_ack<'e>(ops: &IdOps<'e>) -> Vec<(OpRef<'e>, OpRef<'e>)> {
    let Some(add) = ops.add_with(Outcome::Ok) else {
        return Vec::new();
    };
    ops.removes
        .iter()
        .copied()
        .filter(|(_, r)| {
            r.outcome == Outcome::Ok
                && matches!(
                    r.op,
                    Op::Remove {
                        removed: Some(false),
                        ..
                    }
                )
                && add.1.end <= r.start
        })
        .filter(|&(_, r)| {
            // Another removal that may have happened and may come first explains the
            // absence: an acknowledged one that removed it, or an unknown one.
            !ops.removes.iter().any(|(_, other)| {
                !std::ptr::eq(*other, r)
                    && other.start < r.end
                    && match (&other.outcome, &other.op) {
                        (Outcome::Info, _) => true,
                        (Outcome::Ok, Op::Remove { removed, .. }) => *removed != Some(false),
                        _ => false,
                    }
            })
        })
        .map(|remove| (add, remove))
        .collect()
}

/// The anomaly for a removal that found an acknowledged add gone.
fn removal_found_nothing(id: &str, add: OpRef, remove: OpRef) -> Anomaly {
    let ((add_event, add_record), (remove_event, remove_record)) = (add, remove);
    let index = |op: &Op| match op {
        Op::Add { index: Some(i), .. } | Op::Remove { index: Some(i), .. } => i.to_string(),
        _ => "unknown".to_string(),
    };
    Anomaly {
        kind: "lost-write".to_string(),
        description: format!(
            "node {} acknowledged removing {id} at index {} with removed = false (nothing \
             there), although its add was acknowledged by node {} at index {} before the \
             removal started: the add was lost",
            remove_record.node,
            index(&remove_record.op),
            add_record.node,
            index(&add_record.op)
        ),
        window: Some((add_record.start, remove_record.end)),
        evidence: vec![evidence_line(add_event), evidence_line(remove_event)],
    }
}

/// Checks the set workload against its final reads.
pub fn check(events: &[Event], _ctx: &CheckContext) -> CheckerReport {
    let mut stats = BTreeMap::new();
    let mut ids: BTreeMap<&str, IdOps> = BTreeMap::new();
    let mut final_reads = Vec::new();
    for (event, record) in op_events(events) {
        match &record.op {
            Op::Add { id, .. } => {
                count(&mut stats, "adds", record.outcome);
                ids.entry(id).or_default().adds.push((event, record));
            }
            Op::Remove { id, .. } => {
                count(&mut stats, "removes", record.outcome);
                ids.entry(id).or_default().removes.push((event, record));
            }
            Op::ListAll {
                service, instances, ..
            } if service == SET_SERVICE => {
                count(&mut stats, "final_reads", record.outcome);
                if let (Outcome::Ok, Some(instances)) = (record.outcome, instances) {
                    let present: BTreeSet<&str> = instances
                        .iter()
                        .filter(|i| i.service == SET_SERVICE)
                        .map(|i| i.id.as_str())
                        .collect();
                    final_reads.push(((event, record), present));
                }
            }
            _ => {}
        }
    }

    let mut anomalies = Vec::new();
    let mut by_kind: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    // Lost writes that a removal saw: they hold whether or not a final read succeeded.
    for (id, ops) in &ids {
        for (add, remove) in found_nothing_after_ack(ops) {
            by_kind.entry("lost-write").or_default().insert(id);
            anomalies.push(removal_found_nothing(id, add, remove));
        }
    }

    let Some((_, last_present)) = final_reads.iter().max_by_key(|((_, r), _)| r.end) else {
        let attempted = stats.get("final_reads_ok").copied().unwrap_or(0)
            + stats.get("final_reads_fail").copied().unwrap_or(0)
            + stats.get("final_reads_info").copied().unwrap_or(0);
        let anomaly = Anomaly {
            kind: UNDECIDED.to_string(),
            description: format!(
                "no final read succeeded ({attempted} attempted), so whether acknowledged \
                 adds survived cannot be judged"
            ),
            window: None,
            evidence: Vec::new(),
        };
        anomalies.push(anomaly);
        let lost = by_kind.get("lost-write").map_or(0, BTreeSet::len);
        stats.insert("ids_lost_write".to_string(), lost as u64);
        return CheckerReport::from_findings("set", anomalies, stats);
    };
    stats.insert("final_size".to_string(), last_present.len() as u64);

    for (read, present) in &final_reads {
        // Every id any client touched, and every id the read shows.
        let universe: BTreeSet<&str> = ids.keys().copied().chain(present.iter().copied()).collect();
        let mut found: BTreeMap<&str, Vec<Finding>> = BTreeMap::new();
        let none = IdOps::default();
        for id in universe {
            let ops = ids.get(id).unwrap_or(&none);
            if let Some(finding) = judge(id, ops, present.contains(id)) {
                found.entry(finding.kind).or_default().push(finding);
            }
        }
        for (kind, findings) in found {
            by_kind
                .entry(kind)
                .or_default()
                .extend(findings.iter().map(|f| f.id));
            anomalies.push(group_anomaly(kind, *read, &findings));
        }
    }
    for kind in [
        "lost-write",
        "resurrected",
        "phantom",
        "failed-write-visible",
    ] {
        let n = by_kind.get(kind).map_or(0, BTreeSet::len);
        stats.insert(format!("ids_{}", kind.replace('-', "_")), n as u64);
    }
    CheckerReport::from_findings("set", anomalies, stats)
}

/// One id that breaks a rule in one final read.
struct Finding<'a> {
    kind: &'static str,
    id: &'a str,
    /// The operation that makes the case (none for a phantom: nobody added it).
    cause: Option<OpRef<'a>>,
}

/// What is wrong with `id` in a final read, if anything.
fn judge<'e>(id: &'e str, ops: &IdOps<'e>, present: bool) -> Option<Finding<'e>> {
    let finding = |kind, cause| Some(Finding { kind, id, cause });
    if !present {
        return match ops.must_be_present() {
            Some(add) => finding("lost-write", Some(add)),
            None => None,
        };
    }
    if let Some(remove) = ops.must_be_absent() {
        return finding("resurrected", Some(remove));
    }
    if ops.adds.is_empty() {
        // Only the set workload writes to its service, and only through adds.
        return finding("phantom", ops.removes.first().copied());
    }
    if ops.adds.iter().all(|(_, a)| a.outcome == Outcome::Fail) {
        // A refused add must have had no effect.
        return finding("failed-write-visible", ops.adds.first().copied());
    }
    None
}

/// One anomaly for all the ids of one kind in one final read: they share the cause,
/// and a thousand lost ids after a data loss are one finding, not a thousand.
fn group_anomaly(kind: &str, read: OpRef, findings: &[Finding]) -> Anomaly {
    let (read_event, read_record) = read;
    let mut names: Vec<&str> = findings.iter().take(MAX_NAMED).map(|f| f.id).collect();
    if findings.len() > MAX_NAMED {
        names.push("...");
    }
    let what = match kind {
        "lost-write" => "acknowledged adds missing",
        "resurrected" => "ids present after an acknowledged removal",
        "phantom" => "ids present that no client ever added",
        _ => "ids present whose add was refused",
    };
    // The smallest window that shows one of them: from its latest cause to the read.
    let from = findings
        .iter()
        .filter_map(|f| f.cause.map(|(_, r)| r.start))
        .max()
        .unwrap_or(read_record.start);
    let mut evidence: Vec<String> = findings
        .iter()
        .filter_map(|f| f.cause.map(|(e, _)| evidence_line(e)))
        .take(MAX_EVIDENCE - 1)
        .collect();
    evidence.push(evidence_line(read_event));
    Anomaly {
        kind: kind.to_string(),
        description: format!(
            "the final read on node {} (index {}) has {} {what}: {}",
            read_record.node,
            index_of(read_record),
            findings.len(),
            names.join(", ")
        ),
        window: Some((from.min(read_record.start), read_record.end)),
        evidence,
    }
}

fn index_of(record: &OpRecord) -> String {
    match &record.op {
        Op::ListAll { index: Some(i), .. } => i.to_string(),
        _ => "unknown".to_string(),
    }
}

fn count(stats: &mut BTreeMap<String, u64>, what: &str, outcome: Outcome) {
    let outcome = match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    };
    *stats.entry(format!("{what}_{outcome}")).or_insert(0) += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::kinds;
    use crate::checks::Verdict;
    use crate::history::{InstanceState, Nanos};

    fn op(op: Op, start: Nanos, end: Nanos, outcome: Outcome) -> Event {
        Event::Op(OpRecord {
            process: 1,
            node: 1,
            op,
            start,
            end,
            outcome,
            error: None,
        })
    }

    fn add(id: &str, start: Nanos, outcome: Outcome) -> Event {
        let index = (outcome == Outcome::Ok).then_some(start);
        op(
            Op::Add {
                id: id.into(),
                index,
            },
            start,
            start + 5,
            outcome,
        )
    }

    fn remove(id: &str, start: Nanos, outcome: Outcome, removed: Option<bool>) -> Event {
        let r = Op::Remove {
            id: id.into(),
            removed,
            index: None,
        };
        op(r, start, start + 5, outcome)
    }

    fn final_read(node: u32, ids: &[&str]) -> Event {
        let instances = ids
            .iter()
            .map(|id| InstanceState {
                service: SET_SERVICE.into(),
                id: (*id).into(),
                value: None,
                modify_index: 1,
            })
            .collect();
        let list = Op::ListAll {
            service: SET_SERVICE.into(),
            instances: Some(instances),
            index: Some(50),
        };
        let mut e = op(list, 1000, 1010, Outcome::Ok);
        if let Event::Op(r) = &mut e {
            r.node = node;
        }
        e
    }

    fn run(events: &[Event]) -> CheckerReport {
        check(events, &CheckContext::default())
    }

    #[test]
    fn a_set_that_keeps_its_promises_is_valid() {
        let events = [
            add("a", 0, Outcome::Ok),
            add("b", 10, Outcome::Ok),
            add("c", 20, Outcome::Info),
            add("d", 30, Outcome::Fail),
            remove("b", 40, Outcome::Ok, Some(true)),
            add("e", 50, Outcome::Ok),
            // An unknown removal may or may not have happened.
            remove("e", 60, Outcome::Info, None),
            // The unknown add of c took effect; d's refused add did not; e's unknown
            // removal may be seen either way.
            final_read(1, &["a", "c"]),
            final_read(2, &["a", "c", "e"]),
        ];
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.anomalies);
        assert_eq!(report.stats["adds_ok"], 3);
        assert_eq!(report.stats["final_reads_ok"], 2);
        assert_eq!(report.stats["ids_lost_write"], 0);
    }

    #[test]
    fn an_acknowledged_add_missing_from_a_final_read_is_lost() {
        let events = [
            add("a", 0, Outcome::Ok),
            add("b", 10, Outcome::Ok),
            // A refused removal had no effect, so b must still be there.
            remove("b", 20, Outcome::Fail, None),
            final_read(1, &["a", "b"]),
            final_read(3, &["a"]),
        ];
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(kinds(&report), ["lost-write"]);
        let anomaly = &report.anomalies[0];
        assert!(
            anomaly.description.contains("node 3"),
            "{}",
            anomaly.description
        );
        assert!(
            anomaly.description.contains(": b"),
            "{}",
            anomaly.description
        );
        assert_eq!(anomaly.window, Some((10, 1010)));
        assert_eq!(anomaly.evidence.len(), 2);
        assert_eq!(report.stats["ids_lost_write"], 1);
    }

    #[test]
    fn a_removal_that_finds_an_acknowledged_add_gone_reports_it_lost() {
        let events = [
            add("a", 0, Outcome::Ok),
            add("b", 10, Outcome::Ok),
            // b was acknowledged at 15; the removal from 20 on says nothing was there.
            remove("b", 20, Outcome::Ok, Some(false)),
            final_read(1, &["a"]),
        ];
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(kinds(&report), ["lost-write"]);
        let anomaly = &report.anomalies[0];
        assert!(
            anomaly.description.contains("removing b") && anomaly.description.contains("lost"),
            "{}",
            anomaly.description
        );
        assert_eq!(anomaly.window, Some((10, 25)));
        assert_eq!(anomaly.evidence.len(), 2);
        assert_eq!(report.stats["ids_lost_write"], 1);
        // The finding needs no final read: it stands next to the undecided note.
        let report = run(&events[..3]);
        assert_eq!(kinds(&report), ["lost-write", UNDECIDED]);
        assert_eq!(report.verdict, Verdict::Invalid);
    }

    #[test]
    fn a_removal_finding_nothing_is_fine_when_something_else_explains_it() {
        // Each removal that found nothing could come after another removal, or before
        // the add took effect.
        let events = [
            add("a", 0, Outcome::Ok),
            remove("a", 10, Outcome::Info, None),
            remove("a", 20, Outcome::Ok, Some(false)),
            add("b", 30, Outcome::Ok),
            remove("b", 40, Outcome::Ok, Some(true)),
            remove("b", 50, Outcome::Ok, Some(false)),
            // Concurrent with its add (which ends at 65): may come first.
            add("c", 60, Outcome::Ok),
            remove("c", 62, Outcome::Ok, Some(false)),
            // An add that was never acknowledged may never have happened.
            add("d", 70, Outcome::Info),
            remove("d", 80, Outcome::Ok, Some(false)),
            final_read(1, &["c"]),
        ];
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.anomalies);
        assert_eq!(report.stats["ids_lost_write"], 0);
    }

    #[test]
    fn a_removed_id_that_comes_back_is_resurrected() {
        let events = [
            add("a", 0, Outcome::Ok),
            remove("a", 10, Outcome::Ok, Some(true)),
            final_read(1, &["a"]),
        ];
        assert_eq!(kinds(&run(&events)), ["resurrected"]);
    }

    #[test]
    fn ids_nobody_added_or_whose_add_failed_must_not_appear() {
        let events = [
            add("a", 0, Outcome::Ok),
            add("b", 10, Outcome::Fail),
            final_read(1, &["a", "b", "zz"]),
        ];
        let report = run(&events);
        assert_eq!(kinds(&report), ["failed-write-visible", "phantom"]);
        assert!(report.anomalies[1].description.contains("zz"));
    }

    #[test]
    fn without_a_successful_final_read_the_verdict_is_unknown() {
        let mut failed = final_read(1, &["a"]);
        if let Event::Op(r) = &mut failed {
            r.outcome = Outcome::Info;
        }
        let report = run(&[add("a", 0, Outcome::Ok), failed]);
        assert_eq!(report.verdict, Verdict::Unknown);
        assert_eq!(kinds(&report), [UNDECIDED]);
        assert!(report.anomalies[0]
            .description
            .starts_with("no final read succeeded"));
    }
}
