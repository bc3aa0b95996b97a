#!/usr/bin/env bash
# One command to run the whole test suite: installs what the tests need (libclang for
# RocksDB, promtool, dig, nft), checks formatting and lints, runs every test, then the
# mesh demo's checks, then the Jepsen smoke (short chaos runs that must pass, and
# positive controls that must fail).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The mesh demo's steps, asserted, on the debug binaries the tests just built.
BIN_DIR="${CARGO_TARGET_DIR:-target}/debug" scripts/mesh-demo.sh --check
scripts/jepsen-smoke.sh
