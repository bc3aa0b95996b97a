//! The shortest prefix of an illegal part that is already illegal, and the
//! operation that cannot be placed in it: what a person reads instead of the whole
//! part.
//!
//! The cut of a history at time `t` keeps the operations called by `t`; those still
//! running at `t` become indeterminate. Any linearization of the whole, restricted
//! to the operations it places by `t`, followed by the rest at the end (the model
//! accepts an indeterminate operation anywhere), linearizes the cut. So an illegal
//! cut proves the whole illegal, and every later cut of an illegal one is illegal
//! too: the illegal cuts are a suffix of the candidates (the return times, since only
//! a return adds a constraint), found exactly by binary search. The operation
//! returning at the shortest illegal cut is one the search cannot place: every
//! earlier return can be honoured, and this one cannot be as well.

use std::collections::BTreeSet;
use std::time::Instant;

use super::schedule::{decide, Until};
use super::search::PartOp;
use super::{CheckResult, Model, Operation, Time, INFINITY};

/// Where an illegal part already fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The part cut here (operations called by `end`, those still running then
    /// taken as indeterminate) cannot be linearized.
    pub end: Time,
    /// The operation of the part (an index into it) that returns at `end`: the one
    /// that cannot be placed. Of several returning at `end`, the latest called.
    pub culprit: usize,
    /// Whether `end` is proved the earliest such time; `false` when the deadline
    /// cut the narrowing short, and `end` is only the earliest found.
    pub shortest: bool,
}

/// Narrows `part`, which must be illegal, to its shortest illegal prefix, within
/// `deadline`. Returns `None` for a part with no completed operation, which cannot
/// be illegal.
pub fn shortest_failing_prefix<M: Model>(
    model: &M,
    part: &[&Operation<M::Input, M::Output>],
    deadline: Option<Instant>,
) -> Option<Prefix> {
    let cuts: Vec<Time> = part
        .iter()
        .map(|op| op.return_time)
        .filter(|&t| t != INFINITY)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // The last cut holds every constraint of the whole, so it is known illegal.
    let (mut lo, mut hi) = (0, cuts.len().checked_sub(1)?);
    let mut shortest = true;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match decide(
            model,
            vec![cut_at(part, cuts[mid])],
            deadline,
            Until::FirstIllegal,
        )[0]
        {
            CheckResult::Illegal => hi = mid,
            CheckResult::Ok => lo = mid + 1,
            CheckResult::Unknown => {
                // Out of time: the earliest cut shown illegal so far stands.
                shortest = false;
                break;
            }
        }
    }
    let end = cuts[hi];
    let culprit = (0..part.len())
        .filter(|&i| part[i].return_time == end)
        .max_by_key(|&i| part[i].call_time)?;
    Some(Prefix {
        end,
        culprit,
        shortest,
    })
}

/// The operations called by `t`, those still running at `t` made indeterminate.
fn cut_at<'a, I, O>(part: &[&'a Operation<I, O>], t: Time) -> Vec<PartOp<'a, I, O>> {
    part.iter()
        .filter(|op| op.call_time <= t)
        .map(|op| {
            let returned = op.return_time <= t;
            PartOp {
                input: &op.input,
                output: op.output.as_ref().filter(|_| returned),
                call: op.call_time,
                ret: if returned { op.return_time } else { INFINITY },
            }
        })
        .collect()
}
