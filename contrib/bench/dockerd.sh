# Sourced by the benchmarks: starts Debian's dockerd beside Berth, on its own
# data-root, exec-root, socket and bridge, with --iptables=false so that it
# leaves the host's firewall alone.
#
#   start_bench_dockerd DIR BRIDGE CIDR NAMESPACE
# sets DOCKERD_PID and waits until unix://DIR/docker.sock answers; the caller
# stops it (stop_bench_dockerd).
start_bench_dockerd() {
  local dir=$1 bridge=$2 cidr=$3 ns=$4
  command -v dockerd >/dev/null || { echo "dockerd missing: bash contrib/setup.sh --bench" >&2; return 1; }
  mkdir -p "$dir"
  ip link add name "$bridge" type bridge 2>/dev/null || true
  ip addr add "$cidr" dev "$bridge" 2>/dev/null || true
  ip link set "$bridge" up
  dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$dir/docker.sock" --pidfile "$dir/docker.pid" \
    -b "$bridge" --iptables=false --ip-masq=false --containerd-namespace "$ns" --containerd-plugins-namespace "$ns-plugins" \
    >"$dir/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 100); do DOCKER_HOST=unix://$dir/docker.sock docker version >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "dockerd did not come up; see $dir/dockerd.log" >&2
  return 1
}

#   stop_bench_dockerd DIR BRIDGE
# stops the dockerd started by start_bench_dockerd and removes what it
# left: the bridge, mounts under DIR and DIR itself.
stop_bench_dockerd() {
  local dir=$1 bridge=$2
  kill "$DOCKERD_PID" 2>/dev/null || true
  wait "$DOCKERD_PID" 2>/dev/null || true
  ip link del "$bridge" 2>/dev/null || true
  umount -R "$dir" 2>/dev/null || true
  rm -rf "$dir"
}

#   cpu_seconds NAME...
# prints the CPU seconds (user + system) used so far by every process with
# one of these names (berthd berth-core, or dockerd containerd).
cpu_seconds() {
  local n p
  for n in "$@"; do
    for p in $(pgrep -x "$n"); do awk '{ print ($14 + $15) / 100 }' "/proc/$p/stat"; done
  done | awk '{ t += $1 } END { printf "%.2f", t }'
}

#   bench_daemons WITH_DOCKER LABEL
# sets the arrays hosts, names and daemons of a side-by-side benchmark:
# Berth (BERTH_HOST, else /run/berth/docker.sock; its processes berthd and
# berth-core) and, when WITH_DOCKER is 1, a dockerd started beside it
# (dockerd and containerd). bench_daemons_stop removes the containers
# labelled berth.bench=LABEL on each and stops that dockerd. Callers set
# `trap ... EXIT` first, with hosts=() so that it can run at any point.
bench_daemons() {
  BENCH_LABEL=$2
  BENCH_DOCKERD_DIR=
  hosts=("${BERTH_HOST:-unix:///run/berth/docker.sock}")
  names=(berth)
  daemons=("berthd berth-core")
  if [ "$1" = 1 ]; then
    BENCH_DOCKERD_DIR=$(mktemp -d /tmp/bench-dockerd.XXXX)
    start_bench_dockerd "$BENCH_DOCKERD_DIR" bench-docker0 172.31.250.1/24 bench
    hosts+=("unix://$BENCH_DOCKERD_DIR/docker.sock")
    names+=(docker)
    daemons+=("dockerd containerd")
  fi
}

bench_daemons_stop() {
  local h ids
  for h in "${hosts[@]}"; do
    ids=$(DOCKER_HOST=$h docker ps -aq --filter "label=berth.bench=${BENCH_LABEL:-}" 2>/dev/null || true)
    [ -z "$ids" ] || DOCKER_HOST=$h docker rm -f $ids >/dev/null 2>&1 || true
  done
  [ -z "${BENCH_DOCKERD_DIR:-}" ] || stop_bench_dockerd "$BENCH_DOCKERD_DIR" bench-docker0
}
