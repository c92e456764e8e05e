#!/usr/bin/env bash
# Benchmark: `docker build` of a ten-step Dockerfile (FROM busybox and nine
# RUN steps) with the legacy builder, uncached (--no-cache) and fully
# cached, through the real docker CLI, against Berth and (with --docker)
# Debian's dockerd side by side. Run by hand, as root, with Berth running
# (contrib/setup.sh):
#
#   bash contrib/bench/build.sh [--docker] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=10
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

ctx=$(mktemp -d /tmp/bench-build.XXXX)
{
  echo "FROM busybox"
  for i in 1 2 3 4 5 6 7 8 9; do echo "RUN echo step $i > /step$i"; done
} > "$ctx/Dockerfile"
export DOCKER_BUILDKIT=0

berth=${BERTH_HOST:-unix:///run/berth/docker.sock}
DOCKER_HOST=$berth docker load -i "$image" >/dev/null
cleanup() { rm -rf "$ctx"; }
trap cleanup EXIT
hosts=("$berth")
names=(berth)

if [ $with_docker = 1 ]; then
  dir=$(mktemp -d /tmp/bench-dockerd.XXXX)
  . contrib/bench/dockerd.sh
  trap 'cleanup; kill $DOCKERD_PID 2>/dev/null || true; wait $DOCKERD_PID 2>/dev/null || true; ip link del bench-docker3 2>/dev/null || true; umount -R "$dir" 2>/dev/null || true; rm -rf "$dir"' EXIT
  start_bench_dockerd "$dir" bench-docker3 172.31.253.1/24 benchbuild
  DOCKER_HOST=unix://$dir/docker.sock docker load -i "$image" >/dev/null
  hosts+=("unix://$dir/docker.sock")
  names+=(docker)
fi

args=()
for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  # Warm the cache for the cached case.
  DOCKER_HOST=$h docker build -q -t bench-build "$ctx" >/dev/null
  args+=(-n "${names[$i]} uncached" "DOCKER_HOST=$h docker build -q --no-cache -t bench-build $ctx")
  args+=(-n "${names[$i]} cached" "DOCKER_HOST=$h docker build -q -t bench-build $ctx")
done
json=()
[ -z "${BENCH_JSON:-}" ] || json=(--export-json "$BENCH_JSON")
hyperfine --warmup 1 --runs "$runs" "${json[@]}" "${args[@]}"
for h in "${hosts[@]}"; do
  DOCKER_HOST=$h docker rmi bench-build >/dev/null 2>&1 || true
  DOCKER_HOST=$h docker builder prune -f >/dev/null 2>&1 || true
done
