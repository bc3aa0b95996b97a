//! The checker on generated histories (`checker::generate`): large ones decided
//! within the default time limit, a bad part found behind hard ones, and a time
//! limit that ends the whole check.

use std::path::Path;
use std::time::{Duration, Instant};

use waymark_jepsen::checker::generate::{generate, Spec, Violation};
use waymark_jepsen::checker::models::{KvInput, KvModel, KvOutput};
use waymark_jepsen::checker::parse::parse_kv_edn;
use waymark_jepsen::checker::{
    check, explain, CheckOptions, CheckResult, Operation, DEFAULT_TIME_LIMIT,
};

fn history(spec: &Spec) -> Vec<Operation<KvInput, KvOutput>> {
    let generated = generate(spec).unwrap_or_else(|e| panic!("{e}"));
    parse_kv_edn(Path::new("generated"), &generated.edn).unwrap_or_else(|e| panic!("{e}"))
}

fn spec(clients: usize, keys: usize, seed: u64, violation: Option<Violation>) -> Spec {
    Spec {
        clients,
        ops: 40 * clients,
        keys,
        seed,
        violation,
    }
}

fn limited(time_limit: Duration) -> CheckOptions {
    CheckOptions {
        time_limit: Some(time_limit),
        ..CheckOptions::default()
    }
}

#[test]
fn fifty_client_histories_good_and_bad_are_decided_within_the_default_limit() {
    let options = limited(DEFAULT_TIME_LIMIT);
    let good = history(&spec(50, 10, 1, None));
    assert_eq!(check(&KvModel, &good, &options), CheckResult::Ok);
    for violation in Violation::ALL {
        let bad = history(&spec(50, 10, 1, Some(violation)));
        let report = explain(&KvModel, &bad, &options);
        assert_eq!(report.result, CheckResult::Illegal, "{violation:?}");
        assert!(report.failure.is_some_and(|f| f.shortest), "{violation:?}");
    }
}

/// A history that the search cannot decide in any reasonable time: 200 clients on
/// ten keys, so twenty at a time on each key, with open timed-out writes.
fn pathological() -> Vec<Operation<KvInput, KvOutput>> {
    history(&spec(200, 10, 1, None))
}

#[test]
fn an_illegal_part_is_found_behind_parts_too_hard_to_decide() {
    // The bad key comes last, after ten keys that would each use up the whole
    // limit: searched one after another, they left it undecided.
    let mut ops = pathological();
    let end = ops.iter().map(|op| op.call_time).max().unwrap_or(0);
    let late =
        generate(&spec(10, 10, 2, Some(Violation::StaleRead))).unwrap_or_else(|e| panic!("{e}"));
    let bad_key = late.injected.expect("injected").key;
    for mut op in parse_kv_edn(Path::new("late"), &late.edn).unwrap_or_else(|e| panic!("{e}")) {
        op.input.key = format!("late-{}", op.input.key);
        op.client_id += 1_000_000;
        op.call_time += end;
        op.return_time = op.return_time.saturating_add(end);
        ops.push(op);
    }
    let report = explain(&KvModel, &ops, &limited(DEFAULT_TIME_LIMIT));
    assert_eq!(report.result, CheckResult::Illegal);
    let failure = report.failure.expect("an illegal history has a failure");
    assert_eq!(ops[failure.culprit].input.key, format!("late-{bad_key}"));
}

#[test]
fn the_time_limit_ends_the_whole_check() {
    let ops = pathological();
    let limit = Duration::from_millis(300);
    let started = Instant::now();
    let verdict = check(&KvModel, &ops, &limited(limit));
    let elapsed = started.elapsed();
    assert_eq!(verdict, CheckResult::Unknown);
    // Generous, so that a loaded machine cannot fail it: without a clock read
    // between parts, or with seconds spent freeing the search's memory, a check
    // of ten such keys ran for many times its limit.
    assert!(
        elapsed < 20 * limit,
        "took {elapsed:?} with a limit of {limit:?}"
    );
}
