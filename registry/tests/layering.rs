//! Keeps the registry's layering invariants (ARCHITECTURE.md): `model/` imports nothing
//! from the rest of the crate, and the catalog imports nothing from the Raft type
//! config, the store, the watch hub, the API or the network. Read from the sources, so
//! a violating `use` fails here even though it would compile.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}")) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Every `crate::<module>` path named in the code of `dir` (comments ignored), with
/// the file and line it is on.
fn crate_paths(dir: &Path) -> Vec<(String, PathBuf, usize)> {
    let mut found = Vec::new();
    for file in rust_files(dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                let after = &rest[at + "crate::".len()..];
                let module: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '{')
                    .collect();
                found.push((module, file.clone(), n + 1));
                rest = after;
            }
        }
    }
    found
}

fn src(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir)
}

#[test]
fn model_imports_nothing_from_the_crate() {
    let found = crate_paths(&src("model"));
    assert!(
        found.is_empty(),
        "model/ must be a leaf, but names {:?}",
        found
    );
}

#[test]
fn catalog_imports_only_the_model() {
    const FORBIDDEN: [&str; 8] = [
        "raft_types",
        "store",
        "watch",
        "api",
        "network",
        "node",
        "server",
        "leader_timers",
    ];
    let found: Vec<_> = crate_paths(&src("catalog"))
        .into_iter()
        .filter(|(m, _, _)| FORBIDDEN.iter().any(|f| m == f) || m.starts_with('{'))
        .collect();
    assert!(found.is_empty(), "the catalog must not import {found:?}");
    assert!(
        !crate_paths(&src("catalog")).is_empty(),
        "the scan found no crate paths at all in catalog/ (it imports model)"
    );
}

#[test]
fn the_scan_sees_a_forbidden_import() {
    // The check itself must be able to fail: a file naming crate::store is found.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.rs"),
        "//! x\nuse crate::store::LogStore; // crate::api in a comment\n",
    )
    .unwrap();
    let found = crate_paths(dir.path());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "store");
}
