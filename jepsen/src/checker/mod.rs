//! Linearizability checking of concurrent histories against a sequential model.
//!
//! This is a Porcupine-style checker: the Wing–Gong search with Lowe's linked-list
//! and state-cache refinements ([`search`]), run separately on each independent part
//! of a history when the model can split it (P-compositionality: a history is
//! linearizable if and only if every per-key sub-history is), under an optional time
//! limit after which the verdict is [`CheckResult::Unknown`] instead of a guess.

pub mod models;
pub mod parse;
mod search;

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

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
    // A limit too large to add to the clock is as good as none.
    let deadline = options
        .time_limit
        .and_then(|limit| Instant::now().checked_add(limit));
    let parts = if options.split {
        model.partition(history)
    } else {
        vec![(0..history.len()).collect()]
    };
    let mut verdict = CheckResult::Ok;
    for part in parts {
        let ops: Vec<_> = part.iter().filter_map(|&i| history.get(i)).collect();
        match search::check_part(model, &ops, deadline) {
            // One illegal part makes the whole history illegal, whatever the others
            // would say, so there is no point in going on.
            CheckResult::Illegal => return CheckResult::Illegal,
            // Keep going: a later part may still prove the history illegal.
            CheckResult::Unknown => verdict = CheckResult::Unknown,
            CheckResult::Ok => {}
        }
    }
    verdict
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
