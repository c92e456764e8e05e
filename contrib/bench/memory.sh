#!/usr/bin/env bash
# Benchmark: memory with N idle containers (default 200), Berth and (with
# --docker) Debian's dockerd side by side. Run by hand, as root, with Berth
# running (contrib/setup.sh, or BERTH_HOST=unix:///path/to.sock):
#
#   bash contrib/bench/memory.sh [--docker] [--containers N]
#
# Prints, per daemon, the RSS and USS (private memory, from
# /proc/PID/smaps_rollup) of the daemon's processes (berthd + berth-core,
# or dockerd + containerd) with the containers running, and the mean USS
# of the per-container process (berth-shim, or containerd-shim-runc-v2).
set -euo pipefail
cd "$(dirname "$0")/../.."
. contrib/bench/dockerd.sh # bench_daemons, bench_daemons_stop
n=200
with_docker=0
while [ $# -gt 0 ]; do
  case $1 in
    --docker) with_docker=1 ;;
    --containers) n=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image" >/dev/null

hosts=()
trap bench_daemons_stop EXIT
bench_daemons $with_docker memory

kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/smaps_rollup"; }
uss() { echo $(($(kb "$1" Private_Clean) + $(kb "$1" Private_Dirty))); }

for i in "${!hosts[@]}"; do
  export DOCKER_HOST=${hosts[$i]}
  docker load -i "$image" >/dev/null
  seq 1 "$n" | xargs -P 8 -I{} docker run -d --label berth.bench=memory busybox sleep 100000 >/dev/null
  # The per-container process: the parent of each container's init.
  total=0 count=0
  for pid in $(docker ps -q --filter label=berth.bench=memory | xargs docker inspect -f '{{.State.Pid}}'); do
    shim=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status")
    total=$((total + $(uss "$shim")))
    count=$((count + 1))
  done
  rss=0 private=0
  for name in ${daemons[$i]}; do
    for pid in $(pgrep -x "$name"); do
      # Only this daemon's: its command line names its socket or root.
      case $name in
        dockerd | containerd) grep -qa "$BENCH_DOCKERD_DIR" "/proc/$pid/cmdline" || continue ;;
      esac
      rss=$((rss + $(kb "$pid" Rss)))
      private=$((private + $(uss "$pid")))
    done
  done
  printf '%-6s %d containers: daemons (%s) RSS %d KiB, USS %d KiB; per-container process mean USS %d KiB\n' \
    "${names[$i]}" "$count" "${daemons[$i]}" "$rss" "$private" "$((total / count))"
  ids=$(docker ps -aq --filter label=berth.bench=memory)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
done
