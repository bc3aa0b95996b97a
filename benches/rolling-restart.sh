#!/usr/bin/env bash
# Rolling restart under load: for each setup, starts a fresh three-node cluster on
# 127.0.0.1, runs `waymark-bench write-gaps` (writes paced at RATE, each retried until
# acknowledged), and while it runs stops each node in turn with SIGTERM, starts it again
# on its data dir and waits until it is back. Reports the longest stretch with no
# acknowledged write, per setup, and writes benches/results/rolling-restart.md.
#
# Setups: `waymark` (a stopping leader hands leadership over first), `waymark-no-handoff`
# (`leader_handoff_ms = 0`: the stop costs an election timeout, as before) and `etcd`
# (3.4, which also transfers leadership on a graceful stop): the anchor.
#
# Usage: benches/rolling-restart.sh     (from anywhere; as root it installs etcd-server,
#                                        etcd-client and protobuf-compiler if missing)
#
# Environment (all optional):
#   SETUPS           which to run, in order (default "waymark waymark-no-handoff etcd")
#   CLIENTS RATE     writer tasks and writes per second over all (defaults 16, 400)
#   ROUNDS           rolling restarts of every node (default 2); within a round the
#                    current leader goes first whenever it has not been restarted yet
#   WARMUP SETTLE    seconds of load before the first restart and after each node is
#                    back (defaults 5, 3)
#   DURATION         seconds of load in all (default 45; must cover the restarts)
#   REPORT_GAP       list every gap of at least this many ms (default 100)
#   SKIP_BUILD=1     use existing binaries; WAYMARK_BIN BENCH_BIN ETCD_BIN ETCDCTL_BIN
#                    to name them
#   OUT              results file (default benches/results/rolling-restart.md)
#   KEEP_WORK=1      keep the temp dir (data dirs, logs, raw JSON)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INVOCATION=""
for v in SETUPS CLIENTS RATE ROUNDS WARMUP SETTLE DURATION REPORT_GAP SKIP_BUILD WAYMARK_BIN BENCH_BIN ETCD_BIN \
    ETCDCTL_BIN OUT KEEP_WORK CARGO_TARGET_DIR; do
    [[ -n "${!v+x}" ]] && INVOCATION+="$v=$(printf '%q' "${!v}") "
done
INVOCATION+="benches/rolling-restart.sh"

SETUPS=${SETUPS:-"waymark waymark-no-handoff etcd"}
CLIENTS=${CLIENTS:-16}
RATE=${RATE:-400}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-5}
SETTLE=${SETTLE:-3}
DURATION=${DURATION:-45}
REPORT_GAP=${REPORT_GAP:-100}
OUT=${OUT:-$ROOT/benches/results/rolling-restart.md}
export RUST_LOG=${RUST_LOG:-warn}
NODES=(1 2 3)
BASE=${BASE_PORT:-19100}

log() { printf '[rolling-restart.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

WANT_ETCD=0
for s in $SETUPS; do
    case $s in
    waymark | waymark-no-handoff) ;;
    etcd) WANT_ETCD=1 ;;
    *) die "SETUPS entry '$s' is not waymark, waymark-no-handoff or etcd" ;;
    esac
done
for v in CLIENTS RATE ROUNDS WARMUP SETTLE DURATION REPORT_GAP; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done

# Ports: node k of any setup uses BASE + 10*k + {0 api, 1 raft, 2 admin, 3 dns, 4 etcd
# client, 5 etcd peer}; one setup runs at a time.
port() { echo $((BASE + 10 * $1 + $2)); }

# --- packages and binaries -----------------------------------------------------------
need_pkgs=()
if ((WANT_ETCD)); then
    [[ -n ${ETCD_BIN:-} ]] || need_pkgs+=(etcd-server)
    [[ -n ${ETCDCTL_BIN:-} ]] || need_pkgs+=(etcd-client)
fi
[[ ${SKIP_BUILD:-0} == 1 ]] || need_pkgs+=(protobuf-compiler)
missing=()
for p in "${need_pkgs[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p waymark-registry -p waymark-benches)
fi
if [[ -z ${WAYMARK_BIN:-} || -z ${BENCH_BIN:-} ]]; then
    TARGET_DIR=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
fi
WAYMARK=${WAYMARK_BIN:-$TARGET_DIR/release/waymark}
BENCH=${BENCH_BIN:-$TARGET_DIR/release/waymark-bench}
ETCD=${ETCD_BIN:-$(command -v etcd || true)}
ETCDCTL=${ETCDCTL_BIN:-$(command -v etcdctl || true)}
[[ -x $WAYMARK ]] || die "no waymark binary at $WAYMARK"
[[ -x $BENCH ]] || die "no waymark-bench binary at $BENCH"
if ((WANT_ETCD)); then
    [[ -x $ETCD && -x $ETCDCTL ]] || die "no etcd/etcdctl (install etcd-server and etcd-client)"
    ETCD_VERSION=$("$ETCD" --version 2>/dev/null || true)
    ETCD_VERSION=${ETCD_VERSION%%$'\n'*}
fi

# --- work dir and cleanup ------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/waymark-rolling.XXXXXX")
declare -A PID
LOAD_PID=""
stop_all() {
    local k
    if [[ -n $LOAD_PID ]]; then kill "$LOAD_PID" 2>/dev/null || true; fi
    for k in "${!PID[@]}"; do
        kill -TERM "${PID[$k]}" 2>/dev/null || true
    done
    for k in "${!PID[@]}"; do
        wait_exit "${PID[$k]}" 15 || kill -KILL "${PID[$k]}" 2>/dev/null || true
        wait "${PID[$k]}" 2>/dev/null || true
        unset "PID[$k]"
    done
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_all
    if [[ $rc -ne 0 || ${KEEP_WORK:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_exit PID SECONDS: true once PID has exited, false if it is still running after.
wait_exit() {
    local deadline=$((SECONDS + $2))
    while kill -0 "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

INITIAL_CLUSTER=""
ETCD_CLUSTER=""
for k in "${NODES[@]}"; do
    INITIAL_CLUSTER+="${INITIAL_CLUSTER:+,}$k=127.0.0.1:$(port "$k" 1)/127.0.0.1:$(port "$k" 0)"
    ETCD_CLUSTER+="${ETCD_CLUSTER:+,}e$k=http://127.0.0.1:$(port "$k" 5)"
done
endpoints() {
    local k out=""
    for k in "${NODES[@]}"; do
        case $1 in
        etcd) out+="${out:+,}127.0.0.1:$(port "$k" 4)" ;;
        *) out+="${out:+,}127.0.0.1:$(port "$k" 0)" ;;
        esac
    done
    echo "$out"
}

# start_node SETUP K STATE: starts node K (STATE new or existing, for etcd).
start_node() {
    local setup=$1 k=$2 state=$3 dir=$WORK/$1-$2
    mkdir -p "$dir"
    case $setup in
    etcd)
        "$ETCD" --name "e$k" --data-dir "$dir/data" \
            --listen-client-urls "http://127.0.0.1:$(port "$k" 4)" \
            --advertise-client-urls "http://127.0.0.1:$(port "$k" 4)" \
            --listen-peer-urls "http://127.0.0.1:$(port "$k" 5)" \
            --initial-advertise-peer-urls "http://127.0.0.1:$(port "$k" 5)" \
            --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state "$state" \
            --initial-cluster-token waymark-rolling --logger zap --log-level warn \
            >>"$dir/log" 2>&1 &
        ;;
    *)
        local handoff=3000
        [[ $setup == waymark-no-handoff ]] && handoff=0
        printf 'node_id = %s\ndata_dir = "%s"\nleader_handoff_ms = %s\n' "$k" "$dir/data" "$handoff" \
            >"$dir/config.toml"
        "$WAYMARK" server --config "$dir/config.toml" \
            --api-addr "127.0.0.1:$(port "$k" 0)" --raft-addr "127.0.0.1:$(port "$k" 1)" \
            --admin-addr "127.0.0.1:$(port "$k" 2)" --dns-addr "127.0.0.1:$(port "$k" 3)" \
            --initial-cluster "$INITIAL_CLUSTER" >>"$dir/log" 2>&1 &
        ;;
    esac
    PID[$k]=$!
}

# leader_of SETUP K: the leader's node number as node K sees it (empty if none).
leader_of() {
    local out
    case $1 in
    etcd)
        out=$(ETCDCTL_API=3 timeout 3 "$ETCDCTL" --endpoints "127.0.0.1:$(port "$2" 4)" \
            --command-timeout 2s endpoint status -w json 2>/dev/null) || return 0
        # member ids are e1..e3's; map the leader's id to its name via member list.
        local leader_id members
        leader_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["leader"])' <<<"$out" 2>/dev/null) || return 0
        members=$(ETCDCTL_API=3 timeout 3 "$ETCDCTL" --endpoints "127.0.0.1:$(port "$2" 4)" \
            --command-timeout 2s member list -w json 2>/dev/null) || return 0
        python3 -c 'import json,sys
for m in json.load(sys.stdin)["members"]:
    if m["ID"] == int(sys.argv[1]): print(m["name"].lstrip("e"))' "$leader_id" <<<"$members" 2>/dev/null || true
        ;;
    *)
        out=$(timeout 3 "$WAYMARK" status --addr "127.0.0.1:$(port "$2" 0)" --json 2>/dev/null) || return 0
        python3 -c 'import json,sys; l=json.load(sys.stdin).get("leader_id"); print(l if l else "")' <<<"$out" 2>/dev/null || true
        ;;
    esac
}

# wait_ready SETUP K SECONDS: until node K answers and knows a leader.
wait_ready() {
    local deadline=$((SECONDS + $3))
    until [[ -n $(leader_of "$1" "$2") ]]; do
        kill -0 "${PID[$2]}" 2>/dev/null || die "$1 node $2 exited while starting (log: $WORK/$1-$2/log)"
        ((SECONDS < deadline)) || die "$1 node $2 not ready within $3 s"
        sleep 0.1
    done
}

# --- runs ------------------------------------------------------------------------------
ROWS=$WORK/rows.md
TIMELINES=$WORK/timelines.md
: >"$ROWS"
: >"$TIMELINES"
COMMANDS=()
for setup in $SETUPS; do
    log "== $setup"
    for k in "${NODES[@]}"; do start_node "$setup" "$k" new; done
    for k in "${NODES[@]}"; do wait_ready "$setup" "$k" 60; done
    backend=waymark
    [[ $setup == etcd ]] && backend=etcd
    cmd=("$BENCH" --backend "$backend" --endpoints "$(endpoints "$setup")" --clients "$CLIENTS"
        write-gaps --rate "$RATE" --duration "${DURATION}s" --report-gap "${REPORT_GAP}ms" --json)
    COMMANDS+=("${cmd[*]}")
    log "load: ${cmd[*]}"
    t0=$(now)
    "${cmd[@]}" >"$WORK/$setup.json" 2>"$WORK/$setup.err" &
    LOAD_PID=$!
    sleep "$WARMUP"
    {
        echo "**$setup**: restarts (seconds since the load started)"
        echo
        echo "| node | was leader | SIGTERM at | exited after | back (leader known) after | leader then |"
        echo "|---:|:---:|---:|---:|---:|---:|"
    } >>"$TIMELINES"
    for step in $(seq 1 $((ROUNDS * ${#NODES[@]}))); do
        # Each round restarts every node once, the current leader first whenever it
        # has not been restarted in this round yet: as many leader stops as can be.
        ((step % ${#NODES[@]} == 1)) && todo=" ${NODES[*]} "
        leader=$(leader_of "$setup" "${NODES[0]}")
        if [[ -n $leader && $todo == *" $leader "* ]]; then
            k=$leader
        else
            k=$(tr -s ' ' '\n' <<<"$todo" | grep -m1 .)
        fi
        todo=${todo/ $k / }
        was=no
        [[ $leader == "$k" ]] && was=yes
        at=$(since "$t0")
        t_stop=$(now)
        kill -TERM "${PID[$k]}"
        wait_exit "${PID[$k]}" 30 || die "$setup node $k did not stop within 30 s of SIGTERM"
        wait "${PID[$k]}" 2>/dev/null || true
        exited=$(since "$t_stop")
        start_node "$setup" "$k" existing
        wait_ready "$setup" "$k" 60
        back=$(since "$t_stop")
        echo "| $k | $was | $at | $exited | $back | $(leader_of "$setup" "$k") |" >>"$TIMELINES"
        log "$setup: node $k (leader: $was) stopped in ${exited}s, back after ${back}s"
        sleep "$SETTLE"
    done
    echo >>"$TIMELINES"
    kill -0 "$LOAD_PID" 2>/dev/null || die "the load ended before the restarts did: raise DURATION"
    wait "$LOAD_PID" || die "the load tool failed: $(tail -n 3 "$WORK/$setup.err")"
    LOAD_PID=""
    stop_all
    python3 - "$setup" "$WORK/$setup.json" >>"$ROWS" <<'EOF'
import json, sys
setup, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
errors = r["errors"]
gaps = ", ".join(f'{g["ms"]:.0f} ms at {g["at_s"]:.1f} s' for g in r["gaps"]) or "none"
lat = r["latency_ms"]
print(f'| {setup} | {r["longest_gap_ms"]:.0f} | {r["ok"]} | {errors} | {lat["p99"]:.1f} | {lat["max"]:.0f} | {gaps} |')
EOF
    log "$setup: $(tail -n 1 "$ROWS")"
done

# --- results file ----------------------------------------------------------------------
{
    echo "# Rolling restart under load: longest write gap"
    echo
    echo "Written by \`benches/rolling-restart.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit"
    echo "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown); $(nproc) CPUs, $(uname -srm)."
    echo
    echo "Three nodes on 127.0.0.1; $CLIENTS writers at $RATE writes/s in all (Waymark: Register"
    echo "through \`waymark-client\`, which fails over between nodes; etcd: put), each write sent"
    echo "again until acknowledged. After ${WARMUP} s, $ROUNDS rounds of: each node in turn (the"
    echo "current leader first whenever it has not had its turn in the round) gets SIGTERM, is"
    echo "started again on its data dir, and once it knows a leader the next follows ${SETTLE} s later."
    echo "**Longest gap**: the longest stretch with no write acknowledged, over the whole run."
    echo "Goal (issue 11, item 8): a planned restart costs no election timeout (Waymark's"
    echo "default: 300–600 ms), with etcd (${ETCD_VERSION:-not run}) as the anchor."
    echo
    echo "| setup | longest gap (ms) | writes acknowledged | failed attempts (resent) | p99 write (ms) | max write (ms) | gaps ≥ $REPORT_GAP ms |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    cat "$ROWS"
    echo
    cat "$TIMELINES"
    echo "## Commands"
    echo
    echo '```'
    echo "$INVOCATION"
    printf '%s\n' "${COMMANDS[@]}"
    echo '```'
} >"$OUT"
log "wrote $OUT"
