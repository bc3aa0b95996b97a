#!/usr/bin/env bash
# One command to run the whole test suite: installs what the tests need (libclang for
# RocksDB, promtool, dig), checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
