#!/usr/bin/env bash
# The write path's scale row (issue 11): on a fresh three-node release cluster on
# 127.0.0.1 (ports 19400-19402 Raft, 19600-19602 API, 19610-19612 admin), register
# throughput at 256 clients on an empty catalog and again with 100,000 instances in
# it, each node's RSS at 100k and 140k instances, then how long an empty fourth node
# takes to catch up through InstallSnapshot (snapshot_threshold 1,000 entries and
# logs_to_keep 500 by default here, THRESH / KEEP override them: with the defaults
# and group commit, 140k writes make too few entries for a snapshot to exist).
#
# Usage: benches/scale-row.sh   (build first: cargo build --release -p waymark-registry
#        -p waymark-benches; TARGET_DIR overrides where the binaries are)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}/release
W=$B/waymark
WORK=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
IC=1=127.0.0.1:19400/127.0.0.1:19600,2=127.0.0.1:19401/127.0.0.1:19601,3=127.0.0.1:19402/127.0.0.1:19602
SNAP="--snapshot-threshold ${THRESH:-1000} --logs-to-keep ${KEEP:-500}"
for i in 1 2 3; do
    RUST_LOG=warn "$W" server --node-id "$i" --data-dir "$WORK/n$i" $SNAP \
        --api-addr "127.0.0.1:1960$((i - 1))" --raft-addr "127.0.0.1:1940$((i - 1))" \
        --admin-addr "127.0.0.1:1961$((i - 1))" --dns-addr "127.0.0.1:1980$((i - 1))" \
        --initial-cluster "$IC" >"$WORK/n$i.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 100); do "$W" status --addr 127.0.0.1:19600 2>/dev/null | grep -Eq '^leader +[0-9]' && break; sleep 0.1; done
sleep 1
EP=127.0.0.1:19600,127.0.0.1:19601,127.0.0.1:19602
reg() { "$B/waymark-bench" --backend waymark --endpoints $EP register --clients 256 --conns 16 --val-size 256 --json "$@" | grep -o '"errors":[0-9]*\|"ops_per_sec":[0-9.]*\|"p99":[0-9.]*' | tr '\n' ' '; echo; }
rss() { for p in "${pids[@]}"; do echo -n "$(( $(awk '/VmRSS/{print $2}' /proc/$p/status) / 1024 )) MB  "; done; echo; }
echo "empty catalog, 40k registers in 4k services:"; reg --total 40000 --services 4000 --id-offset 0
echo "fill to 100k:"; reg --total 60000 --services 10000 --id-offset 40000
echo "RSS per node at 100k: $(rss)"
echo "100k catalog, 40k more registers in 4k services:"; reg --total 40000 --services 4000 --id-offset 100000
echo "RSS per node at 140k: $(rss)"
for i in 1 2 3; do echo "node $i: $(curl -s 127.0.0.1:1961$((i-1))/metrics | grep -E '^waymark_snapshots_built_total|^waymark_raft_snapshot_index|^waymark_raft_purged' | tr '\n' ' ')"; done
# A fourth node, empty: AddMember returns once it is within one AppendEntries of the
# leader; then wait until it has applied what the leader had committed.
RUST_LOG=warn "$W" server --node-id 4 --data-dir "$WORK/n4" $SNAP --api-addr 127.0.0.1:19603 --raft-addr 127.0.0.1:19403 \
    --admin-addr 127.0.0.1:19613 --dns-addr 127.0.0.1:19803 >"$WORK/n4.log" 2>&1 &
pids+=($!)
sleep 0.5
t0=$(date +%s.%N)
"$W" add-member --id 4 --api-addr 127.0.0.1:19603 --raft-addr 127.0.0.1:19403 --addr $EP --timeout 120s > /dev/null
t1=$(date +%s.%N)
echo "add-member returned after $(awk "BEGIN{print $t1 - $t0}") s"
target=$("$W" status --addr 127.0.0.1:19600 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["commit_index"])')
while true; do
  a=$("$W" status --addr 127.0.0.1:19603 --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("applied_index",0))' 2>/dev/null || echo 0)
  [[ $a -ge $target ]] && break
  (( $(date +%s) - ${t0%.*} < 120 )) || { echo "node 4 did not catch up within 120 s" >&2; exit 1; }
  sleep 0.05
done
t2=$(date +%s.%N)
echo "node 4 applied the leader's commit index $target after $(awk "BEGIN{print $t2 - $t0}") s"
echo "node 4: $(curl -s 127.0.0.1:19613/metrics | grep -E '^waymark_snapshots_installed_total|^waymark_snapshot_chunks_received_total' | tr '\n' ' ')"
echo "RSS per node after: $(rss)"
grep -h "installed snapshot\|built snapshot" $WORK/n4.log | tail -2 | cut -c1-300
