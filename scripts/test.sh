#!/usr/bin/env bash
# One command to run the whole test suite: installs what the tests need (libclang for
# RocksDB, promtool, dig, nft), checks formatting and lints, runs every test, then the
# Jepsen smoke (short chaos runs that must pass, and positive controls that must fail).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
scripts/jepsen-smoke.sh
