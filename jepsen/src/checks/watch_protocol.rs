//! Part of the watch checker: each stream's messages come in the shapes the protocol
//! allows. A snapshot only opens a fresh stream or follows a reset (anywhere else it is
//! a silent jump over whatever changed in between); a reset gives a reason the server
//! has, at a point where that reason can happen, and is followed by its snapshot at
//! the same index; every instance carries the modify index of its last write, which is
//! the message's index for a change and at most the index for a snapshot.
//!
//! The server side is `api/watch_stream.rs`: `restart` sends `Reset` and then the
//! snapshot it took, both at the snapshot's index; `COMPACTED` is sent only when a
//! resume (`from_index > 0`) asks for history the hub no longer has, as the stream's
//! first message; `SLOW_CONSUMER` and `SNAPSHOT_INSTALLED` can come at any time.
//! Every instance write sets the modify index to the index of the entry it applied in
//! (`catalog/instances.rs`, ARCHITECTURE.md "Every answer carries its index").

use super::watch::{pair, Rec};
use super::{evidence_line, watch_events_by_watcher, Anomaly};
use crate::history::{Change, Event, InstanceState, WatchEvent};

/// The reset reasons the server sends, as the watch workload records them (the proto
/// enum's names). `RESET_REASON_UNSPECIFIED`, or a number the client did not know, is
/// not one of them.
pub const COMPACTED: &str = "COMPACTED";
const ANYTIME_REASONS: [&str; 2] = ["SLOW_CONSUMER", "SNAPSHOT_INSTALLED"];

/// The most instances named in one description.
const MAX_NAMED: usize = 5;

/// Where one watcher's current stream is.
#[derive(Default)]
struct Session<'a> {
    /// The `from_index` the stream was opened with; `None` before any `Connected`.
    from_index: Option<u64>,
    /// No message has come on this stream yet.
    first: bool,
    /// A reset whose snapshot has not come yet.
    pending_reset: Option<Rec<'a>>,
    /// The latest record of the watcher: what a bad message follows.
    previous: Option<Rec<'a>>,
}

/// Every message of every watcher that breaks the protocol's shape.
pub fn check(events: &[Event]) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    for (watcher, records) in watch_events_by_watcher(events) {
        let mut s = Session {
            first: true,
            ..Session::default()
        };
        for rec in records {
            anomalies.extend(message(watcher, &mut s, rec));
            s.previous = Some(rec);
        }
    }
    anomalies
}

/// What is wrong with one record, given where its stream is; updates the session.
fn message<'a>(watcher: u64, s: &mut Session<'a>, rec: Rec<'a>) -> Vec<Anomaly> {
    let (_, record) = rec;
    let mut found = Vec::new();
    match &record.event {
        WatchEvent::Connected { from_index } => {
            s.from_index = Some(*from_index);
            s.first = true;
            s.pending_reset = None;
            return found;
        }
        // A stream may break anywhere, also between a reset and its snapshot.
        WatchEvent::Disconnected { .. } => {
            s.pending_reset = None;
            return found;
        }
        WatchEvent::Reset { index, reason } => {
            if let Some(earlier) = s.pending_reset {
                found.push(pair(
                    "implausible-reset",
                    format!(
                        "watcher {watcher} was sent a second reset (at index {index}) before \
                         the snapshot of the first: the server follows every reset with its \
                         snapshot"
                    ),
                    earlier,
                    rec,
                ));
            }
            if let Some(why) = implausible_reason(reason, s) {
                found.push(pair(
                    "implausible-reset",
                    format!("watcher {watcher} was sent a reset at index {index} {why}"),
                    s.previous.unwrap_or(rec),
                    rec,
                ));
            }
            s.pending_reset = Some(rec);
        }
        WatchEvent::Snapshot { index, instances } => {
            match s.pending_reset.take() {
                Some(reset) => {
                    let reset_index = match reset.1.event {
                        WatchEvent::Reset { index, .. } => index,
                        _ => *index,
                    };
                    if reset_index != *index {
                        found.push(pair(
                            "implausible-reset",
                            format!(
                                "watcher {watcher} was sent a reset at index {reset_index} and \
                                 then a snapshot at index {index}: the reset names the \
                                 snapshot's index"
                            ),
                            reset,
                            rec,
                        ));
                    }
                }
                // The stream's opening snapshot (a history without `Connected` records
                // has nothing to tell).
                None if s.first && s.from_index.is_none_or(|f| f == 0) => {}
                None => found.push(pair(
                    "snapshot-without-reset",
                    format!(
                        "watcher {watcher} was sent a snapshot at index {index} without a \
                         reset, on a stream opened from index {}{}: a silent jump over \
                         whatever changed in between",
                        s.from_index.unwrap_or(0),
                        if s.first { " (its first message)" } else { "" },
                    ),
                    s.previous.unwrap_or(rec),
                    rec,
                )),
            }
            let wrong: Vec<&InstanceState> = instances
                .iter()
                .filter(|i| i.modify_index > *index)
                .collect();
            if !wrong.is_empty() {
                found.push(single(
                    format!(
                        "watcher {watcher}'s snapshot at index {index} holds instances \
                         modified after it: {}",
                        named(&wrong)
                    ),
                    rec,
                ));
            }
        }
        WatchEvent::Changes { index, changes } => {
            found.extend(unanswered_reset(watcher, s, rec));
            let wrong: Vec<&InstanceState> = changes
                .iter()
                .filter_map(|c| match c {
                    Change::Upsert(i) if i.modify_index != *index => Some(i),
                    _ => None,
                })
                .collect();
            if !wrong.is_empty() {
                found.push(single(
                    format!(
                        "watcher {watcher} was sent upserts at index {index} whose modify \
                         index is not {index}: {}",
                        named(&wrong)
                    ),
                    rec,
                ));
            }
        }
        WatchEvent::Progress { .. } => found.extend(unanswered_reset(watcher, s, rec)),
    }
    s.first = false;
    found
}

/// Why a reset's reason cannot be, at this point of its stream, if it cannot.
fn implausible_reason(reason: &str, s: &Session) -> Option<String> {
    if ANYTIME_REASONS.contains(&reason) {
        return None;
    }
    if reason != COMPACTED {
        return Some(format!(
            "with reason {reason:?}, which the server never gives (it knows COMPACTED, \
             SLOW_CONSUMER and SNAPSHOT_INSTALLED)"
        ));
    }
    match s.from_index {
        _ if !s.first => Some(
            "with reason COMPACTED in the middle of a stream: history runs out only for a \
             resume, before its first message"
                .to_string(),
        ),
        Some(0) => Some(
            "with reason COMPACTED on a stream opened from index 0, which asked for no \
             history"
                .to_string(),
        ),
        _ => None,
    }
}

/// A message other than the snapshot right after a reset.
fn unanswered_reset(watcher: u64, s: &mut Session, rec: Rec) -> Option<Anomaly> {
    let reset = s.pending_reset.take()?;
    Some(pair(
        "implausible-reset",
        format!(
            "watcher {watcher} was sent a reset that no snapshot followed: the next message \
             on the stream was not its snapshot"
        ),
        reset,
        rec,
    ))
}

fn single(description: String, rec: Rec) -> Anomaly {
    Anomaly {
        kind: "wrong-modify-index".into(),
        description,
        window: Some((rec.1.time, rec.1.time)),
        evidence: vec![evidence_line(rec.0)],
    }
}

fn named(instances: &[&InstanceState]) -> String {
    let mut names: Vec<String> = instances
        .iter()
        .take(MAX_NAMED)
        .map(|i| format!("{}/{} (modify index {})", i.service, i.id, i.modify_index))
        .collect();
    if instances.len() > MAX_NAMED {
        names.push(format!("... ({} in all)", instances.len()));
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{connected, snapshot, upsert};
    use crate::checks::SET_SERVICE;
    use crate::history::WatchRecord;

    fn rec(session: u64, time: u64, event: WatchEvent) -> Event {
        Event::Watch(WatchRecord {
            watcher: 1,
            node: 1,
            session,
            time,
            event,
        })
    }

    fn inst(id: &str, modify_index: u64) -> InstanceState {
        InstanceState {
            service: SET_SERVICE.into(),
            id: id.into(),
            value: None,
            modify_index,
        }
    }

    fn reset(index: u64, reason: &str) -> WatchEvent {
        let reason = reason.into();
        WatchEvent::Reset { index, reason }
    }

    fn disconnected() -> WatchEvent {
        WatchEvent::Disconnected {
            error: "hung up".into(),
        }
    }

    fn kinds(anomalies: &[Anomaly]) -> Vec<&str> {
        anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    /// A fresh stream, then a resume from its last index; `resumed` is what the
    /// resumed stream is sent.
    fn resumed(resumed: Vec<WatchEvent>) -> Vec<Event> {
        let mut events = vec![
            rec(0, 1, connected(0)),
            rec(0, 2, snapshot(3, &[inst("a", 2)])),
            rec(0, 3, upsert(4, inst("b", 4))),
            rec(0, 4, disconnected()),
            rec(1, 5, connected(4)),
        ];
        let times = 6..;
        events.extend(times.zip(resumed).map(|(t, e)| rec(1, t, e)));
        events
    }

    #[test]
    fn the_protocol_s_own_shapes_pass() {
        // Changes and progress after a resume; every kind of reset where it can come.
        let events = resumed(vec![
            upsert(5, inst("c", 5)),
            WatchEvent::Progress { index: 6 },
            reset(7, "SLOW_CONSUMER"),
            snapshot(7, &[inst("a", 2), inst("b", 4), inst("c", 5), inst("d", 7)]),
            reset(9, "SNAPSHOT_INSTALLED"),
            snapshot(9, &[inst("a", 2)]),
            // A reset whose snapshot never came: the stream broke in between.
            reset(10, "SLOW_CONSUMER"),
            disconnected(),
        ]);
        assert_eq!(kinds(&check(&events)), Vec::<&str>::new());
        // A resume past the history window: COMPACTED first, then its snapshot.
        let events = resumed(vec![reset(8, COMPACTED), snapshot(8, &[inst("a", 2)])]);
        assert_eq!(kinds(&check(&events)), Vec::<&str>::new());
    }

    #[test]
    fn a_snapshot_without_a_reset_on_a_resumed_stream_is_a_silent_jump() {
        let events = resumed(vec![snapshot(9, &[inst("a", 2)])]);
        let anomalies = check(&events);
        assert_eq!(kinds(&anomalies), ["snapshot-without-reset"]);
        assert!(
            anomalies[0].description.contains("opened from index 4"),
            "{}",
            anomalies[0].description
        );
        // The Connected record and the snapshot.
        assert_eq!(anomalies[0].window, Some((5, 6)));
        // Also in the middle of a fresh stream.
        let events = vec![
            rec(0, 1, connected(0)),
            rec(0, 2, snapshot(3, &[])),
            rec(0, 3, snapshot(6, &[])),
        ];
        assert_eq!(kinds(&check(&events)), ["snapshot-without-reset"]);
    }

    #[test]
    fn resets_must_give_a_known_reason_where_it_can_happen_and_bring_their_snapshot() {
        let unknown = resumed(vec![reset(8, "RESET_REASON_UNSPECIFIED"), snapshot(8, &[])]);
        let anomalies = check(&unknown);
        assert_eq!(kinds(&anomalies), ["implausible-reset"]);
        assert!(anomalies[0].description.contains("never gives"));
        // COMPACTED only opens a resume.
        let mid_stream = resumed(vec![upsert(5, inst("c", 5)), reset(8, COMPACTED)]);
        assert_eq!(kinds(&check(&mid_stream)), ["implausible-reset"]);
        let fresh = vec![
            rec(0, 1, connected(0)),
            rec(0, 2, reset(3, COMPACTED)),
            rec(0, 3, snapshot(3, &[])),
        ];
        assert_eq!(kinds(&check(&fresh)), ["implausible-reset"]);
        // Its snapshot comes next, at the reset's index.
        let elsewhere = resumed(vec![reset(8, "SLOW_CONSUMER"), snapshot(9, &[])]);
        assert_eq!(kinds(&check(&elsewhere)), ["implausible-reset"]);
        let no_snapshot = resumed(vec![reset(8, "SLOW_CONSUMER"), upsert(9, inst("c", 9))]);
        assert_eq!(kinds(&check(&no_snapshot)), ["implausible-reset"]);
    }

    #[test]
    fn modify_indexes_must_match_the_messages() {
        // An upsert carries its own write's index; a snapshot nothing newer than itself.
        let events = resumed(vec![
            upsert(5, inst("c", 4)),
            reset(8, "SLOW_CONSUMER"),
            snapshot(8, &[inst("a", 2), inst("c", 9)]),
        ]);
        let anomalies = check(&events);
        assert_eq!(
            kinds(&anomalies),
            ["wrong-modify-index", "wrong-modify-index"]
        );
        assert!(
            anomalies[0]
                .description
                .contains("jepsen-set/c (modify index 4)"),
            "{}",
            anomalies[0].description
        );
        assert!(anomalies[1].description.contains("modified after it"));
    }
}
