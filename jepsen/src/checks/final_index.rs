//! The highest index anything in a run could have answered at: the final reads'. They
//! are consistent reads, made after every workload client stopped, so each answers at
//! an index at least the commit index when it started; a node that answered earlier at
//! a higher index showed a state that was never committed (or was lost since).

use super::op_events;
use crate::history::{Event, Nanos, Op, OpRecord, Outcome};

/// The successful final reads with their index, for [`bound_after`].
pub struct FinalReads<'a> {
    reads: Vec<(u64, &'a Event, &'a OpRecord)>,
}

impl<'a> FinalReads<'a> {
    pub fn of(events: &'a [Event]) -> Self {
        let reads = op_events(events)
            .filter_map(|(event, record)| match &record.op {
                Op::ListAll {
                    index: Some(index), ..
                } if record.outcome == Outcome::Ok => Some((*index, event, record)),
                _ => None,
            })
            .collect();
        Self { reads }
    }

    /// The final read with the highest index among those that started at or after
    /// `time`: nothing that ended by `time` can have answered above its index. `None`
    /// when no final read started that late.
    pub fn bound_after(&self, time: Nanos) -> Option<(u64, &'a Event, &'a OpRecord)> {
        self.reads
            .iter()
            .filter(|(_, _, r)| r.start >= time)
            .max_by_key(|(index, _, r)| (*index, r.start))
            .copied()
    }
}
