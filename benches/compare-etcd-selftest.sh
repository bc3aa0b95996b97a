#!/usr/bin/env bash
# Self-test of benches/compare-etcd.sh without real servers: runs it with stub `waymark`,
# `etcd`, `etcdctl` (servers that block, a status/health that is ready from the second
# call on) and a stub `waymark-bench` (canned JSON per workload and backend, the real
# binary for `compare`), then checks the results file, the run commands, that the
# servers were stopped, a failed run, BACKENDS=etcd alone, and bad settings.
#
# Usage: benches/compare-etcd-selftest.sh   (builds the debug waymark-bench if needed)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=$ROOT/benches/compare-etcd.sh

(cd "$ROOT" && cargo build -q -p waymark-benches)
TARGET_DIR=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
REAL_BENCH=$TARGET_DIR/debug/waymark-bench

T=$(mktemp -d "${TMPDIR:-/tmp}/compare-etcd-selftest.XXXXXX")
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
case $1 in
server)
    echo "waymark $$" >>"$STUB_STATE/pids"
    exec sleep infinity
    ;;
status)
    f="$STUB_STATE/status-${3//[:.]/_}"
    echo x >>"$f"
    if [[ $(wc -l <"$f") -ge 2 ]]; then
        echo '{"node_id": 1, "leader_id": 2}'
    else
        echo '{"node_id": 1, "leader_id": null}'
    fi
    ;;
*) exit 2 ;;
esac
EOF

cat >"$T/etcd" <<'EOF'
#!/usr/bin/env bash
# Stub etcd: prints a version, or blocks until killed.
if [[ ${1:-} == --version ]]; then
    printf 'etcd Version: 3.4.23\nGit SHA: stub\n'
    exit 0
fi
# The Waymark cluster must be gone by now.
if [[ -f $STUB_STATE/pids ]]; then
    while read -r kind pid; do
        if [[ $kind == waymark ]] && kill -0 "$pid" 2>/dev/null; then
            echo "waymark $pid" >>"$STUB_STATE/overlap"
        fi
    done <"$STUB_STATE/pids"
fi
echo "etcd $$" >>"$STUB_STATE/pids"
[[ ${STUB_ETCD_DIE:-0} == 1 ]] && { echo "etcd: simulated startup failure"; exit 3; }
exec sleep infinity
EOF

cat >"$T/etcdctl" <<'EOF'
#!/usr/bin/env bash
# Stub etcdctl: `endpoint health` succeeds from the second call on.
echo "$*" >>"$STUB_STATE/etcdctl-args"
[[ $(wc -l <"$STUB_STATE/etcdctl-args") -ge 2 ]]
EOF

cat >"$T/waymark-bench" <<'EOF'
#!/usr/bin/env bash
# Stub waymark-bench: canned JSON per workload (Waymark twice etcd's throughput), the
# real binary for `compare`. STUB_FAIL=BACKEND:WORKLOAD makes that run fail.
set -euo pipefail
if [[ $1 == compare ]]; then
    exec "$REAL_BENCH" "$@"
fi
echo "$*" >>"$STUB_STATE/bench-args"
backend=waymark workload="" clients=1 watchers="" consistency=""
while (($#)); do
    case $1 in
    --backend) backend=$2 ;;
    --clients) clients=$2 ;;
    --watchers) watchers=$2 ;;
    --consistency) consistency=$2 ;;
    register | list | watch-latency) workload=${workload:-$1} ;;
    esac
    shift
done
if [[ ${STUB_FAIL:-} == "$backend:$workload" ]]; then
    echo "waymark-bench: simulated failure of $workload" >&2
    exit 1
fi
ops=1000
[[ $backend == waymark ]] && ops=2000
extra=""
[[ -n $watchers ]] && extra+=",\"watchers\":$watchers,\"missed\":0,\"duplicates\":0"
[[ -n $consistency ]] && extra+=",\"consistency\":\"$consistency\",\"items_max\":100"
printf '{"backend":"%s","workload":"%s","clients":%s,"ok":1,"errors":0,"errors_by_code":{},"ops_per_sec":%s,"latency_ms":{"p50":1.0,"p99":4.5}%s}\n' \
    "$backend" "$workload" "$clients" "$ops" "$extra"
EOF
chmod +x "$T/waymark" "$T/etcd" "$T/etcdctl" "$T/waymark-bench"

export STUB_STATE=$T/state REAL_BENCH
run_script() {
    rm -f "$STUB_STATE"/* "$T/out.md"
    env SKIP_BUILD=1 WAYMARK_BIN="$T/waymark" BENCH_BIN="$T/waymark-bench" ETCD_BIN="$T/etcd" \
        ETCDCTL_BIN="$T/etcdctl" API_PORT=28600 RAFT_PORT=28400 ADMIN_PORT=28610 \
        ETCD_CLIENT_PORT=28790 ETCD_PEER_PORT=28800 OUT="$T/out.md" "$@" "$SCRIPT"
}

all_stopped() {
    local kind pid
    while read -r kind pid; do
        if kill -0 "$pid" 2>/dev/null; then fail "$kind pid $pid still running"; fi
    done <"$STUB_STATE/pids"
}

# 1. A good run of both backends.
run_script >"$T/stdout" 2>"$T/stderr" || {
    cat "$T/stderr" >&2
    fail "compare-etcd.sh failed with stub binaries"
}
md=$T/out.md
[[ -f $md ]] || fail "no results file"
grep -q '^| register | 1 | 2000 | 1000 | 2.00× | 4.50 | 4.50 |  |$' "$md" || fail "row for register at 1 client"
grep -q '^| register | 256 | 2000 | 1000 | 2.00× | ' "$md" || fail "row for register at 256 clients"
grep -q '^| list (consistent) | 16 | 2000 | 1000 | ' "$md" || fail "row for consistent list"
grep -q '^| list (stale) | 16 | ' "$md" || fail "row for stale list"
grep -q '^| watch-latency | 1000 watchers | 2000 | 1000 | 2.00× | .* missed 0, dup 0 |$' "$md" || fail "row for 1k watchers"
grep -q '^| watch-latency | 10000 watchers | ' "$md" || fail "row for 10k watchers"
[[ $(grep -c '^|' "$md") -eq 9 ]] || fail "header, separator and seven rows"
grep -q '^- Registration throughput at 256 clients .* \*\*met\*\*$' "$md" || fail "throughput goal"
grep -q '^- Watch put→event p99 at 10000 watchers ≤ 50 ms: waymark 4.50 ms .* \*\*met\*\*$' "$md" || fail "watch goal"
grep -q '^- etcd: 3.4.23$' "$md" || fail "etcd version"
grep -q "^- Machine: $(nproc) CPUs" "$md" || fail "machine line"
grep -q '^- Commit: ' "$md" || fail "commit line"
grep -q "^.*SKIP_BUILD=1 .*benches/compare-etcd.sh$" "$md" || fail "invocation line"
grep -q -- "--initial-cluster e1=http://127.0.0.1:28800,e2=http://127.0.0.1:28801,e3=http://127.0.0.1:28802 .*--quota-backend-bytes 8589934592" "$md" ||
    fail "etcd command line"
grep -q -- "--initial-cluster 1=127.0.0.1:28400/127.0.0.1:28600,2=127.0.0.1:28401/127.0.0.1:28601,3=127.0.0.1:28402/127.0.0.1:28602$" "$md" ||
    fail "waymark command line"
args=$STUB_STATE/bench-args
# Seven measured runs and one fill per backend, all of one backend before the other.
[[ $(grep -c -- '--backend waymark' "$args") -eq 8 && $(grep -c -- '--backend etcd' "$args") -eq 8 ]] ||
    fail "runs per backend"
[[ $(grep -o -- '--backend [a-z]*' "$args" | uniq | tr '\n' ' ') == "--backend waymark --backend etcd " ]] ||
    fail "backends one after the other"
grep -q -- '--backend etcd --endpoints 127.0.0.1:28790,127.0.0.1:28791,127.0.0.1:28792 register --clients 256 --conns 16 --total 120000 --val-size 256 --id-offset 45000 --json' "$args" ||
    fail "etcd register command"
grep -q -- '--backend waymark --endpoints 127.0.0.1:28600,127.0.0.1:28601,127.0.0.1:28602 register --service list --total 100 ' "$args" ||
    fail "list fill"
grep -q -- 'watch-latency --service watch-10000 --watchers 10000 --conns 16 --rate 5 --total 100 --val-size 256 --settle 30s --json' "$args" ||
    fail "10k watch command"
all_stopped
[[ $(grep -c . "$STUB_STATE/pids") -eq 6 ]] || fail "six servers started"
[[ ! -e $STUB_STATE/overlap ]] || fail "waymark still running when etcd started: $(cat "$STUB_STATE/overlap")"
tmpdir=$(grep -o -- '--data-dir [^ ]*/etcd-1' "$md" | head -1 | cut -d' ' -f2)
[[ -n $tmpdir && ! -e ${tmpdir%/etcd-1} ]] || fail "temp dir left behind: $tmpdir"
echo "ok: good run"

# 2. One failed run: shown as failed, the others still run, exit 2, temp dir kept.
rc=0
run_script STUB_FAIL=waymark:watch-latency >/dev/null 2>"$T/stderr" || rc=$?
[[ $rc -eq 2 ]] || fail "failed runs: exit $rc, expected 2"
grep -q '^| watch-latency | 1000 watchers | failed | 1000 | – | failed | 4.50 | waymark: failed: exit 1: waymark-bench: simulated failure of watch-latency; etcd: missed 0, dup 0 |$' "$md" ||
    fail "failed row"
grep -q '^- Watch put→event p99 at 10000 watchers ≤ 50 ms: waymark failed (etcd 4.50 ms) — \*\*not met\*\*$' "$md" || fail "goal with a failed run"
grep -q '^| register | 256 | 2000 | 1000 | ' "$md" || fail "other rows after a failure"
all_stopped
kept=$(grep -o 'kept [^ ]*' "$T/stderr" | cut -d' ' -f2)
[[ -d $kept ]] || fail "temp dir of a run with failures not kept"
rm -rf "$kept"
echo "ok: failed run"

# 3. etcd alone: no Waymark server, only etcd columns.
run_script BACKENDS=etcd REGISTER_RUNS="4:2:10" LIST_RUNS="" WATCH_RUNS="" >/dev/null 2>"$T/stderr" ||
    fail "BACKENDS=etcd"
[[ $(grep -c '^waymark ' "$STUB_STATE/pids") -eq 0 ]] || fail "waymark started for BACKENDS=etcd"
grep -q '^| register | 4 | – | 1000 | – | – | 4.50 |  |$' "$md" || fail "etcd-only row"
[[ $(grep -c '^|' "$md") -eq 3 ]] || fail "one row for one run"
all_stopped
echo "ok: etcd alone"

# 4. Bad settings fail before anything starts; so does a server that dies at startup.
if run_script BACKENDS="etcd zk" >/dev/null 2>"$T/stderr"; then fail "bad BACKENDS accepted"; fi
grep -q "BACKENDS entry 'zk'" "$T/stderr" || fail "bad BACKENDS message"
if run_script WATCH_RUNS="1000:4" >/dev/null 2>"$T/stderr"; then fail "bad WATCH_RUNS accepted"; fi
grep -q "WATCH_RUNS entry '1000:4'" "$T/stderr" || fail "bad WATCH_RUNS message"
if run_script ETCD_PEER_PORT=28600 >/dev/null 2>"$T/stderr"; then fail "overlapping ports accepted"; fi
grep -q "overlap" "$T/stderr" || fail "overlap message"
[[ ! -e $STUB_STATE/pids ]] || fail "servers started despite bad settings"
if run_script STUB_ETCD_DIE=1 >/dev/null 2>"$T/stderr"; then fail "dead etcd not noticed"; fi
grep -q "a server exited during startup" "$T/stderr" || fail "dead server message"
grep -q "simulated startup failure" "$T/stderr" || fail "server log not shown"
[[ ! -e $md ]] || fail "results written after a startup failure"
all_stopped
kept=$(grep -o 'kept [^ ]*' "$T/stderr" | cut -d' ' -f2)
rm -rf "$kept"
echo "ok: bad settings and dead server"

echo "compare-etcd.sh self-test passed"
