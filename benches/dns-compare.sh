#!/usr/bin/env bash
# Waymark DNS vs Knot DNS: starts a three-node Waymark cluster and a Knot DNS server
# serving an equivalent static zone, all on 127.0.0.1, runs the same dnsperf load
# against each in the same run (same serving threads, same dnsperf settings), and
# writes benches/results/dns-compare.md: QPS, average and p99 latency, lost queries
# and the Waymark/Knot QPS ratio, plus the machine, date, commit and exact command.
#
# Usage: benches/dns-compare.sh   (no arguments; as root it installs knot, dnsperf and
#                                  dnsutils with apt-get if they are missing)
#
# Environment (all optional):
#   THREADS        serving threads on each side (default 1): Waymark `[dns] udp_sockets`
#                  and Knot `udp-workers`
#   DURATION       seconds of each throughput run, dnsperf -l (default 15)
#   CLIENTS        dnsperf -c (default 8)
#   DNSPERF_THREADS dnsperf -T (default 1)
#   MAX_QPS        dnsperf -Q for the throughput runs (default: unset = unlimited)
#   LAT_QPS        fixed rate of the p99 run (default 20000; 0 skips it)
#   LAT_DURATION   seconds of the p99 run (default 5)
#   PIN            1 (default): server(s) on the last CPU, dnsperf on CPU 0 (taskset);
#                  0: no pinning
#   INSTANCES      instances of service `web` (default 10)
#   PORT_BASE      first port (default 28300; uses +0..+2, +200..+202, +210..+212,
#                  +300..+302 for Waymark and +353 for Knot)
#   OUT            results file (default benches/results/dns-compare.md)
#   SKIP_BUILD=1   use the existing waymark binary
#   WAYMARK_BIN    binary to use instead of ${CARGO_TARGET_DIR:-target}/release/waymark
#   KEEP_WORK=1    keep the temp dir (configs, data dirs, logs, raw dnsperf output)
#   RUST_LOG       passed to the Waymark servers (default "warn")
#
# Exit status: 0 on success (the goal being missed is not a failure: it is in the
# results); 1 on any error (the temp dir with the logs is kept).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SETTINGS=(CARGO_TARGET_DIR THREADS DURATION CLIENTS DNSPERF_THREADS MAX_QPS LAT_QPS
    LAT_DURATION PIN INSTANCES PORT_BASE OUT SKIP_BUILD WAYMARK_BIN KEEP_WORK RUST_LOG)
INVOCATION=""
for v in "${SETTINGS[@]}"; do
    if [[ -n "${!v+x}" ]]; then
        INVOCATION+="$v=$(printf '%q' "${!v}") "
    fi
done
INVOCATION+="benches/dns-compare.sh"

THREADS=${THREADS:-1}
DURATION=${DURATION:-15}
CLIENTS=${CLIENTS:-8}
DNSPERF_THREADS=${DNSPERF_THREADS:-1}
MAX_QPS=${MAX_QPS:-}
LAT_QPS=${LAT_QPS:-20000}
LAT_DURATION=${LAT_DURATION:-5}
PIN=${PIN:-1}
INSTANCES=${INSTANCES:-10}
PORT_BASE=${PORT_BASE:-28300}
OUT=${OUT:-$ROOT/benches/results/dns-compare.md}
export RUST_LOG=${RUST_LOG:-warn}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WAYMARK_BIN=${WAYMARK_BIN:-$TARGET_DIR/release/waymark}

RAFT_PORT=$PORT_BASE
API_PORT=$((PORT_BASE + 200))
ADMIN_PORT=$((PORT_BASE + 210))
DNS_PORT=$((PORT_BASE + 300))
KNOT_PORT=$((PORT_BASE + 353))

log() { printf '[dns-compare.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- tools -------------------------------------------------------------------
need_pkgs=()
command -v knotd >/dev/null 2>&1 || [[ -x /usr/sbin/knotd ]] || need_pkgs+=(knot)
command -v dnsperf >/dev/null 2>&1 || need_pkgs+=(dnsperf)
command -v dig >/dev/null 2>&1 || need_pkgs+=(dnsutils)
if ((${#need_pkgs[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        die "missing packages: ${need_pkgs[*]}; run as root or: sudo apt-get install -y ${need_pkgs[*]}"
    fi
    log "installing ${need_pkgs[*]} with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >/dev/null; then
        apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >/dev/null
    fi
fi
KNOTD=$(command -v knotd || echo /usr/sbin/knotd)
for t in dnsperf dig taskset timeout awk sort; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found"
done

# --- build -------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building waymark (cargo waits for the build lock if another build runs)"
    (cd "$ROOT" && cargo build --release -p waymark-registry) >&2
fi
[[ -x "$WAYMARK_BIN" ]] || die "no waymark binary at $WAYMARK_BIN (build it or set WAYMARK_BIN)"

# --- CPU pinning ---------------------------------------------------------------
NCPU=$(nproc)
SERVER_PIN=()
CLIENT_PIN=()
PIN_NOTE="no CPU pinning"
if [[ "$PIN" == 1 && "$NCPU" -ge 2 ]]; then
    SERVER_PIN=(taskset -c "$((NCPU - 1))")
    CLIENT_PIN=(taskset -c 0)
    PIN_NOTE="servers pinned to CPU $((NCPU - 1)), dnsperf to CPU 0 (taskset); all three Waymark nodes share the server CPU"
fi

# --- temp dir, cleanup ---------------------------------------------------------
WORK=$(mktemp -d /tmp/dns-compare.XXXXXX)
PIDS=()
OK=0
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # bounded wait, then force
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $OK == 1 && "${KEEP_WORK:-0}" != 1 ]]; then
        rm -rf "$WORK"
    else
        log "kept $WORK (logs: $WORK/*.log)"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$RAFT_PORT" "$((RAFT_PORT + 1))" "$((RAFT_PORT + 2))" "$API_PORT" "$((API_PORT + 1))" \
    "$((API_PORT + 2))" "$DNS_PORT" "$((DNS_PORT + 1))" "$((DNS_PORT + 2))" "$KNOT_PORT"; do
    port_free "$p" || die "port $p is in use (set PORT_BASE)"
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Waymark cluster -----------------------------------------------------------
log "starting a 3-node Waymark cluster (dns udp_sockets = $THREADS) in $WORK"
for k in 1 2 3; do
    cfg=$WORK/waymark-$k.toml
    {
        echo "node_id = $k"
        echo "data_dir = \"$WORK/node-$k\""
        echo "api_addr = \"127.0.0.1:$((API_PORT + k - 1))\""
        echo "raft_addr = \"127.0.0.1:$((RAFT_PORT + k - 1))\""
        echo "admin_addr = \"127.0.0.1:$((ADMIN_PORT + k - 1))\""
        echo "dns_addr = \"127.0.0.1:$((DNS_PORT + k - 1))\""
        for j in 1 2 3; do
            echo
            echo "[[initial_cluster]]"
            echo "node_id = $j"
            echo "raft_addr = \"127.0.0.1:$((RAFT_PORT + j - 1))\""
            echo "api_addr = \"127.0.0.1:$((API_PORT + j - 1))\""
        done
        echo
        echo "[dns]"
        echo "udp_sockets = $THREADS"
    } >"$cfg"
    "${SERVER_PIN[@]}" "$WAYMARK_BIN" server --config "$cfg" >"$WORK/waymark-$k.log" 2>&1 &
    PIDS+=($!)
done

API1=127.0.0.1:$API_PORT
deadline=$((SECONDS + 30))
until "$WAYMARK_BIN" status --addr "$API1" --json --timeout 2s 2>/dev/null |
    grep -Eq '"leader_id": *[0-9]'; do
    ((SECONDS < deadline)) || die "no Waymark leader after 30s (see $WORK/waymark-*.log)"
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "a Waymark node exited (see $WORK/waymark-*.log)"
    done
    sleep 0.5
done
log "leader elected; registering $INSTANCES instances of web"
for i in $(seq 1 "$INSTANCES"); do
    "$WAYMARK_BIN" register --service web --id "web-$i" --address "10.0.0.$i" --port 8080 \
        --addr "$API1" --timeout 10s >/dev/null
done

# Node 1 answers from its replica once it has applied the registrations.
deadline=$((SECONDS + 20))
until [[ $(dig +short +time=1 +tries=1 -p "$DNS_PORT" @127.0.0.1 web.service.waymark A | grep -c .) -eq "$INSTANCES" ]]; do
    ((SECONDS < deadline)) || die "node 1 DNS does not list $INSTANCES web instances"
    sleep 0.3
done

# --- Knot with the equivalent static zone --------------------------------------
mkdir -p "$WORK/knot/run" "$WORK/knot/storage"
ZONE=$WORK/knot/storage/waymark.zone
{
    echo "\$ORIGIN waymark."
    echo "\$TTL 5"
    echo "@ 5 IN SOA 1.node.waymark. hostmaster.waymark. 1 3600 600 86400 5"
    for k in 1 2 3; do
        echo "@ IN NS $k.node.waymark."
        echo "$k.node IN A 127.0.0.1"
    done
    for i in $(seq 1 "$INSTANCES"); do
        echo "web.service IN A 10.0.0.$i"
        echo "web.service IN SRV 1 1 8080 web-$i.web.instance.waymark."
        echo "web-$i.web.instance IN A 10.0.0.$i"
    done
} >"$ZONE"
cat >"$WORK/knot/knot.conf" <<EOF
server:
    rundir: "$WORK/knot/run"
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: $THREADS
    tcp-workers: 1
    background-workers: 1

control:
    listen: "$WORK/knot/run/knot.sock"

database:
    storage: "$WORK/knot/storage"

log:
  - target: stderr
    any: info

template:
  - id: default
    storage: "$WORK/knot/storage"
    zonefile-sync: -1
    journal-content: none

zone:
  - domain: waymark.
    file: waymark.zone
EOF
log "starting knotd (udp-workers = $THREADS)"
# Knot drops to `server.user` (default root:root): run as root, or as a user owning $WORK.
"${SERVER_PIN[@]}" "$KNOTD" -c "$WORK/knot/knot.conf" >"$WORK/knot.log" 2>&1 &
KNOT_PID=$!
PIDS+=("$KNOT_PID")
deadline=$((SECONDS + 15))
until [[ $(dig +short +time=1 +tries=1 -p "$KNOT_PORT" @127.0.0.1 web.service.waymark A | grep -c .) -eq "$INSTANCES" ]]; do
    ((SECONDS < deadline)) || die "knotd does not answer (see $WORK/knot.log)"
    kill -0 "$KNOT_PID" 2>/dev/null || die "knotd exited (see $WORK/knot.log)"
    sleep 0.3
done

# Both must answer every query name with NOERROR and the same number of records.
QUERIES=$WORK/queries.txt
{
    echo "web.service.waymark A"
    echo "web.service.waymark SRV"
    for i in $(seq 1 "$INSTANCES"); do
        echo "web-$i.web.instance.waymark A"
    done
} >"$QUERIES"
while read -r name type; do
    for port in "$DNS_PORT" "$KNOT_PORT"; do
        out=$(dig +time=2 +tries=1 -p "$port" @127.0.0.1 "$name" "$type")
        grep -q 'status: NOERROR' <<<"$out" || die "$name $type on port $port: not NOERROR"
        n=$(dig +short +time=2 +tries=1 -p "$port" @127.0.0.1 "$name" "$type" | grep -c .)
        echo "$port $name $type $n" >>"$WORK/answers.txt"
    done
done <"$QUERIES"
log "query mix (each name once per pass): $(tr '\n' ';' <"$QUERIES")"

# --- dnsperf -------------------------------------------------------------------
DNSPERF_ARGS=(-d "$QUERIES" -l "$DURATION" -c "$CLIENTS" -T "$DNSPERF_THREADS")
[[ -n "$MAX_QPS" ]] && DNSPERF_ARGS+=(-Q "$MAX_QPS")

# field NAME FILE: the first number after "NAME:" in dnsperf's statistics
field() {
    awk -v k="$1:" '(i = index($0, k)) { s = substr($0, i + length(k)); sub(/^[ \t]+/, "", s); split(s, a, /[ (]/); print a[1]; exit }' "$2"
}

declare -A QPS AVG MINL MAXL SD SENT COMPLETED LOST P99 LATQ RESP
run() { # NAME PORT
    local name=$1 port=$2 raw=$WORK/dnsperf-$1.txt
    log "dnsperf against $name (port $port): ${DNSPERF_ARGS[*]}"
    timeout $((DURATION + 60)) "${CLIENT_PIN[@]}" dnsperf -s 127.0.0.1 -p "$port" "${DNSPERF_ARGS[@]}" >"$raw" 2>&1 ||
        die "dnsperf against $name failed (see $raw)"
    SENT[$name]=$(field "Queries sent" "$raw")
    COMPLETED[$name]=$(field "Queries completed" "$raw")
    LOST[$name]=$(field "Queries lost" "$raw")
    QPS[$name]=$(field "Queries per second" "$raw")
    AVG[$name]=$(field "Average Latency (s)" "$raw")
    MINL[$name]=$(awk '/Average Latency/ { for (i = 1; i <= NF; i++) if ($i == "(min") print $(i + 1) }' "$raw" | tr -d ',')
    MAXL[$name]=$(awk '/Average Latency/ { for (i = 1; i <= NF; i++) if ($i == "max") print $(i + 1) }' "$raw" | tr -d ')')
    SD[$name]=$(field "Latency StdDev (s)" "$raw")
    RESP[$name]=$(awk '/Average packet size/ { print $NF }' "$raw")
    [[ -n "${QPS[$name]}" ]] || die "could not parse dnsperf output (see $raw)"
    # p99: dnsperf 2.10 has no latency histogram, so a separate fixed-rate run with -v
    # prints every response's latency and the p99 is taken from those.
    P99[$name]=n/a
    LATQ[$name]=""
    if [[ "$LAT_QPS" != 0 ]]; then
        local lraw=$WORK/dnsperf-$name-latency.txt
        timeout $((LAT_DURATION + 60)) "${CLIENT_PIN[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$QUERIES" \
            -l "$LAT_DURATION" -c "$CLIENTS" -T "$DNSPERF_THREADS" -Q "$LAT_QPS" -v >"$lraw" 2>&1 ||
            die "dnsperf latency run against $name failed (see $lraw)"
        P99[$name]=$(awk '/^> / && $2 != "T" && $2 != "I" { print $NF * 1000 }' "$lraw" | sort -g |
            awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } i = int(NR * 0.99); if (i < NR * 0.99) i++; printf "%.3f", v[i] }')
        LATQ[$name]="$(field "Queries completed" "$lraw")/$(field "Queries sent" "$lraw")"
    fi
}
run waymark "$DNS_PORT"
run knot "$KNOT_PORT"

# --- report ----------------------------------------------------------------------
ms() { awk -v s="$1" 'BEGIN { if (s == "") print "n/a"; else printf "%.3f", s * 1000 }'; }
RATIO=$(awk -v a="${QPS[waymark]}" -v b="${QPS[knot]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
GOAL_QPS=$(awk -v r="$RATIO" 'BEGIN { print (r >= 1.0 ? "met" : "NOT met") }')
# p99 at the fixed rate: at most twice Knot's.
P99_RATIO=$(awk -v a="${P99[waymark]}" -v b="${P99[knot]}" 'BEGIN { if (a == "n/a" || b == "n/a" || b <= 0) print "n/a"; else printf "%.2f", a / b }')
GOAL_P99=$(awk -v r="$P99_RATIO" 'BEGIN { if (r == "n/a") print "not measured"; else print (r <= 2.0 ? "met" : "NOT met") }')
GOAL_LOST=$([[ "${LOST[waymark]}" == 0 ]] && echo met || echo "NOT met")
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=""
if git -C "$ROOT" status --porcelain 2>/dev/null | grep -q .; then
    DIRTY=" (working tree has uncommitted changes)"
fi
DNSPERF_VERSION=$(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')
KNOT_VERSION=$("$KNOTD" -V 2>&1 | head -1)

mkdir -p "$(dirname "$OUT")"
{
    echo "# Waymark DNS vs Knot DNS (dnsperf)"
    echo
    echo "Produced by \`$INVOCATION\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC')."
    echo
    p99h="p99 ms"
    [[ "$LAT_QPS" != 0 ]] && p99h="p99 ms (at $LAT_QPS QPS)"
    echo "| server | serving threads | QPS | avg ms | $p99h | lost | sent | completed | ratio Waymark/Knot |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for s in waymark knot; do
        label=$([[ $s == waymark ]] && echo "Waymark (node 1 of 3)" || echo "Knot DNS")
        threads=$([[ $s == waymark ]] && echo "$THREADS (udp_sockets)" || echo "$THREADS (udp-workers)")
        r=$([[ $s == waymark ]] && echo "$RATIO" || echo "1.00")
        printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$label" "$threads" "${QPS[$s]}" \
            "$(ms "${AVG[$s]}")" "${P99[$s]}" "${LOST[$s]}" "${SENT[$s]}" "${COMPLETED[$s]}" "$r"
    done
    echo
    echo "Latency detail of the throughput runs (ms):"
    echo
    echo "| server | min | avg | max | stddev | avg response bytes |"
    echo "|---|---|---|---|---|---|"
    for s in waymark knot; do
        echo "| $s | $(ms "${MINL[$s]}") | $(ms "${AVG[$s]}") | $(ms "${MAXL[$s]}") | $(ms "${SD[$s]}") | ${RESP[$s]} |"
    done
    echo
    echo "Goals (issue): Waymark ≥ 1.0× Knot's QPS with the same serving threads: **$GOAL_QPS** (ratio $RATIO);"
    echo "p99 at $LAT_QPS QPS ≤ 2× Knot's: **$GOAL_P99** (ratio $P99_RATIO);"
    echo "zero lost queries: **$GOAL_LOST** (Waymark lost ${LOST[waymark]}, Knot lost ${LOST[knot]})."
    echo
    echo "## How"
    echo
    echo "- QPS, avg, lost, sent, completed: one unlimited-rate dnsperf run per server, same settings:"
    echo "  \`${CLIENT_PIN[*]}${CLIENT_PIN[*]:+ }dnsperf -s 127.0.0.1 -p PORT ${DNSPERF_ARGS[*]//$WORK\//}\`"
    echo "  (Waymark first, then Knot, in the same script run; queries.txt is in the temp dir)."
    if [[ "$LAT_QPS" != 0 ]]; then
        echo "- p99: dnsperf $DNSPERF_VERSION has no latency histogram (\`-O latency-histogram\` is not available), so a"
        echo "  separate run per server at a fixed $LAT_QPS QPS for ${LAT_DURATION}s with \`-v\` logs every response's latency"
        echo "  and the p99 is taken from those (completed/sent: Waymark ${LATQ[waymark]}, Knot ${LATQ[knot]}). It is the p99"
        echo "  at that rate, not at the maximum rate of the throughput run."
    else
        echo "- p99: not available from dnsperf $DNSPERF_VERSION (no latency histogram); the latency-run was skipped (LAT_QPS=0)."
    fi
    echo "- Query mix, in order, repeated: \`web.service.waymark A\`, \`web.service.waymark SRV\`, and"
    echo "  \`web-N.web.instance.waymark A\` for N = 1..$INSTANCES ($INSTANCES instances of \`web\`, all passing)."
    echo "- Waymark: 3-node cluster on 127.0.0.1, queries to node 1's DNS port, \`[dns] udp_sockets = $THREADS\`, RUST_LOG=$RUST_LOG."
    echo "- Knot: $KNOT_VERSION, \`udp-workers: $THREADS\`, \`tcp-workers: 1\`, \`background-workers: 1\`, a static zone \`waymark.\`"
    echo "  with the same records (SOA, 3 NS + glue, $INSTANCES A and SRV records at web.service, instance A records, TTL 5)."
    echo "  Waymark shuffles answers by weight per query; Knot returns a fixed order. Every name was checked to give NOERROR on both before the runs; responses differ in size (table above)."
    echo "- CPU: $PIN_NOTE."
    echo
    echo "## Machine"
    echo
    echo "- nproc: $NCPU; CPU: $CPU_MODEL; memory: $MEM"
    echo "- kernel: $(uname -r)"
    echo "- load average (1/5/15 min) before the servers started: $LOAD_BEFORE; after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "  (other work on the machine competes for the same 2 cores and makes these numbers noisy)"
    echo "- dnsperf $DNSPERF_VERSION; $KNOT_VERSION"
    echo "- git commit: $COMMIT$DIRTY"
} >"$OUT"

cat "$OUT"
OK=1
log "wrote $OUT"
