#!/usr/bin/env bash
# The Jepsen smoke that CI runs: short runs of the real server under kill, pause and
# partition faults, which must find no anomaly (plaintext, and once with ACLs and TLS on),
# then three runs of each positive control (a deliberately unsafe server), at least two
# of which must be caught by the checker built for it. Needs root (network
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
"$jepsen" test --workload register,set,watch,stale,lease --nemesis kill,pause,partition \
  --time-limit "$time_limit" --interval 3 --seed 20261125 --runs 3 --results "$results"

echo "== jepsen smoke: the same, secured: ACLs (default deny) and TLS on both ports (must pass)"
# --interval 4 here (4 s quiet, then 4 s of fault): a new leader extends every lease
# by its TTL (5 s), and with --interval 3 the 6 s fault cycle can line up so that each
# leader's first expiries come due just as the next fault takes that leader down; then
# no abandoned lease ever expires and the lease checker, seeing no expiry, cannot vouch
# for the run (seen once in CI with this seed: 0 expiries, against 17-20 in the
# plaintext runs). An 8 s cycle gives each new leader its whole TTL.
"$jepsen" test --secure --workload register,set,watch,stale,lease --nemesis kill,pause,partition \
  --time-limit "$time_limit" --interval 4 --seed 20261206 --runs 1 --results "$results"

echo "== jepsen smoke: planned restarts (SIGTERM; a stopping leader hands over) among the other faults (must pass)"
# Seed 20261207 stops the leader twice (both handed over, in the nodes' logs) besides a
# pause and a kill; --interval 4 for the lease checker, as in the secured run above.
"$jepsen" test --workload register,set,watch,stale,lease --nemesis restart,kill,pause,partition \
  --time-limit "$time_limit" --interval 4 --seed 20261207 --runs 1 --results "$results"

# The same commands as the catch-rate table in jepsen/README.md, on the first three of
# its seeds. A run counts only if the checker built for the control reports the kind
# of anomaly the control causes and the harness found nothing wrong with itself. The
# partitions isolate the leader every time (`partition-leader`), the fault each of these
# controls shows under; still, a catch can depend on timing (a write in flight when the
# cut comes), so CI asks for at least 2 of the 3 runs; a checker that stopped catching
# a control misses all of them. The 10-run rates are in jepsen/README.md.
control() {
  local name=$1 log caught
  shift
  log=$(mktemp)
  # tee's copy goes to our stderr through its stdout: `tee /dev/stderr` would reopen a
  # log file that stderr points to, truncating it (CI's log kept only the last control).
  "$jepsen" test --control "$name" --seed 100 --runs 3 --results "$results" "$@" 2>&1 \
    | tee "$log" >&2 || true
  caught=$(grep -oE 'caught in [0-9]+ of' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  rm -f "$log"
  if [ "${caught:-0}" -lt 2 ]; then
    echo "error: control $name caught in ${caught:-0} of 3 runs (at least 2 needed)" >&2
    exit 1
  fi
}
echo "== jepsen smoke: positive controls (each must be caught on at least 2 of 3 seeds)"
control stale-reads --workload register --nemesis partition-leader --time-limit 30 --interval 5 \
  --op-timeout-ms 500 --clients 6 --expect-anomaly register:not-linearizable
control early-ack --workload set --nemesis partition-leader --time-limit 30 --interval 2 \
  --expect-anomaly set:lost-write
control watch-skip --workload watch --nemesis none --time-limit 20 \
  --expect-anomaly watch:gap
control stale-bound --workload stale --nemesis partition-leader --time-limit 30 --interval 5 \
  --expect-anomaly stale:staleness-bound
control dns-guard-off --workload stale --nemesis partition-leader --time-limit 30 --interval 5 \
  --expect-anomaly dns:dns-guard
control lease-early --workload lease --nemesis partition-leader --time-limit 30 --interval 3 \
  --expect-anomaly lease:early-expiry
control replica-diverge --workload set --nemesis none --time-limit 20 \
  --expect-anomaly cluster:replicas-diverged
