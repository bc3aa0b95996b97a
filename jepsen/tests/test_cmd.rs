//! `waymark-jepsen test` refusing bad set-ups with errors that say what is wrong,
//! before it creates anything. (Real runs need root and minutes; CI runs them in
//! `scripts/jepsen-smoke.sh`.)

use std::process::{Command, Output};

fn jepsen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_waymark-jepsen"))
        .arg("test")
        .args(args)
        .output()
        .expect("running waymark-jepsen")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn unknown_workloads_and_nemeses_are_named() {
    let out = jepsen(&["--workload", "register,bank"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("unknown workload \"bank\""),
        "{}",
        stderr(&out)
    );

    let out = jepsen(&["--nemesis", "kill,meteor"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("unknown nemesis \"meteor\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_server_binary_is_named_and_nothing_is_created() {
    let results = tempfile::tempdir().expect("temp dir");
    let dir = results.path().join("runs");
    let out = jepsen(&[
        "--waymark-bin",
        "/nonexistent/waymark",
        "--time-limit",
        "1",
        "--results",
        dir.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        !dir.exists(),
        "a run that cannot start made {}",
        dir.display()
    );
    let err = stderr(&out);
    assert!(
        err.contains("waymark binary not found at /nonexistent/waymark"),
        "{err}"
    );
}

#[test]
fn without_root_it_says_so_and_creates_nothing() {
    // Drop to `nobody` when we are root (as in CI); otherwise we are already not root.
    let bin = env!("CARGO_BIN_EXE_waymark-jepsen");
    let results = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(
        results.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let results = results.path().to_str().expect("utf-8 path");
    let args = ["test", "--time-limit", "1", "--results", results];
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let out = if is_root {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin])
            .args(args)
            .output()
            .expect("running setpriv (util-linux)")
    } else {
        Command::new(bin).args(args).output().expect("running")
    };
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("needs root"), "{}", stderr(&out));
}
