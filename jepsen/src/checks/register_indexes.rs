//! Part of the register checker: what the linearizability search does not look at,
//! the modify indexes. Every value is written once (clients draw them from one
//! counter) and every write sets the instance's modify index to the index it applied
//! at, which its acknowledgement reports; so a value has exactly one modify index,
//! and every read returning the value must carry it (`wrong-modify-index`). And a CAS
//! refused as a mismatch although the key's modify index was the expected one all
//! through the CAS was wrongly refused (`cas-wrongly-refused`).
//!
//! Refusals are judged here, in a separate pass, not in the search: the search leaves
//! failed CASes out, which is what keeps dropping never-observed indeterminate writes
//! sound (see `register::drop_unobserved`). This pass judges a refusal only when no
//! write at all could have come between the expected state and the CAS's end: none
//! indeterminate, none acknowledged at a later index. A refusal next to an open
//! indeterminate write is not judged (it may well have been right).

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

/// Refused CASes whose expected modify index certainly held all through them.
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
        let claimed = claimed_current(record);
        let expected = *expected_index;
        // The server named the expected index as the current one: no history needed.
        if claimed == Some(expected) {
            judged += 1;
            anomalies.push(refused(record, event, None, "said so itself"));
            continue;
        }
        // When the key was known to hold `from` at `expected`, before the CAS started.
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
        // Any write that may have taken effect after `from`'s and before the CAS ended
        // could have changed the modify index. Values are unique, so the write of
        // `from` is the one whose value it is.
        let may_intervene = writes.iter().any(|(_, w)| {
            let (w_key, written, index) = match &w.op {
                Op::Write { key, value, index } => (key, *value, *index),
                Op::Cas { key, to, index, .. } => (key, *to, *index),
                _ => return false,
            };
            w_key == key
                && written != *from
                && w.start < record.end
                && match w.outcome {
                    Outcome::Fail => false,
                    Outcome::Ok => index.is_none_or(|i| i > expected),
                    Outcome::Info => true,
                }
        });
        if may_intervene {
            unjudged += 1;
            continue;
        }
        judged += 1;
        anomalies.push(refused(
            record,
            event,
            Some(established.source.0),
            "no write could have changed it",
        ));
    }
    stats.insert("cas_refusals_judged".into(), judged);
    stats.insert("cas_refusals_unjudged".into(), unjudged);
    anomalies
}

fn refused(record: &OpRecord, event: &Event, basis: Option<&Event>, why: &str) -> Anomaly {
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
             mismatch ({}), but the modify index was {expected} all through it: {why}",
            record.node,
            record.error.as_deref().unwrap_or("no error text")
        ),
        window: Some((start, record.end)),
        evidence,
    }
}

/// The current modify index a refusal names (`... has modify index C, expected E`),
/// if it names one (a missing instance names none).
fn claimed_current(record: &OpRecord) -> Option<u64> {
    let error = record.error.as_deref()?;
    let (_, rest) = error.split_once("has modify index ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
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

    #[test]
    fn a_cas_refused_while_its_index_held_is_wrongly_refused() {
        // 1 written at 5, read back at 5, then a CAS expecting 5 is refused, and no
        // write anywhere could have come in between.
        let mut events = vec![
            write(1, Some(5), 0, Outcome::Ok),
            read(1, 5, 5, 20),
            refused_cas(MISMATCH),
            // Writes that cannot matter: one known to come before, one that failed,
            // one that started after the CAS ended.
            write(0, Some(3), 2, Outcome::Ok),
            write(8, None, 35, Outcome::Fail),
            write(9, None, 60, Outcome::Info),
        ];
        let mut stats = BTreeMap::new();
        let anomalies = check(&events, &mut stats);
        let found: Vec<&str> = anomalies.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(found, ["cas-wrongly-refused"]);
        assert!(
            anomalies[0]
                .description
                .contains("expecting modify index 5"),
            "{}",
            anomalies[0].description
        );
        assert_eq!(stats["cas_refusals_judged"], 1);
        // A write acknowledged at a later index, or one whose outcome is unknown, that
        // started before the CAS ended may have moved the index on: not judged.
        for intervening in [
            write(2, Some(7), 35, Outcome::Ok),
            write(2, None, 35, Outcome::Info),
        ] {
            events.push(intervening);
            let (found, stats) = kinds(&events);
            assert!(found.is_empty(), "{found:?}");
            assert_eq!(stats["cas_refusals_unjudged"], 1);
            events.pop();
        }
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
