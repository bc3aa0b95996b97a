#!/usr/bin/env bash
# Installs the system packages Waymark needs, if missing. Usage: install-deps.sh build|test|bench
#   build: a C++ toolchain, libclang (RocksDB bindgen), protoc and the protobuf well-known
#          types (libprotobuf-dev: etcd-client in benches needs google/protobuf/*.proto)
#   test:  build + promtool (Prometheus text check), dig and unbound (DNS tests: a strict
#          resolver in front of the server), protoc (etcd-client in benches),
#          nft + ip (the Jepsen harness: partitions in network namespaces), curl (the
#          mesh demo's check)
#          + Python grpcio, grpcio-health-checking, grpcio-reflection (real gRPC clients
#          for the health and reflection tests), from PyPI
#   bench: build + etcd, knot, dnsperf (baselines measured in the same run)
set -euo pipefail

need_pkgs=(libclang-dev g++ make protobuf-compiler libprotobuf-dev)
case "${1:-build}" in
  build) ;;
  test) need_pkgs+=(prometheus dnsutils unbound protobuf-compiler nftables iproute2 curl) ;;
  bench) need_pkgs+=(protobuf-compiler etcd-server etcd-client knot dnsperf) ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

# Python packages the tests use as independent clients.
if [ "${1:-build}" = test ] &&
  ! python3 -c 'import grpc, grpc_health.v1.health_pb2, grpc_reflection.v1alpha.reflection_pb2' 2>/dev/null; then
  echo "installing Python packages: grpcio grpcio-health-checking grpcio-reflection" >&2
  python3 -m pip install -q grpcio grpcio-health-checking grpcio-reflection
fi

missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing system packages: ${missing[*]}" >&2
  echo "       run this as root, or install them first: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
