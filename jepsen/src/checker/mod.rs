//! Linearizability checking of concurrent histories against a sequential model.
//!
//! This is a Porcupine-style checker: the Wing–Gong search with Lowe's linked-list
//! and state-cache refinements ([`search`]), run separately on each independent part
//! of a history when the model can split it (P-compositionality: a history is
//! linearizable if and only if every per-key sub-history is), under an optional time
//! limit after which the verdict is [`CheckResult::Unknown`] instead of a guess.
//! The parts take turns ([`schedule`]) under one deadline for the whole check, and
//! an illegal history can be narrowed to the shortest prefix of one part that is
//! already illegal ([`explain`], [`prefix`]). [`generate`] makes histories whose
//! verdict is known by construction, to test and measure all this.

mod cache;
pub mod generate;
pub mod models;
pub mod parse;
mod prefix;
mod schedule;
mod search;

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

pub use prefix::{shortest_failing_prefix, Prefix};
use schedule::Until;
use search::PartOp;

/// A point in a history's timeline. Only the order of times matters, so any
/// monotonic clock (or simply the index of the event in a log) will do.
pub type Time = u64;

/// The return time of an operation that never returned: it may have taken effect at
/// any point after its call, or never, which is what placing its return after every
/// other event expresses.
pub const INFINITY: Time = Time::MAX;

/// One operation of a history: what a client asked for, when, and what it got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (Jepsen "process") that ran the operation. The search does not use
    /// it; it is there to report on and to tell the operations apart.
    pub client_id: u64,
    pub input: I,
    pub call_time: Time,
    /// `None` when the outcome is unknown (a timeout, a crash): the model must then
    /// accept any output, but still apply the operation's effect.
    pub output: Option<O>,
    /// [`INFINITY`] for an operation that never returned.
    pub return_time: Time,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned `output` at `return_time`.
    pub fn completed(
        client_id: u64,
        input: I,
        call_time: Time,
        output: O,
        return_time: Time,
    ) -> Self {
        Self {
            client_id,
            input,
            call_time,
            output: Some(output),
            return_time,
        }
    }

    /// An operation whose client never learnt the outcome: it may have taken effect
    /// at any point after `call_time`, or never.
    pub fn indeterminate(client_id: u64, input: I, call_time: Time) -> Self {
        Self {
            client_id,
            input,
            call_time,
            output: None,
            return_time: INFINITY,
        }
    }
}

/// A sequential specification of an object, as the checker needs it.
pub trait Model {
    /// States are cached per set of linearized operations, so they must be cheap to
    /// clone, compare and hash.
    type State: Clone + Eq + Hash;
    type Input;
    type Output;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state` sequentially. Returns the next state if the object
    /// could have answered `output`, `None` if not. `output` is `None` when the
    /// outcome is unknown, and then every answer is possible.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Splits a history into independent sub-histories, as lists of indices into it,
    /// that are each checked from [`Model::init`] on their own. Every operation must
    /// be in exactly one part. The default keeps the history whole, which is always
    /// correct; models of objects made of independent parts (keys) override it
    /// because the search is exponential in the size of what it gets.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..history.len()).collect()]
    }

    /// What to call the part of [`Model::partition`] that holds `input`, in a
    /// report; `None` when the history is not split.
    fn part_name(&self, _input: &Self::Input) -> Option<String> {
        None
    }
}

/// The verdict on a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Some order of the operations respects both real time and the model.
    Ok,
    /// No such order exists.
    Illegal,
    /// The time limit ran out before the search could decide.
    Unknown,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckResult::Ok => "linearizable",
            CheckResult::Illegal => "not linearizable",
            CheckResult::Unknown => "unknown",
        })
    }
}

/// The time limit `waymark-jepsen check` and the harness's checkers use unless
/// told otherwise.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(60);

/// How to run a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Check each part from [`Model::partition`] on its own (the default). Turning
    /// this off gives the same verdict, only slower; it is there to show exactly that.
    pub split: bool,
    /// Give up with [`CheckResult::Unknown`] after this long; `None` waits for a
    /// verdict however long it takes.
    pub time_limit: Option<Duration>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            split: true,
            time_limit: None,
        }
    }
}

/// Checks whether `history` is linearizable with respect to `model`.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> CheckResult {
    let deadline = deadline(options.time_limit);
    let parts = split(model, history, options);
    verdict(&decide_parts(model, history, &parts, deadline))
}

/// A verdict with, for an illegal history, where it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub result: CheckResult,
    /// Set exactly when `result` is [`CheckResult::Illegal`].
    pub failure: Option<Failure>,
}

/// Where an illegal history fails: one illegal part, narrowed to its shortest
/// illegal prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The operations of the part (indices into the history, in history order).
    pub part: Vec<usize>,
    /// The prefix of the part that is already illegal, and the operation (an index
    /// into the history) that cannot be placed in it.
    pub end: Time,
    pub culprit: usize,
    /// Whether `end` is proved shortest (see [`Prefix::shortest`]).
    pub shortest: bool,
}

/// [`check`], and for an illegal history the part that fails and its shortest
/// illegal prefix ([`shortest_failing_prefix`]). The time limit covers both: what
/// the search leaves of it goes to the narrowing, and a narrowing cut short
/// reports the earliest failing prefix it found.
pub fn explain<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> Report {
    let deadline = deadline(options.time_limit);
    let parts = split(model, history, options);
    let verdicts = decide_parts(model, history, &parts, deadline);
    let result = verdict(&verdicts);
    let failed = verdicts.iter().position(|&v| v == CheckResult::Illegal);
    let failure = failed.and_then(|p| {
        let part: Vec<usize> = parts[p].clone();
        let ops: Vec<_> = part.iter().map(|&i| &history[i]).collect();
        let prefix = shortest_failing_prefix(model, &ops, deadline)?;
        Some(Failure {
            culprit: part[prefix.culprit],
            part,
            end: prefix.end,
            shortest: prefix.shortest,
        })
    });
    Report { result, failure }
}

/// Checks each of `parts` as a history of its own, every one to its verdict, with
/// one time limit for them all: the parts take turns, so that one hard part does
/// not leave the others undecided. For callers that split a history themselves
/// and report on every part.
pub fn check_each<M: Model>(
    model: &M,
    parts: &[Vec<Operation<M::Input, M::Output>>],
    deadline: Option<Instant>,
) -> Vec<CheckResult> {
    let parts = parts
        .iter()
        .map(|ops| ops.iter().map(part_op).collect())
        .collect();
    schedule::decide(model, parts, deadline, Until::AllDecided)
}

/// The instant a time limit from now runs out; a limit too large to add to the
/// clock is as good as none.
pub fn deadline(time_limit: Option<Duration>) -> Option<Instant> {
    time_limit.and_then(|limit| Instant::now().checked_add(limit))
}

fn split<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> Vec<Vec<usize>> {
    if options.split {
        model.partition(history)
    } else {
        vec![(0..history.len()).collect()]
    }
}

/// Every part's verdict, stopping at the first illegal one: it makes the whole
/// history illegal whatever the others would say.
fn decide_parts<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    parts: &[Vec<usize>],
    deadline: Option<Instant>,
) -> Vec<CheckResult> {
    let parts = parts
        .iter()
        .map(|part| {
            part.iter()
                .filter_map(|&i| history.get(i))
                .map(part_op)
                .collect()
        })
        .collect();
    schedule::decide(model, parts, deadline, Until::FirstIllegal)
}

/// Illegal if any part is, else unknown if any part is undecided.
fn verdict(parts: &[CheckResult]) -> CheckResult {
    if parts.contains(&CheckResult::Illegal) {
        CheckResult::Illegal
    } else if parts.contains(&CheckResult::Unknown) {
        CheckResult::Unknown
    } else {
        CheckResult::Ok
    }
}

fn part_op<I, O>(op: &Operation<I, O>) -> PartOp<'_, I, O> {
    PartOp {
        input: &op.input,
        output: op.output.as_ref(),
        call: op.call_time,
        ret: op.return_time,
    }
}

#[cfg(test)]
mod tests {
    use super::models::{KvInput, KvModel, KvOutput, RegisterInput, RegisterModel, RegisterOutput};
    use super::*;

    type RegisterOp = Operation<RegisterInput, RegisterOutput>;

    fn write(client: u64, value: i64, call: Time, ret: Time) -> RegisterOp {
        Operation::completed(
            client,
            RegisterInput::Write(value),
            call,
            RegisterOutput::Write,
            ret,
        )
    }

    fn read(client: u64, value: Option<i64>, call: Time, ret: Time) -> RegisterOp {
        Operation::completed(
            client,
            RegisterInput::Read,
            call,
            RegisterOutput::Read(value),
            ret,
        )
    }

    fn verdict(history: &[RegisterOp]) -> CheckResult {
        check(&RegisterModel, history, &CheckOptions::default())
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(verdict(&[]), CheckResult::Ok);
    }

    #[test]
    fn stale_read_is_not_linearizable() {
        // The write of 2 finished before the read began, so reading 1 is stale.
        let history = [write(0, 1, 0, 1), write(0, 2, 2, 3), read(1, Some(1), 4, 5)];
        assert_eq!(verdict(&history), CheckResult::Illegal);
    }

    #[test]
    fn read_before_any_write_sees_nothing() {
        assert_eq!(verdict(&[read(0, None, 0, 1)]), CheckResult::Ok);
        assert_eq!(
            verdict(&[write(0, 1, 0, 1), read(1, None, 2, 3)]),
            CheckResult::Illegal
        );
    }

    #[test]
    fn concurrent_overlapping_ops_are_linearizable() {
        // Two writes overlap each other and two reads that overlap them see the
        // writes in opposite orders; the reads overlap each other too, so ordering
        // w1 r(1) w2 r(2) explains everything.
        let history = [
            write(0, 1, 0, 10),
            write(1, 2, 1, 11),
            read(2, Some(2), 2, 12),
            read(3, Some(1), 3, 13),
        ];
        assert_eq!(verdict(&history), CheckResult::Ok);
    }

    #[test]
    fn reads_that_flip_back_are_not_linearizable() {
        // Same writes, but the reads are sequential: 2 then 1 then 2 again would need
        // the register to change three times with only two writes.
        let history = [
            write(0, 1, 0, 100),
            write(1, 2, 1, 100),
            read(2, Some(2), 2, 3),
            read(2, Some(1), 4, 5),
            read(2, Some(2), 6, 7),
        ];
        assert_eq!(verdict(&history), CheckResult::Illegal);
    }

    #[test]
    fn indeterminate_write_may_or_may_not_take_effect() {
        let base = || {
            vec![
                write(0, 1, 0, 1),
                // Client 1 never heard back about writing 2.
                Operation::indeterminate(1, RegisterInput::Write(2), 2),
            ]
        };

        // It took effect before a later read...
        let mut took_effect = base();
        took_effect.push(read(2, Some(2), 3, 4));
        assert_eq!(verdict(&took_effect), CheckResult::Ok);

        // ...or it never did...
        let mut never = base();
        never.push(read(2, Some(1), 3, 4));
        never.push(read(2, Some(1), 5, 6));
        assert_eq!(verdict(&never), CheckResult::Ok);

        // ...or it did late, but it cannot be undone once seen...
        let mut late = base();
        late.push(read(2, Some(1), 3, 4));
        late.push(read(2, Some(2), 5, 6));
        assert_eq!(verdict(&late), CheckResult::Ok);
        let mut undone = base();
        undone.push(read(2, Some(2), 3, 4));
        undone.push(read(2, Some(1), 5, 6));
        assert_eq!(verdict(&undone), CheckResult::Illegal);

        // ...and it cannot take effect before it was called.
        let early = [
            write(0, 1, 0, 1),
            read(2, Some(2), 2, 3),
            Operation::indeterminate(1, RegisterInput::Write(2), 4),
        ];
        assert_eq!(verdict(&early), CheckResult::Illegal);
    }

    #[test]
    fn unknown_cas_outcome_follows_the_state() {
        // A cas whose reply was lost still only swaps if the value matched.
        let cas = |from, to, call| Operation {
            client_id: 1,
            input: RegisterInput::Cas { from, to },
            call_time: call,
            output: None,
            return_time: call + 1,
        };
        let applied = [write(0, 1, 0, 1), cas(1, 5, 2), read(2, Some(5), 4, 5)];
        assert_eq!(verdict(&applied), CheckResult::Ok);
        let mismatched = [write(0, 1, 0, 1), cas(7, 5, 2), read(2, Some(5), 4, 5)];
        assert_eq!(verdict(&mismatched), CheckResult::Illegal);
    }

    #[test]
    fn zero_time_limit_yields_unknown() {
        let history = [write(0, 1, 0, 1), read(1, Some(1), 2, 3)];
        let options = CheckOptions {
            time_limit: Some(Duration::ZERO),
            ..CheckOptions::default()
        };
        assert_eq!(
            check(&RegisterModel, &history, &options),
            CheckResult::Unknown
        );
    }

    #[test]
    fn kv_verdict_is_the_same_with_and_without_the_split() {
        let put = |client, key: &str, value: &str, call, ret| {
            Operation::completed(client, KvInput::put(key, value), call, KvOutput::Done, ret)
        };
        let get = |client, key: &str, value: &str, call, ret| {
            Operation::completed(
                client,
                KvInput::get(key),
                call,
                KvOutput::Value(value.to_owned()),
                ret,
            )
        };
        let ok = [
            put(0, "a", "1", 0, 3),
            put(1, "b", "2", 1, 2),
            get(2, "b", "2", 4, 5),
            get(2, "a", "1", 6, 7),
        ];
        // Key b's get misses a put that finished before it started.
        let bad = [
            put(0, "a", "1", 0, 3),
            put(1, "b", "2", 1, 2),
            get(2, "b", "", 4, 5),
            get(2, "a", "1", 6, 7),
        ];
        for split in [true, false] {
            let options = CheckOptions {
                split,
                ..CheckOptions::default()
            };
            assert_eq!(check(&KvModel, &ok, &options), CheckResult::Ok);
            assert_eq!(check(&KvModel, &bad, &options), CheckResult::Illegal);
        }
    }
}
