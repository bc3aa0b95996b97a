//! Part of the register checker: what the linearizability search does not look at,
//! the modify indexes. Every value is written once (clients draw them from one
//! counter) and every write sets the instance's modify index to the index it applied
//! at, which its acknowledgement reports; so a value has exactly one modify index,
//! and every read returning the value must carry it (`wrong-modify-index`). And a CAS
//! refused as a mismatch that cannot have been a mismatch was wrongly refused
//! (`cas-wrongly-refused`).
//!
//! Refusals are judged here, in a separate pass, not in the search: the search leaves
//! failed CASes out, which is what keeps dropping never-observed indeterminate writes
//! sound (see `register::drop_unobserved`). A refusal is judged only when the expected
//! state was seen (read, or acknowledged) before the CAS started; then it is wrong if
//! the modify index it names as current is the expected one, is older, or is the index
//! of no write of the key that could have come in between (a write of unknown outcome
//! could be any: a refusal next to an open indeterminate write stands); a refusal that
//! names no index is wrong only when no write at all could have come in between.

use std::collections::BTreeMap;

use super::register::compare_failed;
use super::{evidence_line, op_events, Anomaly, REGISTER_SERVICE};
use crate::history::{Event, Op, OpRecord, Outcome};

type OpRef<'a> = (&'a Event, &'a OpRecord);

/// A claim that `value` of `key` has modify index `modify_index`.
struct Claim<'a> {
    key: &'a str,
    value: i64,
    modify_index: u64,
    /// What makes it: an acknowledged write (its commit index) or a read.
    by_write: bool,
    source: OpRef<'a>,
}

/// Every modify index that contradicts another claim about the same value, every read
/// whose modify index is above the index it was served at, and every wrongly refused
/// CAS.
pub fn check(events: &[Event], stats: &mut BTreeMap<String, u64>) -> Vec<Anomaly> {
    let claims = claims(events);
    let mut anomalies = modify_indexes(&claims, stats);
    anomalies.extend(future_modify_indexes(events));
    anomalies.extend(refused_cases(events, &claims, stats));
    anomalies
}

/// What every acknowledged write and every read says about values and their indexes.
fn claims(events: &[Event]) -> Vec<Claim<'_>> {
    let mut claims = Vec::new();
    for (event, record) in op_events(events) {
        if record.outcome != Outcome::Ok {
            continue;
        }
        let claim = |key, value, modify_index, by_write| Claim {
            key,
            value,
            modify_index,
            by_write,
            source: (event, record),
        };
        match &record.op {
            Op::Write {
                key,
                value,
                index: Some(i),
            } => claims.push(claim(key, *value, *i, true)),
            Op::Cas {
                key,
                to,
                index: Some(i),
                ..
            } => claims.push(claim(key, *to, *i, true)),
            Op::Read {
                key,
                value: Some(v),
                modify_index: Some(m),
                ..
            } => claims.push(claim(key, *v, *m, false)),
            Op::ListAll {
                service,
                instances: Some(instances),
                ..
            } if service == REGISTER_SERVICE => {
                for i in instances.iter().filter(|i| i.service == REGISTER_SERVICE) {
                    // A value no client wrote is the register checker's finding already.
                    if let Some(Ok(v)) = i.value.as_deref().map(str::parse::<i64>) {
                        claims.push(claim(&i.id, v, i.modify_index, false));
                    }
                }
            }
            _ => {}
        }
    }
    claims
}

/// Claims about one value that disagree: each read against the acknowledged write of
/// its value if there is one, else against the first read of the value.
fn modify_indexes(claims: &[Claim], stats: &mut BTreeMap<String, u64>) -> Vec<Anomaly> {
    let mut by_value: BTreeMap<(&str, i64), Vec<&Claim>> = BTreeMap::new();
    for c in claims {
        by_value.entry((c.key, c.value)).or_default().push(c);
    }
    let mut anomalies = Vec::new();
    let mut checked = 0;
    for ((key, value), claims) in by_value {
        // The acknowledgement is the authority; without one, the first read is.
        let Some(basis) = claims.iter().find(|c| c.by_write).or(claims.first()) else {
            continue;
        };
        for c in claims.iter().filter(|c| !std::ptr::eq(*c, basis)) {
            checked += 1;
            if c.modify_index == basis.modify_index {
                continue;
            }
            let (what, record) = (c.source.1, basis.source.1);
            let basis_says = if basis.by_write {
                format!("was acknowledged at index {}", basis.modify_index)
            } else {
                format!("was read with modify index {}", basis.modify_index)
            };
            anomalies.push(Anomaly {
                kind: "wrong-modify-index".into(),
                description: format!(
                    "key {key}: value {value} was read on node {} with modify index {}, but \
                     it {basis_says} (process {} on node {}); a value is written once and \
                     keeps the index of that write",
                    what.node, c.modify_index, record.process, record.node
                ),
                window: Some((record.start.min(what.start), record.end.max(what.end))),
                evidence: vec![evidence_line(basis.source.0), evidence_line(c.source.0)],
            });
        }
    }
    stats.insert("modify_indexes_checked".into(), checked);
    anomalies
}

/// A read's modify index above the index it was served at: a write from its future.
fn future_modify_indexes(events: &[Event]) -> Vec<Anomaly> {
    op_events(events)
        .filter_map(|(event, record)| match &record.op {
            Op::Read {
                key,
                value,
                modify_index: Some(m),
                index: Some(i),
            } if record.outcome == Outcome::Ok && m > i => Some(Anomaly {
                kind: "wrong-modify-index".into(),
                description: format!(
                    "key {key}: a read on node {} served at index {i} returned {value:?} with \
                     modify index {m}, a write after the state it read",
                    record.node
                ),
                window: Some((record.start, record.end)),
                evidence: vec![evidence_line(event)],
            }),
            _ => None,
        })
        .collect()
}

/// What a refusal says the key held when the CAS was decided (the server's message,
/// `instance S/ID has modify index C, expected E` or `instance S/ID does not exist,
/// expected E`; see `registry/src/api/errors.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Current {
    Index(u64),
    Absent,
    /// A message in another form: only the history can judge it.
    Unsaid,
}

/// Refused CASes that cannot have been right: the expected modify index certainly held
/// all through them, or the refusal names a current state that no write could have
/// left by then.
fn refused_cases(
    events: &[Event],
    claims: &[Claim],
    stats: &mut BTreeMap<String, u64>,
) -> Vec<Anomaly> {
    let writes: Vec<OpRef> = op_events(events)
        .filter(|(_, r)| matches!(r.op, Op::Write { .. } | Op::Cas { .. }))
        .collect();
    let (mut judged, mut unjudged) = (0, 0);
    let mut anomalies = Vec::new();
    for (event, record) in op_events(events) {
        let Op::Cas {
            key,
            from,
            expected_index,
            ..
        } = &record.op
        else {
            continue;
        };
        if record.outcome != Outcome::Fail || !compare_failed(record) {
            continue;
        }
        let expected = *expected_index;
        let current = current(record);
        // The server named the expected index as the current one: no history needed.
        if current == Current::Index(expected) {
            judged += 1;
            anomalies.push(refused(record, event, None, "it said so itself".into()));
            continue;
        }
        // When the key was known to hold `from` at `expected`, before the CAS started.
        // From then on its modify index only grew (each write sets it to its own,
        // later, index; keys are never removed).
        let established = claims.iter().find(|c| {
            c.key == key
                && c.value == *from
                && c.modify_index == expected
                && c.source.1.end <= record.start
        });
        let Some(established) = established else {
            unjudged += 1;
            continue;
        };
        // The writes that may have taken effect after `from`'s and before the CAS was
        // decided. Values are unique, so the write of `from` is the one whose value it
        // is; refused writes had no effect.
        let may_intervene: Vec<(Option<u64>, Outcome)> = writes
            .iter()
            .filter_map(|(_, w)| {
                let (w_key, written, index) = match &w.op {
                    Op::Write { key, value, index } => (key, *value, *index),
                    Op::Cas { key, to, index, .. } => (key, *to, *index),
                    _ => return None,
                };
                let after_expected = match w.outcome {
                    Outcome::Fail => false,
                    Outcome::Ok => index.is_none_or(|i| i > expected),
                    Outcome::Info => true,
                };
                (w_key == key && written != *from && w.start < record.end && after_expected)
                    .then_some((index, w.outcome))
            })
            .collect();
        let why = match current {
            Current::Index(c) if c < expected => Some(format!(
                "it named modify index {c}, older than the {expected} the key already had \
                 before the CAS started"
            )),
            // A write of unknown outcome, or acknowledged without an index, may be the one.
            Current::Index(c)
                if !may_intervene.iter().any(|(index, outcome)| {
                    *outcome == Outcome::Info || index.is_none_or(|i| i == c)
                }) =>
            {
                Some(format!(
                    "it named modify index {c}, but no write of the key that could have come \
                     first was at {c}"
                ))
            }
            Current::Absent => Some(
                "it said the key did not exist, but the key held a value before the CAS \
                 started and keys are never removed"
                    .to_string(),
            ),
            Current::Unsaid if may_intervene.is_empty() => {
                Some("no write could have changed the modify index meanwhile".to_string())
            }
            Current::Unsaid => {
                unjudged += 1;
                continue;
            }
            Current::Index(_) => None,
        };
        judged += 1;
        if let Some(why) = why {
            anomalies.push(refused(record, event, Some(established.source.0), why));
        }
    }
    stats.insert("cas_refusals_judged".into(), judged);
    stats.insert("cas_refusals_unjudged".into(), unjudged);
    anomalies
}

fn refused(record: &OpRecord, event: &Event, basis: Option<&Event>, why: String) -> Anomaly {
    let (key, expected) = match &record.op {
        Op::Cas {
            key,
            expected_index,
            ..
        } => (key.as_str(), *expected_index),
        _ => ("?", 0),
    };
    let mut evidence: Vec<String> = basis.into_iter().map(evidence_line).collect();
    evidence.push(evidence_line(event));
    let start = match basis {
        Some(Event::Op(b)) => b.start.min(record.start),
        _ => record.start,
    };
    Anomaly {
        kind: "cas-wrongly-refused".into(),
        description: format!(
            "key {key}: node {} refused a CAS expecting modify index {expected} as a \
             mismatch ({}), which cannot have been right: {why}",
            record.node,
            record.error.as_deref().unwrap_or("no error text")
        ),
        window: Some((start, record.end)),
        evidence,
    }
}

/// The current state a refusal names.
fn current(record: &OpRecord) -> Current {
    let error = record.error.as_deref().unwrap_or("");
    if let Some((_, rest)) = error.split_once("has modify index ") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(c) = digits.parse() {
            return Current::Index(c);
        }
    }
    if error.contains("does not exist") {
        return Current::Absent;
    }
    Current::Unsaid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{InstanceState, Nanos};

    fn op(op: Op, start: Nanos, end: Nanos, outcome: Outcome, error: Option<&str>) -> Event {
        Event::Op(OpRecord {
            process: start,
            node: 1,
            op,
            start,
            end,
            outcome,
            error: error.map(str::to_string),
        })
    }

    fn write(value: i64, index: Option<u64>, start: Nanos, outcome: Outcome) -> Event {
        let w = Op::Write {
            key: "k1".into(),
            value,
            index,
        };
        op(w, start, start + 10, outcome, None)
    }

    fn read(value: i64, modify_index: u64, index: u64, start: Nanos) -> Event {
        let r = Op::Read {
            key: "k1".into(),
            value: Some(value),
            modify_index: Some(modify_index),
            index: Some(index),
        };
        op(r, start, start + 10, Outcome::Ok, None)
    }

    /// A CAS from 1 expecting modify index 5, refused with `error`, from 40 to 50.
    fn refused_cas(error: &str) -> Event {
        let cas = Op::Cas {
            key: "k1".into(),
            from: 1,
            to: 2,
            expected_index: 5,
            index: None,
        };
        op(cas, 40, 50, Outcome::Fail, Some(error))
    }

    const MISMATCH: &str =
        "FailedPrecondition: instance jepsen-register/k1 has modify index 7, expected 5";

    fn kinds(events: &[Event]) -> (Vec<String>, BTreeMap<String, u64>) {
        let mut stats = BTreeMap::new();
        let found = check(events, &mut stats);
        (found.into_iter().map(|a| a.kind).collect(), stats)
    }

    #[test]
    fn reads_carry_the_modify_index_of_the_write_of_their_value() {
        let good = [write(1, Some(5), 0, Outcome::Ok), read(1, 5, 9, 20)];
        let (found, stats) = kinds(&good);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(stats["modify_indexes_checked"], 1);
        // The right value, the wrong index: the search alone passes this.
        let bad = [write(1, Some(5), 0, Outcome::Ok), read(1, 6, 9, 20)];
        let mut stats = BTreeMap::new();
        let anomalies = check(&bad, &mut stats);
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].kind, "wrong-modify-index");
        assert!(
            anomalies[0].description.contains("acknowledged at index 5"),
            "{}",
            anomalies[0].description
        );
        assert_eq!(anomalies[0].window, Some((0, 30)));
    }

    #[test]
    fn without_an_acknowledged_index_reads_of_one_value_must_agree() {
        let unknown = write(1, None, 0, Outcome::Info);
        let agree = [unknown.clone(), read(1, 5, 9, 20), read(1, 5, 12, 40)];
        assert!(kinds(&agree).0.is_empty());
        let disagree = [unknown, read(1, 5, 9, 20), read(1, 8, 12, 40)];
        assert_eq!(kinds(&disagree).0, ["wrong-modify-index"]);
        // A final read is a read of every key too.
        let final_read = op(
            Op::ListAll {
                service: REGISTER_SERVICE.into(),
                instances: Some(vec![InstanceState {
                    service: REGISTER_SERVICE.into(),
                    id: "k1".into(),
                    value: Some("1".into()),
                    modify_index: 4,
                }]),
                index: Some(20),
            },
            100,
            110,
            Outcome::Ok,
            None,
        );
        let bad_final = [write(1, Some(5), 0, Outcome::Ok), final_read];
        assert_eq!(kinds(&bad_final).0, ["wrong-modify-index"]);
    }

    #[test]
    fn a_modify_index_above_the_read_s_own_index_is_from_its_future() {
        let events = [write(1, Some(5), 0, Outcome::Ok), read(1, 5, 4, 20)];
        assert_eq!(kinds(&events).0, ["wrong-modify-index"]);
    }

    /// 1 written at 5 and read back at 5, then the CAS expecting 5 is refused, with
    /// `extra` writes around.
    fn refusal(error: &str, extra: Vec<Event>) -> (Vec<Anomaly>, BTreeMap<String, u64>) {
        let mut events = vec![
            write(1, Some(5), 0, Outcome::Ok),
            read(1, 5, 5, 20),
            refused_cas(error),
            // Writes that cannot matter: one known to come before, one that failed,
            // one that started after the CAS ended.
            write(0, Some(3), 2, Outcome::Ok),
            write(8, None, 35, Outcome::Fail),
            write(9, None, 60, Outcome::Info),
        ];
        events.extend(extra);
        let mut stats = BTreeMap::new();
        let anomalies = check(&events, &mut stats);
        (anomalies, stats)
    }

    fn found(anomalies: &[Anomaly]) -> Vec<&str> {
        anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn a_refusal_explained_by_a_write_in_between_stands() {
        // The write that moved the index on to 7, acknowledged or of unknown outcome.
        for between in [
            write(2, Some(7), 35, Outcome::Ok),
            write(2, None, 35, Outcome::Info),
        ] {
            let (anomalies, stats) = refusal(MISMATCH, vec![between]);
            assert!(anomalies.is_empty(), "{:?}", found(&anomalies));
            assert_eq!(stats["cas_refusals_judged"], 1);
        }
        // A refusal in other words is judged only without any write in between.
        let other_words = "FailedPrecondition: compare failed";
        let (anomalies, stats) = refusal(other_words, vec![write(2, None, 35, Outcome::Info)]);
        assert!(anomalies.is_empty());
        assert_eq!(stats["cas_refusals_unjudged"], 1);
    }

    #[test]
    fn a_refusal_naming_an_index_no_write_had_is_wrong() {
        // Nothing happened in between: the index it names is nobody's.
        let (anomalies, stats) = refusal(MISMATCH, Vec::new());
        assert_eq!(found(&anomalies), ["cas-wrongly-refused"]);
        assert!(
            anomalies[0].description.contains("no write of the key")
                && anomalies[0].description.contains("at 7"),
            "{}",
            anomalies[0].description
        );
        assert_eq!(anomalies[0].window, Some((0, 50)));
        assert_eq!(stats["cas_refusals_judged"], 1);
        // A write in between, but at another index than the one named.
        let (anomalies, _) = refusal(MISMATCH, vec![write(2, Some(6), 35, Outcome::Ok)]);
        assert_eq!(found(&anomalies), ["cas-wrongly-refused"]);
        // Older than what the key already held, or gone although keys are never removed.
        let older =
            "FailedPrecondition: instance jepsen-register/k1 has modify index 4, expected 5";
        let absent = "FailedPrecondition: instance jepsen-register/k1 does not exist, expected 5";
        for error in [older, absent] {
            let between = write(2, None, 35, Outcome::Info);
            let (anomalies, _) = refusal(error, vec![between]);
            assert_eq!(found(&anomalies), ["cas-wrongly-refused"], "{error}");
        }
        // In other words, with no write in between at all.
        let (anomalies, _) = refusal("FailedPrecondition: compare failed", Vec::new());
        assert_eq!(found(&anomalies), ["cas-wrongly-refused"]);
    }

    #[test]
    fn a_refusal_naming_the_expected_index_as_current_contradicts_itself() {
        let events = [
            write(2, None, 35, Outcome::Info),
            refused_cas(
                "FailedPrecondition: instance jepsen-register/k1 has modify index 5, expected 5",
            ),
        ];
        assert_eq!(kinds(&events).0, ["cas-wrongly-refused"]);
        // A plain mismatch with nothing known before it is not judged.
        let (found, stats) = kinds(&[refused_cas(MISMATCH)]);
        assert!(found.is_empty());
        assert_eq!(stats["cas_refusals_unjudged"], 1);
    }
}
