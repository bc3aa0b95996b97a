//! Part of the watch checker: a snapshot must hold the committed state at its index.
//! Changes are compared message by message elsewhere; a snapshot is compared with what
//! the other watchers knew the set to be at the same index (from their own snapshots
//! and unbroken runs of changes), so a snapshot that drops or invents an instance
//! shows up even if nothing touches that instance again.

use std::collections::{BTreeMap, BTreeSet};

use super::stale::replay;
use super::{evidence_line, secs, watch_events_by_watcher, Anomaly, SET_SERVICE};
use crate::history::{Event, WatchEvent, WatchRecord};

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
}
