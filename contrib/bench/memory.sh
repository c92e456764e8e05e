#!/usr/bin/env bash
# Benchmark: memory of Berth's processes. Run by hand, as root, with Berth
# running (contrib/setup.sh):
#
#   bash contrib/bench/memory.sh [N]     (N idle containers, default 10)
#
# Prints the USS (private memory, from /proc/PID/smaps_rollup) of each
# berth-shim, and the RSS of berthd and berth-core while idle.
set -euo pipefail
n=${1:-10}
export DOCKER_HOST=unix:///run/berth/docker.sock
ids=()
for i in $(seq 1 "$n"); do ids+=("$(docker run -d busybox sleep 100000)"); done
trap 'docker rm -f "${ids[@]}" >/dev/null' EXIT
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/smaps_rollup"; }
uss_total=0
for id in "${ids[@]}"; do
  pid=$(docker inspect -f '{{.State.Pid}}' "$id")
  shim=$(awk '/^PPid:/ {print $2}' /proc/$pid/status)
  uss=$(( $(kb "$shim" Private_Clean) + $(kb "$shim" Private_Dirty) ))
  uss_total=$((uss_total + uss))
  printf 'shim %-7s USS %5d KiB  RSS %5d KiB  PSS %5d KiB\n' "$shim" "$uss" "$(kb "$shim" Rss)" "$(kb "$shim" Pss)"
done
echo "mean shim USS: $((uss_total / n)) KiB over $n idle containers"
for name in berthd berth-core; do
  pid=$(pgrep -xo "$name")
  printf '%-10s pid %-7s RSS %6d KiB  USS %6d KiB\n' "$name" "$pid" "$(kb "$pid" Rss)" "$(( $(kb "$pid" Private_Clean) + $(kb "$pid" Private_Dirty) ))"
done
