#!/usr/bin/env bash
# Benchmark: latency of `docker exec <running container> true` through the
# real docker CLI, against Berth and (with --docker) Debian's dockerd side
# by side. Run by hand, as root, with Berth running (contrib/setup.sh):
#
#   bash contrib/bench/exec-latency.sh [--docker] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=30
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
DOCKER_HOST=$berth docker load -i "$image" >/dev/null
b=$(DOCKER_HOST=$berth docker run -d busybox sleep 100000)
cleanup() { DOCKER_HOST=$berth docker rm -f "$b" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cmds=("DOCKER_HOST=$berth docker exec $b true")
names=(berth)

if [ $with_docker = 1 ]; then
  dir=$(mktemp -d /tmp/bench-dockerd.XXXX)
  . contrib/bench/dockerd.sh
  trap 'cleanup; DOCKER_HOST=unix://$dir/docker.sock docker rm -f "$d" >/dev/null 2>&1; kill $DOCKERD_PID 2>/dev/null || true; wait $DOCKERD_PID 2>/dev/null || true; ip link del bench-docker2 2>/dev/null || true; umount -R "$dir" 2>/dev/null || true; rm -rf "$dir"' EXIT
  start_bench_dockerd "$dir" bench-docker2 172.31.252.1/24 benchexec
  DOCKER_HOST=unix://$dir/docker.sock docker load -i "$image" >/dev/null
  d=$(DOCKER_HOST=unix://$dir/docker.sock docker run -d --network none busybox sleep 100000)
  cmds+=("DOCKER_HOST=unix://$dir/docker.sock docker exec $d true")
  names+=(docker)
fi

args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
json=()
[ -z "${BENCH_JSON:-}" ] || json=(--export-json "$BENCH_JSON")
hyperfine -N --warmup 3 --runs "$runs" "${json[@]}" "${args[@]}" 2>/dev/null || hyperfine --warmup 3 --runs "$runs" "${json[@]}" "${args[@]}"
