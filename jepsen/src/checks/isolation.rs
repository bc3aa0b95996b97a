//! When a node was certainly cut off from every other node, from the nemesis's own
//! record: a partition's `alone` nodes between the moment its rules were in place and
//! the moment healing began. A node alone that long cannot have heard from a leader, so
//! whatever it reports as its last contact, a read bounded by a shorter staleness must
//! be refused (the server's own `last_contact_ms` is not trusted here).

use crate::history::{Event, FaultRecord, Nanos};

/// Slack for a heartbeat that reached the node just before the cut but was handled
/// just after it, and for scheduling on a loaded machine.
pub const MARGIN_MS: u64 = 500;

/// One node alone, from `from` (the cut in place) to `until` (healing began).
#[derive(Clone, Debug)]
pub struct Alone<'a> {
    pub node: u32,
    pub from: Nanos,
    pub until: Nanos,
    pub fault: &'a FaultRecord,
    pub event: &'a Event,
}

/// Every stretch in which a node was alone. Histories from before faults recorded
/// when they were in effect give none.
pub fn windows(events: &[Event]) -> Vec<Alone<'_>> {
    let mut out = Vec::new();
    for event in events {
        let Event::Fault(fault) = event else {
            continue;
        };
        let Some((from, until)) = fault.in_effect else {
            continue;
        };
        for &node in &fault.alone {
            out.push(Alone {
                node,
                from,
                until,
                fault,
                event,
            });
        }
    }
    out
}

/// The stretch in which `node` had been alone for more than `bound_ms` (plus the
/// margin) for the whole of `[start, end]`, if any: an answer given then cannot have
/// been within that staleness bound.
pub fn alone_past_bound<'w, 'a>(
    windows: &'w [Alone<'a>],
    node: u32,
    start: Nanos,
    end: Nanos,
    bound_ms: u64,
) -> Option<&'w Alone<'a>> {
    let past = (bound_ms + MARGIN_MS) * 1_000_000;
    windows
        .iter()
        .find(|w| w.node == node && start >= w.from.saturating_add(past) && end <= w.until)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn partition(alone: Vec<u32>, in_effect: Option<(Nanos, Nanos)>) -> Event {
        Event::Fault(FaultRecord {
            fault: "partition".into(),
            detail: "isolate-leader".into(),
            nodes: vec![1, 2, 3],
            start: 0,
            end: 10_000 * MS,
            in_effect,
            alone,
        })
    }

    #[test]
    fn only_answers_entirely_inside_the_window_and_past_the_bound_count() {
        let events = [partition(vec![2], Some((1_000 * MS, 9_000 * MS)))];
        let w = windows(&events);
        // Cut at 1 s; bound 2 s + 0.5 s margin: from 3.5 s to the heal at 9 s.
        assert!(alone_past_bound(&w, 2, 3_600 * MS, 3_700 * MS, 2_000).is_some());
        assert!(alone_past_bound(&w, 2, 3_400 * MS, 3_700 * MS, 2_000).is_none());
        assert!(alone_past_bound(&w, 2, 8_900 * MS, 9_100 * MS, 2_000).is_none());
        // Another node was not alone.
        assert!(alone_past_bound(&w, 1, 5_000 * MS, 5_100 * MS, 2_000).is_none());
    }

    #[test]
    fn faults_without_their_effective_window_give_nothing() {
        let events = [partition(vec![2], None)];
        assert!(windows(&events).is_empty());
    }
}
