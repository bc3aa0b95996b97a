//! Shared by the integration tests: where the linearizability fixtures are.
//!
//! They live outside the repository (`shared/fixtures/` beside the CI clone). On a
//! user's clone they are usually absent: then the tests that need them say plainly
//! that they were not run, and pass. CI sets `WAYMARK_FIXTURES_REQUIRED=1` (in
//! `.ci/run`), so there a missing fixtures folder fails instead of skipping silently.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// `WAYMARK_FIXTURES` (the shared fixtures directory, or its `linearizability`
/// directory itself) if set, else `shared/` beside the repository, as in CI.
/// `None` (after saying so on stderr) when the fixtures are not there.
pub fn fixtures(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("WAYMARK_FIXTURES") {
        Some(root) => {
            let root = PathBuf::from(root);
            let nested = root.join("linearizability");
            if nested.is_dir() {
                nested
            } else {
                root
            }
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/linearizability"),
    };
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    let required = std::env::var_os("WAYMARK_FIXTURES_REQUIRED").is_some_and(|v| v == "1");
    assert!(
        !required,
        "no linearizability fixtures at {} (set WAYMARK_FIXTURES); they are required here",
        dir.display()
    );
    // Written to stderr directly: libtest captures `eprintln!` of passing tests, and
    // this must be seen in a normal `cargo test` run.
    let _ = writeln!(
        std::io::stderr(),
        "NOT RUN: {test} needs the linearizability fixtures, which are not at {} \
         (set WAYMARK_FIXTURES to run it)",
        dir.display()
    );
    None
}
