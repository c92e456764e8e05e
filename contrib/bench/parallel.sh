#!/usr/bin/env bash
# Benchmark: many `docker run -d` at once (what compose and CI runners do),
# against Berth and (with --docker) Debian's dockerd side by side. Each case
# is COUNTxPARALLEL: COUNT detached busybox containers started by the real
# docker CLI, PARALLEL at a time; the time is from the first CLI start to
# the last CLI exit. The containers are removed before each timed run
# (untimed) and at the end. Run by hand, as root, with Berth running
# (contrib/setup.sh, or BERTH_HOST=unix:///path/to.sock):
#
#   bash contrib/bench/parallel.sh [--docker] [--runs N] [--cases 50x8,200x32]
#
# After the timings it prints, per daemon, the CPU seconds its processes
# used for one run of the first case (berthd + berth-core, or dockerd +
# containerd), beside the whole machine's, so the note can say where the
# time goes.
set -euo pipefail
cd "$(dirname "$0")/../.."
. contrib/bench/dockerd.sh # bench_daemons, bench_daemons_stop, cpu_seconds
runs=3
cases=50x8,200x32
with_docker=0
while [ $# -gt 0 ]; do
  case $1 in
    --docker) with_docker=1 ;;
    --runs) runs=$2; shift ;;
    --cases) cases=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command -v hyperfine >/dev/null || { echo "hyperfine missing: bash contrib/setup.sh --deps" >&2; exit 1; }
image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image" >/dev/null

hosts=()
# Removes the benchmark's containers and waits (at most 60 s) until the
# removal's work in the background (runtime deletes, network teardown)
# is over, so that it does not run during the next timed run.
clear_host() {
  local ids
  ids=$(DOCKER_HOST=$1 docker ps -aq --filter label=berth.bench=parallel)
  [ -z "$ids" ] || DOCKER_HOST=$1 docker rm -f $ids >/dev/null
  local n busy
  for _ in $(seq 1 600); do
    busy=0
    for n in crun runc netavark iptables ip6tables; do
      pgrep -x "$n" >/dev/null && busy=1
    done
    [ "$busy" = 1 ] || return 0
    sleep 0.1
  done
}
cleanup() {
  for h in "${hosts[@]}"; do clear_host "$h" 2>/dev/null || true; done
  bench_daemons_stop
}
trap cleanup EXIT
bench_daemons $with_docker parallel
for h in "${hosts[@]}"; do DOCKER_HOST=$h docker load -i "$image" >/dev/null; done

# The command of one timed run: COUNT starts, PARALLEL at a time.
start_many() {
  local host=$1 count=$2 parallel=$3
  echo "seq 1 $count | DOCKER_HOST=$host xargs -P $parallel -I{} docker run -d --label berth.bench=parallel busybox sleep 3600 >/dev/null"
}

# hyperfine pairs the n-th --name and --prepare with the n-th command.
labels=() prepares=() commands=()
for c in ${cases//,/ }; do
  for i in "${!hosts[@]}"; do
    labels+=(-n "${names[$i]} $c")
    prepares+=(--prepare "bash -c '$(declare -f clear_host); clear_host ${hosts[$i]}'")
    commands+=("$(start_many "${hosts[$i]}" "${c%x*}" "${c#*x}")")
  done
done
json=()
[ -z "${BENCH_JSON:-}" ] || json=(--export-json "$BENCH_JSON")
hyperfine --runs "$runs" "${json[@]}" "${labels[@]}" "${prepares[@]}" "${commands[@]}"

# CPU of each daemon's processes for one run of the first case.
busy() { awk '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / 100 }' /proc/stat; }
first=${cases%%,*}
for i in "${!hosts[@]}"; do
  clear_host "${hosts[$i]}"
  read -r -a procs <<<"${daemons[$i]}"
  before=$(cpu_seconds "${procs[@]}"); machine=$(busy)
  bash -c "$(start_many "${hosts[$i]}" "${first%x*}" "${first#*x}")"
  after=$(cpu_seconds "${procs[@]}"); machine_after=$(busy)
  awk -v n="${names[$i]}" -v c="$first" -v d="${daemons[$i]}" -v a="$after" -v b="$before" \
    -v ma="$machine_after" -v mb="$machine" \
    'BEGIN { printf "%-6s %s: daemon CPU %.2f s (%s), whole machine %.2f s\n", n, c, a - b, d, ma - mb }'
done
