#!/usr/bin/env bash
# Waymark vs etcd: builds the release binaries; for each backend in turn starts a fresh
# three-node cluster on 127.0.0.1 (Waymark; etcd 3.4), runs the same `waymark-bench`
# workloads against it (register at 1/16/256 clients, list consistent and stale,
# watch-latency with 1k and 10k watchers on one service) and stops it; then writes
# benches/results/etcd-compare.md:
# one table with both columns and their ratio, the goals, machine, date, commit and the
# exact commands.
#
# Usage: benches/compare-etcd.sh        (from anywhere; no arguments; as root it installs
#                                        etcd-server, etcd-client and protobuf-compiler
#                                        with apt-get if they are missing)
#
# Environment (all optional):
#   BACKENDS           which to run, in order (default "waymark etcd"); "etcd" alone
#                      needs no Waymark build or cluster
#   REGISTER_RUNS      register runs as CLIENTS:CONNS:TOTAL words
#                      (default "1:1:5000 16:4:40000 256:16:120000")
#   LIST_RUNS          list runs as CONSISTENCY:CLIENTS:CONNS:TOTAL words
#                      (default "consistent:16:4:40000 stale:16:4:40000")
#   LIST_SIZE          instances in the listed service (default 100)
#   WATCH_RUNS         watch-latency runs as WATCHERS:CONNS:RATE:TOTAL words
#                      (default "1000:4:20:400 10000:16:5:100": puts/s and puts)
#   WATCH_SETTLE       how long a watch run waits for late events (default 30s)
#   VAL_SIZE           bytes per value (default 256; Waymark's meta limit is 512)
#   BENCH_ARGS         extra waymark-bench flags for every run, e.g. "--target-leader"
#   RUN_TIMEOUT        seconds one run may take before it is killed (default 600)
#   NOFILE             open-file limit to raise to (default 65536)
#   API_PORT RAFT_PORT ADMIN_PORT
#                      first Waymark port of each kind (defaults 18600, 18400, 18610)
#   ETCD_CLIENT_PORT ETCD_PEER_PORT
#                      first etcd port of each kind (defaults 23790, 23800)
#   ETCD_QUOTA_BYTES   etcd --quota-backend-bytes (default 8 GiB)
#   LEADER_TIMEOUT     seconds to wait for each cluster to be ready (default 30)
#   OUT                results file (default benches/results/etcd-compare.md)
#   SKIP_BUILD=1       use existing binaries
#   WAYMARK_BIN BENCH_BIN ETCD_BIN ETCDCTL_BIN
#                      binaries to use instead of the built / installed ones
#   KEEP_WORK=1        keep the temp dir (data dirs, logs, raw JSON) afterwards
#   RUST_LOG           passed to the Waymark servers (default "warn")
#
# Exit status: 0 when every run succeeded; 2 when some runs failed (the results file is
# still written and shows them as failed, and the temp dir is kept); 1 on any other error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SETTINGS=(CARGO_TARGET_DIR BACKENDS REGISTER_RUNS LIST_RUNS LIST_SIZE WATCH_RUNS WATCH_SETTLE
    VAL_SIZE BENCH_ARGS RUN_TIMEOUT NOFILE API_PORT RAFT_PORT ADMIN_PORT ETCD_CLIENT_PORT
    ETCD_PEER_PORT ETCD_QUOTA_BYTES LEADER_TIMEOUT OUT SKIP_BUILD WAYMARK_BIN BENCH_BIN
    ETCD_BIN ETCDCTL_BIN KEEP_WORK RUST_LOG)
# The exact invocation, with the overrides that were set, for the results file.
INVOCATION=""
for v in "${SETTINGS[@]}"; do
    if [[ -n "${!v+x}" ]]; then
        INVOCATION+="$v=$(printf '%q' "${!v}") "
    fi
done
INVOCATION+="benches/compare-etcd.sh"

BACKENDS=${BACKENDS:-"waymark etcd"}
REGISTER_RUNS=${REGISTER_RUNS-"1:1:5000 16:4:40000 256:16:120000"}
LIST_RUNS=${LIST_RUNS-"consistent:16:4:40000 stale:16:4:40000"}
LIST_SIZE=${LIST_SIZE:-100}
WATCH_RUNS=${WATCH_RUNS-"1000:4:20:400 10000:16:5:100"}
WATCH_SETTLE=${WATCH_SETTLE:-30s}
VAL_SIZE=${VAL_SIZE:-256}
BENCH_ARGS=${BENCH_ARGS:-}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
NOFILE=${NOFILE:-65536}
API_PORT=${API_PORT:-18600}
RAFT_PORT=${RAFT_PORT:-18400}
ADMIN_PORT=${ADMIN_PORT:-18610}
ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
ETCD_QUOTA_BYTES=${ETCD_QUOTA_BYTES:-8589934592}
LEADER_TIMEOUT=${LEADER_TIMEOUT:-30}
OUT=${OUT:-$ROOT/benches/results/etcd-compare.md}
export RUST_LOG=${RUST_LOG:-warn}

log() { printf '[compare-etcd.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- check the settings before doing anything slow ---------------------------------
WANT_WAYMARK=0
WANT_ETCD=0
for b in $BACKENDS; do
    case $b in
    waymark) WANT_WAYMARK=1 ;;
    etcd) WANT_ETCD=1 ;;
    *) die "BACKENDS entry '$b' is not waymark or etcd" ;;
    esac
done
((WANT_WAYMARK + WANT_ETCD > 0)) || die "BACKENDS is empty"
for run in $REGISTER_RUNS; do
    [[ $run =~ ^[1-9][0-9]*:[1-9][0-9]*:[1-9][0-9]*$ ]] ||
        die "REGISTER_RUNS entry '$run' is not CLIENTS:CONNS:TOTAL (positive integers)"
done
for run in $LIST_RUNS; do
    [[ $run =~ ^(consistent|stale):[1-9][0-9]*:[1-9][0-9]*:[1-9][0-9]*$ ]] ||
        die "LIST_RUNS entry '$run' is not consistent|stale:CLIENTS:CONNS:TOTAL"
done
for run in $WATCH_RUNS; do
    [[ $run =~ ^[1-9][0-9]*:[1-9][0-9]*:[0-9]+:[1-9][0-9]*$ ]] ||
        die "WATCH_RUNS entry '$run' is not WATCHERS:CONNS:RATE:TOTAL (integers)"
done
[[ -n "${REGISTER_RUNS// /}${LIST_RUNS// /}${WATCH_RUNS// /}" ]] || die "no runs configured"
for v in LIST_SIZE VAL_SIZE RUN_TIMEOUT NOFILE API_PORT RAFT_PORT ADMIN_PORT ETCD_CLIENT_PORT \
    ETCD_PEER_PORT ETCD_QUOTA_BYTES LEADER_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number (got '${!v}')"
done
[[ $WATCH_SETTLE =~ ^[0-9]+(ms|s|m)?$ ]] || die "WATCH_SETTLE must be like 30s (got '$WATCH_SETTLE')"

NODES=(1 2 3)
api_port() { echo $((API_PORT + $1 - 1)); }
raft_port() { echo $((RAFT_PORT + $1 - 1)); }
admin_port() { echo $((ADMIN_PORT + $1 - 1)); }
# Each node needs its own DNS port too: DNS_PORT + k - 1.
DNS_PORT=${DNS_PORT:-18800}
dns_port() { echo $((DNS_PORT + $1 - 1)); }
etcd_client_port() { echo $((ETCD_CLIENT_PORT + $1 - 1)); }
etcd_peer_port() { echo $((ETCD_PEER_PORT + $1 - 1)); }

ALL_PORTS=()
for k in "${NODES[@]}"; do
    ((WANT_WAYMARK)) && ALL_PORTS+=("$(api_port "$k")" "$(raft_port "$k")" "$(admin_port "$k")")
    ((WANT_ETCD)) && ALL_PORTS+=("$(etcd_client_port "$k")" "$(etcd_peer_port "$k")")
done
if [[ $(printf '%s\n' "${ALL_PORTS[@]}" | sort -u | wc -l) -ne ${#ALL_PORTS[@]} ]]; then
    die "port ranges overlap: ${ALL_PORTS[*]}"
fi
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "${ALL_PORTS[@]}"; do
    if port_in_use "$p"; then
        die "port $p is already in use (set API_PORT/RAFT_PORT/ADMIN_PORT/ETCD_CLIENT_PORT/ETCD_PEER_PORT)"
    fi
done

# --- system packages ---------------------------------------------------------------
# etcd-server (the baseline), etcd-client (etcdctl, for the readiness check) and
# protobuf-compiler (the etcd-client crate's build script runs protoc).
# Only what will be used: not the etcd packages when ETCD_BIN/ETCDCTL_BIN are given,
# not protoc when nothing is built.
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
    if [[ $(id -u) -ne 0 ]]; then
        die "missing packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})"
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- build -------------------------------------------------------------------------
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    pkgs=(-p waymark-benches)
    ((WANT_WAYMARK)) && pkgs=(-p waymark-registry -p waymark-benches)
    log "building release binaries: cargo build --release ${pkgs[*]}"
    (cd "$ROOT" && cargo build --release "${pkgs[@]}")
fi
if [[ -z ${WAYMARK_BIN:-} || -z ${BENCH_BIN:-} ]]; then
    # Ask cargo, so CARGO_TARGET_DIR (relative or absolute) and config files all count.
    TARGET_DIR=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
    [[ -n $TARGET_DIR ]] || die "could not find cargo's target directory"
fi
WAYMARK=${WAYMARK_BIN:-$TARGET_DIR/release/waymark}
BENCH=${BENCH_BIN:-$TARGET_DIR/release/waymark-bench}
ETCD=${ETCD_BIN:-$(command -v etcd || true)}
ETCDCTL=${ETCDCTL_BIN:-$(command -v etcdctl || true)}
[[ -x $BENCH ]] || die "no waymark-bench binary at $BENCH"
if ((WANT_WAYMARK)); then
    [[ -x $WAYMARK ]] || die "no waymark binary at $WAYMARK"
fi
if ((WANT_ETCD)); then
    [[ -n $ETCD && -x $ETCD ]] || die "no etcd binary (install etcd-server or set ETCD_BIN)"
    [[ -n $ETCDCTL && -x $ETCDCTL ]] || die "no etcdctl binary (install etcd-client or set ETCDCTL_BIN)"
fi

# 10k watch streams need few sockets (they share --conns connections), but raise the
# limit anyway: each client connection and each etcd/Waymark peer link is a socket.
ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- machine and source, recorded before the run --------------------------------------
CPUS=$(nproc)
CPU_MODEL=$(grep -m1 -E '^(model name|Model|cpu model)' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*:[[:space:]]*//')
CPU_MODEL=${CPU_MODEL:-unknown}
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
MEM=${MEM:-unknown}
KERNEL=$(uname -srm)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown && -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi
ETCD_VERSION=n/a
if ((WANT_ETCD)); then
    # Whole output first: `| head -n1` could kill etcd with SIGPIPE (fatal with pipefail).
    ETCD_VERSION=$("$ETCD" --version 2>/dev/null || true)
    ETCD_VERSION=${ETCD_VERSION%%$'\n'*}
    ETCD_VERSION=${ETCD_VERSION#etcd Version: }
fi
DISK=$(df -h "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 2 { print $1 " (" $2 ", " $4 " free)" }')
DISK=${DISK:-unknown}
# The data dirs can grow large (Waymark at e5d534e: about 3.3 GB per node for the default
# runs); a full disk shows up as failed runs.
FREE_KB=$(df -Pk "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 2 { print $4 }')
if [[ ${FREE_KB:-0} =~ ^[0-9]+$ ]] && ((FREE_KB < 16 * 1024 * 1024)); then
    log "warning: only $((FREE_KB / 1024 / 1024)) GiB free in ${TMPDIR:-/tmp}; runs may fail with a full disk"
fi

# --- clusters ------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/waymark-vs-etcd.XXXXXX")
PIDS=()
LOGS=()

# Stops every server started so far: TERM, then KILL after 10 s.
stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    local deadline=$((SECONDS + 10))
    for pid in "${PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

# Resident memory (VmRSS, kB) of the running servers, summed.
servers_rss_kb() {
    local pid total=0 kb
    for pid in "${PIDS[@]}"; do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_servers
    if [[ $rc -ne 0 ]]; then
        local f
        for f in "${LOGS[@]}"; do
            if [[ -s $f ]]; then
                log "last lines of $f:"
                tail -n 10 "$f" >&2
            fi
        done
        log "exit $rc; kept $WORK"
    elif [[ ${KEEP_WORK:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SERVER_CMDS=()
ETCD_CLUSTER=""
ETCD_ENDPOINTS=""
INITIAL_CLUSTER=""
WAYMARK_ENDPOINTS=""
for k in "${NODES[@]}"; do
    ETCD_CLUSTER+="${ETCD_CLUSTER:+,}e$k=http://127.0.0.1:$(etcd_peer_port "$k")"
    ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}127.0.0.1:$(etcd_client_port "$k")"
    INITIAL_CLUSTER+="${INITIAL_CLUSTER:+,}$k=127.0.0.1:$(raft_port "$k")/127.0.0.1:$(api_port "$k")"
    WAYMARK_ENDPOINTS+="${WAYMARK_ENDPOINTS:+,}127.0.0.1:$(api_port "$k")"
done

endpoints_of() {
    case $1 in
    waymark) echo "$WAYMARK_ENDPOINTS" ;;
    etcd) echo "$ETCD_ENDPOINTS" ;;
    esac
}

# start_server NAME LOG CMD...: starts one server in the background.
start_server() {
    local name=$1 logfile=$2
    shift 2
    SERVER_CMDS+=("$*")
    log "starting $name: $*"
    "$@" >"$logfile" 2>&1 &
    PIDS+=("$!")
    LOGS+=("$logfile")
}

# True when `waymark status --json` output names a leader (a non-zero leader_id).
has_leader() { grep -Eq '"leader_id"[[:space:]]*:[[:space:]]*"?[1-9]'; }

all_alive() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || return 1
    done
}

# True when every node of BACKEND's cluster is ready.
cluster_ready() {
    case $1 in
    etcd)
        ETCDCTL_API=3 timeout 5 "$ETCDCTL" --endpoints "$ETCD_ENDPOINTS" --command-timeout 2s \
            endpoint health >/dev/null 2>&1
        ;;
    waymark)
        local k out
        for k in "${NODES[@]}"; do
            out=$(timeout 5 "$WAYMARK" status --addr "127.0.0.1:$(api_port "$k")" --json 2>/dev/null) ||
                return 1
            has_leader <<<"$out" || return 1
        done
        ;;
    esac
}

# Starts BACKEND's three-node cluster with fresh data dirs and waits until it is ready.
start_cluster() {
    local b=$1 k
    for k in "${NODES[@]}"; do
        case $b in
        etcd)
            local cport pport
            cport=$(etcd_client_port "$k")
            pport=$(etcd_peer_port "$k")
            start_server "etcd $k" "$WORK/etcd-$k.log" "$ETCD" --name "e$k" --data-dir "$WORK/etcd-$k" \
                --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
                --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
                --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new \
                --initial-cluster-token waymark-bench --quota-backend-bytes "$ETCD_QUOTA_BYTES" \
                --logger zap --log-level warn
            ;;
        waymark)
            mkdir -p "$WORK/waymark-$k"
            start_server "waymark $k" "$WORK/waymark-$k.log" "$WAYMARK" server --node-id "$k" \
                --data-dir "$WORK/waymark-$k" --api-addr "127.0.0.1:$(api_port "$k")" \
                --raft-addr "127.0.0.1:$(raft_port "$k")" --admin-addr "127.0.0.1:$(admin_port "$k")" \
                --dns-addr "127.0.0.1:$(dns_port "$k")" --initial-cluster "$INITIAL_CLUSTER"
            ;;
        esac
    done
    log "waiting up to ${LEADER_TIMEOUT}s for the $b cluster to be ready"
    local deadline=$((SECONDS + LEADER_TIMEOUT))
    while ! cluster_ready "$b"; do
        all_alive || die "a server exited during startup"
        ((SECONDS < deadline)) || die "$b cluster not ready within ${LEADER_TIMEOUT}s"
        sleep 0.2
    done
    log "$b ready: $(endpoints_of "$b")"
}

# --- runs --------------------------------------------------------------------------
COMMANDS=()
RESULTS=$WORK/results.json
: >"$RESULTS"
FAILED=0
n=0

# run_one BACKEND FAIL_KEYS WORKLOAD ARGS...: runs one waymark-bench workload with
# --json, bounded by RUN_TIMEOUT. The result (or, if it failed, a line naming the run
# as failed, FAIL_KEYS being its identifying JSON fields) goes to $RESULTS.
run_one() {
    local backend=$1 fail_keys=$2
    shift 2
    n=$((n + 1))
    # BENCH_ARGS is split into words on purpose.
    # shellcheck disable=SC2206
    local cmd=("$BENCH" --backend "$backend" --endpoints "$(endpoints_of "$backend")" "$@" $BENCH_ARGS --json)
    log "run $n: ${cmd[*]}"
    COMMANDS+=("${cmd[*]}")
    local rc=0 rss_before rss_peak=0 rss sampler
    rss_before=$(servers_rss_kb)
    timeout -k 10 "$RUN_TIMEOUT" "${cmd[@]}" >"$WORK/run-$n.json" 2>"$WORK/run-$n.err" &
    sampler=$!
    # The servers' resident memory, summed, every half second while the run lasts: its
    # peak minus the value before, over the watchers, is the memory per watcher.
    while kill -0 "$sampler" 2>/dev/null; do
        rss=$(servers_rss_kb)
        ((rss > rss_peak)) && rss_peak=$rss
        sleep 0.5
    done
    wait "$sampler" || rc=$?
    if ((rc == 0)) && [[ -s $WORK/run-$n.json ]]; then
        sed -i "1s/^{/{\"servers_rss_before_kb\":$rss_before,\"servers_rss_peak_kb\":$rss_peak,/" "$WORK/run-$n.json"
        cat "$WORK/run-$n.json" >>"$RESULTS"
        cat "$WORK/run-$n.json"
    else
        FAILED=$((FAILED + 1))
        local why
        # Drop quotes, backslashes and control characters: the reason goes into JSON.
        # shellcheck disable=SC1003
        why=$(tail -n 1 "$WORK/run-$n.err" 2>/dev/null | tr -d '"\\\000-\037' | cut -c1-200) || true
        [[ -n $why ]] || why="no error output"
        ((rc == 124)) && why="timed out after ${RUN_TIMEOUT}s"
        log "run $n failed (exit $rc): $why"
        printf '{"backend":"%s","workload":"%s",%s,"failed":"exit %s: %s"}\n' \
            "$backend" "$1" "$fail_keys" "$rc" "$why" >>"$RESULTS"
    fi
}

# Every workload against BACKEND's cluster.
run_workloads() {
    local b=$1 run clients conns total consistency watchers rate
    # register: every run creates new instances of service `bench` (ids i-<offset>..).
    local offset=0
    for run in $REGISTER_RUNS; do
        IFS=: read -r clients conns total <<<"$run"
        run_one "$b" "\"clients\":$clients" register --clients "$clients" --conns "$conns" \
            --total "$total" --val-size "$VAL_SIZE" --id-offset "$offset"
        offset=$((offset + total))
    done

    # list: a service of LIST_SIZE instances, filled first (not in the table).
    if [[ -n ${LIST_RUNS// /} ]]; then
        local fill=("$BENCH" --backend "$b" --endpoints "$(endpoints_of "$b")" register
            --service list --total "$LIST_SIZE" --clients 4 --val-size "$VAL_SIZE" --json)
        log "filling service 'list' on $b: ${fill[*]}"
        COMMANDS+=("${fill[*]}    # fills the listed service")
        timeout -k 10 "$RUN_TIMEOUT" "${fill[@]}" >"$WORK/list-fill-$b.json" ||
            die "filling service 'list' on $b failed"
    fi
    for run in $LIST_RUNS; do
        IFS=: read -r consistency clients conns total <<<"$run"
        run_one "$b" "\"clients\":$clients,\"consistency\":\"$consistency\"" list \
            --service list --consistency "$consistency" --clients "$clients" --conns "$conns" \
            --total "$total"
    done

    # watch-latency: a fresh, empty service per run, so Waymark watchers start from an
    # empty snapshot and etcd watchers from an empty prefix.
    for run in $WATCH_RUNS; do
        IFS=: read -r watchers conns rate total <<<"$run"
        run_one "$b" "\"clients\":1,\"watchers\":$watchers" watch-latency \
            --service "watch-$watchers" --watchers "$watchers" --conns "$conns" \
            --rate "$rate" --total "$total" --val-size "$VAL_SIZE" --settle "$WATCH_SETTLE"
    done
}

# One cluster at a time: the other one is not running while a backend is measured (a
# cluster that looks idle can still be compacting, snapshotting or electing).
for b in $BACKENDS; do
    start_cluster "$b"
    run_workloads "$b"
    log "stopping the $b cluster"
    stop_servers
done

COMPARE=$("$BENCH" compare "$RESULTS")

# --- results file ------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
{
    echo "# Waymark vs etcd"
    echo
    echo "The same \`waymark-bench\` workloads against a three-node Waymark cluster and a"
    echo "three-node etcd $ETCD_VERSION cluster, each on 127.0.0.1 of one machine, one after the"
    echo "other (only the measured cluster runs); the client shares the machine too. Both"
    echo "fsync every Raft log append."
    echo
    echo "- **register**: Waymark \`Register\` of a new instance (one ${VAL_SIZE}-byte meta value)"
    echo "  vs etcd \`put\` of a new key \`/bench/i-<n>\` with a ${VAL_SIZE}-byte value."
    echo "- **list**: Waymark \`ListInstances\` of a ${LIST_SIZE}-instance service vs etcd range"
    echo "  over its prefix; consistent = ReadIndex / linearizable, stale = local / serializable."
    echo "- **watch-latency**: N watch streams on one (initially empty) service, one putter at a"
    echo "  fixed rate; latency is from when a put was sent to when each watcher received its"
    echo "  event, over all watchers; ops/s is events delivered per second."
    echo
    echo "ops/s counts successful operations; p99 is of successful operations. ratio ="
    echo "Waymark ops/s ÷ etcd ops/s."
    echo
    echo "$COMPARE"
    echo
    echo "## Setup"
    echo
    echo "- Date: $DATE"
    echo "- Commit: $COMMIT"
    echo "- Machine: $CPUS CPUs ($CPU_MODEL), $MEM memory, $KERNEL; temp dir on $DISK"
    echo "- Load average at start: $LOADAVG"
    echo "- etcd: $ETCD_VERSION"
    echo "- Waymark server log level: RUST_LOG=$RUST_LOG"
    echo
    echo "## Commands"
    echo
    echo "Produced by:"
    echo
    echo '```sh'
    echo "$INVOCATION"
    echo '```'
    echo
    echo "which ran the clusters as"
    echo
    echo '```sh'
    printf '%s\n' "${SERVER_CMDS[@]}"
    echo '```'
    echo
    echo "and the runs as"
    echo
    echo '```sh'
    printf '%s\n' "${COMMANDS[@]}"
    echo '```'
    echo
    echo "## Raw results"
    echo
    echo '```json'
    cat "$RESULTS"
    echo '```'
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

log "wrote $OUT"
echo "$COMPARE"
if ((FAILED)); then
    log "$FAILED run(s) failed; see $OUT and $WORK"
    exit 2
fi
