#!/usr/bin/env bash
# Benchmark: `docker compose up -d` and `docker compose down -t 1` of a
# project of N services, against Berth and (with --docker) Debian's dockerd
# side by side. Each service runs busybox with a shell that exits at once
# on SIGTERM; one service in four publishes a port on 127.0.0.1; all share
# the project's network, as compose makes it. `up` is timed from nothing
# (the project brought down before each run, untimed), `down` from the
# project up. Run by hand, as root, with Berth running (contrib/setup.sh,
# or BERTH_HOST=unix:///path/to.sock):
#
#   bash contrib/bench/compose.sh [--docker] [--runs N] [--services 20,100]
#
# After the timings it prints, per daemon, the CPU seconds its processes
# used for one up and one down of the first size.
set -euo pipefail
cd "$(dirname "$0")/../.."
. contrib/bench/dockerd.sh # bench_daemons, bench_daemons_stop, cpu_seconds
runs=5
sizes=20,100
with_docker=0
while [ $# -gt 0 ]; do
  case $1 in
    --docker) with_docker=1 ;;
    --runs) runs=$2; shift ;;
    --services) sizes=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command -v hyperfine >/dev/null || { echo "hyperfine missing: bash contrib/setup.sh --deps" >&2; exit 1; }
docker compose version >/dev/null || { echo "docker compose missing: bash contrib/setup.sh --deps" >&2; exit 1; }
image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image" >/dev/null

work=$(mktemp -d /tmp/bench-compose.XXXX)
hosts=()
cleanup() {
  for h in "${hosts[@]}"; do
    for n in ${sizes//,/ }; do
      DOCKER_HOST=$h docker compose -f "$work/$n.yaml" -p "bench$n" down -t 0 >/dev/null 2>&1 || true
    done
  done
  bench_daemons_stop
  rm -rf "$work"
}
trap cleanup EXIT
bench_daemons $with_docker compose
for h in "${hosts[@]}"; do DOCKER_HOST=$h docker load -i "$image" >/dev/null; done

# The project file of N services.
for n in ${sizes//,/ }; do
  {
    echo "services:"
    for i in $(seq 1 "$n"); do
      echo "  s$i:"
      echo "    image: busybox"
      echo "    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3600 & wait\"]"
      if [ $((i % 4)) = 1 ]; then echo "    ports: [\"127.0.0.1::80\"]"; fi
    done
  } >"$work/$n.yaml"
done

compose() { # HOST SIZE ARGS...: the command line of one compose call
  local host=$1 n=$2
  shift 2
  echo "DOCKER_HOST=$host docker compose -f $work/$n.yaml -p bench$n $* >/dev/null 2>&1"
}

# hyperfine pairs the n-th --name and --prepare with the n-th command.
labels=() prepares=() commands=()
for n in ${sizes//,/ }; do
  for i in "${!hosts[@]}"; do
    labels+=(-n "${names[$i]} up-$n")
    prepares+=(--prepare "$(compose "${hosts[$i]}" "$n" down -t 0)")
    commands+=("$(compose "${hosts[$i]}" "$n" up -d)")
    labels+=(-n "${names[$i]} down-$n")
    prepares+=(--prepare "$(compose "${hosts[$i]}" "$n" up -d)")
    commands+=("$(compose "${hosts[$i]}" "$n" down -t 1)")
  done
done
json=()
[ -z "${BENCH_JSON:-}" ] || json=(--export-json "$BENCH_JSON")
hyperfine --runs "$runs" "${json[@]}" "${labels[@]}" "${prepares[@]}" "${commands[@]}"

# CPU of each daemon's processes for one up and one down of the first size.
first=${sizes%%,*}
for i in "${!hosts[@]}"; do
  read -r -a procs <<<"${daemons[$i]}"
  for verb in "up -d" "down -t 1"; do
    before=$(cpu_seconds "${procs[@]}")
    bash -c "$(compose "${hosts[$i]}" "$first" "$verb")"
    after=$(cpu_seconds "${procs[@]}")
    awk -v n="${names[$i]}" -v c="$first" -v v="${verb%% *}" -v d="${daemons[$i]}" -v a="$after" -v b="$before" \
      'BEGIN { printf "%-6s %s-%s: daemon CPU %.2f s (%s)\n", n, v, c, a - b, d }'
  done
done
