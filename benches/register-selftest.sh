#!/usr/bin/env bash
# Self-test of benches/register.sh without a real server: runs it with a stub `waymark`
# (a server that just blocks, a status that reports a leader from its second call on)
# and a stub `waymark-bench` (canned JSON for `register`, the real binary for `table`),
# then checks the results file, the id offsets, that the nodes were stopped, and that
# bad settings and a node that dies at startup fail cleanly.
#
# Usage: benches/register-selftest.sh   (builds the debug waymark-bench if needed)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=$ROOT/benches/register.sh

(cd "$ROOT" && cargo build -q -p waymark-benches)
TARGET_DIR=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
REAL_BENCH=$TARGET_DIR/debug/waymark-bench

T=$(mktemp -d "${TMPDIR:-/tmp}/register-selftest.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/state"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

cat >"$T/waymark" <<'EOF'
#!/usr/bin/env bash
# Stub waymark: `server` blocks until killed, `status` names a leader on its second call.
set -euo pipefail
cmd=$1
shift
case $cmd in
server)
    while (($#)); do
        case $1 in
        --node-id) id=$2 ;;
        --data-dir) dir=$2 ;;
        --api-addr) api=$2 ;;
        esac
        shift 2
    done
    echo $$ >>"$STUB_STATE/pids"
    echo $$ >"$STUB_STATE/pid-${api//[:.]/_}"
    [[ ${STUB_DIE:-} == "$id" ]] && { echo "node $id: simulated startup failure"; exit 3; }
    [[ -d $dir ]] || { echo "data dir $dir missing"; exit 4; }
    exec sleep infinity
    ;;
status)
    addr=${2:?}
    # A node that is not running does not answer.
    pid=$(cat "$STUB_STATE/pid-${addr//[:.]/_}" 2>/dev/null) || exit 1
    kill -0 "$pid" 2>/dev/null || exit 1
    f="$STUB_STATE/status-${addr//[:.]/_}"
    echo x >>"$f"
    if [[ $(wc -l <"$f") -ge 2 ]]; then
        echo '{"node_id": 1, "role": "follower", "leader_id": 2, "leader_api_addr": "x"}'
    else
        echo '{"node_id": 1, "role": "candidate", "leader_id": null}'
    fi
    ;;
*) exit 2 ;;
esac
EOF

cat >"$T/waymark-bench" <<'EOF'
#!/usr/bin/env bash
# Stub waymark-bench: canned JSON for `register`, the real binary for `table`.
set -euo pipefail
if [[ $1 == table ]]; then
    exec "$REAL_BENCH" "$@"
fi
echo "$*" >>"$STUB_STATE/bench-args"
while (($#)); do
    case $1 in
    --clients) clients=$2 ;;
    --conns) conns=$2 ;;
    --total) total=$2 ;;
    esac
    shift
done
printf '{"workload":"register","clients":%s,"conns":%s,"total":%s,"ok":%s,"errors":0,"errors_by_code":{},"elapsed_s":10.0,"ops_per_sec":%s.0,"latency_ms":{"p50":1.5,"p90":2.0,"p99":3.25,"max":9.0,"mean":1.6}}\n' \
    "$clients" "$conns" "$total" "$total" "$((total / 10))"
EOF
chmod +x "$T/waymark" "$T/waymark-bench"

export STUB_STATE=$T/state REAL_BENCH
run_script() {
    env SKIP_BUILD=1 WAYMARK_BIN="$T/waymark" BENCH_BIN="$T/waymark-bench" \
        API_PORT=28500 RAFT_PORT=28300 ADMIN_PORT=28510 OUT="$T/out.md" "$@" "$SCRIPT"
}

# 1. A good run.
run_script >"$T/stdout" 2>"$T/stderr" || {
    cat "$T/stderr" >&2
    fail "register.sh failed with stub binaries"
}
md=$T/out.md
[[ -f $md ]] || fail "no results file"
grep -q '^| register | 1 | 1 | 5000 | 10.00 | 500 | 1.500 | 3.250 | 0 |$' "$md" || fail "row for 1 client"
grep -q '^| register | 16 | 4 | 40000 | ' "$md" || fail "row for 16 clients"
grep -q '^| register | 256 | 16 | 60000 | ' "$md" || fail "row for 256 clients"
grep -q "^- Commit: " "$md" || fail "commit line"
grep -q "^- Machine: $(nproc) CPUs" "$md" || fail "machine line"
grep -q "^- Date: " "$md" || fail "date line"
grep -q "^.*SKIP_BUILD=1 .*WAYMARK_BIN=$T/waymark .*benches/register.sh$" "$md" || fail "invocation line"
grep -q -- "--initial-cluster 1=127.0.0.1:28300/127.0.0.1:28500,2=127.0.0.1:28301/127.0.0.1:28501,3=127.0.0.1:28302/127.0.0.1:28502$" "$md" ||
    fail "server command line"
[[ $(grep -c 'waymark-bench register --endpoints 127.0.0.1:28500,127.0.0.1:28501,127.0.0.1:28502 ' "$md") -eq 3 ]] ||
    fail "three bench command lines"
# Runs use disjoint id ranges.
mapfile -t offsets < <(grep -o -- '--id-offset [0-9]*' "$STUB_STATE/bench-args" | cut -d' ' -f2)
[[ ${offsets[*]} == "0 5000 45000" ]] || fail "id offsets: ${offsets[*]}"
# Every node saw at least two status calls (the first says no leader).
[[ $(find "$STUB_STATE" -name 'status-*' | wc -l) -eq 3 ]] || fail "status asked of each node"
# All nodes were stopped.
while read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then fail "node pid $pid still running"; fi
done <"$STUB_STATE/pids"
# The temp dir was removed.
tmpdir=$(grep -o -- '--data-dir [^ ]*/node-1' "$md" | head -1 | cut -d' ' -f2)
[[ -n $tmpdir && ! -e ${tmpdir%/node-1} ]] || fail "temp dir left behind: $tmpdir"
echo "ok: good run"

# 2. Settings overridden by the environment.
rm -f "$STUB_STATE"/* "$md"
run_script RUNS="2:1:10 3:3:7" VAL_SIZE=64 BENCH_ARGS="--target-leader" >/dev/null 2>"$T/stderr" ||
    fail "custom RUNS"
[[ $(grep -c '^| register |' "$md") -eq 2 ]] || fail "two rows for two runs"
grep -q -- "--val-size 64 --id-offset 10 --target-leader --json" "$STUB_STATE/bench-args" || fail "VAL_SIZE/BENCH_ARGS/offset"
echo "ok: overrides"

# 3. Bad settings fail before anything starts.
rm -f "$STUB_STATE"/* "$md"
if run_script RUNS="16:4" >/dev/null 2>"$T/stderr"; then fail "bad RUNS accepted"; fi
grep -q "RUNS entry '16:4'" "$T/stderr" || fail "bad RUNS message"
if run_script ADMIN_PORT=28500 >/dev/null 2>"$T/stderr"; then fail "overlapping ports accepted"; fi
grep -q "overlap" "$T/stderr" || fail "overlap message"
[[ ! -e $STUB_STATE/pids ]] || fail "nodes started despite bad settings"
echo "ok: bad settings"

# 4. A node that dies at startup: the script fails, stops the others, shows the log.
rm -f "$STUB_STATE"/* "$md"
if run_script STUB_DIE=2 >/dev/null 2>"$T/stderr"; then fail "dead node not noticed"; fi
grep -q "node 2 exited during startup" "$T/stderr" || fail "dead node message"
grep -q "simulated startup failure" "$T/stderr" || fail "node log not shown"
[[ ! -e $md ]] || fail "results written after a failure"
while read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then fail "node pid $pid still running"; fi
done <"$STUB_STATE/pids"
kept=$(grep -o 'kept [^ ]*' "$T/stderr" | cut -d' ' -f2)
[[ -d $kept ]] || fail "failed run's temp dir not kept"
rm -rf "$kept"
echo "ok: dead node"

echo "register.sh self-test passed"
