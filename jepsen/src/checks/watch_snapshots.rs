//! Part of the watch checker: a snapshot must hold the committed state at its index.
//! Changes are compared message by message elsewhere; a snapshot is compared with what
//! the other watchers knew the set to be at the same index (from their own snapshots
//! and unbroken runs of changes), so a snapshot that drops or invents an instance
//! shows up even if nothing touches that instance again. Its register keys are
//! compared with every write known to have committed by its index (from acknowledged
//! writes and from any watcher's changes): each key's latest such write must be there,
//! with its value, unless the snapshot holds a later one.

use std::collections::{BTreeMap, BTreeSet};

use super::stale::replay;
use super::{
    evidence_line, op_events, secs, watch_events_by_watcher, Anomaly, REGISTER_SERVICE, SET_SERVICE,
};
use crate::history::{watch_records, Change, Event, Op, Outcome, WatchEvent, WatchRecord};

/// A snapshot to vouch for: who received it, where, and which set ids it held.
struct Snapshot<'a> {
    watcher: u64,
    record: &'a WatchRecord,
    ids: BTreeSet<&'a str>,
}

/// Every snapshot that disagrees with another watcher's knowledge at its index.
pub fn check(events: &[Event]) -> Vec<Anomaly> {
    let by_watcher = watch_events_by_watcher(events);
    // Snapshots by index, so each stretch a watcher knows only looks at the
    // snapshots inside it (as the stale checker does with its reads).
    let mut snapshots: BTreeMap<u64, Vec<Snapshot>> = BTreeMap::new();
    for (watcher, records) in &by_watcher {
        for (_, record) in records {
            if let WatchEvent::Snapshot { index, instances } = &record.event {
                snapshots.entry(*index).or_default().push(Snapshot {
                    watcher: *watcher,
                    record,
                    ids: instances
                        .iter()
                        .filter(|i| i.service == SET_SERVICE)
                        .map(|i| i.id.as_str())
                        .collect(),
                });
            }
        }
    }
    // One anomaly per snapshot at most: (watcher, session, index) already reported.
    let mut reported = BTreeSet::new();
    let mut anomalies = Vec::new();
    for (other_watcher, records) in &by_watcher {
        replay(records, |from, to, ids, [basis, _]| {
            for (index, list) in snapshots.range(from..=to) {
                for snap in list {
                    let key = (snap.watcher, snap.record.session, *index);
                    if snap.watcher == *other_watcher || snap.ids == *ids || reported.contains(&key)
                    {
                        continue;
                    }
                    reported.insert(key);
                    let missing: Vec<&str> = ids.difference(&snap.ids).copied().collect();
                    let extra: Vec<&str> = snap.ids.difference(ids).copied().collect();
                    anomalies.push(Anomaly {
                        kind: "snapshot-disagreement".into(),
                        description: format!(
                            "watcher {}'s snapshot at index {index} (session {}, at {}) does \
                             not hold the set watcher {other_watcher} knew at that index: \
                             missing [{}], extra [{}]",
                            snap.watcher,
                            snap.record.session,
                            secs(snap.record.time),
                            shorten(&missing),
                            shorten(&extra)
                        ),
                        window: Some((snap.record.time, snap.record.time)),
                        // The snapshot itself can be huge; the other side's basis is
                        // the line to look at, and the description names the snapshot.
                        evidence: vec![evidence_line(basis)],
                    });
                }
            }
        });
    }
    anomalies.extend(register_values(events));
    anomalies
}

/// A register write known to have committed: its value (as the watch shows it, text)
/// and the history line that says so.
type KnownWrite<'a> = (String, &'a Event);

/// Every register write known to have committed, by key and index: acknowledged writes
/// and CASes, and every upsert any watcher was sent.
fn known_register_writes(events: &[Event]) -> BTreeMap<&str, BTreeMap<u64, KnownWrite<'_>>> {
    let mut known: BTreeMap<&str, BTreeMap<u64, KnownWrite>> = BTreeMap::new();
    for (event, record) in op_events(events) {
        if record.outcome != Outcome::Ok {
            continue;
        }
        if let Op::Write {
            key,
            value,
            index: Some(i),
        }
        | Op::Cas {
            key,
            to: value,
            index: Some(i),
            ..
        } = &record.op
        {
            let write = (value.to_string(), event);
            known.entry(key).or_default().entry(*i).or_insert(write);
        }
    }
    for e in events {
        let Event::Watch(WatchRecord {
            event: WatchEvent::Changes { index, changes },
            ..
        }) = e
        else {
            continue;
        };
        for change in changes {
            if let Change::Upsert(i) = change {
                // Every client writes a value; a change without one is the watch
                // checker's disagreement with the acknowledgement, not this one's.
                if let (REGISTER_SERVICE, Some(value)) = (i.service.as_str(), &i.value) {
                    let write = (value.clone(), e);
                    known
                        .entry(&i.id)
                        .or_default()
                        .entry(*index)
                        .or_insert(write);
                }
            }
        }
    }
    known
}

/// Snapshots whose register keys miss a write known to have committed by their index,
/// or hold another value than the one written at the modify index they show.
fn register_values(events: &[Event]) -> Vec<Anomaly> {
    let known = known_register_writes(events);
    let mut anomalies = Vec::new();
    for record in watch_records(events) {
        let WatchEvent::Snapshot { index, instances } = &record.event else {
            continue;
        };
        let held: BTreeMap<&str, _> = instances
            .iter()
            .filter(|i| i.service == REGISTER_SERVICE)
            .map(|i| (i.id.as_str(), i))
            .collect();
        let mut wrong = Vec::new();
        let mut sources = Vec::new();
        for (key, writes) in &known {
            let Some((&at, (value, source))) = writes.range(..=*index).next_back() else {
                continue;
            };
            let problem = match held.get(key) {
                None => format!("{key} missing (written at {at})"),
                Some(i) if i.modify_index < at => format!(
                    "{key} at modify index {} although written again at {at}",
                    i.modify_index
                ),
                Some(i) if i.modify_index == at && i.value.as_ref() != Some(value) => format!(
                    "{key} = {} although {value} was written at {at}",
                    i.value.as_deref().unwrap_or("(none)")
                ),
                Some(_) => continue,
            };
            wrong.push(problem);
            sources.push(evidence_line(source));
        }
        if wrong.is_empty() {
            continue;
        }
        // The snapshot itself can be huge: the description names it, the evidence is
        // the writes it lacks.
        let evidence: Vec<String> = sources.into_iter().take(5).collect();
        anomalies.push(Anomaly {
            kind: "snapshot-disagreement".into(),
            description: format!(
                "watcher {}'s snapshot at index {index} (session {}, at {}) does not hold the \
                 register writes committed by then: {}",
                record.watcher,
                record.session,
                secs(record.time),
                shorten(&wrong.iter().map(String::as_str).collect::<Vec<_>>())
            ),
            window: Some((record.time, record.time)),
            evidence,
        });
    }
    anomalies
}

fn shorten(ids: &[&str]) -> String {
    let mut text = ids.iter().take(10).copied().collect::<Vec<_>>().join(", ");
    if ids.len() > 10 {
        text.push_str(&format!(", ... ({} in all)", ids.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Change, InstanceState, WatchRecord};

    fn rec(watcher: u64, time: u64, event: WatchEvent) -> Event {
        Event::Watch(WatchRecord {
            watcher,
            node: 1,
            session: 0,
            time,
            event,
        })
    }

    fn inst(id: &str, index: u64) -> InstanceState {
        InstanceState {
            service: SET_SERVICE.into(),
            id: id.into(),
            value: None,
            modify_index: index,
        }
    }

    /// Watcher 0 follows a and b being added at 5 and 6; watcher 1 snapshots at 6.
    fn history(snapshot_ids: &[&str]) -> Vec<Event> {
        vec![
            rec(0, 0, WatchEvent::Connected { from_index: 0 }),
            rec(
                0,
                1,
                WatchEvent::Snapshot {
                    index: 4,
                    instances: vec![],
                },
            ),
            rec(
                0,
                2,
                WatchEvent::Changes {
                    index: 5,
                    changes: vec![Change::Upsert(inst("a", 5))],
                },
            ),
            rec(
                0,
                3,
                WatchEvent::Changes {
                    index: 6,
                    changes: vec![Change::Upsert(inst("b", 6))],
                },
            ),
            rec(0, 4, WatchEvent::Progress { index: 9 }),
            rec(1, 5, WatchEvent::Connected { from_index: 0 }),
            rec(
                1,
                6,
                WatchEvent::Snapshot {
                    index: 7,
                    instances: snapshot_ids.iter().map(|id| inst(id, 5)).collect(),
                },
            ),
        ]
    }

    #[test]
    fn a_snapshot_holding_the_committed_state_agrees() {
        assert!(check(&history(&["a", "b"])).is_empty());
    }

    #[test]
    fn a_snapshot_missing_an_instance_is_caught() {
        let anomalies = check(&history(&["a"]));
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].kind, "snapshot-disagreement");
        assert!(
            anomalies[0].description.contains("missing [b]"),
            "{}",
            anomalies[0].description
        );
    }

    fn reg(key: &str, value: i64, modify_index: u64) -> InstanceState {
        InstanceState {
            service: REGISTER_SERVICE.into(),
            id: key.into(),
            value: Some(value.to_string()),
            modify_index,
        }
    }

    /// k1 = 5 acknowledged at 3; a watcher is sent k1 = 6 at 6; then `snapshot`.
    fn register_history(snapshot: WatchEvent) -> Vec<Event> {
        vec![
            Event::Op(crate::history::OpRecord {
                process: 1,
                node: 1,
                op: Op::Write {
                    key: "k1".into(),
                    value: 5,
                    index: Some(3),
                },
                start: 0,
                end: 1,
                outcome: Outcome::Ok,
                error: None,
            }),
            rec(
                0,
                2,
                WatchEvent::Changes {
                    index: 6,
                    changes: vec![Change::Upsert(reg("k1", 6, 6))],
                },
            ),
            rec(1, 3, snapshot),
        ]
    }

    fn snap(index: u64, instances: &[InstanceState]) -> WatchEvent {
        let instances = instances.to_vec();
        WatchEvent::Snapshot { index, instances }
    }

    #[test]
    fn snapshots_hold_the_register_writes_committed_by_their_index() {
        for good in [
            snap(7, &[reg("k1", 6, 6)]),
            snap(4, &[reg("k1", 5, 3)]),
            snap(2, &[]),
            // A later write than any known one: nothing to contradict it.
            snap(9, &[reg("k1", 8, 8)]),
        ] {
            let anomalies = check(&register_history(good.clone()));
            assert!(anomalies.is_empty(), "{good:?}: {anomalies:?}");
        }
        for (bad, says) in [
            (
                snap(7, &[reg("k1", 5, 3)]),
                "k1 at modify index 3 although written again at 6",
            ),
            (snap(4, &[]), "k1 missing (written at 3)"),
            (
                snap(4, &[reg("k1", 9, 3)]),
                "k1 = 9 although 5 was written at 3",
            ),
        ] {
            let anomalies = check(&register_history(bad));
            assert_eq!(anomalies.len(), 1, "{says}");
            assert_eq!(anomalies[0].kind, "snapshot-disagreement");
            assert!(
                anomalies[0].description.contains(says),
                "{}",
                anomalies[0].description
            );
            assert_eq!(anomalies[0].evidence.len(), 1);
        }
    }
}
