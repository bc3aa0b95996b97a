//! The checker against the shared linearizability fixtures: real Jepsen histories
//! whose verdicts are known, every one of which it must reproduce.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use common::fixtures;

use waymark_jepsen::checker::models::{KvModel, RegisterModel};
use waymark_jepsen::checker::parse::{read_jepsen_log, read_kv_edn};
use waymark_jepsen::checker::{check, CheckOptions, CheckResult};

/// A limit only so that a regression shows up as a failed test instead of a hung
/// one; every fixture is decided far within it.
fn options(split: bool) -> CheckOptions {
    CheckOptions {
        split,
        time_limit: Some(Duration::from_secs(600)),
    }
}

fn expected(linearizable: bool) -> CheckResult {
    if linearizable {
        CheckResult::Ok
    } else {
        CheckResult::Illegal
    }
}

#[test]
fn etcd_register_histories_reproduce_every_verdict() {
    let Some(root) = fixtures("etcd_register_histories_reproduce_every_verdict") else {
        return;
    };
    let dir = root.join("etcd-register");
    let verdicts = fs::read_to_string(dir.join("VERDICTS.tsv")).expect("reading VERDICTS.tsv");
    let mut listed = BTreeSet::new();
    let mut wrong = Vec::new();
    for line in verdicts.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (file, linearizable) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("malformed VERDICTS.tsv line {line:?}"));
        let linearizable: bool = linearizable
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("malformed VERDICTS.tsv line {line:?}"));
        listed.insert(file.to_owned());
        let history = read_jepsen_log(&dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
        let verdict = check(&RegisterModel, &history, &options(true));
        if verdict != expected(linearizable) {
            wrong.push(format!(
                "{file}: {verdict}, expected linearizable={linearizable}"
            ));
        }
    }

    // "Every verdict": the table and the directory must agree, so that a history
    // cannot drop out of the test unnoticed.
    let logs: BTreeSet<String> = fs::read_dir(&dir)
        .expect("listing etcd-register")
        .map(|entry| entry.expect("listing etcd-register").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".log"))
        .collect();
    assert_eq!(logs, listed, "VERDICTS.tsv and the .log files disagree");
    assert!(!listed.is_empty());
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}

#[test]
fn kv_histories_reproduce_every_verdict_with_and_without_the_split() {
    let Some(root) = fixtures("kv_histories_reproduce_every_verdict_with_and_without_the_split")
    else {
        return;
    };
    let dir = root.join("kv");
    let mut checked = 0;
    for clients in ["c01", "c10"] {
        for (suffix, linearizable) in [("ok", true), ("bad", false)] {
            let file = format!("{clients}-{suffix}.txt");
            let history = read_kv_edn(&dir.join(&file)).unwrap_or_else(|e| panic!("{e}"));
            for split in [true, false] {
                let verdict = check(&KvModel, &history, &options(split));
                assert_eq!(verdict, expected(linearizable), "{file} with split={split}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 8);
}
