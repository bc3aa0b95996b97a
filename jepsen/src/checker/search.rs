//! The Wing–Gong linearizability search, with Lowe's linked list and state cache.
//!
//! The history becomes a time-ordered list of call and return events. The search
//! walks it from the front looking for a call it can linearize next (the model
//! accepts it in the current state); linearizing an operation lifts its call and
//! return out of the list, so "the next candidates" are always the calls before the
//! first remaining return. Reaching a return means the operation that return belongs
//! to had to be linearized by now and was not, so the search backtracks. The cache
//! of (set of linearized operations, state) pairs already explored is what keeps
//! this from being hopeless: two orders that linearize the same operations and end
//! in the same state have the same future, so only the first one is explored.

use super::cache::{Full, Linearized, Seen, States};
use super::{CheckResult, Model, Time};

/// The head sentinel of the event list.
const HEAD: usize = 0;
/// "No node": the end of the list, or the missing match of a return node.
const NIL: usize = usize::MAX;

/// A doubly linked list of events in index vectors: node 0 is the head sentinel and
/// nodes `1..` are the call and return events in time order.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation each node belongs to (unused for the head).
    op: Vec<usize>,
    /// For a call node, its return node; `NIL` for return nodes and the head.
    return_of: Vec<usize>,
}

impl Events {
    fn new<I, O>(ops: &[PartOp<I, O>]) -> Self {
        // (time, is_return, op): at equal times calls sort before returns, since an
        // operation that returns when another is called still overlaps it.
        let mut events: Vec<(Time, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call, false, i));
            // An operation cannot return before it is called; treating a malformed
            // one as returning at its call keeps each call ahead of its return, which
            // the list manipulation below relies on.
            events.push((op.ret.max(op.call), true, i));
        }
        events.sort_unstable();

        let nodes = events.len() + 1;
        let mut list = Self {
            next: (1..=nodes).collect(),
            prev: (0..nodes).map(|n| n.wrapping_sub(1)).collect(),
            op: vec![0; nodes],
            return_of: vec![NIL; nodes],
        };
        list.next[nodes - 1] = NIL;
        list.prev[HEAD] = NIL;
        let mut return_node = vec![NIL; ops.len()];
        for (index, &(_, is_return, op)) in events.iter().enumerate() {
            let node = index + 1;
            list.op[node] = op;
            if is_return {
                return_node[op] = node;
            }
        }
        for (index, &(_, is_return, op)) in events.iter().enumerate() {
            if !is_return {
                list.return_of[index + 1] = return_node[op];
            }
        }
        list
    }

    /// Takes a call and its return out of the list; `unlift` puts them back. The call
    /// always has a successor (at least its own return), the return may not.
    fn lift(&mut self, call: usize) {
        let ret = self.return_of[call];
        self.next[self.prev[call]] = self.next[call];
        self.prev[self.next[call]] = self.prev[call];
        self.next[self.prev[ret]] = self.next[ret];
        if self.next[ret] != NIL {
            self.prev[self.next[ret]] = self.prev[ret];
        }
    }

    /// Undoes `lift(call)`, which must be the latest lift not yet undone: the lifted
    /// nodes still hold their old neighbours, so re-linking them (return first, in
    /// the reverse order of lifting) restores the list exactly.
    fn unlift(&mut self, call: usize) {
        let ret = self.return_of[call];
        self.next[self.prev[ret]] = ret;
        if self.next[ret] != NIL {
            self.prev[self.next[ret]] = ret;
        }
        self.next[self.prev[call]] = call;
        self.prev[self.next[call]] = call;
    }
}

/// One operation as the search sees it, borrowed from the history. The outcome may
/// be forgotten: a cut of a history makes the operations still running at the cut
/// indeterminate.
pub(super) struct PartOp<'a, I, O> {
    pub input: &'a I,
    pub output: Option<&'a O>,
    pub call: Time,
    pub ret: Time,
}

/// The search over one independent part of a history, resumable: [`Search::run`]
/// takes a number of steps, so that a scheduler can take turns between parts and
/// read the clock between turns.
pub(super) struct Search<'a, M: Model> {
    model: &'a M,
    ops: Vec<PartOp<'a, M::Input, M::Output>>,
    events: Events,
    states: States<M::State>,
    seen: Seen,
    linearized: Linearized,
    /// The number of the current state in `states`.
    state: u32,
    /// The calls linearized so far, in order, with the state from before each: the
    /// stack to backtrack on.
    stack: Vec<(usize, u32)>,
    /// Where the walk along the event list is.
    node: usize,
    /// The verdict, once there is one.
    done: Option<CheckResult>,
}

impl<'a, M: Model> Search<'a, M> {
    pub(super) fn new(model: &'a M, ops: Vec<PartOp<'a, M::Input, M::Output>>) -> Self {
        let events = Events::new(&ops);
        let mut states = States::new();
        // The first state of an empty table always gets a number.
        let state = states.intern(model.init()).unwrap_or(0);
        Self {
            model,
            linearized: Linearized::new(ops.len()),
            seen: Seen::new(ops.len()),
            node: events.next[HEAD],
            events,
            ops,
            states,
            state,
            stack: Vec::new(),
            done: None,
        }
    }

    /// Takes up to `steps` steps of the search; the verdict once there is one. A
    /// search whose memory is full ends as [`CheckResult::Unknown`].
    pub(super) fn run(&mut self, steps: u64) -> Option<CheckResult> {
        for _ in 0..steps {
            if self.done.is_some() {
                break;
            }
            self.done = match self.step() {
                Ok(done) => done,
                Err(Full) => Some(CheckResult::Unknown),
            };
        }
        self.done
    }

    fn step(&mut self) -> Result<Option<CheckResult>, Full> {
        let events = &mut self.events;
        if events.next[HEAD] == NIL {
            return Ok(Some(CheckResult::Ok));
        }
        // Every call precedes its return, so the walk meets a return before the end
        // of the list; `NIL` is handled like a return all the same.
        let node = self.node;
        let is_call = node != NIL && events.return_of[node] != NIL;
        if is_call {
            let index = events.op[node];
            let op = &self.ops[index];
            let current = self.states.get(self.state);
            if let Some(next) = self.model.step(current, op.input, op.output) {
                let next = self.states.intern(next)?;
                self.linearized.flip(index);
                if self.seen.insert(&self.linearized, next)? {
                    self.stack.push((node, self.state));
                    self.state = next;
                    events.lift(node);
                    self.node = events.next[HEAD];
                    return Ok(None);
                }
                // Been here by another order: nothing new down this way.
                self.linearized.flip(index);
            }
            self.node = events.next[node];
        } else {
            // The operation this return belongs to should have been linearized by
            // now: undo the latest choice and try the call after it instead.
            let Some((call, before)) = self.stack.pop() else {
                return Ok(Some(CheckResult::Illegal));
            };
            self.state = before;
            self.linearized.flip(events.op[call]);
            events.unlift(call);
            self.node = events.next[call];
        }
        Ok(None)
    }
}
