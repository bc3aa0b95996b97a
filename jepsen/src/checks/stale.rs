//! The stale-read checker: a stale read may be old, but never older than one the same
//! node already gave, never older than its bound allows, and always a state the
//! cluster really committed (never at an index above the final reads').
//!
//! "A real committed state" is checked against the watch streams: a watcher that
//! followed the set's service without a break over a read's index knows exactly what
//! the set held there, and the read must hold the same ids.

use std::collections::{BTreeMap, BTreeSet};

use super::final_index::FinalReads;
use super::{
    evidence_line, op_events, watch_events_by_watcher, Anomaly, CheckContext, CheckerReport,
    SET_SERVICE,
};
use crate::history::{Change, Event, Op, OpRecord, Outcome, WatchEvent, WatchRecord};

/// The most ids named in a description.
const MAX_NAMED: usize = 5;

/// An acknowledged stale read.
struct Read<'a> {
    event: &'a Event,
    record: &'a OpRecord,
    service: &'a str,
    max_stale_ms: u64,
    ids: Option<BTreeSet<&'a str>>,
    index: u64,
    last_contact_ms: Option<u64>,
}

/// Checks every acknowledged stale read.
pub fn check(events: &[Event], _ctx: &CheckContext) -> CheckerReport {
    let mut stats = BTreeMap::new();
    let mut reads = Vec::new();
    for (event, record) in op_events(events) {
        let Op::StaleRead {
            service,
            max_stale_ms,
            ids,
            index,
            last_contact_ms,
        } = &record.op
        else {
            continue;
        };
        let outcome = match record.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        *stats.entry(format!("stale_reads_{outcome}")).or_insert(0) += 1;
        if record.outcome != Outcome::Ok {
            // A refused read (say, over its bound) is the contract working.
            continue;
        }
        let Some(index) = *index else {
            // An answer always carries its index; without one there is nothing to order.
            *stats.entry("stale_reads_without_index".into()).or_insert(0) += 1;
            continue;
        };
        reads.push(Read {
            event,
            record,
            service,
            max_stale_ms: *max_stale_ms,
            ids: ids
                .as_ref()
                .map(|ids| ids.iter().map(String::as_str).collect()),
            index,
            last_contact_ms: *last_contact_ms,
        });
    }
    let nodes: BTreeSet<u32> = reads.iter().map(|r| r.record.node).collect();
    stats.insert("nodes".into(), nodes.len() as u64);

    let mut anomalies = monotonic_per_node(&reads);
    anomalies.extend(reads.iter().filter_map(over_bound));
    let alone = super::isolation::windows(events);
    anomalies.extend(reads.iter().filter_map(|r| answered_while_alone(r, &alone)));
    anomalies.extend(committed_states(&reads, events, &mut stats));
    anomalies.extend(above_final_index(&reads, events, &mut stats));
    CheckerReport::from_findings("stale", anomalies, stats)
}

/// A node's applied index only grows, so a read from it that started after another
/// read from it ended must not answer at a lower index: that would be a client seeing
/// the catalog go back in time without changing nodes.
fn monotonic_per_node(reads: &[Read]) -> Vec<Anomaly> {
    let mut by_node: BTreeMap<u32, Vec<&Read>> = BTreeMap::new();
    for r in reads {
        by_node.entry(r.record.node).or_default().push(r);
    }
    let mut anomalies = Vec::new();
    for (node, mut by_start) in by_node {
        let mut by_end = by_start.clone();
        by_start.sort_by_key(|r| (r.record.start, r.record.end));
        by_end.sort_by_key(|r| r.record.end);
        // Sweep in start order, keeping the highest-index read that ended before the
        // current one started: the one it must not fall behind.
        let mut ended = by_end.into_iter().peekable();
        let mut highest: Option<&Read> = None;
        for b in by_start {
            while let Some(a) = ended.next_if(|a| a.record.end < b.record.start) {
                if highest.is_none_or(|h| a.index > h.index) {
                    highest = Some(a);
                }
            }
            let Some(a) = highest.filter(|a| a.index > b.index) else {
                continue;
            };
            anomalies.push(Anomaly {
                kind: "stale-index".into(),
                description: format!(
                    "node {node} answered a stale read at index {} after an earlier read \
                     from it had already answered at index {}: the node went back in time",
                    b.index, a.index
                ),
                window: Some((a.record.start, b.record.end)),
                evidence: vec![evidence_line(a.event), evidence_line(b.event)],
            });
        }
    }
    anomalies
}

/// A node the nemesis had cut off from every other node for longer than the read's
/// bound cannot have heard from a leader within it, whatever `last_contact_ms` it
/// reports: answering is a broken bound that the server's own report would hide.
fn answered_while_alone(read: &Read, alone: &[super::isolation::Alone]) -> Option<Anomaly> {
    if read.max_stale_ms == 0 {
        return None;
    }
    let (node, start, end) = (read.record.node, read.record.start, read.record.end);
    let w = super::isolation::alone_past_bound(alone, node, start, end, read.max_stale_ms)?;
    Some(Anomaly {
        kind: "staleness-bound".into(),
        description: format!(
            "node {node} answered a stale read bounded by {} ms at index {}, {} ms after \
             the nemesis had cut it off from every other node ({}); it reported last \
             contact {:?} ms: it cannot have heard from a leader within the bound",
            read.max_stale_ms,
            read.index,
            (start - w.from) / 1_000_000,
            w.fault.detail,
            read.last_contact_ms,
        ),
        window: Some((w.from, end)),
        evidence: vec![evidence_line(w.event), evidence_line(read.event)],
    })
}

/// A node that has not heard from a leader for longer than the read's bound must
/// refuse the read rather than answer with what may be very old data.
fn over_bound(read: &Read) -> Option<Anomaly> {
    // A bound of 0 means no bound.
    if read.max_stale_ms == 0 {
        return None;
    }
    // No contact at all is over any bound: the server must refuse such a read too.
    let contact = match read.last_contact_ms {
        Some(ms) if ms <= read.max_stale_ms => return None,
        Some(ms) => format!("last heard from a leader {ms} ms before"),
        None => "reported no contact with a leader at all".to_string(),
    };
    Some(Anomaly {
        kind: "staleness-bound".into(),
        description: format!(
            "node {} answered a stale read bounded to {} ms although it {contact}; it should \
             have refused",
            read.record.node, read.max_stale_ms
        ),
        window: Some((read.record.start, read.record.end)),
        evidence: vec![evidence_line(read.event)],
    })
}

/// A read answered at an index above the index of a final read that started after it
/// ended: the node showed a state the cluster had not committed (the final reads are
/// consistent, so they answer at or above the commit index). Watchers need not have
/// covered the index for this.
fn above_final_index(
    reads: &[Read],
    events: &[Event],
    stats: &mut BTreeMap<String, u64>,
) -> Vec<Anomaly> {
    let finals = FinalReads::of(events);
    let mut checked = 0;
    let mut anomalies = Vec::new();
    for read in reads {
        let Some((bound, final_event, final_read)) = finals.bound_after(read.record.end) else {
            continue;
        };
        checked += 1;
        if read.index <= bound {
            continue;
        }
        anomalies.push(Anomaly {
            kind: "uncommitted-index".into(),
            description: format!(
                "node {} answered a stale read at index {}, above index {bound} of the \
                 consistent final read on node {} that started after it: the cluster had \
                 committed no such index",
                read.record.node, read.index, final_read.node
            ),
            window: Some((read.record.start, final_read.end)),
            evidence: vec![evidence_line(read.event), evidence_line(final_event)],
        });
    }
    stats.insert("stale_reads_checked_against_final_index".into(), checked);
    anomalies
}

/// What the watch streams say about one read of the set.
enum Judgement<'a> {
    /// No watcher covered its index.
    Unverified,
    /// Some watcher's state at its index holds exactly its ids.
    Confirmed,
    /// A watcher's state at its index differs (and none so far agrees).
    Contradicted {
        watcher: u64,
        missing: Vec<&'a str>,
        extra: Vec<&'a str>,
        basis: [&'a Event; 2],
    },
}

/// Reads of the set whose ids differ from every state a watcher saw at their index.
///
/// A read that matches at least one watcher is a committed state as far as anyone can
/// tell; watchers that disagree with each other are the watch checker's finding.
fn committed_states(
    reads: &[Read],
    events: &[Event],
    stats: &mut BTreeMap<String, u64>,
) -> Vec<Anomaly> {
    let mut pending: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (n, r) in reads.iter().enumerate() {
        if r.service == SET_SERVICE && r.ids.is_some() {
            pending.entry(r.index).or_default().push(n);
        }
    }
    let mut judgements: Vec<Judgement> = reads.iter().map(|_| Judgement::Unverified).collect();
    for (watcher, records) in watch_events_by_watcher(events) {
        replay(&records, |from, to, state, basis| {
            for n in pending.range(from..=to).flat_map(|(_, n)| n) {
                // One watcher vouching for a read is enough.
                if matches!(judgements[*n], Judgement::Confirmed) {
                    continue;
                }
                let Some(ids) = &reads[*n].ids else { continue };
                if ids == state {
                    judgements[*n] = Judgement::Confirmed;
                } else if matches!(judgements[*n], Judgement::Unverified) {
                    judgements[*n] = Judgement::Contradicted {
                        watcher,
                        missing: state.difference(ids).copied().collect(),
                        extra: ids.difference(state).copied().collect(),
                        basis,
                    };
                }
            }
        });
    }

    let mut anomalies = Vec::new();
    let (mut confirmed, mut unverified) = (0, 0);
    for (read, judgement) in reads.iter().zip(judgements) {
        match judgement {
            Judgement::Confirmed => confirmed += 1,
            Judgement::Unverified if pending.contains_key(&read.index) => unverified += 1,
            Judgement::Unverified => {}
            Judgement::Contradicted {
                watcher,
                missing,
                extra,
                basis,
            } => anomalies.push(Anomaly {
                kind: "not-a-committed-state".into(),
                description: format!(
                    "a stale read on node {} answered at index {} with a set no watcher saw \
                     there: next to watcher {watcher}'s set at that index it has extra [{}] \
                     and is missing [{}]",
                    read.record.node,
                    read.index,
                    named(&extra),
                    named(&missing)
                ),
                window: Some((read.record.start, read.record.end)),
                evidence: {
                    let mut lines = vec![evidence_line(basis[0])];
                    if !std::ptr::eq(basis[0], basis[1]) {
                        lines.push(evidence_line(basis[1]));
                    }
                    lines.push(evidence_line(read.event));
                    lines
                },
            }),
        }
    }
    stats.insert("stale_reads_confirmed_by_watch".into(), confirmed);
    stats.insert("stale_reads_not_covered_by_watch".into(), unverified);
    anomalies
}

/// Replays one watcher's records and calls `answer(from, to, ids, basis)` for each
/// stretch of indexes over which the watcher knows the set's exact ids: from a
/// snapshot or change up to (not including) the next change, or up to a progress
/// mark. `basis` is the record that set the state and the one that ended the stretch.
///
/// A resume from the last index seen keeps the knowledge (the new stream owes exactly
/// what follows), even after a reset whose snapshot never came; a fresh start, or a
/// stream that sends changes or progress between a reset and its snapshot, loses it
/// until the next snapshot. Whether the streams keep their promises (no gaps, no
/// duplicates) is the watch checker's job: this trusts them, and would blame a read
/// for a stream's gap.
pub(super) fn replay<'a>(
    records: &[(&'a Event, &'a WatchRecord)],
    mut answer: impl FnMut(u64, u64, &BTreeSet<&'a str>, [&'a Event; 2]),
) {
    // An empty stretch (a change right after the previous one) has nothing to tell.
    let mut answer = |from: u64, to: u64, ids: &BTreeSet<&'a str>, basis| {
        if from <= to {
            answer(from, to, ids, basis);
        }
    };
    let mut state: Option<(BTreeSet<&'a str>, &'a Event)> = None;
    // The highest index the state is known to hold at.
    let mut known_to = 0;
    // The index of the latest message: where the client resumes from.
    let mut latest = None;
    let mut after_reset = false;
    for &(event, record) in records {
        match &record.event {
            WatchEvent::Connected { from_index } => {
                after_reset = false;
                if *from_index == 0 || Some(*from_index) != latest {
                    state = None;
                }
            }
            WatchEvent::Snapshot { index, instances } => {
                latest = Some(*index);
                after_reset = false;
                let ids = instances
                    .iter()
                    .filter(|i| i.service == SET_SERVICE)
                    .map(|i| i.id.as_str())
                    .collect();
                answer(*index, *index, &ids, [event, event]);
                state = Some((ids, event));
                known_to = *index;
            }
            WatchEvent::Changes { index, changes } => {
                latest = Some(*index);
                let usable = !after_reset && *index > known_to;
                let Some((ids, basis)) = state.as_mut().filter(|_| usable) else {
                    state = None;
                    continue;
                };
                answer(known_to + 1, index - 1, ids, [*basis, event]);
                for change in changes {
                    match change {
                        Change::Upsert(i) if i.service == SET_SERVICE => {
                            ids.insert(i.id.as_str());
                        }
                        Change::Remove { service, id } if service == SET_SERVICE => {
                            ids.remove(id.as_str());
                        }
                        _ => {}
                    }
                }
                *basis = event;
                known_to = *index;
                answer(*index, *index, ids, [event, event]);
            }
            WatchEvent::Progress { index } => {
                latest = Some(*index);
                if let Some((ids, basis)) = state.as_ref().filter(|_| !after_reset) {
                    if *index > known_to {
                        answer(known_to + 1, *index, ids, [*basis, event]);
                        known_to = *index;
                    }
                }
            }
            WatchEvent::Reset { .. } => after_reset = true,
            WatchEvent::Disconnected { .. } => {}
        }
    }
}

fn named(ids: &[&str]) -> String {
    let mut names: Vec<&str> = ids.iter().take(MAX_NAMED).copied().collect();
    if ids.len() > MAX_NAMED {
        names.push("...");
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::kinds;
    use crate::checks::Verdict;
    use crate::history::{InstanceState, Nanos};

    fn read(node: u32, start: Nanos, index: u64, ids: &[&str]) -> Event {
        Event::Op(OpRecord {
            process: u64::from(node),
            node,
            op: Op::StaleRead {
                service: SET_SERVICE.into(),
                max_stale_ms: 500,
                ids: Some(ids.iter().map(|s| s.to_string()).collect()),
                index: Some(index),
                last_contact_ms: Some(50),
            },
            start,
            end: start + 5,
            outcome: Outcome::Ok,
            error: None,
        })
    }

    fn instance(id: &str) -> InstanceState {
        InstanceState {
            service: SET_SERVICE.into(),
            id: id.into(),
            value: None,
            modify_index: 1,
        }
    }

    fn watch(session: u64, time: Nanos, event: WatchEvent) -> Event {
        Event::Watch(WatchRecord {
            watcher: 1,
            node: 1,
            session,
            time,
            event,
        })
    }

    fn snapshot(index: u64, ids: &[&str]) -> WatchEvent {
        let instances = ids.iter().map(|id| instance(id)).collect();
        WatchEvent::Snapshot { index, instances }
    }

    fn changes(index: u64, add: &[&str], remove: &[&str]) -> WatchEvent {
        let upserts = add.iter().map(|id| Change::Upsert(instance(id)));
        let removes = remove.iter().map(|id| Change::Remove {
            service: SET_SERVICE.into(),
            id: (*id).into(),
        });
        WatchEvent::Changes {
            index,
            changes: upserts.chain(removes).collect(),
        }
    }

    /// Watcher 1: {a} at 5, b added at 7, a resume at 7, a removed at 9, progress to 10.
    fn watch_history() -> Vec<Event> {
        vec![
            watch(0, 0, WatchEvent::Connected { from_index: 0 }),
            watch(0, 1, snapshot(5, &["a"])),
            watch(0, 2, changes(7, &["b"], &[])),
            watch(
                0,
                3,
                WatchEvent::Disconnected {
                    error: "killed".into(),
                },
            ),
            watch(1, 4, WatchEvent::Connected { from_index: 7 }),
            watch(1, 5, changes(9, &[], &["a"])),
            watch(1, 6, WatchEvent::Progress { index: 10 }),
        ]
    }

    fn run(events: &[Event]) -> CheckerReport {
        check(events, &CheckContext::default())
    }

    #[test]
    fn old_but_real_and_monotonic_reads_are_valid() {
        let mut events = watch_history();
        events.extend([
            read(1, 100, 5, &["a"]),
            read(1, 110, 8, &["a", "b"]),
            // Across the resume, and inside the progress mark.
            read(1, 120, 10, &["b"]),
            // Another node may be further behind.
            read(2, 130, 6, &["a"]),
            // Not covered by any watcher: cannot be confirmed, nor blamed.
            read(2, 140, 40, &["z"]),
        ]);
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.anomalies);
        assert_eq!(report.stats["stale_reads_confirmed_by_watch"], 4);
        assert_eq!(report.stats["stale_reads_not_covered_by_watch"], 1);
        assert_eq!(report.stats["nodes"], 2);
    }

    #[test]
    fn a_node_that_goes_back_in_index_is_stale() {
        let events = [
            read(1, 0, 10, &[]),
            // Concurrent with the first: may be older.
            read(1, 2, 9, &[]),
            read(1, 10, 8, &[]),
        ];
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(kinds(&report), ["stale-index"]);
        let anomaly = &report.anomalies[0];
        assert_eq!(anomaly.window, Some((0, 15)));
        assert!(
            anomaly.description.contains("index 8"),
            "{}",
            anomaly.description
        );
        assert!(anomaly.evidence[0].contains("\"index\":10"));
    }

    #[test]
    fn an_answer_beyond_its_bound_is_reported() {
        let with_contact = |max_stale_ms, contact: u64| {
            let mut e = read(1, 0, 1, &[]);
            if let Event::Op(OpRecord {
                op:
                    Op::StaleRead {
                        max_stale_ms: m,
                        last_contact_ms: c,
                        ..
                    },
                ..
            }) = &mut e
            {
                *m = max_stale_ms;
                // u64::MAX stands for "no contact reported".
                *c = (contact != u64::MAX).then_some(contact);
            }
            e
        };
        assert_eq!(kinds(&run(&[with_contact(500, 900)])), ["staleness-bound"]);
        // A bounded read answered by a node that never heard from a leader.
        assert_eq!(
            kinds(&run(&[with_contact(500, u64::MAX)])),
            ["staleness-bound"]
        );
        assert_eq!(run(&[with_contact(500, 500)]).verdict, Verdict::Valid);
        // No bound asked for, none to break.
        assert_eq!(run(&[with_contact(0, 90_000)]).verdict, Verdict::Valid);
    }

    /// A partition that left `node` alone from 1 s to 9 s.
    fn cut_off(node: u32) -> Event {
        Event::Fault(crate::history::FaultRecord {
            fault: "partition".into(),
            detail: format!("isolate-leader n{node}"),
            nodes: vec![1, 2, 3],
            start: 0,
            end: 10_000 * MS,
            in_effect: Some((1_000 * MS, 9_000 * MS)),
            alone: vec![node],
        })
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn an_answer_from_a_node_cut_off_past_its_bound_is_reported_whatever_it_says() {
        // `read` asks for 500 ms and reports 50 ms of contact, which the check ignores:
        // 1.1 s after the cut, past the bound and the margin, no leader was in reach.
        let late = read(1, 2_100 * MS, 1, &[]);
        let report = run(&[cut_off(1), late]);
        assert_eq!(kinds(&report), ["staleness-bound"]);
        assert!(
            report.anomalies[0].description.contains("cut it off"),
            "{}",
            report.anomalies[0].description
        );
        // Within the margin, on another node, or after the heal: nothing to say.
        let early = read(1, 1_600 * MS, 1, &[]);
        let other_node = read(2, 5_000 * MS, 1, &[]);
        let healed = read(1, 9_500 * MS, 1, &[]);
        assert_eq!(
            run(&[cut_off(1), early, other_node, healed]).verdict,
            Verdict::Valid
        );
    }

    #[test]
    fn a_set_that_never_existed_at_its_index_is_not_a_committed_state() {
        let mut events = watch_history();
        // At index 6 only a existed; b came at 7.
        events.push(read(1, 100, 6, &["a", "b"]));
        let report = run(&events);
        assert_eq!(kinds(&report), ["not-a-committed-state"]);
        let anomaly = &report.anomalies[0];
        assert!(
            anomaly.description.contains("extra [b] and is missing []"),
            "{}",
            anomaly.description
        );
        // The snapshot at 5 and the change at 7 bound what the set held at 6.
        assert_eq!(anomaly.evidence.len(), 3);
    }

    #[test]
    fn a_read_above_the_final_index_was_never_committed() {
        let final_read = |start: Nanos, index| {
            Event::Op(OpRecord {
                process: 99,
                node: 2,
                op: Op::ListAll {
                    service: SET_SERVICE.into(),
                    instances: Some(vec![instance("b")]),
                    index: Some(index),
                },
                start,
                end: start + 10,
                outcome: Outcome::Ok,
                error: None,
            })
        };
        // No watcher covers index 12 or 40: only the final read can judge them.
        let good = [read(1, 100, 12, &["b"]), final_read(200, 12)];
        let report = run(&good);
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.anomalies);
        assert_eq!(report.stats["stale_reads_checked_against_final_index"], 1);
        let bad = [read(1, 100, 40, &["b"]), final_read(200, 12)];
        let report = run(&bad);
        assert_eq!(kinds(&report), ["uncommitted-index"]);
        assert!(
            report.anomalies[0]
                .description
                .contains("index 40, above index 12"),
            "{}",
            report.anomalies[0].description
        );
        assert_eq!(report.anomalies[0].window, Some((100, 210)));
        assert_eq!(report.anomalies[0].evidence.len(), 2);
        // A final read that began before the read ended bounds nothing.
        let overlapping = [read(1, 200, 40, &["b"]), final_read(200, 12)];
        assert_eq!(run(&overlapping).verdict, Verdict::Valid);
    }

    #[test]
    fn a_reset_ends_what_a_watcher_can_vouch_for() {
        let mut events = watch_history();
        events.extend([
            watch(
                1,
                7,
                WatchEvent::Reset {
                    index: 10,
                    reason: "compacted".into(),
                },
            ),
            // Between the reset and the new snapshot the watcher knows nothing, even
            // if the server (wrongly) sent progress there.
            watch(1, 8, WatchEvent::Progress { index: 16 }),
            watch(1, 9, snapshot(20, &["c"])),
            read(1, 100, 15, &["nonsense"]),
            read(1, 110, 20, &["c", "d"]),
        ]);
        let report = run(&events);
        assert_eq!(kinds(&report), ["not-a-committed-state"]);
        assert!(report.anomalies[0].description.contains("index 20"));
        assert_eq!(report.stats["stale_reads_not_covered_by_watch"], 1);
    }
}
