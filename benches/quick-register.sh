#!/usr/bin/env bash
# A quick group-commit check: starts a fresh three-node Waymark cluster from release
# binaries on 127.0.0.1 (API 19600-19602, Raft 19400-19402, admin 19610-19612), runs
# one `waymark-bench register` against all three nodes, prints its rate, errors and
# p99, then each node's writes-per-entry (`waymark_proposal_batch_size`) and fsync
# count (`waymark_log_syncs_total`), and stops the cluster.
#
# Usage: benches/quick-register.sh CLIENTS CONNS TOTAL
#   (build first: cargo build --release -p waymark-registry -p waymark-benches;
#    TARGET_DIR overrides where the binaries are, default ./target or $CARGO_TARGET_DIR)
set -euo pipefail
[[ $# -eq 3 ]] || { echo "usage: $0 CLIENTS CONNS TOTAL" >&2; exit 1; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}
W=$TARGET_DIR/release/waymark
BENCH=$TARGET_DIR/release/waymark-bench
WORK=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
IC=1=127.0.0.1:19400/127.0.0.1:19600,2=127.0.0.1:19401/127.0.0.1:19601,3=127.0.0.1:19402/127.0.0.1:19602
for i in 1 2 3; do
    RUST_LOG=warn "$W" server --node-id "$i" --data-dir "$WORK/n$i" \
        --api-addr "127.0.0.1:1960$((i - 1))" --raft-addr "127.0.0.1:1940$((i - 1))" \
        --admin-addr "127.0.0.1:1961$((i - 1))" --dns-addr "127.0.0.1:1980$((i - 1))" \
        --initial-cluster "$IC" >"$WORK/n$i.log" 2>&1 &
    pids+=($!)
done
# Every node must know the leader before the load starts: a node that has not heard
# from it yet refuses its first writes UNAVAILABLE (counted as errors of the run).
for i in 0 1 2; do
    for _ in $(seq 100); do
        "$W" status --addr "127.0.0.1:1960$i" 2>/dev/null | grep -Eq '^leader +[0-9]' && break
        sleep 0.1
    done
done
"$BENCH" --backend waymark --endpoints 127.0.0.1:19600,127.0.0.1:19601,127.0.0.1:19602 \
    register --clients "$1" --conns "$2" --total "$3" --val-size 256 --json |
    grep -o '"errors":[0-9]*\|"ops_per_sec":[0-9.]*\|"p99":[0-9.]*'
for i in 0 1 2; do
    echo "node $((i + 1)): $(curl -s "127.0.0.1:1961$i/metrics" |
        grep -E '^waymark_proposal_batch_size_(count|sum)|^waymark_log_syncs_total' | tr '\n' ' ')"
done
