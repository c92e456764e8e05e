#!/usr/bin/env bash
# Benchmark: `docker build` through buildx (BuildKit's API on /grpc and
# /session, no DOCKER_BUILDKIT set), against Berth and (with --docker)
# Debian's dockerd with its embedded BuildKit, side by side:
#   - uncached: a ten-step Dockerfile (FROM busybox, a COPY, eight RUNs)
#     with --no-cache;
#   - cached: the same, unchanged;
#   - cache-mount: a one-line source change before a step that installs
#     "packages" into a RUN --mount=type=cache directory (64 MB made once,
#     then only checked), so only the cache mount saves the work.
# Run by hand, as root, with Berth running (contrib/setup.sh, or
# BERTH_HOST=unix:///path/to.sock) and buildx installed (setup.sh --deps):
#
#   bash contrib/bench/buildkit.sh [--docker] [--runs N]
#
# With BENCH_JSON=file, hyperfine's results are also written there (the
# entry point contrib/bench/all.sh reads them).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=10
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
docker buildx version >/dev/null 2>&1 || { echo "buildx missing: bash contrib/setup.sh --deps" >&2; exit 1; }
image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image" >/dev/null
unset DOCKER_BUILDKIT

ctx=$(mktemp -d /tmp/bench-buildkit.XXXX)
mkdir -p "$ctx/steps" "$ctx/mount"
echo "some source" > "$ctx/steps/src.txt"
{
  echo "FROM busybox"
  echo "COPY src.txt /src.txt"
  for i in 1 2 3 4 5 6 7 8; do echo "RUN echo step $i > /step$i"; done
} > "$ctx/steps/Dockerfile"
echo "version 0" > "$ctx/mount/src.txt"
cat > "$ctx/mount/Dockerfile" <<'EOF'
FROM busybox
COPY src.txt /src.txt
RUN --mount=type=cache,target=/var/cache/pkgs sh -c '[ -f /var/cache/pkgs/deps ] || dd if=/dev/urandom of=/var/cache/pkgs/deps bs=1M count=64 2>/dev/null; ls -l /var/cache/pkgs/deps > /deps.list; cat /src.txt > /out'
EOF

berth=${BERTH_HOST:-unix:///run/berth/docker.sock}
DOCKER_HOST=$berth docker load -i "$image" >/dev/null
cleanup() { rm -rf "$ctx"; }
trap cleanup EXIT
hosts=("$berth")
names=(berth)

if [ $with_docker = 1 ]; then
  dir=$(mktemp -d /tmp/bench-dockerd.XXXX)
  . contrib/bench/dockerd.sh
  trap 'cleanup; kill $DOCKERD_PID 2>/dev/null || true; wait $DOCKERD_PID 2>/dev/null || true; ip link del bench-docker5 2>/dev/null || true; umount -R "$dir" 2>/dev/null || true; rm -rf "$dir"' EXIT
  start_bench_dockerd "$dir" bench-docker5 172.31.251.1/24 benchbuildkit
  DOCKER_HOST=unix://$dir/docker.sock docker load -i "$image" >/dev/null
  hosts+=("unix://$dir/docker.sock")
  names+=(docker)
fi

# buildx keeps its state in the docker config directory: one of our own.
export DOCKER_CONFIG=$ctx/docker-config
args=()
for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  # Warm: the cached case and the cache mount.
  DOCKER_HOST=$h docker build -q -t bench-bk "$ctx/steps" >/dev/null
  DOCKER_HOST=$h docker build -q -t bench-bk-mount "$ctx/mount" >/dev/null
  # --prepare pairs with the commands in order: only the cache-mount case
  # changes its source before each run.
  args+=(-n "${names[$i]} uncached" --prepare true "DOCKER_HOST=$h docker build -q --no-cache -t bench-bk $ctx/steps")
  args+=(-n "${names[$i]} cached" --prepare true "DOCKER_HOST=$h docker build -q -t bench-bk $ctx/steps")
  args+=(-n "${names[$i]} cache-mount" --prepare "date +%s%N > $ctx/mount/src.txt" "DOCKER_HOST=$h docker build -q -t bench-bk-mount $ctx/mount")
done
json=()
[ -z "${BENCH_JSON:-}" ] || json=(--export-json "$BENCH_JSON")
hyperfine --warmup 1 --runs "$runs" "${json[@]}" "${args[@]}"
for h in "${hosts[@]}"; do
  DOCKER_HOST=$h docker rmi bench-bk bench-bk-mount >/dev/null 2>&1 || true
  DOCKER_HOST=$h docker buildx prune -af >/dev/null 2>&1 || true
done
