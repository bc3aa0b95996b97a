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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Instant;

use super::{CheckResult, Model, Operation, Time};

/// The head sentinel of the event list.
const HEAD: usize = 0;
/// "No node": the end of the list, or the missing match of a return node.
const NIL: usize = usize::MAX;
/// How many search steps to take between looks at the clock, so that reading it
/// costs next to nothing while a time limit still ends the search promptly.
const STEPS_PER_CLOCK_READ: u64 = 1024;

/// The set of operations linearized so far, one bit per operation of the part.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Box<[u64]>);

impl Bitset {
    fn new(bits: usize) -> Self {
        Self(vec![0; bits.div_ceil(64)].into_boxed_slice())
    }

    fn set(&mut self, bit: usize) {
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    fn clear(&mut self, bit: usize) {
        self.0[bit / 64] &= !(1 << (bit % 64));
    }
}

/// The (linearized operations, state) pairs the search has already been through.
/// Buckets by hash rather than a set of owned pairs so that a lookup that finds the
/// pair costs no clone; only new pairs are copied in.
struct Cache<S> {
    buckets: HashMap<u64, Vec<(Bitset, S)>, BuildHasherDefault<FxHasher>>,
}

impl<S: Clone + Eq + Hash> Cache<S> {
    fn new() -> Self {
        Self {
            buckets: HashMap::default(),
        }
    }

    /// Records the pair unless it is there already; says whether it was new.
    fn insert(&mut self, linearized: &Bitset, state: &S) -> bool {
        let mut hasher = FxHasher::default();
        linearized.hash(&mut hasher);
        state.hash(&mut hasher);
        let bucket = self.buckets.entry(hasher.finish()).or_default();
        if bucket.iter().any(|(l, s)| l == linearized && s == state) {
            return false;
        }
        bucket.push((linearized.clone(), state.clone()));
        true
    }
}

/// The multiply-rotate hash of rustc (FxHash). The cache hashes a bitset and a state
/// on every step of the search, where SipHash's flooding resistance buys nothing and
/// costs a large share of the run time.
#[derive(Default)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

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
    fn new<I, O>(ops: &[&Operation<I, O>]) -> Self {
        // (time, is_return, op): at equal times calls sort before returns, since an
        // operation that returns when another is called still overlaps it.
        let mut events: Vec<(Time, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call_time, false, i));
            // An operation cannot return before it is called; treating a malformed
            // one as returning at its call keeps each call ahead of its return, which
            // the list manipulation below relies on.
            events.push((op.return_time.max(op.call_time), true, i));
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

/// Checks one independent part of a history.
pub(super) fn check_part<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    deadline: Option<Instant>,
) -> CheckResult {
    let mut events = Events::new(ops);
    let mut state = model.init();
    let mut linearized = Bitset::new(ops.len());
    let mut cache = Cache::new();
    // The calls linearized so far, in order, with the state from before each: the
    // stack to backtrack on.
    let mut stack: Vec<(usize, M::State)> = Vec::new();

    let mut node = events.next[HEAD];
    let mut steps: u64 = 0;
    while events.next[HEAD] != NIL {
        if steps % STEPS_PER_CLOCK_READ == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            return CheckResult::Unknown;
        }
        steps += 1;

        // Every call precedes its return, so the walk meets a return before the end
        // of the list; `NIL` is handled like a return all the same.
        let is_call = node != NIL && events.return_of[node] != NIL;
        if is_call {
            let index = events.op[node];
            let op = ops[index];
            if let Some(next_state) = model.step(&state, &op.input, op.output.as_ref()) {
                linearized.set(index);
                if cache.insert(&linearized, &next_state) {
                    stack.push((node, std::mem::replace(&mut state, next_state)));
                    events.lift(node);
                    node = events.next[HEAD];
                    continue;
                }
                // Been here by another order: nothing new down this way.
                linearized.clear(index);
            }
            node = events.next[node];
        } else {
            // The operation this return belongs to should have been linearized by
            // now: undo the latest choice and try the call after it instead.
            let Some((call, before)) = stack.pop() else {
                return CheckResult::Illegal;
            };
            state = before;
            linearized.clear(events.op[call]);
            events.unlift(call);
            node = events.next[call];
        }
    }
    CheckResult::Ok
}
