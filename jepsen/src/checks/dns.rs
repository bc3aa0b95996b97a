//! The DNS part of the `stale` workload: each node's DNS answers must never go back in
//! index. The SOA serial is the catalog index of the answering replica (mod 2^32), so
//! a later answer from the same node with a smaller serial means DNS showed a state
//! older than one it had already shown, and a serial above the index of a final read
//! that started later means DNS showed a state that was never committed.

use std::collections::BTreeMap;

use super::final_index::FinalReads;
use super::{Anomaly, CheckerReport, UNDECIDED};
use crate::cluster::DNS_MAX_STALE_MS;
use crate::history::{ops, Event, Op, OpRecord, Outcome};

/// NOERROR from a node that the nemesis had cut off from every other node for longer
/// than the servers' DNS staleness guard: the guard must have turned it into SERVFAIL.
fn past_the_guard(events: &[Event], stats: &mut BTreeMap<String, u64>) -> Vec<Anomaly> {
    let alone = super::isolation::windows(events);
    let mut anomalies = Vec::new();
    let mut checked = 0;
    for op in ops(events) {
        let Op::DnsSoa { serial, .. } = &op.op else {
            continue;
        };
        let (node, start, end) = (op.node, op.start, op.end);
        let Some(w) =
            super::isolation::alone_past_bound(&alone, node, start, end, DNS_MAX_STALE_MS)
        else {
            continue;
        };
        checked += 1;
        if op.outcome != Outcome::Ok || serial.is_none() {
            continue;
        }
        anomalies.push(Anomaly {
            kind: "dns-guard".into(),
            description: format!(
                "node {node}'s DNS answered (SOA serial {serial:?}) {} ms after the nemesis \
                 had cut it off from every other node ({}); past the {DNS_MAX_STALE_MS} ms \
                 guard it must answer SERVFAIL",
                (start - w.from) / 1_000_000,
                w.fault.detail
            ),
            window: Some((w.from, end)),
            evidence: [
                serde_json::to_string(w.fault).ok(),
                serde_json::to_string(op).ok(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        });
    }
    stats.insert("dns_checked_against_isolation".into(), checked);
    anomalies
}

/// Checks every answered SOA read, per node, against the reads that ended before it
/// started.
pub fn check(events: &[Event]) -> CheckerReport {
    let mut per_node: BTreeMap<u32, Vec<(&OpRecord, u64)>> = BTreeMap::new();
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();
    for op in ops(events) {
        let Op::DnsSoa { serial, rcode } = &op.op else {
            continue;
        };
        let status = rcode.as_deref().unwrap_or("no_answer").to_ascii_lowercase();
        *stats.entry(format!("dns_{status}")).or_default() += 1;
        if let (Outcome::Ok, Some(serial)) = (op.outcome, serial) {
            per_node.entry(op.node).or_default().push((op, *serial));
        }
    }
    let answered: usize = per_node.values().map(Vec::len).sum();
    let mut anomalies = Vec::new();
    for (node, mut reads) in per_node {
        reads.sort_by_key(|(op, _)| op.start);
        // The highest serial among reads that had ended before the current one began:
        // reads overlapping in time may legitimately answer in either order.
        let mut ended: Vec<(&OpRecord, u64)> = Vec::new();
        let mut best: Option<(&OpRecord, u64)> = None;
        for &(op, serial) in &reads {
            ended.retain(|&(earlier, s)| {
                if earlier.end < op.start {
                    if best.is_none_or(|(_, b)| serial_after(s, b)) {
                        best = Some((earlier, s));
                    }
                    false
                } else {
                    true
                }
            });
            if let Some((earlier, s)) = best {
                if serial_after(s, serial) {
                    anomalies.push(Anomaly {
                        kind: "dns-went-back".into(),
                        description: format!(
                            "node {node}'s DNS answered SOA serial {serial} after it had \
                             answered {s}: an older catalog state than one already shown"
                        ),
                        window: Some((earlier.start, op.end)),
                        evidence: [earlier, op]
                            .iter()
                            .filter_map(|o| serde_json::to_string(o).ok())
                            .collect(),
                    });
                }
            }
            ended.push((op, serial));
        }
    }
    anomalies.extend(above_final_index(events, &mut stats));
    anomalies.extend(past_the_guard(events, &mut stats));
    if answered == 0 {
        // Nothing to judge is not a pass: say so rather than call it valid.
        anomalies.push(Anomaly {
            kind: UNDECIDED.into(),
            description: "no DNS read got an answer (is dig installed? did the DNS servers \
                          start?), so DNS monotonicity was not checked"
                .into(),
            window: None,
            evidence: Vec::new(),
        });
    }
    CheckerReport::from_findings("dns", anomalies, stats)
}

/// SOA serials above the index of a final read that started after the answer: a
/// catalog state that was not committed. Judged only while that index fits in 32 bits,
/// where the serial is the index itself.
fn above_final_index(events: &[Event], stats: &mut BTreeMap<String, u64>) -> Vec<Anomaly> {
    let finals = FinalReads::of(events);
    let mut checked = 0;
    let mut anomalies = Vec::new();
    for op in ops(events) {
        let (
            Op::DnsSoa {
                serial: Some(serial),
                ..
            },
            Outcome::Ok,
        ) = (&op.op, op.outcome)
        else {
            continue;
        };
        let Some((bound, _, final_read)) = finals
            .bound_after(op.end)
            .filter(|(bound, _, _)| *bound <= u64::from(u32::MAX))
        else {
            continue;
        };
        checked += 1;
        if *serial > bound {
            anomalies.push(Anomaly {
                kind: "uncommitted-index".into(),
                description: format!(
                    "node {}'s DNS answered SOA serial {serial}, above index {bound} of the \
                     consistent final read on node {} that started after it: the cluster had \
                     committed no such index",
                    op.node, final_read.node
                ),
                window: Some((op.start, final_read.end)),
                evidence: [op, final_read]
                    .iter()
                    .filter_map(|o| serde_json::to_string(o).ok())
                    .collect(),
            });
        }
    }
    stats.insert("dns_checked_against_final_index".into(), checked);
    anomalies
}

/// Whether serial `a` is after `b` in RFC 1982 arithmetic on 32 bits, so that a
/// serial wrap is not mistaken for going back.
fn serial_after(a: u64, b: u64) -> bool {
    let (a, b) = (a as u32, b as u32);
    a != b && a.wrapping_sub(b) < (1 << 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Verdict;

    impl Event {
        fn into_op(self) -> OpRecord {
            match self {
                Event::Op(op) => op,
                other => panic!("not an op: {other:?}"),
            }
        }
    }

    fn soa(node: u32, start: u64, end: u64, serial: u64) -> Event {
        Event::Op(OpRecord {
            process: u64::from(node),
            node,
            op: Op::DnsSoa {
                serial: Some(serial),
                rcode: Some("NOERROR".into()),
            },
            start,
            end,
            outcome: Outcome::Ok,
            error: None,
        })
    }

    #[test]
    fn noerror_from_a_node_cut_off_past_the_guard_is_reported() {
        const MS: u64 = 1_000_000;
        let cut = Event::Fault(crate::history::FaultRecord {
            fault: "partition".into(),
            detail: "isolate-leader n2".into(),
            nodes: vec![1, 2, 3],
            start: 0,
            end: 10_000 * MS,
            in_effect: Some((1_000 * MS, 9_000 * MS)),
            alone: vec![2],
        });
        let past = 1_000 + DNS_MAX_STALE_MS + 600;
        let answered = soa(2, past * MS, (past + 5) * MS, 7);
        let report = check(&[cut.clone(), answered]);
        assert!(
            report.anomalies.iter().any(|a| a.kind == "dns-guard"),
            "{:?}",
            report.anomalies
        );
        // SERVFAIL there is the guard working; answers elsewhere or earlier are fine.
        let refused = Event::Op(OpRecord {
            outcome: Outcome::Fail,
            op: Op::DnsSoa {
                serial: None,
                rcode: Some("SERVFAIL".into()),
            },
            ..soa(2, past * MS, (past + 5) * MS, 0).into_op()
        });
        let early = soa(2, 1_100 * MS, 1_105 * MS, 7);
        let other = soa(1, past * MS, (past + 5) * MS, 7);
        let report = check(&[cut, refused, early, other]);
        assert!(
            report.anomalies.iter().all(|a| a.kind != "dns-guard"),
            "{:?}",
            report.anomalies
        );
        assert_eq!(report.stats["dns_checked_against_isolation"], 1);
    }

    #[test]
    fn rising_serials_per_node_are_valid() {
        let h = [
            soa(1, 0, 10, 5),
            soa(1, 20, 30, 7),
            soa(2, 0, 10, 9),
            soa(1, 40, 50, 7),
        ];
        assert_eq!(check(&h).verdict, Verdict::Valid);
    }

    #[test]
    fn a_serial_going_back_on_one_node_is_caught() {
        let h = [soa(1, 0, 10, 8), soa(1, 20, 30, 6)];
        let report = check(&h);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(report.anomalies[0].kind, "dns-went-back");
        assert_eq!(report.anomalies[0].window, Some((0, 30)));
    }

    #[test]
    fn overlapping_reads_and_other_nodes_may_differ() {
        // The second read began before the first ended: either order is possible.
        let h = [soa(1, 0, 10, 8), soa(1, 5, 30, 6), soa(2, 40, 50, 1)];
        assert_eq!(check(&h).verdict, Verdict::Valid);
    }

    #[test]
    fn no_answers_at_all_is_undecided_not_valid() {
        let mut refused = soa(1, 0, 10, 5);
        if let Event::Op(op) = &mut refused {
            op.outcome = Outcome::Fail;
        }
        assert_eq!(check(&[refused]).verdict, Verdict::Unknown);
    }

    fn final_read(start: u64, index: u64) -> Event {
        Event::Op(OpRecord {
            process: 99,
            node: 3,
            op: Op::ListAll {
                service: crate::checks::SET_SERVICE.into(),
                instances: Some(Vec::new()),
                index: Some(index),
            },
            start,
            end: start + 10,
            outcome: Outcome::Ok,
            error: None,
        })
    }

    #[test]
    fn a_serial_above_the_final_index_was_never_committed() {
        let good = [soa(1, 0, 10, 20), final_read(100, 20)];
        let report = check(&good);
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.anomalies);
        assert_eq!(report.stats["dns_checked_against_final_index"], 1);
        let bad = [soa(1, 0, 10, 21), final_read(100, 20)];
        let report = check(&bad);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(report.anomalies[0].kind, "uncommitted-index");
        assert_eq!(report.anomalies[0].window, Some((0, 110)));
        // A final read that began before the answer ended bounds nothing.
        let overlapping = [soa(1, 0, 110, 21), final_read(100, 20)];
        assert_eq!(check(&overlapping).verdict, Verdict::Valid);
    }

    #[test]
    fn serials_wrap_like_rfc_1982() {
        assert!(serial_after(3, u64::from(u32::MAX)));
        assert!(!serial_after(u64::from(u32::MAX), 3));
    }
}
