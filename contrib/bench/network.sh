#!/usr/bin/env bash
# Benchmark: `docker run --rm --network <user-defined> busybox true` and
# `docker network create` + `rm`, through the real docker CLI, against
# Berth and (with --docker) Debian's dockerd side by side (its own bridge,
# --iptables=false). Run by hand, as root, with Berth running
# (contrib/setup.sh):
#
#   bash contrib/bench/network.sh [--docker] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=20
with_docker=0
while [ $# -gt 0 ]; do
  case $1 in
    --docker) with_docker=1 ;;
    --runs) runs=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command -v hyperfine >/dev/null || { echo "hyperfine missing: bash contrib/setup.sh --deps" >&2; exit 1; }
image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image" >/dev/null

berth=${BERTH_HOST:-unix:///run/berth/docker.sock}
hosts=("$berth")
names=(berth)
cleanup() {
  for h in "${hosts[@]}"; do
    DOCKER_HOST=$h docker network rm benchnet >/dev/null 2>&1 || true
    DOCKER_HOST=$h docker network rm benchnet2 >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
if [ $with_docker = 1 ]; then
  dir=$(mktemp -d /tmp/bench-dockerd.XXXX)
  . contrib/bench/dockerd.sh
  trap 'cleanup; kill $DOCKERD_PID 2>/dev/null || true; wait $DOCKERD_PID 2>/dev/null || true; ip link del bench-docker4 2>/dev/null || true; umount -R "$dir" 2>/dev/null || true; rm -rf "$dir"' EXIT
  start_bench_dockerd "$dir" bench-docker4 172.31.252.1/24 benchnet
  hosts+=("unix://$dir/docker.sock")
  names+=(docker)
fi

args=()
for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  DOCKER_HOST=$h docker load -i "$image" >/dev/null
  DOCKER_HOST=$h docker network rm benchnet >/dev/null 2>&1 || true
  DOCKER_HOST=$h docker network create benchnet >/dev/null
  args+=(-n "${names[$i]} run --network" "DOCKER_HOST=$h docker run --rm --network benchnet busybox true")
  args+=(-n "${names[$i]} network create+rm" "DOCKER_HOST=$h docker network create benchnet2 >/dev/null && DOCKER_HOST=$h docker network rm benchnet2 >/dev/null")
done
json=()
[ -z "${BENCH_JSON:-}" ] || json=(--export-json "$BENCH_JSON")
hyperfine --warmup 2 --runs "$runs" "${json[@]}" "${args[@]}"
