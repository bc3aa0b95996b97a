#!/usr/bin/env bash
# One command to try Waymark: installs what the build needs, builds, and runs a local
# three-node cluster (`waymark dev`). Extra arguments go to `waymark dev`, e.g.
#   scripts/dev.sh --data-dir /tmp/waymark-dev
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cargo build --release -p waymark-registry
exec "${CARGO_TARGET_DIR:-target}/release/waymark" dev "$@"
