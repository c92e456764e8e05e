#!/usr/bin/env bash
# Benchmark: `docker stats` of many running containers, and `docker events`
# with many subscribers, against Berth and (with --docker) Debian's dockerd
# side by side. As root, with Berth running (contrib/setup.sh, or
# BERTH_HOST=unix:///path/to.sock):
#
#   bash contrib/bench/stats.sh [--docker] [--containers N] [--subscribers M] [--runs K]
#
# Prints, per daemon:
# - `docker stats --no-stream` of the N containers: hyperfine's mean
#   (BENCH_JSON as the other benchmarks);
# - streaming `docker stats` of the N containers for 10 s: the CPU seconds
#   the daemon's processes used meanwhile (berthd + berth-core, or
#   dockerd + containerd);
# - M `docker events` subscribers while 20 containers are started and
#   removed one after the other: the wall time of those 20 and the
#   daemon's CPU seconds.
# The benchmark's containers are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
. contrib/bench/dockerd.sh # bench_daemons, bench_daemons_stop, cpu_seconds
containers=50
subscribers=50
runs=5
with_docker=0
while [ $# -gt 0 ]; do
  case $1 in
    --docker) with_docker=1 ;;
    --containers) containers=$2; shift ;;
    --subscribers) subscribers=$2; shift ;;
    --runs) runs=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command -v hyperfine >/dev/null || { echo "hyperfine missing: bash contrib/setup.sh --deps" >&2; exit 1; }
image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image" >/dev/null

hosts=()
watchers=()
cleanup() {
  for w in "${watchers[@]}"; do kill "$w" 2>/dev/null || true; done
  bench_daemons_stop
}
trap cleanup EXIT
bench_daemons $with_docker stats

labels=() commands=()
for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  DOCKER_HOST=$h docker load -i "$image" >/dev/null
  for _ in $(seq 1 "$containers"); do
    DOCKER_HOST=$h docker run -d --label berth.bench=stats busybox sleep 3600 >/dev/null
  done
  ids=$(DOCKER_HOST=$h docker ps -q --filter label=berth.bench=stats | tr '\n' ' ')
  labels+=(-n "${names[$i]} stats-no-stream")
  commands+=("DOCKER_HOST=$h docker stats --no-stream $ids")
done
json=()
[ -z "${BENCH_JSON:-}" ] || json=(--export-json "$BENCH_JSON")
hyperfine --runs "$runs" "${json[@]}" "${labels[@]}" "${commands[@]}"

for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  read -r -a procs <<<"${daemons[$i]}"
  # Streaming stats of every container for 10 s.
  before=$(cpu_seconds "${procs[@]}")
  DOCKER_HOST=$h timeout 10 docker stats --format '{{.ID}} {{.CPUPerc}}' >/dev/null 2>&1 || true
  after=$(cpu_seconds "${procs[@]}")
  awk -v n="${names[$i]}" -v c="$containers" -v a="$after" -v b="$before" -v d="${daemons[$i]}" \
    'BEGIN { printf "%-6s streaming stats of %d containers, 10 s: daemon CPU %.2f s (%s)\n", n, c, a - b, d }'

  # Many event subscribers while containers come and go.
  watchers=()
  for _ in $(seq 1 "$subscribers"); do
    DOCKER_HOST=$h docker events --filter type=container >/dev/null 2>&1 &
    watchers+=($!)
  done
  # Every subscriber is connected once the daemon counts them.
  for _ in $(seq 1 100); do
    listeners=$(DOCKER_HOST=$h docker info --format '{{.NEventsListener}}')
    [ "$listeners" -ge "$subscribers" ] && break
    sleep 0.1
  done
  before=$(cpu_seconds "${procs[@]}")
  start=$(date +%s.%N)
  for _ in $(seq 1 20); do
    DOCKER_HOST=$h docker run --rm --label berth.bench=stats busybox true >/dev/null
  done
  end=$(date +%s.%N)
  after=$(cpu_seconds "${procs[@]}")
  for w in "${watchers[@]}"; do kill "$w" 2>/dev/null || true; done
  watchers=()
  awk -v n="${names[$i]}" -v m="$subscribers" -v s="$start" -v e="$end" -v a="$after" -v b="$before" \
    'BEGIN { printf "%-6s 20 x run --rm with %d event subscribers: %.2f s, daemon CPU %.2f s\n", n, m, e - s, a - b }'
done
