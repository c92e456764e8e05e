#!/usr/bin/env bash
# Benchmark: `docker pull` of a multi-layer image (busybox plus LAYERS layers
# of MB_PER_LAYER MB of random, incompressible data) from a local registry
# (Debian's docker-registry on 127.0.0.1), Berth and Debian's dockerd side by
# side, each on its own private data-root. Reports wall time and the CPU the
# daemon spent (utime+stime from /proc), per pull, over RUNS pulls each.
# Run by hand, as root, after `cargo build --release`:
#
#   bash contrib/bench/pull.sh [--runs N] [--layers N] [--mb N] [--no-docker]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=5 layers=6 mb=33 with_docker=1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift ;;
    --layers) layers=$2; shift ;;
    --mb) mb=$2; shift ;;
    --no-docker) with_docker=0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command -v docker-registry >/dev/null || { echo "docker-registry missing: bash contrib/setup.sh --deps" >&2; exit 1; }
bin=$PWD/target/release
image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image" >/dev/null

dir=$(mktemp -d /tmp/bench-pull.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # berth-core outlives berthd by design; this one is ours to stop.
  pkill -f "berth-core --address $dir/" 2>/dev/null || true
  ip link del bench-pull0 2>/dev/null || true
  umount -R "$dir/docker" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat >"$dir/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/registry
http:
  addr: $reg
EOF
docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
pids+=($!)

mkdir -p "$dir/berth"
"$bin/berthd" -H "unix://$dir/berth/docker.sock" --data-root "$dir/berth/data" --exec-root "$dir/berth/exec" >"$dir/berth/log" 2>&1 &
berthd_pid=$!
pids+=($berthd_pid)
B="env DOCKER_HOST=unix://$dir/berth/docker.sock DOCKER_CONFIG=$dir/dcfg docker"
for _ in $(seq 1 100); do $B version >/dev/null 2>&1 && break; sleep 0.1; done

# The image: made with Berth (one commit per layer), pushed once.
name=$reg/bench/layers:1
$B load -i "$image" >/dev/null
base=busybox
for i in $(seq 1 "$layers"); do
  $B run --name "layer$i" "$base" sh -c "head -c $((mb * 1000000)) /dev/urandom > /data$i" >/dev/null
  $B commit "layer$i" "bench-layer:$i" >/dev/null
  $B rm "layer$i" >/dev/null
  base=bench-layer:$i
done
$B tag "$base" "$name"
$B push "$name" >/dev/null
$B rmi $(for i in $(seq 1 "$layers"); do echo "bench-layer:$i"; done) "$name" busybox >/dev/null
echo "image: $name, busybox + $layers layers x $mb MB (random)"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# measure NAME PID CLIENT: pulls RUNS times from a clean store.
measure() {
  local label=$1 pid=$2
  shift 2
  local total_wall=0 total_cpu=0
  for r in $(seq 1 "$runs"); do
    "$@" rmi -f "$name" >/dev/null 2>&1 || true
    "$@" image prune -af >/dev/null 2>&1 || true
    sync
    local c0 t0 t1 c1
    c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    "$@" pull "$name" >/dev/null
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$pid")
    local wall cpu
    wall=$(awk "BEGIN{print $t1 - $t0}")
    cpu=$(awk "BEGIN{print ($c1 - $c0) / $hz}")
    printf '%-7s run %d: %6.2f s wall, %6.2f s daemon CPU\n' "$label" "$r" "$wall" "$cpu"
    total_wall=$(awk "BEGIN{print $total_wall + $wall}")
    total_cpu=$(awk "BEGIN{print $total_cpu + $cpu}")
  done
  printf '%-7s mean:  %6.2f s wall, %6.2f s daemon CPU\n' "$label" "$(awk "BEGIN{print $total_wall / $runs}")" "$(awk "BEGIN{print $total_cpu / $runs}")"
}

measure berth "$berthd_pid" $B

if [ $with_docker = 1 ]; then
  . contrib/bench/dockerd.sh
  start_bench_dockerd "$dir/docker" bench-pull0 172.31.251.1/24 benchpull
  pids+=($DOCKERD_PID)
  D="env DOCKER_HOST=unix://$dir/docker/docker.sock DOCKER_CONFIG=$dir/dcfg docker"
  measure docker "$DOCKERD_PID" $D
fi
