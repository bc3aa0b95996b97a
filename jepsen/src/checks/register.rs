//! The register checker: each key of the register workload, with its reads, writes,
//! CASes and the end-of-run final reads, must be linearizable as a single register.
//!
//! Keys are independent registers, so each key's history is checked on its own (a
//! history is linearizable if and only if every per-key part is). For a key that is
//! not, the checker looks for the shortest stretch of the run that already shows it,
//! so that a person reads a few dozen lines instead of the whole key.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{
    evidence_line, op_events, secs, Anomaly, CheckContext, CheckerReport, REGISTER_SERVICE,
    UNDECIDED,
};
use crate::checker::models::{RegisterInput, RegisterModel, RegisterOutput};
use crate::checker::{self, shortest_failing_prefix, CheckResult, Operation};
use crate::history::{Event, InstanceState, Nanos, Op, OpRecord, Outcome};

type RegisterOp = Operation<RegisterInput, RegisterOutput>;

/// How far before the failing operation the reported window reaches when there is no
/// acknowledged write before it to start from.
const WINDOW_LEAD: Nanos = 1_000_000_000;
/// The most history lines quoted for one key.
const MAX_EVIDENCE: usize = 30;

/// One operation of a key's history, with the history line it came from.
struct KeyOp<'a> {
    op: RegisterOp,
    event: &'a Event,
    record: &'a OpRecord,
}

/// Checks every key of the register workload for linearizability.
pub fn check(events: &[Event], ctx: &CheckContext) -> CheckerReport {
    let mut stats = BTreeMap::new();
    let mut anomalies = Vec::new();
    let keys = key_histories(events, &mut stats, &mut anomalies);
    // Modify indexes and refused CASes, which the search does not look at.
    anomalies.extend(super::register_indexes::check(events, &mut stats));
    stats.insert("keys".to_string(), keys.len() as u64);

    // One time limit for the whole check, search and narrowing together; the keys
    // take turns, so a hard key does not leave the easy ones undecided.
    let deadline = checker::deadline(Some(ctx.linearizability_time_limit));
    let histories: Vec<Vec<RegisterOp>> = keys
        .values()
        .map(|ops| ops.iter().map(|k| k.op.clone()).collect())
        .collect();
    let verdicts = checker::check_each(&RegisterModel, &histories, deadline);
    let (mut invalid, mut undecided) = (0, 0);
    for (((key, ops), history), verdict) in keys.iter().zip(&histories).zip(verdicts) {
        match verdict {
            CheckResult::Ok => {}
            CheckResult::Illegal => {
                invalid += 1;
                anomalies.push(not_linearizable(key, ops, history, deadline));
            }
            CheckResult::Unknown => {
                undecided += 1;
                anomalies.push(Anomaly {
                    kind: UNDECIDED.to_string(),
                    description: format!(
                        "key {key}: the linearizability search over its {} operations gave \
                         up after {:?} (for all keys together); raise the time limit or run \
                         a shorter test",
                        ops.len(),
                        ctx.linearizability_time_limit
                    ),
                    window: None,
                    evidence: Vec::new(),
                });
            }
        }
    }
    stats.insert("keys_not_linearizable".to_string(), invalid);
    stats.insert("keys_undecided".to_string(), undecided);
    CheckerReport::from_findings("register", anomalies, stats)
}

/// Turns the history into one register history per key, counting operations by kind
/// and outcome as it goes.
fn key_histories<'a>(
    events: &'a [Event],
    stats: &mut BTreeMap<String, u64>,
    anomalies: &mut Vec<Anomaly>,
) -> BTreeMap<String, Vec<KeyOp<'a>>> {
    let mut keys: BTreeMap<String, Vec<KeyOp<'a>>> = BTreeMap::new();
    let mut final_reads = Vec::new();
    for (event, record) in op_events(events) {
        let (key, f) = match &record.op {
            Op::Read { key, .. } => (key, "read"),
            Op::Write { key, .. } => (key, "write"),
            Op::Cas { key, .. } => (key, "cas"),
            Op::ListAll { service, .. } if service == REGISTER_SERVICE => {
                count(stats, "final_read", record.outcome);
                if record.outcome == Outcome::Ok {
                    final_reads.push((event, record));
                }
                continue;
            }
            // Set and stale-read operations are other checkers' business.
            _ => continue,
        };
        count(stats, f, record.outcome);
        if let Some(anomaly) = corrupt_read(event, record) {
            anomalies.push(anomaly);
            continue;
        }
        let ops = keys.entry(key.clone()).or_default();
        if let Some(op) = register_op(record, stats) {
            ops.push(KeyOp { op, event, record });
        }
    }

    // A final read is a consistent read of every key at once. Keys it holds that no
    // client ever touched are included too: a value from nowhere is not linearizable.
    for (_, record) in &final_reads {
        if let Op::ListAll {
            instances: Some(instances),
            ..
        } = &record.op
        {
            for i in instances.iter().filter(|i| i.service == REGISTER_SERVICE) {
                keys.entry(i.id.clone()).or_default();
            }
        }
    }
    for (event, record) in final_reads {
        let Op::ListAll {
            instances: Some(instances),
            ..
        } = &record.op
        else {
            *stats
                .entry("final_reads_without_answer".into())
                .or_insert(0) += 1;
            continue;
        };
        let by_key: BTreeMap<&str, &InstanceState> = instances
            .iter()
            .filter(|i| i.service == REGISTER_SERVICE)
            .map(|i| (i.id.as_str(), i))
            .collect();
        for (key, ops) in keys.iter_mut() {
            let value = match by_key.get(key.as_str()) {
                None => None,
                Some(i) => match i.value.as_deref().map(str::parse::<i64>) {
                    Some(Ok(v)) => Some(v),
                    // Every client writes integers, so anything else was never written.
                    _ => {
                        anomalies.push(Anomaly {
                            kind: "invalid-value".to_string(),
                            description: format!(
                                "the final read on node {} holds key {key} with value {:?}, \
                                 which is not an integer any client wrote",
                                record.node, i.value
                            ),
                            window: Some((record.start, record.end)),
                            evidence: vec![evidence_line(event)],
                        });
                        continue;
                    }
                },
            };
            let op = Operation::completed(
                record.process,
                RegisterInput::Read,
                record.start,
                RegisterOutput::Read(value),
                record.end.max(record.start),
            );
            ops.push(KeyOp { op, event, record });
        }
    }
    for ops in keys.values_mut() {
        drop_unobserved(ops, stats);
    }
    keys
}

/// A read that found the key's instance (it has a modify index) without an integer
/// value: every client writes integers, so that value was never written. The client
/// records such a value as `None`, which must not pass for "the key is absent".
fn corrupt_read(event: &Event, record: &OpRecord) -> Option<Anomaly> {
    let Op::Read {
        key,
        value: None,
        modify_index: Some(modify_index),
        ..
    } = &record.op
    else {
        return None;
    };
    (record.outcome == Outcome::Ok).then(|| Anomaly {
        kind: "invalid-value".to_string(),
        description: format!(
            "a read on node {} found key {key} (modify index {modify_index}) without an \
             integer value, which no client wrote",
            record.node
        ),
        window: Some((record.start, record.end)),
        evidence: vec![evidence_line(event)],
    })
}

/// The register operation a client operation amounts to, if it constrains anything.
fn register_op(record: &OpRecord, stats: &mut BTreeMap<String, u64>) -> Option<RegisterOp> {
    let (input, ok_output) = match &record.op {
        Op::Read { value, .. } => (RegisterInput::Read, RegisterOutput::Read(*value)),
        Op::Write { value, .. } => (RegisterInput::Write(*value), RegisterOutput::Write),
        Op::Cas { from, to, .. } => (
            RegisterInput::Cas {
                from: *from,
                to: *to,
            },
            RegisterOutput::Cas(true),
        ),
        _ => return None,
    };
    let (call, ret) = (record.start, record.end.max(record.start));
    let completed = |output| {
        Some(Operation::completed(
            record.process,
            input,
            call,
            output,
            ret,
        ))
    };
    match record.outcome {
        Outcome::Ok => completed(ok_output),
        // Any refusal had no effect, including a CAS whose compare did not match. As in
        // Jepsen (Knossos drops `:fail` operations), a failed CAS is left out rather
        // than checked as "the register did not hold `from`": that keeps
        // `drop_unobserved` below sound, which the search needs to finish. Whether a
        // refusal was right is judged apart, in `register_indexes`.
        Outcome::Fail => {
            if matches!(input, RegisterInput::Cas { .. }) && compare_failed(record) {
                *stats
                    .entry("cas_fail_precondition".to_string())
                    .or_insert(0) += 1;
            }
            None
        }
        // A read that never answered says nothing about the register.
        Outcome::Info if input == RegisterInput::Read => None,
        Outcome::Info => Some(Operation::indeterminate(record.process, input, call)),
    }
}

/// Whether a failed CAS was refused because its compare did not match (rather than,
/// say, because the request was invalid, which the client records as
/// `InvalidArgument: ...` and which may well mention the modify index too).
pub(super) fn compare_failed(record: &OpRecord) -> bool {
    let error = record.error.as_deref().unwrap_or("").to_lowercase();
    !error.starts_with("invalidargument")
        && (error.contains("precondition") || error.contains("modify index"))
}

/// Leaves out indeterminate writes (and CASes) whose value nobody ever observed: no
/// read returned it and no CAS compared against it. Every indeterminate operation
/// stays concurrent with everything after its call, which is what makes the search
/// blow up after a fault; these ones cannot matter.
///
/// Why the verdict is unchanged: a linearization of the rest plus these placed at the
/// very end is a linearization of the whole (they may take effect that late, and
/// nothing follows them). Conversely, from a linearization of the whole, remove them:
/// while the register held such an unobserved value, no read returned it and no
/// successful CAS compared against it, so the operations there are writes and
/// indeterminate CASes that did nothing, which can move to the end too. (A failed
/// CAS could have relied on the unobserved value; those are left out above.)
fn drop_unobserved(ops: &mut Vec<KeyOp>, stats: &mut BTreeMap<String, u64>) {
    let mut observed = std::collections::BTreeSet::new();
    for k in ops.iter() {
        match (&k.op.input, &k.op.output) {
            (_, Some(RegisterOutput::Read(Some(v)))) => {
                observed.insert(*v);
            }
            (RegisterInput::Cas { from, .. }, _) => {
                observed.insert(*from);
            }
            _ => {}
        }
    }
    let before = ops.len();
    ops.retain(|k| {
        let written = match k.op.input {
            RegisterInput::Write(v) | RegisterInput::Cas { to: v, .. } => Some(v),
            RegisterInput::Read => None,
        };
        k.op.output.is_some() || written.is_none_or(|v| observed.contains(&v))
    });
    *stats
        .entry("info_writes_unobserved_dropped".to_string())
        .or_insert(0) += (before - ops.len()) as u64;
}

fn count(stats: &mut BTreeMap<String, u64>, f: &str, outcome: Outcome) {
    let outcome = match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    };
    *stats.entry(format!("{f}_{outcome}")).or_insert(0) += 1;
}

/// The anomaly for a key that is not linearizable, narrowed to the shortest stretch of
/// the run that already shows it (see [`shortest_failing_prefix`]); a narrowing cut
/// short by the deadline gives a longer stretch.
fn not_linearizable(
    key: &str,
    ops: &[KeyOp],
    history: &[RegisterOp],
    deadline: Option<Instant>,
) -> Anomaly {
    let refs: Vec<&RegisterOp> = history.iter().collect();
    let Some(prefix) = shortest_failing_prefix(&RegisterModel, &refs, deadline) else {
        // Cannot happen (an illegal key has a completed operation), but a report
        // without a window is better than no report.
        return Anomaly {
            kind: "not-linearizable".to_string(),
            description: format!(
                "key {key}: no order of its {} operations is a legal register history",
                ops.len()
            ),
            window: None,
            evidence: Vec::new(),
        };
    };
    let cut = prefix.end;
    let last = &ops[prefix.culprit];
    let window = failing_window(ops, last);
    let evidence = window_evidence(ops, last, window);
    let in_prefix = ops.iter().filter(|k| k.op.call_time <= cut).count();
    Anomaly {
        kind: "not-linearizable".to_string(),
        description: format!(
            "key {key}: no order of its {} operations is a legal register history, and the \
             {} that started by {} already have none; the last of them: {} by process {} on \
             node {}",
            ops.len(),
            in_prefix,
            secs(cut),
            describe(&last.op),
            last.record.process,
            last.record.node
        ),
        window: Some(window),
        evidence,
    }
}

/// The window to show: from the latest acknowledged write the failing operation must
/// have seen (what it contradicts, typically) to the failing operation's end; without
/// such a write, from a second before the failing operation.
fn failing_window(ops: &[KeyOp], last: &KeyOp) -> (Nanos, Nanos) {
    let start = match latest_write_before(ops, last) {
        Some(anchor) => anchor.op.call_time.min(last.op.call_time),
        None => last.op.call_time.saturating_sub(WINDOW_LEAD),
    };
    (start, last.op.return_time)
}

/// The latest acknowledged write (or successful CAS) that returned before `last`
/// started: the value the register held, at the latest, when `last` began.
fn latest_write_before<'a, 'b>(ops: &'b [KeyOp<'a>], last: &KeyOp) -> Option<&'b KeyOp<'a>> {
    ops.iter()
        .filter(|k| {
            matches!(
                k.op.output,
                Some(RegisterOutput::Write) | Some(RegisterOutput::Cas(true))
            ) && k.op.return_time <= last.op.call_time
        })
        .max_by_key(|k| k.op.return_time)
}

/// The history lines of the operations that overlap the window: always the failing
/// operation and the write it should have seen, then the ones nearest the failure.
fn window_evidence(ops: &[KeyOp], last: &KeyOp, window: (Nanos, Nanos)) -> Vec<String> {
    let anchor = latest_write_before(ops, last);
    let is = |a: &KeyOp, b: Option<&KeyOp>| b.is_some_and(|b| std::ptr::eq(a, b));
    let mut overlapping: Vec<&KeyOp> = ops
        .iter()
        .filter(|k| k.op.call_time <= window.1 && k.record.end.max(k.op.call_time) >= window.0)
        .collect();
    overlapping.sort_by_key(|k| std::cmp::Reverse(k.op.call_time));
    let mut chosen: Vec<&KeyOp> = overlapping
        .iter()
        .copied()
        .filter(|k| is(k, Some(last)) || is(k, anchor))
        .collect();
    for k in overlapping {
        if chosen.len() >= MAX_EVIDENCE {
            break;
        }
        if !is(k, Some(last)) && !is(k, anchor) {
            chosen.push(k);
        }
    }
    chosen.sort_by_key(|k| (k.op.call_time, k.op.return_time));
    // A final read stands for every key at once: quote its line only once.
    let mut lines: Vec<String> = Vec::new();
    for k in chosen {
        let line = evidence_line(k.event);
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines
}

fn describe(op: &RegisterOp) -> String {
    let input = match op.input {
        RegisterInput::Read => "read".to_string(),
        RegisterInput::Write(v) => format!("write {v}"),
        RegisterInput::Cas { from, to } => format!("cas {from}->{to}"),
    };
    match op.output {
        None => format!("{input} (outcome unknown)"),
        Some(RegisterOutput::Read(Some(v))) => format!("{input} = {v}"),
        Some(RegisterOutput::Read(None)) => format!("{input} = absent"),
        Some(RegisterOutput::Write) => input,
        Some(RegisterOutput::Cas(swapped)) => {
            format!(
                "{input} ({})",
                if swapped { "swapped" } else { "did not match" }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::kinds;
    use crate::checks::Verdict;
    use std::time::Duration;

    const MS: Nanos = 1_000_000;

    fn op(process: u64, op: Op, start: Nanos, end: Nanos, outcome: Outcome) -> Event {
        Event::Op(OpRecord {
            process,
            node: 1,
            op,
            start: start * MS,
            end: end * MS,
            outcome,
            error: None,
        })
    }

    fn write(process: u64, key: &str, value: i64, start: Nanos, end: Nanos) -> Event {
        let w = Op::Write {
            key: key.into(),
            value,
            index: Some(1),
        };
        op(process, w, start, end, Outcome::Ok)
    }

    fn read(process: u64, key: &str, value: Option<i64>, start: Nanos, end: Nanos) -> Event {
        let r = Op::Read {
            key: key.into(),
            value,
            modify_index: None,
            index: Some(1),
        };
        op(process, r, start, end, Outcome::Ok)
    }

    fn cas(key: &str, from: i64, to: i64) -> Op {
        Op::Cas {
            key: key.into(),
            from,
            to,
            expected_index: 1,
            index: None,
        }
    }

    fn final_read(start: Nanos, end: Nanos, values: &[(&str, i64)]) -> Event {
        let instances = values
            .iter()
            .map(|(key, v)| InstanceState {
                service: REGISTER_SERVICE.into(),
                id: (*key).into(),
                value: Some(v.to_string()),
                modify_index: 1,
            })
            .collect();
        let list = Op::ListAll {
            service: REGISTER_SERVICE.into(),
            instances: Some(instances),
            index: Some(100),
        };
        op(99, list, start, end, Outcome::Ok)
    }

    fn run(events: &[Event]) -> CheckerReport {
        check(events, &CheckContext::default())
    }

    #[test]
    fn a_clean_history_with_cas_and_final_read_is_valid() {
        let events = [
            write(1, "k1", 1, 0, 10),
            read(2, "k1", Some(1), 20, 30),
            op(1, cas("k1", 1, 2), 40, 50, Outcome::Ok),
            // Concurrent with the CAS, so it may see either value.
            read(2, "k1", Some(1), 45, 55),
            write(3, "k2", 7, 0, 5),
            final_read(100, 110, &[("k1", 2), ("k2", 7)]),
        ];
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.anomalies);
        assert_eq!(report.stats["keys"], 2);
        assert_eq!(report.stats["write_ok"], 2);
        assert_eq!(report.stats["final_read_ok"], 1);
    }

    #[test]
    fn a_stale_read_is_not_linearizable_and_names_the_key() {
        let events = [
            write(1, "k1", 1, 0, 10),
            write(1, "k1", 2, 20, 30),
            read(2, "k1", Some(1), 40, 50),
            read(2, "k1", Some(2), 60, 70),
            write(3, "k2", 5, 0, 10),
        ];
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(kinds(&report), ["not-linearizable"]);
        let anomaly = &report.anomalies[0];
        assert!(
            anomaly.description.contains("key k1"),
            "{}",
            anomaly.description
        );
        // The window ends with the stale read and reaches back to the write of 2.
        assert_eq!(anomaly.window, Some((20 * MS, 50 * MS)));
        // The read after the stale one is not needed to show it.
        assert!(!anomaly
            .evidence
            .iter()
            .any(|l| l.contains("\"start\":60000000")));
        assert!(anomaly.evidence.iter().any(|l| l.contains("\"value\":2")));
    }

    #[test]
    fn a_write_missing_from_the_final_read_is_lost() {
        let events = [
            write(1, "k1", 1, 0, 10),
            write(1, "k2", 3, 0, 10),
            final_read(100, 110, &[("k2", 3)]),
        ];
        let report = run(&events);
        assert_eq!(kinds(&report), ["not-linearizable"]);
        assert!(report.anomalies[0].description.contains("key k1"));
    }

    #[test]
    fn a_key_that_appears_from_nowhere_is_not_linearizable() {
        let events = [
            write(1, "k1", 1, 0, 10),
            final_read(100, 110, &[("k1", 1), ("k9", 4)]),
        ];
        let report = run(&events);
        assert_eq!(kinds(&report), ["not-linearizable"]);
        assert!(report.anomalies[0].description.contains("key k9"));
    }

    #[test]
    fn indeterminate_and_failed_writes_follow_their_meaning() {
        let info_write = op(
            2,
            Op::Write {
                key: "k1".into(),
                value: 2,
                index: None,
            },
            20,
            30,
            Outcome::Info,
        );
        let failed_write = op(
            3,
            Op::Write {
                key: "k1".into(),
                value: 3,
                index: None,
            },
            20,
            30,
            Outcome::Fail,
        );
        // An unknown write may land late; a failed one never lands.
        let late = [
            write(1, "k1", 1, 0, 10),
            info_write.clone(),
            read(4, "k1", Some(1), 40, 50),
            read(4, "k1", Some(2), 60, 70),
        ];
        assert_eq!(run(&late).verdict, Verdict::Valid);
        let seen_failed = [
            write(1, "k1", 1, 0, 10),
            failed_write,
            read(4, "k1", Some(3), 40, 50),
        ];
        assert_eq!(kinds(&run(&seen_failed)), ["not-linearizable"]);
    }

    #[test]
    fn a_found_key_without_an_integer_value_is_invalid_not_absent() {
        let corrupt = op(
            2,
            Op::Read {
                key: "k1".into(),
                value: None,
                modify_index: Some(7),
                index: Some(7),
            },
            20,
            30,
            Outcome::Ok,
        );
        let report = run(&[write(1, "k1", 1, 0, 10), corrupt]);
        assert_eq!(kinds(&report), ["invalid-value"]);
    }

    #[test]
    fn a_refused_cas_is_left_out_like_any_failure() {
        let refused = |error: &str| {
            let mut e = op(2, cas("k1", 1, 5), 20, 30, Outcome::Fail);
            if let Event::Op(r) = &mut e {
                r.error = Some(error.to_string());
            }
            e
        };
        // Failed operations did not happen (Jepsen's rule), whatever the reason given;
        // precondition failures are still counted. (An unanswered write concurrent with
        // the CAS may have moved the modify index on, so the refusal may be right; see
        // `register_indexes` for refusals that cannot be.)
        let moved_on = op(
            4,
            Op::Write {
                key: "k1".into(),
                value: 9,
                index: None,
            },
            15,
            25,
            Outcome::Info,
        );
        for error in [
            "FailedPrecondition: instance jepsen-register/k1 has modify index 7, expected 1",
            "Unavailable: no leader",
            "InvalidArgument: modify index 0",
        ] {
            let history = [
                write(1, "k1", 1, 0, 10),
                moved_on.clone(),
                refused(error),
                read(3, "k1", Some(1), 40, 50),
            ];
            let report = run(&history);
            assert_eq!(report.verdict, Verdict::Valid, "{error}");
            let counted = report.stats.get("cas_fail_precondition").copied();
            assert_eq!(counted, error.starts_with("Failed").then_some(1), "{error}");
        }
    }

    #[test]
    fn modify_indexes_and_refusals_are_checked_beside_the_search() {
        // Linearizable as values go, but the read's modify index is not its write's,
        // and the CAS was refused although nothing could have moved the index on.
        let read_at = |modify_index| {
            let r = Op::Read {
                key: "k1".into(),
                value: Some(1),
                modify_index: Some(modify_index),
                index: Some(9),
            };
            op(2, r, 20, 30, Outcome::Ok)
        };
        let mut refused = op(2, cas("k1", 1, 5), 40, 50, Outcome::Fail);
        if let Event::Op(r) = &mut refused {
            r.error = Some("FailedPrecondition: instance k1 has modify index 3, expected 1".into());
        }
        let good = [write(1, "k1", 1, 0, 10), read_at(1)];
        assert_eq!(run(&good).verdict, Verdict::Valid);
        let bad = [write(1, "k1", 1, 0, 10), read_at(2), refused];
        let report = run(&bad);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(
            kinds(&report),
            ["wrong-modify-index", "cas-wrongly-refused"]
        );
    }

    #[test]
    fn unobserved_indeterminate_writes_are_left_out_and_stale_reads_still_caught() {
        // Many writes that never answered and whose values nobody read: without
        // leaving them out, each stays concurrent with everything after it.
        let mut events: Vec<Event> = (0..40)
            .map(|i| {
                op(
                    100 + i,
                    Op::Write {
                        key: "k1".into(),
                        value: 1000 + i as i64,
                        index: None,
                    },
                    5 + i,
                    6 + i,
                    Outcome::Info,
                )
            })
            .collect();
        events.push(write(1, "k1", 1, 0, 10));
        events.push(write(2, "k1", 2, 100, 110));
        // One unanswered write whose value was read must stay: it explains the read.
        events.push(op(
            3,
            Op::Write {
                key: "k1".into(),
                value: 3,
                index: None,
            },
            120,
            130,
            Outcome::Info,
        ));
        events.push(read(4, "k1", Some(3), 200, 210));
        let report = run(&events);
        assert_eq!(report.verdict, Verdict::Valid);
        assert_eq!(report.stats["info_writes_unobserved_dropped"], 40);
        // After 3 was read, reading 2 again is stale, unobserved writes or not.
        events.push(read(5, "k1", Some(2), 300, 310));
        assert_eq!(kinds(&run(&events)), ["not-linearizable"]);
    }

    #[test]
    fn a_search_out_of_time_is_undecided() {
        let events = [write(1, "k1", 1, 0, 10), read(2, "k1", Some(1), 20, 30)];
        let ctx = CheckContext {
            linearizability_time_limit: Duration::ZERO,
        };
        let report = check(&events, &ctx);
        assert_eq!(report.verdict, Verdict::Unknown);
        assert_eq!(kinds(&report), [UNDECIDED]);
    }

    #[test]
    fn a_final_value_no_client_could_write_is_reported() {
        let mut bad = final_read(100, 110, &[("k1", 1)]);
        if let Event::Op(OpRecord {
            op: Op::ListAll {
                instances: Some(i), ..
            },
            ..
        }) = &mut bad
        {
            i[0].value = Some("garbage".into());
        }
        let report = run(&[write(1, "k1", 1, 0, 10), bad]);
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(kinds(&report), ["invalid-value"]);
    }
}
