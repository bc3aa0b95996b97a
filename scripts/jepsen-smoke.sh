#!/usr/bin/env bash
# The Jepsen smoke that CI runs: short runs of the real server under kill, pause and
# partition faults, which must find no anomaly (plaintext, and once with ACLs and TLS on),
# then three runs of each positive control (a deliberately unsafe server), each of which
# must be caught by the checker built for it. Needs root (network
# namespaces, nftables). Results go to $JEPSEN_RESULTS (default jepsen-results/smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
if [ "$(id -u)" -ne 0 ]; then
  echo "error: the Jepsen smoke needs root (network namespaces and nftables); run it as root" >&2
  exit 1
fi
# The binaries exactly as `cargo test --workspace` builds them (with dev-dependency
# features unified): a plain `cargo build` resolves features differently and would
# compile RocksDB a second time (7 minutes on 2 cores).
cargo test -q --workspace --no-run
jepsen="${CARGO_TARGET_DIR:-target}/debug/waymark-jepsen"
results="${JEPSEN_RESULTS:-jepsen-results/smoke}"
time_limit="${JEPSEN_TIME_LIMIT:-30}"

echo "== jepsen smoke: the real server under kill, pause and partition (must pass)"
"$jepsen" test --workload register,set,watch,stale --nemesis kill,pause,partition \
  --time-limit "$time_limit" --interval 3 --seed 20261125 --runs 3 --results "$results"

echo "== jepsen smoke: the same, secured: ACLs (default deny) and TLS on both ports (must pass)"
"$jepsen" test --secure --workload register,set,watch,stale --nemesis kill,pause,partition \
  --time-limit "$time_limit" --interval 3 --seed 20261206 --runs 1 --results "$results"

# The same commands as the catch-rate table in jepsen/README.md, on the first three of
# its seeds. A run counts only if the checker built for the control reports the kind
# of anomaly the control causes and the harness found nothing wrong with itself.
echo "== jepsen smoke: positive controls (each must be caught, on every seed)"
"$jepsen" test --control stale-reads --workload register --nemesis partition \
  --time-limit 30 --interval 2 --seed 100 --runs 3 \
  --expect-anomaly register:not-linearizable --results "$results"
"$jepsen" test --control early-ack --workload set --nemesis partition \
  --time-limit 30 --interval 2 --seed 100 --runs 3 \
  --expect-anomaly set:lost-write --results "$results"
"$jepsen" test --control watch-skip --workload watch --nemesis none \
  --time-limit 20 --seed 100 --runs 3 --expect-anomaly watch:gap --results "$results"
"$jepsen" test --control stale-bound --workload stale --nemesis partition \
  --time-limit 30 --interval 5 --seed 100 --runs 3 \
  --expect-anomaly stale:staleness-bound --results "$results"
"$jepsen" test --control dns-guard-off --workload stale --nemesis partition \
  --time-limit 30 --interval 5 --seed 100 --runs 3 \
  --expect-anomaly dns:dns-guard --results "$results"
