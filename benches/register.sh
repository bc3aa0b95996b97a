#!/usr/bin/env bash
# Register benchmark: builds the release binaries, starts a fresh three-node Waymark
# cluster on localhost, runs `waymark-bench register` at 1, 16 and 256 clients, and
# writes benches/results/register.md (table, machine, date, commit, commands).
#
# Usage: benches/register.sh            (from anywhere; no arguments)
#
# Environment (all optional):
#   CARGO_TARGET_DIR     where cargo builds (honoured; binaries are looked up there)
#   TOTAL_1 TOTAL_16 TOTAL_256
#                        Register calls per run (defaults 5000 / 40000 / 60000, sized for
#                        roughly 10-20 s per run on a 2-core machine)
#   RUNS                 the runs as CLIENTS:CONNS:TOTAL words; default
#                        "1:1:$TOTAL_1 16:4:$TOTAL_16 256:16:$TOTAL_256"
#   VAL_SIZE             bytes of meta per instance (default 256)
#   BENCH_ARGS           extra waymark-bench flags, e.g. "--target-leader"
#   API_PORT RAFT_PORT ADMIN_PORT
#                        first port of each kind (defaults 18500, 18300, 18510; node k
#                        uses base+k-1)
#   LEADER_TIMEOUT       seconds to wait for every node to report a leader (default 30)
#   OUT                  results file (default benches/results/register.md)
#   SKIP_BUILD=1         use existing binaries
#   WAYMARK_BIN BENCH_BIN
#                        binaries to use instead of the ones in the target dir
#   KEEP_WORK=1          keep the temp dir (data dirs, node logs, raw JSON) afterwards
#   RUST_LOG             passed to the servers (default "warn", to keep logging cheap)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The exact invocation, with the overrides that were set, for the results file.
INVOCATION=""
for v in CARGO_TARGET_DIR TOTAL_1 TOTAL_16 TOTAL_256 RUNS VAL_SIZE BENCH_ARGS API_PORT \
    RAFT_PORT ADMIN_PORT LEADER_TIMEOUT OUT SKIP_BUILD WAYMARK_BIN BENCH_BIN KEEP_WORK RUST_LOG; do
    if [[ -n "${!v+x}" ]]; then
        INVOCATION+="$v=$(printf '%q' "${!v}") "
    fi
done
INVOCATION+="benches/register.sh"

TOTAL_1=${TOTAL_1:-5000}
TOTAL_16=${TOTAL_16:-40000}
TOTAL_256=${TOTAL_256:-60000}
RUNS=${RUNS:-"1:1:$TOTAL_1 16:4:$TOTAL_16 256:16:$TOTAL_256"}
VAL_SIZE=${VAL_SIZE:-256}
BENCH_ARGS=${BENCH_ARGS:-}
API_PORT=${API_PORT:-18500}
RAFT_PORT=${RAFT_PORT:-18300}
ADMIN_PORT=${ADMIN_PORT:-18510}
LEADER_TIMEOUT=${LEADER_TIMEOUT:-30}
OUT=${OUT:-$ROOT/benches/results/register.md}
export RUST_LOG=${RUST_LOG:-warn}

log() { printf '[register.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- check the settings before doing anything slow ---------------------------------
for run in $RUNS; do
    [[ $run =~ ^[1-9][0-9]*:[1-9][0-9]*:[1-9][0-9]*$ ]] ||
        die "RUNS entry '$run' is not CLIENTS:CONNS:TOTAL (positive integers)"
done
[[ -n ${RUNS// /} ]] || die "RUNS is empty"
for v in VAL_SIZE API_PORT RAFT_PORT ADMIN_PORT LEADER_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number (got '${!v}')"
done

NODES=(1 2 3)
api_port() { echo $((API_PORT + $1 - 1)); }
raft_port() { echo $((RAFT_PORT + $1 - 1)); }
admin_port() { echo $((ADMIN_PORT + $1 - 1)); }
# DNS ports: DNS_PORT + k - 1 (each node needs its own).
DNS_PORT=${DNS_PORT:-18700}
dns_port() { echo $((DNS_PORT + $1 - 1)); }

ALL_PORTS=()
for k in "${NODES[@]}"; do
    ALL_PORTS+=("$(api_port "$k")" "$(raft_port "$k")" "$(admin_port "$k")")
done
if [[ $(printf '%s\n' "${ALL_PORTS[@]}" | sort -u | wc -l) -ne ${#ALL_PORTS[@]} ]]; then
    die "API_PORT, RAFT_PORT and ADMIN_PORT ranges overlap: ${ALL_PORTS[*]}"
fi
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "${ALL_PORTS[@]}"; do
    if port_in_use "$p"; then
        die "port $p is already in use (set API_PORT/RAFT_PORT/ADMIN_PORT)"
    fi
done

# --- build -------------------------------------------------------------------------
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p waymark-registry -p waymark-benches)
fi
if [[ -z ${WAYMARK_BIN:-} || -z ${BENCH_BIN:-} ]]; then
    # Ask cargo, so CARGO_TARGET_DIR (relative or absolute) and config files all count.
    TARGET_DIR=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
    [[ -n $TARGET_DIR ]] || die "could not find cargo's target directory"
fi
WAYMARK=${WAYMARK_BIN:-$TARGET_DIR/release/waymark}
BENCH=${BENCH_BIN:-$TARGET_DIR/release/waymark-bench}
[[ -x $WAYMARK ]] || die "no waymark binary at $WAYMARK"
[[ -x $BENCH ]] || die "no waymark-bench binary at $BENCH"

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

# --- cluster -------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/waymark-bench.XXXXXX")
PIDS=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Give the nodes up to 10 s to stop, then force them.
    local deadline=$((SECONDS + 10))
    for pid in "${PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $rc -ne 0 ]]; then
        local k
        for k in "${NODES[@]}"; do
            if [[ -s $WORK/node-$k.log ]]; then
                log "last lines of node $k's log ($WORK/node-$k.log):"
                tail -n 20 "$WORK/node-$k.log" >&2
            fi
        done
        log "failed (exit $rc); kept $WORK"
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

INITIAL_CLUSTER=""
ENDPOINTS=""
for k in "${NODES[@]}"; do
    INITIAL_CLUSTER+="${INITIAL_CLUSTER:+,}$k=127.0.0.1:$(raft_port "$k")/127.0.0.1:$(api_port "$k")"
    ENDPOINTS+="${ENDPOINTS:+,}127.0.0.1:$(api_port "$k")"
done

server_cmd() {
    local k=$1
    echo "$WAYMARK server --node-id $k --data-dir $WORK/node-$k" \
        "--api-addr 127.0.0.1:$(api_port "$k") --raft-addr 127.0.0.1:$(raft_port "$k")" \
        "--admin-addr 127.0.0.1:$(admin_port "$k") --dns-addr 127.0.0.1:$(dns_port "$k")" \
        "--initial-cluster $INITIAL_CLUSTER"
}

for k in "${NODES[@]}"; do
    mkdir -p "$WORK/node-$k"
    log "starting node $k: $(server_cmd "$k")"
    "$WAYMARK" server --node-id "$k" --data-dir "$WORK/node-$k" \
        --api-addr "127.0.0.1:$(api_port "$k")" \
        --raft-addr "127.0.0.1:$(raft_port "$k")" \
        --admin-addr "127.0.0.1:$(admin_port "$k")" \
        --dns-addr "127.0.0.1:$(dns_port "$k")" \
        --initial-cluster "$INITIAL_CLUSTER" \
        >"$WORK/node-$k.log" 2>&1 &
    PIDS+=("$!")
done

# True when `waymark status --json` output names a leader (a non-zero leader_id).
has_leader() { grep -Eq '"leader_id"[[:space:]]*:[[:space:]]*"?[1-9]'; }

log "waiting up to ${LEADER_TIMEOUT}s for every node to report a leader"
deadline=$((SECONDS + LEADER_TIMEOUT))
while :; do
    for i in "${!NODES[@]}"; do
        kill -0 "${PIDS[$i]}" 2>/dev/null || die "node ${NODES[$i]} exited during startup"
    done
    ready=0
    for k in "${NODES[@]}"; do
        if out=$(timeout 5 "$WAYMARK" status --addr "127.0.0.1:$(api_port "$k")" --json 2>/dev/null) &&
            has_leader <<<"$out"; then
            ready=$((ready + 1))
        fi
    done
    ((ready == ${#NODES[@]})) && break
    ((SECONDS < deadline)) || die "no leader on all nodes within ${LEADER_TIMEOUT}s ($ready of ${#NODES[@]} ready)"
    sleep 0.2
done
log "cluster ready: $ENDPOINTS"

# --- runs --------------------------------------------------------------------------
COMMANDS=()
offset=0
n=0
for run in $RUNS; do
    IFS=: read -r clients conns total <<<"$run"
    n=$((n + 1))
    # Each run registers new ids (i-<offset>..), so every call creates an instance.
    # BENCH_ARGS is split into words on purpose.
    # shellcheck disable=SC2206
    cmd=("$BENCH" register --endpoints "$ENDPOINTS" --clients "$clients" --conns "$conns"
        --total "$total" --val-size "$VAL_SIZE" --id-offset "$offset" $BENCH_ARGS --json)
    log "run $n: ${cmd[*]}"
    "${cmd[@]}" >"$WORK/run-$n.json"
    cat "$WORK/run-$n.json"
    COMMANDS+=("${cmd[*]}")
    offset=$((offset + total))
done

RUN_FILES=()
for ((i = 1; i <= n; i++)); do
    RUN_FILES+=("$WORK/run-$i.json")
done
TABLE=$("$BENCH" table "${RUN_FILES[@]}")

# --- results file ------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
{
    echo "# Register benchmark"
    echo
    echo "\`waymark-bench register\` against a fresh three-node cluster on one machine"
    echo "(all three \`waymark server\` processes and the client share its CPUs and disk)."
    echo "Every call registers a new instance (service \`bench\`, one ${VAL_SIZE}-byte meta"
    echo "value); ops/s counts successful calls, latencies are of successful calls."
    echo
    echo "$TABLE"
    echo
    echo "## Setup"
    echo
    echo "- Date: $DATE"
    echo "- Commit: $COMMIT"
    echo "- Machine: $CPUS CPUs ($CPU_MODEL), $MEM memory, $KERNEL"
    echo "- Load average at start: $LOADAVG"
    echo "- Server log level: RUST_LOG=$RUST_LOG"
    echo
    echo "## Commands"
    echo
    echo "Produced by:"
    echo
    echo '```sh'
    echo "$INVOCATION"
    echo '```'
    echo
    echo "which ran the cluster as"
    echo
    echo '```sh'
    for k in "${NODES[@]}"; do
        server_cmd "$k"
    done
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
    cat "${RUN_FILES[@]}"
    echo '```'
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

log "wrote $OUT"
echo "$TABLE"
