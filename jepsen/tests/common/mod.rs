//! Shared by the integration tests: where the linearizability fixtures are.

use std::path::{Path, PathBuf};

/// `WAYMARK_FIXTURES` (the shared fixtures directory, or its `linearizability`
/// directory itself) if set, else `shared/` beside the repository, as in CI.
pub fn fixtures() -> PathBuf {
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
    assert!(
        dir.join("README.md").is_file(),
        "no linearizability fixtures at {} (set WAYMARK_FIXTURES)",
        dir.display()
    );
    dir
}
