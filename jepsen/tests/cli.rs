//! The `waymark-jepsen check` command as a user runs it: report lines, counts and
//! exit status.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::fixtures;

fn run(args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_waymark-jepsen"))
        .arg("check")
        .args(args)
        .args(files)
        .output()
        .expect("running waymark-jepsen")
}

fn stdout(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn reports_each_file_then_the_counts_and_fails_on_a_violation() {
    let Some(root) = fixtures("reports_each_file_then_the_counts_and_fails_on_a_violation") else {
        return;
    };
    let dir = root.join("etcd-register");
    // Verdicts from VERDICTS.tsv: 000 is not linearizable, 002 is.
    let files = [dir.join("etcd_000.log"), dir.join("etcd_002.log")];
    let output = run(&["--model", "register", "--format", "jepsen-log"], &files);
    // The illegal one is followed by where it fails: its shortest failing prefix
    // ends at line 86, with a read of 2 (the line is in the fixture).
    assert_eq!(
        stdout(&output),
        [
            format!("{}: not linearizable", files[0].display()),
            "  the history (85 operations): the 44 called by line 86 already cannot be \
             linearized (the shortest such prefix); the operation that cannot be placed: \
             Read -> Read(Some(2)) by process 11, lines 85-86"
                .to_owned(),
            format!("{}: linearizable", files[1].display()),
            "1 linearizable, 1 not linearizable, 0 unknown".to_owned(),
        ]
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn succeeds_when_every_history_is_linearizable() {
    let Some(root) = fixtures("succeeds_when_every_history_is_linearizable") else {
        return;
    };
    let dir = root.join("kv");
    let ok = [dir.join("c01-ok.txt"), dir.join("c10-ok.txt")];
    // The format follows from the model when not given. Without the split only the
    // small history, to keep the debug-build test quick.
    for (args, files, counts) in [
        (
            &["--model", "kv"][..],
            &ok[..],
            "2 linearizable, 0 not linearizable, 0 unknown",
        ),
        (
            &["--model", "kv", "--no-split"][..],
            &ok[..1],
            "1 linearizable, 0 not linearizable, 0 unknown",
        ),
    ] {
        let output = run(args, files);
        let lines = stdout(&output);
        assert_eq!(
            lines.last().map(String::as_str),
            Some(counts),
            "{args:?}: {lines:?}"
        );
        assert_eq!(output.status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn bad_input_names_file_and_line_and_prints_no_verdicts() {
    let Some(root) = fixtures("bad_input_names_file_and_line_and_prints_no_verdicts") else {
        return;
    };
    let dir = root;
    let good = dir.join("etcd-register/etcd_002.log");
    // The README is no Jepsen log.
    let bad = dir.join("README.md");
    let output = run(&["--model", "register"], &[good, bad.clone()]);
    assert_eq!(output.status.code(), Some(4));
    assert!(stdout(&output).is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:1: expected a Jepsen event", bad.display())),
        "{stderr}"
    );
}

#[test]
fn model_and_format_must_agree() {
    let Some(root) = fixtures("model_and_format_must_agree") else {
        return;
    };
    let file = root.join("kv/c01-ok.txt");
    let output = run(&["--model", "kv", "--format", "jepsen-log"], &[file]);
    assert_eq!(output.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&output.stderr).contains("use --model register"));
}
