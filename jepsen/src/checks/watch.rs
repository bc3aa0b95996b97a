//! The watch checker: every watcher's streams, taken together across reconnects, are
//! ordered, free of duplicates and gaps, atomic per index, agree with each other and
//! with the acknowledged writes, and end in the state the final reads show.
//!
//! A watcher resumes after a disconnect from the last index it saw, and the contract
//! says the new stream continues exactly there, so a resumed watcher is checked as one
//! continuous stream. Only a reset (or a fresh start) breaks it; then a snapshot
//! starts a new stretch, which must not go back in index.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Included};

use super::{
    evidence_line, op_events, watch_events_by_watcher, Anomaly, CheckContext, CheckerReport,
    REGISTER_SERVICE, SET_SERVICE,
};
use crate::history::{
    Change, Event, InstanceState, Nanos, Op, OpRecord, Outcome, WatchEvent, WatchRecord,
};

/// The most indexes or instances named in one description.
const MAX_NAMED: usize = 5;

/// A watch record with the history line it came from.
pub(super) type Rec<'a> = (&'a Event, &'a WatchRecord);
/// Instances by (service, id).
type State<'a> = BTreeMap<(&'a str, &'a str), &'a InstanceState>;

/// Indexes (lo, hi] that a watcher followed without a break: it must have been sent
/// every change in them.
struct Span {
    lo: u64,
    hi: u64,
}

/// One watcher's records, replayed.
struct Stream<'a> {
    watcher: u64,
    records: Vec<Rec<'a>>,
    /// The index of every `Changes` delivered, with the position of its first delivery.
    delivered: BTreeMap<u64, usize>,
    spans: Vec<Span>,
    /// The state the watcher ends with; `None` if a fresh start (or a stream that broke
    /// its own rules) left it without a snapshot to build on.
    state: Option<State<'a>>,
    /// The highest index the watcher was sent, and where: how far it got.
    highest: Option<(u64, usize)>,
    resets: u64,
}

/// Checks every watcher's streams.
pub fn check(events: &[Event], _ctx: &CheckContext) -> CheckerReport {
    let mut anomalies = Vec::new();
    let streams: Vec<Stream> = watch_events_by_watcher(events)
        .into_iter()
        .map(|(watcher, records)| replay(watcher, records, &mut anomalies))
        .collect();
    let known = known_changes(&streams, events, &mut anomalies);
    anomalies.extend(streams.iter().flat_map(|s| gaps(s, &known)));
    anomalies.extend(super::watch_snapshots::check(events));
    anomalies.extend(super::watch_protocol::check(events));

    let mut stats = BTreeMap::new();
    let count = |f: fn(&Stream) -> usize| streams.iter().map(f).sum::<usize>() as u64;
    stats.insert("watchers".into(), streams.len() as u64);
    stats.insert("watch_events".into(), count(|s| s.records.len()));
    stats.insert(
        "sessions".into(),
        count(|s| {
            let sessions: BTreeSet<u64> = s.records.iter().map(|(_, r)| r.session).collect();
            sessions.len()
        }),
    );
    stats.insert("resets".into(), count(|s| s.resets as usize));
    stats.insert("changes_delivered".into(), count(|s| s.delivered.len()));
    stats.insert("change_indexes_known".into(), known.len() as u64);
    let acked = known.values().filter(|k| !k.acked.is_empty()).count();
    stats.insert("change_indexes_acknowledged".into(), acked as u64);

    anomalies.extend(convergence(&streams, events, &mut stats));
    CheckerReport::from_findings("watch", anomalies, stats)
}

/// Replays one watcher's records in the order received, reporting messages out of
/// order, duplicated or going back, and working out what it covered and ended with.
fn replay<'a>(watcher: u64, records: Vec<Rec<'a>>, anomalies: &mut Vec<Anomaly>) -> Stream<'a> {
    let mut s = Stream {
        watcher,
        records,
        delivered: BTreeMap::new(),
        spans: Vec::new(),
        state: None,
        highest: None,
        resets: 0,
    };
    let mut span: Option<Span> = None;
    // The index of the latest message, whatever it was: where the client resumes from.
    let mut latest: Option<u64> = None;
    // A reset was sent and its snapshot has not come yet.
    let mut after_reset = false;
    for (pos, &(_, record)) in s.records.iter().enumerate() {
        let earlier = |at: usize| s.records[at];
        let index = index_of(record);
        if index.is_some() {
            latest = index;
        }
        match &record.event {
            WatchEvent::Connected { from_index } => {
                after_reset = false;
                if *from_index != 0 && latest == Some(*from_index) {
                    // A resume: the new stream owes exactly the changes after the last
                    // index seen, so the watcher's state and coverage carry on.
                    span.get_or_insert(Span {
                        lo: *from_index,
                        hi: *from_index,
                    });
                } else {
                    // A fresh start: nothing carries over until the snapshot.
                    s.spans.extend(span.take());
                    s.state = None;
                    if *from_index > 0 {
                        span = Some(Span {
                            lo: *from_index,
                            hi: *from_index,
                        });
                    }
                }
            }
            WatchEvent::Snapshot { index, instances } => {
                if let Some((h, at)) = s.highest.filter(|(h, _)| index < h) {
                    anomalies.push(pair(
                        "went-back",
                        format!(
                            "watcher {watcher} was sent a snapshot at index {index} after it \
                             had already seen index {h}: its view went back in time"
                        ),
                        earlier(at),
                        s.records[pos],
                    ));
                    // The stream starts over from the snapshot: check on from there
                    // rather than blame every later message for the same fault.
                    s.delivered.retain(|i, _| i <= index);
                }
                after_reset = false;
                s.spans.extend(span.take());
                span = Some(Span {
                    lo: *index,
                    hi: *index,
                });
                s.state = Some(
                    instances
                        .iter()
                        .map(|i| ((i.service.as_str(), i.id.as_str()), i))
                        .collect(),
                );
                s.highest = Some((*index, pos));
            }
            WatchEvent::Changes { index, changes } => {
                if let Some(&first) = s.delivered.get(index) {
                    anomalies.push(pair(
                        "duplicate",
                        format!("watcher {watcher} was sent the changes at index {index} twice"),
                        earlier(first),
                        s.records[pos],
                    ));
                    continue;
                }
                if let Some((h, at)) = s.highest.filter(|(h, _)| index <= h) {
                    anomalies.push(pair(
                        "out-of-order",
                        format!(
                            "watcher {watcher} was sent changes at index {index} after it had \
                             already seen index {h}"
                        ),
                        earlier(at),
                        s.records[pos],
                    ));
                    continue;
                }
                s.delivered.insert(*index, pos);
                if after_reset {
                    // Changes where the snapshot should be: nothing to build them on.
                    s.state = None;
                }
                if let Some(state) = &mut s.state {
                    apply(state, changes);
                }
                if let Some(span) = &mut span {
                    span.hi = *index;
                }
                s.highest = Some((*index, pos));
            }
            WatchEvent::Progress { index } => {
                if let Some((h, at)) = s.highest.filter(|(h, _)| index < h) {
                    anomalies.push(pair(
                        "out-of-order",
                        format!(
                            "watcher {watcher} was sent progress to index {index} after it had \
                             already seen index {h}"
                        ),
                        earlier(at),
                        s.records[pos],
                    ));
                    continue;
                }
                // Progress says nothing changed up to here: the span covers it.
                if let Some(span) = &mut span {
                    span.hi = *index;
                }
                s.highest = Some((*index, pos));
            }
            WatchEvent::Reset { .. } => {
                // The server gives up on continuity here: no gap can be claimed past
                // this point until the snapshot (or a resume) starts a new stretch. The
                // state is still right as of the last index seen.
                s.resets += 1;
                after_reset = true;
                s.spans.extend(span.take());
            }
            WatchEvent::Disconnected { .. } => {}
        }
    }
    s.spans.extend(span);
    s
}

fn apply<'a>(state: &mut State<'a>, changes: &'a [Change]) {
    for change in changes {
        match change {
            Change::Upsert(i) => {
                state.insert((i.service.as_str(), i.id.as_str()), i);
            }
            Change::Remove { service, id } => {
                state.remove(&(service.as_str(), id.as_str()));
            }
        }
    }
}

/// What is known to have changed at one index, and who says so.
#[derive(Default)]
struct Known<'a> {
    /// The first watcher's changes at this index, sorted, with its record.
    reported: Option<(Vec<&'a Change>, Rec<'a>)>,
    /// Acknowledged operations committed at this index, with what each implies.
    acked: Vec<(Expect<'a>, &'a Event, &'a OpRecord)>,
}

/// The change an acknowledged operation implies at its commit index.
enum Expect<'a> {
    /// The instance was written; for a register key, with this value.
    Upsert {
        service: &'static str,
        id: &'a str,
        value: Option<i64>,
    },
    Remove {
        service: &'static str,
        id: &'a str,
    },
}

impl Expect<'_> {
    fn met_by(&self, change: &Change) -> bool {
        match (self, change) {
            (Expect::Upsert { service, id, value }, Change::Upsert(i)) => {
                i.service == *service
                    && i.id == *id
                    && value
                        .is_none_or(|v| i.value.as_deref().and_then(|s| s.parse().ok()) == Some(v))
            }
            (Expect::Remove { service, id }, Change::Remove { service: s, id: i }) => {
                s == service && i == id
            }
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Expect::Upsert {
                id, value: Some(v), ..
            } => format!("write of {v} to key {id}"),
            Expect::Upsert { id, .. } => format!("add of {id}"),
            Expect::Remove { id, .. } => format!("removal of {id}"),
        }
    }
}

/// The change an acknowledged operation committed, and at which index.
fn expected(record: &OpRecord) -> Option<(u64, Expect<'_>)> {
    if record.outcome != Outcome::Ok {
        return None;
    }
    let register = |id, value| Expect::Upsert {
        service: REGISTER_SERVICE,
        id,
        value: Some(value),
    };
    match &record.op {
        Op::Write {
            key,
            value,
            index: Some(i),
        } => Some((*i, register(key.as_str(), *value))),
        Op::Cas {
            key,
            to,
            index: Some(i),
            ..
        } => Some((*i, register(key.as_str(), *to))),
        Op::Add { id, index: Some(i) } => Some((
            *i,
            Expect::Upsert {
                service: SET_SERVICE,
                id,
                value: None,
            },
        )),
        // A removal that found nothing changed nothing.
        Op::Remove {
            id,
            removed: Some(true),
            index: Some(i),
        } => Some((
            *i,
            Expect::Remove {
                service: SET_SERVICE,
                id,
            },
        )),
        _ => None,
    }
}

/// Every index known to carry changes to the watched services, from the watchers and
/// from acknowledged writes, reporting where the sources disagree about one.
fn known_changes<'a>(
    streams: &[Stream<'a>],
    events: &'a [Event],
    anomalies: &mut Vec<Anomaly>,
) -> BTreeMap<u64, Known<'a>> {
    let mut known: BTreeMap<u64, Known<'a>> = BTreeMap::new();
    for (event, record) in op_events(events) {
        if let Some((index, expect)) = expected(record) {
            known
                .entry(index)
                .or_default()
                .acked
                .push((expect, event, record));
        }
    }
    for s in streams {
        for (&index, &pos) in &s.delivered {
            let rec = s.records[pos];
            let WatchEvent::Changes { changes, .. } = &rec.1.event else {
                continue;
            };
            let mut sorted: Vec<&Change> = changes.iter().collect();
            sorted.sort();
            let k = known.entry(index).or_default();
            // Every change of an index comes in one message, the same for everyone.
            match &k.reported {
                None => k.reported = Some((sorted, rec)),
                Some((first, by)) if *first != sorted => anomalies.push(pair(
                    "disagreement",
                    format!(
                        "watchers {} and {} were sent different changes for index {index}",
                        by.1.watcher, s.watcher
                    ),
                    *by,
                    rec,
                )),
                Some(_) => {}
            }
            for (expect, op_event, op) in &k.acked {
                if !changes.iter().any(|c| expect.met_by(c)) {
                    anomalies.push(Anomaly {
                        kind: "disagreement".into(),
                        description: format!(
                            "watcher {}'s changes at index {index} lack the acknowledged {} \
                             (process {} on node {}), committed at that index",
                            s.watcher,
                            expect.describe(),
                            op.process,
                            op.node
                        ),
                        window: Some((op.start.min(rec.1.time), op.end.max(rec.1.time))),
                        evidence: vec![evidence_line(op_event), evidence_line(rec.0)],
                    });
                }
            }
        }
    }
    known
}

/// Known change indexes inside a stretch a watcher followed without a break that it
/// was never sent.
fn gaps(s: &Stream, known: &BTreeMap<u64, Known>) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    for span in s.spans.iter().filter(|span| span.hi > span.lo) {
        let missing: Vec<u64> = known
            .range((Excluded(span.lo), Included(span.hi)))
            .map(|(i, _)| *i)
            .filter(|i| !s.delivered.contains_key(i))
            .collect();
        let Some(&first) = missing.first() else {
            continue;
        };
        // Who knows of the change: a watcher that was sent it, or else the write.
        let (source, who) = match known.get(&first) {
            Some(Known {
                reported: Some((_, rec)),
                ..
            }) => (rec.0, format!("watcher {} was sent", rec.1.watcher)),
            Some(Known { acked, .. }) => match acked.first() {
                Some((_, event, _)) => (*event, "an acknowledged write committed".to_string()),
                None => continue,
            },
            None => continue,
        };
        // The watcher's messages on either side of the first missing index.
        let before = s
            .records
            .iter()
            .rev()
            .find(|(_, r)| index_of(r).is_some_and(|i| i < first));
        let after = s
            .records
            .iter()
            .find(|(_, r)| index_of(r).is_some_and(|i| i > first));
        let times = [before, after].map(|r| r.map(|(_, r)| r.time));
        let mut evidence: Vec<String> = before.into_iter().map(|r| evidence_line(r.0)).collect();
        evidence.push(evidence_line(source));
        evidence.extend(after.map(|r| evidence_line(r.0)));
        anomalies.push(Anomaly {
            kind: "gap".into(),
            description: format!(
                "watcher {} followed indexes {} to {} without a break but was never sent the \
                 changes at index {first}, which {who}{}",
                s.watcher,
                span.lo,
                span.hi,
                more(&missing[1..])
            ),
            window: match times {
                [Some(a), Some(b)] => Some((a, b)),
                [a, b] => a.or(b).map(|t| (t, t)),
            },
            evidence,
        });
    }
    anomalies
}

/// The index a stream message is at, for those that have one.
fn index_of(record: &WatchRecord) -> Option<u64> {
    match record.event {
        WatchEvent::Snapshot { index, .. }
        | WatchEvent::Changes { index, .. }
        | WatchEvent::Progress { index } => Some(index),
        _ => None,
    }
}

/// Each watcher's final state must be what the final reads show: the harness lets
/// watchers catch up with the final reads' index before it stops them.
fn convergence(
    streams: &[Stream],
    events: &[Event],
    stats: &mut BTreeMap<String, u64>,
) -> Vec<Anomaly> {
    // Per service, the latest successful final read.
    let mut finals: BTreeMap<&str, (u64, &Event, &OpRecord, &[InstanceState])> = BTreeMap::new();
    for (event, record) in op_events(events) {
        let Op::ListAll {
            service,
            instances: Some(instances),
            index: Some(index),
        } = &record.op
        else {
            continue;
        };
        let watched = service == REGISTER_SERVICE || service == SET_SERVICE;
        if !watched || record.outcome != Outcome::Ok {
            continue;
        }
        let newer = finals
            .get(service.as_str())
            .is_none_or(|(i, _, r, _)| (*index, record.end) >= (*i, r.end));
        if newer {
            finals.insert(service, (*index, event, record, instances));
        }
    }
    let Some(target) = finals.values().map(|f| f.0).max() else {
        stats.insert("convergence_skipped".into(), 1);
        return Vec::new();
    };
    let expected: BTreeMap<(&str, &str), &InstanceState> = finals
        .iter()
        .flat_map(|(service, f)| f.3.iter().filter(move |i| i.service == *service))
        .map(|i| ((i.service.as_str(), i.id.as_str()), i))
        .collect();
    let window_start = finals.values().map(|f| f.2.start).min().unwrap_or(0);
    let window_end = finals.values().map(|f| f.2.end).max().unwrap_or(0);

    let mut anomalies = Vec::new();
    for s in streams {
        let problem = match (s.highest, &s.state) {
            (None, _) => format!("was never sent anything, so never reached index {target}"),
            (Some((i, _)), _) if i < target => {
                format!("stopped at index {i}, below the final reads' index {target}")
            }
            (_, None) => "ended with no snapshot to build its state on (it started over, \
                          or was sent changes between a reset and its snapshot)"
                .to_string(),
            (_, Some(state)) => match difference(state, &expected, &finals) {
                Some(diff) => format!("ended in a state that differs from the final reads: {diff}"),
                None => continue,
            },
        };
        let last = s
            .highest
            .map_or(s.records.last(), |(_, pos)| s.records.get(pos));
        let mut evidence: Vec<String> = last.into_iter().map(|r| evidence_line(r.0)).collect();
        evidence.extend(finals.values().map(|f| evidence_line(f.1)));
        let last_time: Nanos = last.map_or(0, |r| r.1.time);
        anomalies.push(Anomaly {
            kind: "not-converged".into(),
            description: format!("watcher {} {problem}", s.watcher),
            window: Some((window_start.min(last_time), window_end.max(last_time))),
            evidence,
        });
    }
    anomalies
}

/// How a watcher's state differs from the final reads, over the services they cover.
fn difference<T>(
    state: &State,
    expected: &BTreeMap<(&str, &str), &InstanceState>,
    finals: &BTreeMap<&str, T>,
) -> Option<String> {
    let ours = state
        .iter()
        .filter(|((service, _), _)| finals.contains_key(service));
    let mut extra = Vec::new();
    let mut differ = Vec::new();
    for (key, instance) in ours {
        match expected.get(key) {
            None => extra.push(format!("{}/{}", key.0, key.1)),
            Some(e) if e != instance => differ.push(format!("{}/{}", key.0, key.1)),
            Some(_) => {}
        }
    }
    let missing: Vec<String> = expected
        .keys()
        .filter(|key| !state.contains_key(*key))
        .map(|key| format!("{}/{}", key.0, key.1))
        .collect();
    if extra.is_empty() && differ.is_empty() && missing.is_empty() {
        return None;
    }
    Some(format!(
        "missing [{}], extra [{}], different [{}]",
        named(&missing),
        named(&extra),
        named(&differ)
    ))
}

/// An anomaly shown by two records of the history, the earlier first (one line when
/// they are the same record).
pub(super) fn pair(kind: &str, description: String, earlier: Rec, later: Rec) -> Anomaly {
    let (a, b) = (earlier.1.time, later.1.time);
    let mut evidence = vec![evidence_line(earlier.0)];
    if !std::ptr::eq(earlier.0, later.0) {
        evidence.push(evidence_line(later.0));
    }
    Anomaly {
        kind: kind.into(),
        description,
        window: Some((a.min(b), a.max(b))),
        evidence,
    }
}

fn named(items: &[String]) -> String {
    let mut names: Vec<&str> = items.iter().take(MAX_NAMED).map(String::as_str).collect();
    if items.len() > MAX_NAMED {
        names.push("...");
    }
    names.join(", ")
}

/// ", and 3 more (58, 59, 61)" for the rest of a list of indexes.
fn more(rest: &[u64]) -> String {
    if rest.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = rest.iter().take(MAX_NAMED).map(u64::to_string).collect();
    let tail = if rest.len() > MAX_NAMED { ", ..." } else { "" };
    format!("; and {} more ({}{tail})", rest.len(), shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{connected, kinds, snapshot, upsert};
    use crate::checks::Verdict;

    fn rec(watcher: u64, session: u64, time: Nanos, event: WatchEvent) -> Event {
        Event::Watch(WatchRecord {
            watcher,
            node: 1,
            session,
            time,
            event,
        })
    }

    fn reg(key: &str, value: i64, index: u64) -> InstanceState {
        InstanceState {
            service: REGISTER_SERVICE.into(),
            id: key.into(),
            value: Some(value.to_string()),
            modify_index: index,
        }
    }

    fn member(id: &str, index: u64) -> InstanceState {
        InstanceState {
            service: SET_SERVICE.into(),
            id: id.into(),
            value: None,
            modify_index: index,
        }
    }

    fn progress(index: u64) -> WatchEvent {
        WatchEvent::Progress { index }
    }

    fn disconnected() -> WatchEvent {
        WatchEvent::Disconnected {
            error: "node killed".into(),
        }
    }

    fn op(op: Op, start: Nanos) -> Event {
        Event::Op(OpRecord {
            process: 7,
            node: 2,
            op,
            start,
            end: start + 1,
            outcome: Outcome::Ok,
            error: None,
        })
    }

    fn write(key: &str, value: i64, index: u64) -> Event {
        let key = key.into();
        op(
            Op::Write {
                key,
                value,
                index: Some(index),
            },
            0,
        )
    }

    fn add(id: &str, index: u64) -> Event {
        op(
            Op::Add {
                id: id.into(),
                index: Some(index),
            },
            0,
        )
    }

    fn final_read(service: &str, instances: &[InstanceState], index: u64) -> Event {
        let (service, instances) = (service.into(), Some(instances.to_vec()));
        op(
            Op::ListAll {
                service,
                instances,
                index: Some(index),
            },
            100,
        )
    }

    /// k1 = 5 at index 2, a added at 3, nothing after until the final reads at 5.
    /// Watcher 1 starts early and resumes once; watcher 2 starts at index 2.
    fn good() -> Vec<Event> {
        vec![
            write("k1", 5, 2),
            add("a", 3),
            rec(1, 0, 10, connected(0)),
            rec(1, 0, 11, snapshot(1, &[])),
            rec(1, 0, 12, upsert(2, reg("k1", 5, 2))),
            rec(1, 0, 13, disconnected()),
            rec(1, 1, 14, connected(2)),
            rec(1, 1, 15, upsert(3, member("a", 3))),
            rec(1, 1, 16, progress(5)),
            rec(2, 0, 20, connected(0)),
            rec(2, 0, 21, snapshot(2, &[reg("k1", 5, 2)])),
            rec(2, 0, 22, upsert(3, member("a", 3))),
            rec(2, 0, 23, progress(5)),
            final_read(REGISTER_SERVICE, &[reg("k1", 5, 2)], 5),
            final_read(SET_SERVICE, &[member("a", 3)], 5),
        ]
    }

    fn run(events: &[Event]) -> CheckerReport {
        check(events, &CheckContext::default())
    }

    /// `good()` with the records of `watcher` replaced.
    fn with_watcher(watcher: u64, records: Vec<Event>) -> Vec<Event> {
        let mut events: Vec<Event> = good()
            .into_iter()
            .filter(|e| !matches!(e, Event::Watch(w) if w.watcher == watcher))
            .collect();
        events.extend(records);
        events
    }

    #[test]
    fn resumed_streams_that_agree_and_converge_are_valid() {
        let report = run(&good());
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.anomalies);
        assert_eq!(report.stats["watchers"], 2);
        assert_eq!(report.stats["sessions"], 3);
        assert_eq!(report.stats["change_indexes_known"], 2);
        assert_eq!(report.stats["change_indexes_acknowledged"], 2);
    }

    #[test]
    fn a_reset_may_skip_changes_but_not_go_back() {
        // A reset and a later snapshot replace the state: skipping index 3 is fine.
        let reset = |index| WatchEvent::Reset {
            index,
            reason: "SLOW_CONSUMER".into(),
        };
        let skips = with_watcher(
            2,
            vec![
                rec(2, 0, 20, connected(0)),
                rec(2, 0, 21, snapshot(2, &[reg("k1", 5, 2)])),
                rec(2, 0, 22, reset(5)),
                rec(2, 0, 23, snapshot(5, &[reg("k1", 5, 2), member("a", 3)])),
            ],
        );
        let report = run(&skips);
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.anomalies);
        assert_eq!(report.stats["resets"], 1);
        // A snapshot below what the watcher already saw takes it back in time.
        let back = with_watcher(
            2,
            vec![
                rec(2, 0, 20, connected(0)),
                rec(2, 0, 21, snapshot(3, &[reg("k1", 5, 2), member("a", 3)])),
                rec(2, 0, 22, reset(1)),
                rec(2, 0, 23, snapshot(1, &[])),
            ],
        );
        let report = run(&back);
        // It also ends below the final reads.
        assert_eq!(kinds(&report), ["went-back", "not-converged"]);
        assert_eq!(report.anomalies[0].window, Some((21, 23)));
    }

    #[test]
    fn a_resume_after_a_reset_without_its_snapshot_still_owes_every_change() {
        let records = |after_resume: Vec<Event>| {
            let mut records = vec![
                rec(2, 0, 20, connected(0)),
                rec(2, 0, 21, snapshot(2, &[reg("k1", 5, 2)])),
                rec(
                    2,
                    0,
                    22,
                    WatchEvent::Reset {
                        index: 2,
                        reason: "SNAPSHOT_INSTALLED".into(),
                    },
                ),
                rec(2, 0, 23, disconnected()),
                rec(2, 1, 24, connected(2)),
            ];
            records.extend(after_resume);
            with_watcher(2, records)
        };
        let whole = records(vec![
            rec(2, 1, 25, upsert(3, member("a", 3))),
            rec(2, 1, 26, progress(5)),
        ]);
        let report = run(&whole);
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.anomalies);
        let skipped = records(vec![rec(2, 1, 26, progress(5))]);
        let report = run(&skipped);
        assert_eq!(kinds(&report), ["gap", "not-converged"]);
        assert!(report.anomalies[0].description.contains("index 3"));
    }

    #[test]
    fn a_change_skipped_inside_a_followed_stretch_is_a_gap() {
        // Watcher 2 is told nothing changed up to 5, but a was added at 3.
        let events = with_watcher(
            2,
            vec![
                rec(2, 0, 20, connected(0)),
                rec(2, 0, 21, snapshot(2, &[reg("k1", 5, 2)])),
                rec(2, 0, 23, progress(5)),
            ],
        );
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert!(kinds(&report).contains(&"gap"), "{:?}", report.anomalies);
        let gap = report.anomalies.iter().find(|a| a.kind == "gap").unwrap();
        assert!(gap.description.contains("watcher 2"), "{}", gap.description);
        assert!(gap.description.contains("index 3"), "{}", gap.description);
        assert_eq!(gap.window, Some((21, 23)));
        assert_eq!(gap.evidence.len(), 3);
    }

    #[test]
    fn a_resume_that_skips_a_change_is_a_gap_even_if_only_a_write_shows_it() {
        let mut events: Vec<Event> = vec![
            write("k1", 5, 2),
            add("a", 3),
            rec(1, 0, 10, connected(0)),
            rec(1, 0, 11, snapshot(1, &[])),
            rec(1, 0, 12, upsert(2, reg("k1", 5, 2))),
            rec(1, 0, 13, disconnected()),
            // Resumed from 2, the new stream jumps to 4: the add at 3 never came.
            rec(1, 1, 14, connected(2)),
            rec(1, 1, 15, upsert(4, reg("k1", 6, 4))),
        ];
        events.push(write("k1", 6, 4));
        let report = run(&events);
        assert_eq!(kinds(&report), ["gap"]);
        assert!(report.anomalies[0]
            .description
            .contains("acknowledged write"));
    }

    #[test]
    fn the_same_index_twice_is_a_duplicate_even_across_a_resume() {
        let events = with_watcher(
            1,
            vec![
                rec(1, 0, 10, connected(0)),
                rec(1, 0, 11, snapshot(1, &[])),
                rec(1, 0, 12, upsert(2, reg("k1", 5, 2))),
                rec(1, 0, 13, disconnected()),
                rec(1, 1, 14, connected(2)),
                rec(1, 1, 15, upsert(2, reg("k1", 5, 2))),
                rec(1, 1, 16, upsert(3, member("a", 3))),
                rec(1, 1, 17, progress(5)),
            ],
        );
        let report = run(&events);
        assert_eq!(kinds(&report), ["duplicate"]);
        assert_eq!(report.anomalies[0].window, Some((12, 15)));
    }

    #[test]
    fn messages_that_go_back_in_index_are_out_of_order() {
        let events = with_watcher(
            1,
            vec![
                rec(1, 0, 10, connected(0)),
                rec(1, 0, 11, snapshot(1, &[])),
                rec(1, 0, 12, progress(2)),
                // Index 2 was covered by the progress already.
                rec(1, 0, 13, upsert(2, reg("k1", 5, 2))),
                rec(1, 0, 14, upsert(3, member("a", 3))),
                rec(1, 0, 15, progress(2)),
                rec(1, 0, 16, progress(5)),
            ],
        );
        let report = run(&events);
        // The change at 2 that came too late also leaves a hole in what the watcher
        // followed, and a final state without k1.
        assert_eq!(
            kinds(&report),
            ["out-of-order", "out-of-order", "gap", "not-converged"]
        );
        assert!(report.anomalies[1]
            .description
            .contains("progress to index 2"));
    }

    #[test]
    fn watchers_that_disagree_with_each_other_or_with_a_write_are_reported() {
        // Watcher 2 sees a different instance at 3 than watcher 1 and the add.
        let other = with_watcher(
            2,
            vec![
                rec(2, 0, 20, connected(0)),
                rec(2, 0, 21, snapshot(2, &[reg("k1", 5, 2)])),
                rec(2, 0, 22, upsert(3, member("b", 3))),
                rec(2, 0, 23, progress(5)),
            ],
        );
        let report = run(&other);
        let found = kinds(&report);
        assert_eq!(
            found.iter().filter(|k| **k == "disagreement").count(),
            2,
            "{found:?}"
        );
        assert!(report
            .anomalies
            .iter()
            .any(|a| a.description.contains("add of a")));
        // Both watchers agree with each other, but not with the acknowledged write.
        let mut wrong_value = good();
        for e in &mut wrong_value {
            if let Event::Op(OpRecord {
                op: Op::Write { value, .. },
                ..
            }) = e
            {
                *value = 6;
            }
        }
        let report = run(&wrong_value);
        // Watcher 2's snapshot at 2 holds k1 = 5 as well, against the write of 6 there.
        assert_eq!(kinds(&report), ["disagreement", "snapshot-disagreement"]);
        assert!(report.anomalies[0]
            .description
            .contains("write of 6 to key k1"));
    }

    #[test]
    fn a_watcher_that_stops_short_or_ends_elsewhere_has_not_converged() {
        let short = with_watcher(
            2,
            vec![
                rec(2, 0, 20, connected(0)),
                rec(2, 0, 21, snapshot(2, &[reg("k1", 5, 2)])),
                rec(2, 0, 22, upsert(3, member("a", 3))),
            ],
        );
        let report = run(&short);
        assert_eq!(kinds(&report), ["not-converged"]);
        assert!(report.anomalies[0]
            .description
            .contains("stopped at index 3"));

        let mut elsewhere = good();
        elsewhere.retain(|e| {
            !matches!(
                e,
                Event::Op(OpRecord {
                    op: Op::ListAll { .. },
                    ..
                })
            )
        });
        elsewhere.push(final_read(REGISTER_SERVICE, &[reg("k1", 5, 2)], 5));
        elsewhere.push(final_read(
            SET_SERVICE,
            &[member("a", 3), member("z", 4)],
            5,
        ));
        let report = run(&elsewhere);
        assert_eq!(kinds(&report), ["not-converged", "not-converged"]);
        assert!(report.anomalies[0]
            .description
            .contains("missing [jepsen-set/z]"));
    }

    #[test]
    fn without_final_reads_convergence_is_skipped() {
        let mut events = good();
        events.retain(|e| {
            !matches!(
                e,
                Event::Op(OpRecord {
                    op: Op::ListAll { .. },
                    ..
                })
            )
        });
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Valid);
        assert_eq!(report.stats["convergence_skipped"], 1);
    }
}
