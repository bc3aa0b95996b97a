#!/usr/bin/env bash
# The mesh on one machine: the dev cluster (`waymark dev`), three instances of a small
# sample service ("web", `waymark-sample-app`) each behind its `waymark-proxy`, and a
# client-side proxy whose upstream `web` listens on 127.0.0.1:9000. It prints the
# commands that show requests spread over the instances, an instance failing its
# check and leaving the rotation, the registry losing a node without a failed
# request, and mutual TLS between the proxies (leaves from the registry's CA) with an
# intention denying and allowing the client; Ctrl-C stops everything.
#
#   scripts/mesh-demo.sh           # build (release), start, print the commands, wait
#   scripts/mesh-demo.sh --check   # run those steps itself and fail if one does not hold
#
# Environment: BIN_DIR (use binaries from there, skip the build), SKIP_BUILD=1 (use
# ${CARGO_TARGET_DIR:-target}/release as is), DEMO_DIR (work dir; default a temp dir).
# Ports: registry 8500-8502 (gRPC), 8300-8302, 8510-8512, 8600-8602 (DNS); apps
# 18081-18083; their proxies' inbound 21001-21003 and admin 19001-19003; the client
# proxy's upstream 9000 and admin 19000.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHECK=0
[[ "${1:-}" == "--check" ]] && CHECK=1

if [[ -z "${BIN_DIR:-}" ]]; then
    BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        "$ROOT/scripts/install-deps.sh" build
        (cd "$ROOT" && cargo build --release -p waymark-registry -p waymark-proxy)
    fi
fi
for b in waymark waymark-proxy waymark-sample-app; do
    [[ -x "$BIN_DIR/$b" ]] || { echo "error: $BIN_DIR/$b not found (build it, or set BIN_DIR)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "error: curl is needed (apt-get install curl)" >&2; exit 1; }

WORK=${DEMO_DIR:-$(mktemp -d /tmp/waymark-mesh-demo.XXXXXX)}
mkdir -p "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REGISTRY='addrs = ["127.0.0.1:8500", "127.0.0.1:8501", "127.0.0.1:8502"]'

# Waits up to 60 s for a command to succeed.
wait_until() {
    local what=$1; shift
    for _ in $(seq 600); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "error: timed out waiting for $what (logs in $WORK)" >&2
    exit 1
}

"$BIN_DIR/waymark" dev --data-dir "$WORK/registry" >"$WORK/dev.log" 2>&1 &
PIDS+=($!)
wait_until "the dev cluster's leader" "$BIN_DIR/waymark" services --addr 127.0.0.1:8500 --timeout 2s

for i in 1 2 3; do
    "$BIN_DIR/waymark-sample-app" --listen "127.0.0.1:1808$i" --name "web-$i" >"$WORK/app-$i.log" 2>&1 &
    PIDS+=($!)
    cat >"$WORK/web-$i.toml" <<EOF
[registry]
$REGISTRY

[service]
name = "web"
id = "web-$i"
port = 1808$i

[[service.checks]]
kind = "http"
target = "http://127.0.0.1:1808$i/health"
interval = "1s"
timeout = "500ms"

[inbound]
listen = "127.0.0.1:2100$i"

[admin]
listen = "127.0.0.1:1900$i"

[drain]
grace = "2s"

[mesh]
mtls = true

[log]
format = "text"
EOF
    "$BIN_DIR/waymark-proxy" --config "$WORK/web-$i.toml" >"$WORK/proxy-web-$i.log" 2>&1 &
    PIDS+=($!)
done

cat >"$WORK/client.toml" <<EOF
[registry]
$REGISTRY

[service]
name = "client"
port = 18080

[inbound]
listen = "127.0.0.1:21000"

[admin]
listen = "127.0.0.1:19000"

[[upstreams]]
service = "web"
listen = "127.0.0.1:9000"
protocol = "http"
policy = "round_robin"

[mesh]
mtls = true

[log]
format = "text"
EOF
"$BIN_DIR/waymark-proxy" --config "$WORK/client.toml" >"$WORK/proxy-client.log" 2>&1 &
PIDS+=($!)

endpoints() { curl -sf 127.0.0.1:19000/endpoints | grep -c '"id": "web-'; }
has_endpoints() { [[ "$(endpoints)" == "$1" ]]; }
wait_until "three endpoints at the client proxy" has_endpoints 3
wait_until "the client proxy's leaf certificate" curl -sf 127.0.0.1:19000/ready

if [[ $CHECK == 0 ]]; then
    cat <<EOF
The mesh is up (work dir $WORK):
  registry   127.0.0.1:8500-8502 (waymark dev)
  web-1..3   apps on 127.0.0.1:18081-18083, their proxies' inbound on 21001-21003
  client     proxy with upstream "web" on 127.0.0.1:9000, admin on 127.0.0.1:19000

Requests spread over the instances (one per line):
  for i in \$(seq 9); do curl -s 127.0.0.1:9000/; done

What the client proxy routes to, and its metrics:
  curl -s 127.0.0.1:19000/endpoints
  curl -s 127.0.0.1:19000/metrics | grep waymark_proxy_upstream

An instance fails its health check and leaves the rotation (and DNS), then returns:
  curl -X POST 127.0.0.1:18082/fail
  for i in \$(seq 6); do curl -s 127.0.0.1:9000/; done        # web-1 and web-3 only
  $BIN_DIR/waymark instances web --addr 127.0.0.1:8500
  dig @127.0.0.1 -p 8600 web.service.waymark SRV +short
  curl -X POST 127.0.0.1:18082/recover

Every proxy-to-proxy hop is mutual TLS with SPIFFE identities from the registry's CA;
an intention denies the client, then the default (allow) applies again:
  $BIN_DIR/waymark ca roots --addr 127.0.0.1:8500
  curl -s 127.0.0.1:19001/metrics | grep waymark_proxy_mesh_inbound
  $BIN_DIR/waymark intention create client web --action deny --addr 127.0.0.1:8500
  curl -s 127.0.0.1:9000/                                     # 502: web's proxies refuse client
  $BIN_DIR/waymark intention check client web --addr 127.0.0.1:8500
  $BIN_DIR/waymark intention delete client web --addr 127.0.0.1:8500
  curl -s 127.0.0.1:21001/                                    # plaintext to a mesh port: refused

The registry loses its leader without a single failed request:
  while true; do curl -sf 127.0.0.1:9000/ >/dev/null || echo FAILED; done &
  $BIN_DIR/waymark status --addr 127.0.0.1:8500     # the leader's node id
  pkill -f 'waymark server --node-id <LEADER> '
  $BIN_DIR/waymark status --addr 127.0.0.1:8500,127.0.0.1:8501,127.0.0.1:8502
  kill %1

Ctrl-C stops everything.
EOF
    wait "${PIDS[0]}"
    exit 0
fi

# --check: the same steps, asserted.
fail() { echo "mesh-demo check FAILED: $*" >&2; exit 1; }
served=$(for i in $(seq 9); do curl -sf 127.0.0.1:9000/; done | sort | uniq -c | awk '{print $2"="$1}' | xargs)
[[ "$served" == "web-1=3 web-2=3 web-3=3" ]] || fail "requests not spread evenly: $served"
echo "spread: $served"

curl -sf -X POST 127.0.0.1:18082/fail >/dev/null
wait_until "web-2 to leave the rotation" has_endpoints 2
served=$(for i in $(seq 6); do curl -sf 127.0.0.1:9000/; done | sort -u | xargs)
[[ "$served" == "web-1 web-3" ]] || fail "web-2 still served: $served"
echo "web-2 failing its check: served by $served"
curl -sf -X POST 127.0.0.1:18082/recover >/dev/null
wait_until "web-2 to return" has_endpoints 3

denied() { ! curl -sf 127.0.0.1:9000/; }
"$BIN_DIR/waymark" intention create client web --action deny --addr 127.0.0.1:8500 >/dev/null
wait_until "web's proxies to refuse client (intention deny)" denied
"$BIN_DIR/waymark" intention delete client web --addr 127.0.0.1:8500 >/dev/null
wait_until "client to be allowed again" curl -sf 127.0.0.1:9000/
curl -sf --max-time 5 127.0.0.1:21001/ >/dev/null && fail "plaintext to a mesh port was served"
echo "mTLS: an intention denied client and its deletion allowed it again; plaintext refused"

ALL=127.0.0.1:8500,127.0.0.1:8501,127.0.0.1:8502
leader=$("$BIN_DIR/waymark" status --addr 127.0.0.1:8500 --json | sed -n 's/.*"leader_id": \([0-9]*\).*/\1/p')
[[ -n "$leader" ]] || fail "no leader in waymark status"
failed=0
total=0
for n in $(seq 400); do
    if [[ $n == 100 ]]; then
        pkill -f "waymark server --node-id $leader " || fail "could not stop the leader (node $leader)"
    fi
    total=$((total + 1))
    curl -sf 127.0.0.1:9000/ >/dev/null || failed=$((failed + 1))
done
wait_until "a new leader" "$BIN_DIR/waymark" services --addr "$ALL" --timeout 2s
# A change after the leader's loss still reaches the client proxy.
curl -sf -X POST 127.0.0.1:18083/fail >/dev/null
wait_until "web-3 to leave the rotation after the failover" has_endpoints 2
[[ $failed == 0 ]] || fail "$failed of $total requests failed while the registry lost its leader"
echo "registry leader (node $leader) lost: 0 of $total requests failed; changes still propagate"
echo "mesh-demo check passed"
