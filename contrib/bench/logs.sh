#!/usr/bin/env bash
# Benchmark: a container writing 500 MB to stdout, then `docker logs | wc -c`
# on it, against Berth and (with --docker) Debian's dockerd side by side,
# and the same pipeline on the host (into a file on the same filesystem as
# the data-root) for reference. Run by hand, as root, with Berth running
# (contrib/setup.sh):
#
#   bash contrib/bench/logs.sh [--docker] [--runs N] [--mb N] [--coreutils]
#                              [--log-driver D [--log-opt K=V]...]
#
# The container runs busybox's yes and head unless --coreutils: then it runs
# the host's GNU yes and head (contrib/bench/make-coreutils-image.sh), the
# binaries of the host figure. busybox's pair alone takes ~2.8 s here.
#
# --log-driver local: the driver whose files are cheap to write (Berth's
# format writes ~1 byte per byte of output, json-file ~3); it rotates by
# default (20 MiB x 5), so `docker logs` then reads back the last 100 MB.
#
# Beside the wall times it prints the CPU the writing cost: the container's
# shim (berth-shim, or containerd-shim-runc-v2), counted by `perf stat`
# attached to it until it exits, and the daemons' (berthd + berth-core, or
# dockerd + containerd: dockerd writes Docker's log files itself).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=3
mb=500
with_docker=0
run_args=()
image_name=busybox
while [ $# -gt 0 ]; do
  case $1 in
    --docker) with_docker=1 ;;
    --runs) runs=$2; shift ;;
    --mb) mb=$2; shift ;;
    --coreutils) image_name=berth-bench/coreutils ;;
    --log-driver|--log-opt) run_args+=("$1" "$2"); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
bytes=$((mb * 1000000))
image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image" >/dev/null
pipeline="yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c $bytes"

. contrib/bench/dockerd.sh # start_bench_dockerd, cpu_seconds
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

# The CPU seconds a process uses from now until it exits, written to a
# file by `perf stat` attached to it (in the background: PERF_PID).
count_cpu_until_exit() { # PID FILE
  PERF_PID=
  if command -v perf >/dev/null; then
    perf stat -x, -e task-clock -p "$1" -o "$2" 2>/dev/null &
    PERF_PID=$!
  fi
}
task_seconds() { # FILE: what count_cpu_until_exit wrote, in seconds
  awk -F, '/task-clock/ { printf "%.2f", $1 / 1000 }' "$1" 2>/dev/null || true
}

# One engine: write, then read back; prints the wall times and CPU.
measure() {
  local name=$1 host=$2 daemons=$3
  DOCKER_HOST=$host docker load -i "$image" >/dev/null
  if [ "$image_name" != busybox ]; then bash contrib/bench/make-coreutils-image.sh "$host"; fi
  for _ in $(seq 1 "$runs"); do
    sync
    local t0 id t1 n t2 pid shim before after perf_out
    PERF_PID=
    perf_out=$(mktemp)
    before=$(cpu_seconds $daemons)
    t0=$(now)
    id=$(DOCKER_HOST=$host docker run -d ${run_args[@]+"${run_args[@]}"} "$image_name" sh -c "$pipeline")
    pid=$(DOCKER_HOST=$host docker inspect -f '{{.State.Pid}}' "$id")
    shim=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [ -z "$shim" ] || count_cpu_until_exit "$shim" "$perf_out"
    DOCKER_HOST=$host docker wait "$id" >/dev/null
    t1=$(now)
    after=$(cpu_seconds $daemons)
    [ -z "${PERF_PID:-}" ] || wait "$PERF_PID" || true # perf ends with the shim
    n=$(DOCKER_HOST=$host docker logs "$id" | wc -c)
    t2=$(now)
    echo "$name write $(secs "$t0" "$t1") s, logs|wc -c $(secs "$t1" "$t2") s ($n bytes);" \
      "CPU while writing: shim $(task_seconds "$perf_out") s, $daemons $(echo "$after - $before" | bc) s"
    rm -f "$perf_out"
    DOCKER_HOST=$host docker rm "$id" >/dev/null
  done
}

for _ in $(seq 1 "$runs"); do
  t0=$(now)
  sh -c "$pipeline" > /var/tmp/bench-logs.out
  echo "host write $(secs "$t0" "$(now)") s (into /var/tmp)"
  rm -f /var/tmp/bench-logs.out
done
measure berth "${BERTH_HOST:-unix:///run/berth/docker.sock}" "berthd berth-core"

if [ $with_docker = 1 ]; then
  dir=$(mktemp -d /var/tmp/bench-dockerd.XXXX)
  trap 'kill $DOCKERD_PID 2>/dev/null || true; wait $DOCKERD_PID 2>/dev/null || true; ip link del bench-docker1 2>/dev/null || true; umount -R "$dir" 2>/dev/null || true; rm -rf "$dir"' EXIT
  start_bench_dockerd "$dir" bench-docker1 172.31.251.1/24 benchlogs
  measure docker "unix://$dir/docker.sock" "dockerd containerd"
fi
