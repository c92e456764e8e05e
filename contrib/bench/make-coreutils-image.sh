#!/usr/bin/env bash
# Makes the image `berth-bench/coreutils`: the host's own dash (as /bin/sh),
# GNU yes, head and cat, and the libraries they load, so that a benchmark
# runs the very binaries it compares against on the host. (busybox's yes and
# head alone take 2.8 s for the 500 MB pipeline of logs.sh, GNU's 1 s.)
#
#   bash contrib/bench/make-coreutils-image.sh <DOCKER_HOST>
set -euo pipefail
host=$1
dir=$(mktemp -d /tmp/coreutils-image.XXXX)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/usr/bin" "$dir/tmp" "$dir/dev" "$dir/proc" "$dir/sys" "$dir/etc"
cp /bin/dash "$dir/bin/sh"
for b in yes head cat; do cp "/usr/bin/$b" "$dir/usr/bin/"; done
for lib in $(ldd /bin/dash /usr/bin/yes /usr/bin/head /usr/bin/cat | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
  mkdir -p "$dir$(dirname "$lib")"
  cp -L "$lib" "$dir$lib"
done
tar -C "$dir" -c . | DOCKER_HOST=$host docker import -c 'ENV PATH=/usr/bin:/bin' - berth-bench/coreutils >/dev/null
