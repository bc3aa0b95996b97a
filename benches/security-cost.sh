#!/usr/bin/env bash
# What authentication and TLS cost a write: register throughput and p99 at 16 and 256
# clients on a fresh three-node release cluster, plain (no ACLs, plaintext) and
# secure (ACLs on with default deny and a scoped token, TLS on the client API, mutual
# TLS on Raft), alternating plain/secure ROUNDS times in one run. Certificates are
# made with openssl (an ECDSA P-256 CA and one node certificate for 127.0.0.1), as an
# operator would. Writes benches/results/security-cost.md.
#
# Usage: benches/security-cost.sh
# Environment (optional): CARGO_TARGET_DIR, SKIP_BUILD=1, ROUNDS (default 2),
#   TOTAL_16 / TOTAL_256 (default 20000 / 40000), OUT, RUST_LOG (default warn)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INVOCATION=""
for v in CARGO_TARGET_DIR SKIP_BUILD ROUNDS TOTAL_16 TOTAL_256 OUT RUST_LOG; do
    [[ -n "${!v+x}" ]] && INVOCATION+="$v=$(printf '%q' "${!v}") "
done
INVOCATION+="benches/security-cost.sh"
ROUNDS=${ROUNDS:-2}
TOTAL_16=${TOTAL_16:-20000}
TOTAL_256=${TOTAL_256:-40000}
OUT=${OUT:-$ROOT/benches/results/security-cost.md}
export RUST_LOG=${RUST_LOG:-warn}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
W=$TARGET_DIR/release/waymark
BENCH=$TARGET_DIR/release/waymark-bench
log() { printf '[security-cost.sh] %s\n' "$*" >&2; }

command -v openssl >/dev/null || { log "error: needs openssl (apt-get install openssl)"; exit 1; }
if [[ -z "${SKIP_BUILD:-}" ]]; then
    "$ROOT/scripts/install-deps.sh" build
    (cd "$ROOT" && cargo build --release -p waymark-registry -p waymark-benches)
fi
[[ -x $W && -x $BENCH ]] || { log "error: no release binaries in $TARGET_DIR"; exit 1; }

WORK=$(mktemp -d)
pids=()
stop_cluster() {
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
}
trap 'stop_cluster; rm -rf "$WORK"' EXIT

# --- certificates, as an operator makes them with openssl --------------------------
TLS=$WORK/tls
mkdir -p "$TLS"
openssl ecparam -name prime256v1 -genkey -noout -out "$TLS/ca-key.pem" 2>/dev/null
openssl req -x509 -new -key "$TLS/ca-key.pem" -subj "/CN=bench CA" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -out "$TLS/ca.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$TLS/node-ec.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$TLS/node-ec.pem" -out "$TLS/node-key.pem"
openssl req -new -key "$TLS/node-key.pem" -subj "/CN=waymark node" -out "$TLS/node.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n' >"$TLS/ext.cnf"
openssl x509 -req -in "$TLS/node.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" \
    -CAcreateserial -days 2 -extfile "$TLS/ext.cnf" -out "$TLS/node.pem" 2>/dev/null

APIS=127.0.0.1:19700,127.0.0.1:19701,127.0.0.1:19702
IC=1=127.0.0.1:19500/127.0.0.1:19700,2=127.0.0.1:19501/127.0.0.1:19701,3=127.0.0.1:19502/127.0.0.1:19702

# start_cluster MODE: three nodes on fresh data dirs; secure = [acl] + [tls].
start_cluster() {
    local mode=$1 run=$WORK/$1-$2
    mkdir -p "$run"
    for i in 1 2 3; do
        local conf=$run/n$i.toml
        printf 'node_id = %d\ndata_dir = "%s"\n' "$i" "$run/n$i" >"$conf"
        if [[ $mode == secure ]]; then
            printf '[acl]\nenabled = true\ndefault_policy = "deny"\n[tls]\nca_file = "%s"\ncert_file = "%s"\nkey_file = "%s"\n' \
                "$TLS/ca.pem" "$TLS/node.pem" "$TLS/node-key.pem" >>"$conf"
        fi
        "$W" server --config "$conf" --api-addr "127.0.0.1:1970$((i - 1))" \
            --raft-addr "127.0.0.1:1950$((i - 1))" --admin-addr "127.0.0.1:1971$((i - 1))" \
            --dns-addr "127.0.0.1:1990$((i - 1))" --initial-cluster "$IC" >"$run/n$i.log" 2>&1 &
        pids+=($!)
    done
}

# secure_token: bootstraps ACLs and prints the secret of a token allowed to register.
secure_token() {
    local mgmt
    export WAYMARK_CACERT=$TLS/ca.pem
    for _ in $(seq 100); do
        mgmt=$(WAYMARK_TOKEN= "$W" acl bootstrap --addr "$APIS" --json 2>/dev/null |
            grep -o '"secret": *"[^"]*"' | cut -d'"' -f4) && [[ -n $mgmt ]] && break
        sleep 0.2
    done
    [[ -n $mgmt ]] || { log "error: bootstrap failed"; exit 1; }
    # A scoped token, so every call is authorised by rules, not by management rights.
    WAYMARK_TOKEN=$mgmt "$W" acl policy create bench --rule service-prefix::write \
        --addr "$APIS" >/dev/null
    WAYMARK_TOKEN=$mgmt "$W" acl token create --policy bench --addr "$APIS" --json |
        grep -o '"secret": *"[^"]*"' | cut -d'"' -f4
}

wait_leader() {
    for _ in $(seq 150); do
        "$W" status --addr 127.0.0.1:19700 2>/dev/null | grep -Eq '^leader +[0-9]' && return 0
        sleep 0.2
    done
    log "error: no leader"; exit 1
}

# run MODE CLIENTS CONNS TOTAL -> "ops_per_sec p99_ms errors"
run_bench() {
    "$BENCH" --endpoints "$APIS" register --clients "$2" --conns "$3" --total "$4" \
        --val-size 256 --json >"$WORK/last.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["ops_per_sec"]), round(d["latency_ms"]["p99"],2), d["errors"])' "$WORK/last.json"
}

declare -A RESULT
for round in $(seq "$ROUNDS"); do
    for mode in plain secure; do
        log "round $round: $mode"
        unset WAYMARK_CACERT WAYMARK_TOKEN
        start_cluster "$mode" "$round"
        if [[ $mode == secure ]]; then
            # Bootstrap retries until a leader takes it, so it also waits for one.
            token=$(secure_token)
            export WAYMARK_CACERT=$TLS/ca.pem WAYMARK_TOKEN=$token
        else
            wait_leader
        fi
        RESULT[$mode,16,$round]=$(run_bench "$mode" 16 4 "$TOTAL_16")
        RESULT[$mode,256,$round]=$(run_bench "$mode" 256 16 "$TOTAL_256")
        log "  16: ${RESULT[$mode,16,$round]}  256: ${RESULT[$mode,256,$round]}"
        stop_cluster
    done
done

{
    echo "# Cost of ACLs + TLS on the write path"
    echo
    echo "Register (256-byte meta) on a fresh three-node release cluster on 127.0.0.1, fsync on."
    echo "*plain*: no ACLs, plaintext. *secure*: \`[acl] enabled, default_policy = \"deny\"\`, a token"
    echo "with one policy (\`service-prefix::write\`), TLS 1.3 on the client API, mutual TLS on Raft."
    echo "Rounds alternate plain and secure on the same machine in one run."
    echo
    echo "| round | clients | plain ops/s | secure ops/s | secure/plain | plain p99 ms | secure p99 ms | errors (plain/secure) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---|"
    for round in $(seq "$ROUNDS"); do
        for c in 16 256; do
            read -r po pp pe <<<"${RESULT[plain,$c,$round]}"
            read -r so sp se <<<"${RESULT[secure,$c,$round]}"
            ratio=$(python3 -c "print(f'{$so/$po:.2f}')")
            echo "| $round | $c | $po | $so | ${ratio}x | $pp | $sp | $pe/$se |"
        done
    done
    echo
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
    echo "Date: $(date -u +%Y-%m-%dT%H:%MZ). Commit: $(git -C "$ROOT" rev-parse --short HEAD)."
    echo
    echo "Command: \`$INVOCATION\`"
} >"$OUT"
log "wrote $OUT"
cat "$OUT"
