//! Part of the watch checker: a snapshot must hold the committed state at its index.
//! Changes are compared message by message elsewhere; a snapshot is compared with what
//! the other watchers knew the set to be at the same index (from their own snapshots
//! and unbroken runs of changes), so a snapshot that drops or invents an instance
//! shows up even if nothing touches that instance again.

use std::collections::{BTreeMap, BTreeSet};

use super::stale::replay;
use super::{evidence_line, secs, watch_events_by_watcher, Anomaly, SET_SERVICE};
use crate::history::{Event, WatchEvent};

/// What one watcher knew: over indexes `from..=to` the set held exactly `ids`.
struct Stretch<'a> {
    from: u64,
    to: u64,
    ids: BTreeSet<&'a str>,
    basis: &'a Event,
}

/// Every snapshot that disagrees with another watcher's knowledge at its index.
pub fn check(events: &[Event]) -> Vec<Anomaly> {
    let by_watcher = watch_events_by_watcher(events);
    let mut stretches: BTreeMap<u64, Vec<Stretch>> = BTreeMap::new();
    for (watcher, records) in &by_watcher {
        let mine = stretches.entry(*watcher).or_default();
        replay(records, |from, to, ids, [basis, _]| {
            mine.push(Stretch {
                from,
                to,
                ids: ids.clone(),
                basis,
            })
        });
    }
    let mut anomalies = Vec::new();
    for (watcher, records) in &by_watcher {
        for (_, record) in records {
            let WatchEvent::Snapshot { index, instances } = &record.event else {
                continue;
            };
            let snapshot: BTreeSet<&str> = instances
                .iter()
                .filter(|i| i.service == SET_SERVICE)
                .map(|i| i.id.as_str())
                .collect();
            let other = stretches
                .iter()
                .filter(|(w, _)| *w != watcher)
                .flat_map(|(w, s)| s.iter().map(move |s| (w, s)))
                .find(|(_, s)| s.from <= *index && *index <= s.to && s.ids != snapshot);
            if let Some((other_watcher, s)) = other {
                let missing: Vec<&str> = s.ids.difference(&snapshot).copied().collect();
                let extra: Vec<&str> = snapshot.difference(&s.ids).copied().collect();
                anomalies.push(Anomaly {
                    kind: "snapshot-disagreement".into(),
                    description: format!(
                        "watcher {watcher}'s snapshot at index {index} (session {}, at {}) \
                         does not hold the set watcher {other_watcher} knew at that index: \
                         missing [{}], extra [{}]",
                        record.session,
                        secs(record.time),
                        shorten(&missing),
                        shorten(&extra)
                    ),
                    window: Some((record.time, record.time)),
                    // The snapshot itself can be huge; the other side's basis is the
                    // line to look at, and the description names the snapshot.
                    evidence: vec![evidence_line(s.basis)],
                });
            }
        }
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
