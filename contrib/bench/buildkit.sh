#!/usr/bin/env bash
# Benchmark: `docker build` through buildx (BuildKit's API on /grpc and
# /session, no DOCKER_BUILDKIT set), against Berth and (with --docker)
# Debian's dockerd with its embedded BuildKit, side by side:
#   - uncached: a ten-step Dockerfile (FROM busybox, a COPY, eight RUNs)
#     with --no-cache;
#   - cached: the same, unchanged;
#   - cache-mount: a one-line source change before a step that installs
#     "packages" into a RUN --mount=type=cache directory (64 MB made once,
#     then only checked), so only the cache mount saves the work;
#   - stages: three independent stages of one 0.5 s RUN each and a last
#     one copying from them, with --no-cache (about 0.5 s when the three
#     run at once, 1.5 s in order).
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
mkdir -p "$ctx/stages"
{
  for s in a b c; do
    echo "FROM busybox AS $s"
    echo "RUN sleep 0.5 && echo $s > /$s"
  done
  echo "FROM busybox"
  for s in a b c; do echo "COPY --from=$s /$s /$s"; done
} > "$ctx/stages/Dockerfile"
echo "version 0" > "$ctx/mount/src.txt"
cat > "$ctx/mount/Dockerfile" <<'EOF'
FROM busybox
COPY src.txt /src.txt
RUN --mount=type=cache,target=/var/cache/pkgs sh -c '[ -f /var/cache/pkgs/deps ] || dd if=/dev/urandom of=/var/cache/pkgs/deps bs=1M count=64 2>/dev/null; ls -l /var/cache/pkgs/deps > /deps.list; cat /src.txt > /out'
EOF

. contrib/bench/dockerd.sh
hosts=()
trap 'bench_daemons_stop; rm -rf "$ctx"' EXIT
bench_daemons $with_docker buildkit
for h in "${hosts[@]}"; do
  DOCKER_HOST=$h docker load -i "$image" >/dev/null
done

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
  args+=(-n "${names[$i]} stages" --prepare true "DOCKER_HOST=$h docker build -q --no-cache -t bench-bk-stages $ctx/stages")
done
json=()
[ -z "${BENCH_JSON:-}" ] || json=(--export-json "$BENCH_JSON")
hyperfine --warmup 1 --runs "$runs" "${json[@]}" "${args[@]}"
for h in "${hosts[@]}"; do
  DOCKER_HOST=$h docker rmi bench-bk bench-bk-mount bench-bk-stages >/dev/null 2>&1 || true
  DOCKER_HOST=$h docker buildx prune -af >/dev/null 2>&1 || true
done
