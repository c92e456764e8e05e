#!/usr/bin/env bash
# Benchmark: raw `GET /containers/json?all=1` (what `docker ps -a`, compose
# and UIs poll) with many containers, some running, against Berth and (with
# --docker) Debian's dockerd side by side. Run by hand, as root, with Berth
# running (contrib/setup.sh, or BERTH_HOST=unix:///path/to.sock):
#
#   bash contrib/bench/ps.sh [--docker] [--containers N] [--running M] [--runs K]
#
# The time is curl's time_total of each request (connect to last byte, no
# process start-up), over K requests: median and 90th percentile in ms.
# The benchmark's containers are removed again at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
containers=200
running=50
runs=50
with_docker=0
while [ $# -gt 0 ]; do
  case $1 in
    --docker) with_docker=1 ;;
    --containers) containers=$2; shift ;;
    --running) running=$2; shift ;;
    --runs) runs=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image" >/dev/null
. contrib/bench/dockerd.sh # bench_daemons, bench_daemons_stop
hosts=()
trap bench_daemons_stop EXIT
bench_daemons $with_docker ps

# N containers, the first M running, the others created and never started.
populate() {
  local h=$1 n
  DOCKER_HOST=$h docker load -i "$image" >/dev/null
  for n in $(seq 1 "$containers"); do
    if [ "$n" -le "$running" ]; then
      DOCKER_HOST=$h docker run -d --label berth.bench=ps busybox sleep 3600 >/dev/null
    else
      DOCKER_HOST=$h docker create --label berth.bench=ps busybox true >/dev/null
    fi
  done
}

measure() {
  local sock=${1#unix://}
  for _ in $(seq 1 "$runs"); do
    curl -s -o /dev/null -w '%{time_total}\n' --unix-socket "$sock" 'http://docker/containers/json?all=1'
  done | sort -n | awk '{ t[NR] = $1 * 1000 } END {
    printf "%.2f ms median, %.2f ms p90\n", t[int((NR + 1) / 2)], t[int(NR * 0.9 + 0.5)] }'
}

for i in "${!hosts[@]}"; do
  populate "${hosts[$i]}"
  printf '%-6s %s containers (%s running): ' "${names[$i]}" "$containers" "$running"
  measure "${hosts[$i]}"
done
