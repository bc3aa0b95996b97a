//! Takes turns between the searches of a history's independent parts, under one
//! deadline for them all.
//!
//! Turns rather than one part after another because how hard a part is to decide
//! says nothing about its verdict: in a bad history one part may take hours to
//! refute while another fails in a millisecond, and a verdict on the whole needs
//! only the quick one. Searching the parts in order spent the whole time limit on
//! the first hard one. Equal turns give every part the same share of the time, as
//! Porcupine's one goroutine per part does, so the history is decided about as soon
//! as its quickest failing part is.

use std::time::Instant;

use super::search::{PartOp, Search};
use super::{CheckResult, Model};

/// Steps of one part's search per turn: short enough that every part gets going
/// at once and that the clock, read between turns, ends a check soon after its
/// deadline; long enough that reading the clock costs nothing.
const STEPS_PER_TURN: u64 = 256;

/// When to stop taking turns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// The first illegal part decides the whole history.
    FirstIllegal,
    /// Every part's own verdict is wanted.
    AllDecided,
}

/// The verdict of each part: `Unknown` for those left undecided at the deadline
/// (or, with [`Until::FirstIllegal`], once some other part was found illegal).
pub(super) fn decide<'a, M: Model>(
    model: &'a M,
    parts: Vec<Vec<PartOp<'a, M::Input, M::Output>>>,
    deadline: Option<Instant>,
    until: Until,
) -> Vec<CheckResult> {
    let mut verdicts = vec![CheckResult::Unknown; parts.len()];
    let mut searches: Vec<Option<Search<'a, M>>> = parts
        .into_iter()
        .map(|ops| Some(Search::new(model, ops)))
        .collect();
    let mut open = searches.len();
    while open > 0 {
        for (verdict, slot) in verdicts.iter_mut().zip(searches.iter_mut()) {
            let Some(search) = slot else { continue };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return verdicts;
            }
            if let Some(done) = search.run(STEPS_PER_TURN) {
                *verdict = done;
                // A decided part's memory goes at once; the others may need it.
                *slot = None;
                open -= 1;
                if done == CheckResult::Illegal && until == Until::FirstIllegal {
                    return verdicts;
                }
            }
        }
    }
    verdicts
}
