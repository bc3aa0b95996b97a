//! Key-value histories from a simulated linearizable store, optionally with one
//! violation injected, whose verdict is known by construction: for testing and
//! measuring the checker on shapes no recorded history has (hundreds of clients,
//! thousands of operations).
//!
//! The simulation: each client runs operations one after another; each takes
//! effect at a point strictly inside its call and return, in one store, so the
//! history is linearizable by construction. Some operations time out and are
//! recorded `:info` as Jepsen does (the client then retires and a fresh process
//! number takes its place); such an operation takes effect at some point after its
//! call, even after the `:info`, or never. Some writes `:fail` and do not take
//! effect. Every written token (`x <process> <op> y`) is unique, so a value spells
//! out exactly which writes made it, and the first token of a value is its *base*:
//! the put that last reset the key, or the first append to the empty key.
//!
//! The injected violations, each proved illegal, where `w` is an acknowledged write
//! and `g` an acknowledged get of the same key:
//! - **stale read**: `w` returned before `g` was called, and `g` reports the value
//!   from just before `w`, whose base returned before `w` was called (or the empty
//!   initial value). In every linearization the base, then `w`, then `g` come in
//!   that order; after `w` the value holds `w`'s token or has a base later than
//!   `w`, so it is never that old value again.
//! - **lost write**: `w` is acknowledged but never takes effect, and a later `g`
//!   (called after `w` returned) sees a value whose base returned before `w` was
//!   called: illegal by the same argument, since the value lacks `w`'s token.
//! - **read from the future**: `g` returned before `w` was called, yet `g`'s value
//!   holds `w`'s token, which only `w` can put there.
//!
//! Everything is drawn from one seeded generator, so a seed gives the same history
//! on every machine.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    pub clients: usize,
    /// Operations in all, across clients.
    pub ops: usize,
    pub keys: usize,
    pub seed: u64,
    pub violation: Option<Violation>,
}

/// The kinds of violation [`generate`] can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    StaleRead,
    LostWrite,
    ReadFromFuture,
}

impl Violation {
    pub const ALL: [Violation; 3] = [
        Violation::StaleRead,
        Violation::LostWrite,
        Violation::ReadFromFuture,
    ];
}

/// A generated history: EDN event lines, as `parse::read_kv_edn` reads them.
#[derive(Clone, Debug)]
pub struct Generated {
    pub edn: String,
    /// Set when a violation was injected.
    pub injected: Option<Injected>,
}

/// Where an injected violation is, in the history's line numbers (the times
/// `parse::read_kv_edn` gives events), so that a test can check the checker's
/// account of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub violation: Violation,
    pub key: String,
    /// The shortest illegal prefix of the key ends at a line in this range:
    /// after the injected fault's write returned (a prefix cut before cannot show
    /// it), and at the latest with the get that shows it.
    pub earliest_end: u64,
    pub latest_end: u64,
}

/// Why a history could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("no place in this history shows a {0:?}; generate more operations or another seed")]
    NoPlace(Violation),
}

/// Generates the history `spec` describes.
pub fn generate(spec: &Spec) -> Result<Generated, GenerateError> {
    for (name, value) in [
        ("clients", spec.clients),
        ("ops", spec.ops),
        ("keys", spec.keys),
    ] {
        if value == 0 {
            return Err(GenerateError::Zero(name));
        }
    }
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut ops = schedule(spec, &mut rng);
    simulate(&mut ops);
    let fault = match spec.violation {
        None => None,
        Some(violation) => Some(inject(violation, &mut ops, &mut rng)?),
    };
    Ok(render(&ops, fault))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Get,
    Put,
    Append,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Info,
    Fail,
}

/// One simulated operation.
struct SimOp {
    process: u64,
    key: usize,
    kind: Kind,
    call: u64,
    ret: u64,
    /// When it takes effect; `None` if it never does.
    effect: Option<u64>,
    outcome: Outcome,
    /// A get's value (at its effect); for a write, the key's value just before it.
    seen: String,
    /// The operation whose token starts `seen`; `None` for the empty value.
    seen_base: Option<usize>,
}

impl SimOp {
    fn token(&self, index: usize) -> String {
        format!("x {} {index} y", self.process)
    }

    fn is_write(&self) -> bool {
        self.kind != Kind::Get
    }

    fn acknowledged(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

/// Chance of a timeout (`:info`), and of a write failing (`:fail`).
const INFO_RATE: f64 = 0.03;
const FAIL_RATE: f64 = 0.02;

/// Draws the operations: who runs what on which key, when it is called, when it
/// takes effect and when it returns.
fn schedule(spec: &Spec, rng: &mut StdRng) -> Vec<SimOp> {
    // Each client is free again at some time; the one free first runs next, so
    // the operations come out in call order with many overlapping.
    let mut free: BinaryHeap<Reverse<(u64, u64)>> = (0..spec.clients as u64)
        .map(|client| Reverse((rng.gen_range(0..10), client)))
        .collect();
    let mut ops = Vec::with_capacity(spec.ops);
    while ops.len() < spec.ops {
        let Some(Reverse((at, process))) = free.pop() else {
            break;
        };
        let kind = match rng.gen_range(0..10) {
            0..=4 => Kind::Get,
            5..=6 => Kind::Put,
            _ => Kind::Append,
        };
        // Calls strictly after the client's previous return, so that no two
        // events of one process share a time.
        let call = at + rng.gen_range(1..4);
        let duration = rng.gen_range(2..24);
        let ret = call + duration;
        let mut effect = Some(call + rng.gen_range(1..duration));
        let mut outcome = Outcome::Ok;
        let mut next_process = process;
        if rng.gen_bool(INFO_RATE) {
            outcome = Outcome::Info;
            // A timed-out write may still land, even after the client gave up;
            // a timed-out get's answer is lost, so its effect does not matter.
            effect = (kind != Kind::Get && rng.gen_bool(0.5))
                .then(|| call + rng.gen_range(1..4 * duration));
            next_process = process + spec.clients as u64;
        } else if kind != Kind::Get && rng.gen_bool(FAIL_RATE) {
            outcome = Outcome::Fail;
            effect = None;
        }
        ops.push(SimOp {
            process,
            key: rng.gen_range(0..spec.keys),
            kind,
            call,
            ret,
            effect,
            outcome,
            seen: String::new(),
            seen_base: None,
        });
        free.push(Reverse((ret, next_process)));
    }
    ops
}

/// Runs the store: applies every operation that takes effect in the order of its
/// effect, filling in what each get saw and each write overwrote.
fn simulate(ops: &mut [SimOp]) {
    let mut order: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].effect.is_some())
        .collect();
    // Ties between effects are broken by index: two effects at one instant are of
    // overlapping operations (each is strictly inside its own call and return), so
    // either order respects real time.
    order.sort_by_key(|&i| (ops[i].effect, i));
    let keys = ops.iter().map(|op| op.key + 1).max().unwrap_or(0);
    let mut values: Vec<(String, Option<usize>)> = vec![(String::new(), None); keys];
    for i in order {
        let token = ops[i].token(i);
        let op = &mut ops[i];
        let (value, base) = &mut values[op.key];
        op.seen.clone_from(value);
        op.seen_base = *base;
        match op.kind {
            Kind::Get => {}
            Kind::Put => {
                *value = token;
                *base = Some(i);
            }
            Kind::Append => {
                if value.is_empty() {
                    *base = Some(i);
                }
                value.push_str(&token);
            }
        }
    }
}

/// Whether a value with this base could not be the key's value after write `w`:
/// its base is the empty value or a write acknowledged before `w` was called.
fn base_precedes(ops: &[SimOp], base: Option<usize>, w: usize) -> bool {
    base.is_none_or(|b| ops[b].acknowledged() && ops[b].ret < ops[w].call)
}

/// An injected violation: the write `w` it concerns and the get `g` that shows it.
struct Fault {
    violation: Violation,
    w: usize,
    g: usize,
}

/// How many writes a lost write is tried on before giving up: each try runs the
/// store again, and a history with room for one has many places.
const LOST_WRITE_TRIES: usize = 200;

fn inject(
    violation: Violation,
    ops: &mut [SimOp],
    rng: &mut StdRng,
) -> Result<Fault, GenerateError> {
    let mut writes: Vec<usize> = (0..ops.len())
        .filter(|&w| ops[w].is_write() && ops[w].acknowledged())
        .collect();
    writes.shuffle(rng);
    if violation == Violation::LostWrite {
        writes.truncate(LOST_WRITE_TRIES);
    }
    let gets_of = |ops: &[SimOp], key: usize| -> Vec<usize> {
        (0..ops.len())
            .filter(|&g| ops[g].kind == Kind::Get && ops[g].acknowledged() && ops[g].key == key)
            .collect()
    };
    for w in writes {
        let gets = gets_of(ops, ops[w].key);
        let found = match violation {
            Violation::StaleRead => {
                if !base_precedes(ops, ops[w].seen_base, w) {
                    continue;
                }
                let after: Vec<usize> = gets
                    .into_iter()
                    .filter(|&g| ops[g].call > ops[w].ret)
                    .collect();
                let Some(&g) = after.choose(rng) else {
                    continue;
                };
                ops[g].seen = ops[w].seen.clone();
                Some(g)
            }
            Violation::LostWrite => {
                let effect = ops[w].effect.take();
                simulate(ops);
                let shown = gets
                    .into_iter()
                    .find(|&g| ops[g].call > ops[w].ret && base_precedes(ops, ops[g].seen_base, w));
                if shown.is_none() {
                    ops[w].effect = effect;
                    simulate(ops);
                }
                shown
            }
            Violation::ReadFromFuture => {
                let before: Vec<usize> = gets
                    .into_iter()
                    .filter(|&g| ops[g].ret < ops[w].call)
                    .collect();
                let Some(&g) = before.choose(rng) else {
                    continue;
                };
                let token = ops[w].token(w);
                if ops[w].kind == Kind::Put {
                    ops[g].seen = token;
                } else {
                    ops[g].seen.push_str(&token);
                }
                Some(g)
            }
        };
        if let Some(g) = found {
            return Ok(Fault { violation, w, g });
        }
    }
    Err(GenerateError::NoPlace(violation))
}

/// Writes the events in time order, one EDN map a line, and turns the injected
/// fault's operation indices into line numbers.
fn render(ops: &[SimOp], fault: Option<Fault>) -> Generated {
    // (time, completion before call at one instant, op): a return at the instant
    // of another's call is before it, which real time allows either way since
    // every effect is strictly inside its operation.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, true, i));
        events.push((op.ret, false, i));
    }
    events.sort_unstable();
    let mut lines = vec![(0, 0); ops.len()];
    let mut edn = String::new();
    for (line, &(_, is_call, i)) in events.iter().enumerate() {
        let op = &ops[i];
        let f = match op.kind {
            Kind::Get => "get",
            Kind::Put => "put",
            Kind::Append => "append",
        };
        let (kind, value) = if is_call {
            lines[i].0 = line as u64 + 1;
            let value = (op.kind != Kind::Get).then(|| op.token(i));
            ("invoke", value)
        } else {
            lines[i].1 = line as u64 + 1;
            match (op.outcome, op.kind) {
                (Outcome::Ok, Kind::Get) => ("ok", Some(op.seen.clone())),
                (Outcome::Ok, _) => ("ok", Some(op.token(i))),
                (Outcome::Info, Kind::Get) => ("info", None),
                (Outcome::Info, _) => ("info", Some(op.token(i))),
                (Outcome::Fail, _) => ("fail", Some(op.token(i))),
            }
        };
        let value = value.map_or_else(|| "nil".to_owned(), |v| format!("{v:?}"));
        let _ = writeln!(
            edn,
            "{{:process {}, :type :{kind}, :f :{f}, :key \"{}\", :value {value}}}",
            op.process, op.key
        );
    }
    let injected = fault.map(|Fault { violation, w, g }| Injected {
        violation,
        key: ops[w].key.to_string(),
        earliest_end: match violation {
            // Only the changed get breaks the history, so only a prefix that
            // includes its return can show it.
            Violation::StaleRead | Violation::ReadFromFuture => lines[g].1,
            // Any prefix that ends before the lost write returned holds it as
            // indeterminate, which it may have been.
            Violation::LostWrite => lines[w].1 + 1,
        },
        latest_end: lines[g].1,
    });
    Generated { edn, injected }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::models::KvModel;
    use crate::checker::parse::parse_kv_edn;
    use crate::checker::{explain, CheckOptions, CheckResult};
    use std::path::Path;

    fn spec(seed: u64, violation: Option<Violation>) -> Spec {
        Spec {
            clients: 8,
            ops: 300,
            keys: 2,
            seed,
            violation,
        }
    }

    fn check(generated: &Generated) -> crate::checker::Report {
        let history = parse_kv_edn(Path::new("generated"), &generated.edn).expect("it parses");
        explain(&KvModel, &history, &CheckOptions::default())
    }

    #[test]
    fn a_seed_gives_the_same_history() {
        let a = generate(&spec(3, Some(Violation::StaleRead))).expect("generated");
        let b = generate(&spec(3, Some(Violation::StaleRead))).expect("generated");
        assert_eq!(a.edn, b.edn);
        assert_eq!(a.injected, b.injected);
        let c = generate(&spec(4, Some(Violation::StaleRead))).expect("generated");
        assert_ne!(a.edn, c.edn);
    }

    #[test]
    fn histories_have_overlapping_timeouts_and_failures() {
        let generated = generate(&Spec {
            clients: 50,
            ops: 2000,
            keys: 10,
            seed: 1,
            violation: None,
        })
        .expect("generated");
        let lines: Vec<&str> = generated.edn.lines().collect();
        assert_eq!(lines.len(), 4000);
        for kind in [
            ":type :info",
            ":type :fail",
            ":f :get",
            ":f :put",
            ":f :append",
        ] {
            assert!(generated.edn.contains(kind), "no {kind}");
        }
        // Many calls open at once: the deepest run of invocations.
        let (mut open, mut most) = (0i64, 0);
        for line in &lines {
            open += if line.contains(":invoke") { 1 } else { -1 };
            most = most.max(open);
        }
        assert!(most >= 30, "at most {most} operations overlap");
    }

    #[test]
    fn good_histories_are_linearizable() {
        for seed in 0..20 {
            let generated = generate(&spec(seed, None)).expect("generated");
            assert_eq!(generated.injected, None);
            assert_eq!(check(&generated).result, CheckResult::Ok, "seed {seed}");
        }
    }

    #[test]
    fn each_injected_violation_is_caught_where_it_was_put() {
        for violation in Violation::ALL {
            for seed in 0..10 {
                let generated = generate(&spec(seed, Some(violation))).expect("generated");
                let fault = generated.injected.clone().expect("injected");
                let report = check(&generated);
                assert_eq!(
                    report.result,
                    CheckResult::Illegal,
                    "{violation:?} seed {seed}"
                );
                let history =
                    parse_kv_edn(Path::new("generated"), &generated.edn).expect("it parses");
                let failure = report.failure.expect("an illegal history has a failure");
                assert!(failure.shortest, "{violation:?} seed {seed}");
                assert_eq!(history[failure.culprit].input.key, fault.key);
                assert!(
                    (fault.earliest_end..=fault.latest_end).contains(&failure.end),
                    "{violation:?} seed {seed}: ends at line {}, expected {}..={}",
                    failure.end,
                    fault.earliest_end,
                    fault.latest_end
                );
            }
        }
    }

    #[test]
    fn bad_specs_are_errors() {
        let mut zero = spec(0, None);
        zero.keys = 0;
        assert!(matches!(generate(&zero), Err(GenerateError::Zero("keys"))));
        // One get, nothing written: nowhere to show a stale read.
        let tiny = Spec {
            clients: 1,
            ops: 1,
            keys: 1,
            seed: 0,
            violation: Some(Violation::StaleRead),
        };
        assert!(matches!(
            generate(&tiny),
            Err(GenerateError::NoPlace(Violation::StaleRead))
        ));
    }
}
