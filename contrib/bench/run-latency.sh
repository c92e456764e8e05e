#!/usr/bin/env bash
# Benchmark: latency of `docker run --rm busybox true` through the real docker
# CLI, against Berth and (with --docker) against Debian's dockerd side by side.
# Run by hand, as root, with Berth running (contrib/setup.sh):
#
#   bash contrib/bench/run-latency.sh [--docker] [--runs N]
#
# The Docker daemon is started with its own data-root, exec-root, socket and
# bridge, and --iptables=false so it leaves the host's firewall alone; it is
# stopped again at the end.
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
cmds=("DOCKER_HOST=$berth docker run --rm busybox true")
names=(berth)

if [ $with_docker = 1 ]; then
  dir=$(mktemp -d /tmp/bench-dockerd.XXXX)
  . contrib/bench/dockerd.sh
  trap 'kill $DOCKERD_PID 2>/dev/null || true; wait $DOCKERD_PID 2>/dev/null || true; ip link del bench-docker0 2>/dev/null || true; umount -R "$dir" 2>/dev/null || true; rm -rf "$dir"' EXIT
  start_bench_dockerd "$dir" bench-docker0 172.31.250.1/24 bench
  DOCKER_HOST=unix://$dir/docker.sock docker load -i "$image" >/dev/null
  cmds+=("DOCKER_HOST=unix://$dir/docker.sock docker run --rm --network none busybox true")
  names+=(docker)
fi

args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
json=()
[ -z "${BENCH_JSON:-}" ] || json=(--export-json "$BENCH_JSON")
hyperfine -N --warmup 3 --runs "$runs" "${json[@]}" "${args[@]}" 2>/dev/null || hyperfine --warmup 3 --runs "$runs" "${json[@]}" "${args[@]}"
