#!/usr/bin/env bash
# Builds the previous release's berthd, berth-core and berth-shim from this
# repository's own history, for the upgrade tests (an installed release
# replaced by this tree's binaries with `berthd upgrade`). The release is
# named in contrib/previous-release ("<tag> <commit>"); the commit is used,
# since a clone may lack tags. Output: target/previous-release/bin, rebuilt
# only when the release named changes.
set -euo pipefail
cd "$(dirname "$0")/.."

read -r tag commit < contrib/previous-release
out=$PWD/target/previous-release
if [ "$(cat "$out/bin/COMMIT" 2>/dev/null)" = "$commit" ]; then
    echo "previous release $tag ($commit) already built in $out/bin"
    exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "previous-release: commit $commit ($tag) is not in this clone's history;" >&2
    echo "fetch it (git fetch --unshallow, or git fetch origin $commit) and run again" >&2
    exit 1
fi
echo "building the previous release $tag ($commit)"
rm -rf "$out/src" "$out/bin"
mkdir -p "$out/src" "$out/bin"
git archive "$commit" | tar -x -C "$out/src"
# A target directory of its own: the tree's own build must not be disturbed.
cargo build --release --locked --manifest-path "$out/src/Cargo.toml" \
    --target-dir "$out/target" -p berth-engine -p berth-core -p berth-shim
for b in berthd berth-core berth-shim; do
    cp "$out/target/release/$b" "$out/bin/$b"
done
echo "$commit" > "$out/bin/COMMIT"
