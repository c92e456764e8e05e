#!/usr/bin/env bash
# Fuzzes the parsers that take hostile input, each for a fixed time:
#   bash contrib/fuzz.sh [seconds per target, default 60] [target ...]
# Targets (engine/fuzz/fuzz_targets): layer_unpack, build_context,
# dockerfile, image_reference, create_body. Needs the nightly toolchain and
# cargo-fuzz (installed here when missing). Findings land in
# engine/fuzz/artifacts/<target>/; replay one with
#   cd engine && cargo +nightly fuzz run <target> <artifact>
set -euo pipefail
cd "$(dirname "$0")/../engine"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(layer_unpack build_context dockerfile image_reference create_body)
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
for t in "${targets[@]}"; do
  echo "== $t: $seconds s"
  # -rss_limit_mb keeps a runaway input from eating the machine; corpus
  # directories persist between runs under engine/fuzz/corpus.
  cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+.*DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|thread .* panicked)" || true
  # A crash makes cargo fuzz fail; say so and stop.
  if ls fuzz/artifacts/"$t"/crash-* >/dev/null 2>&1; then
    echo "$t: crash found, see engine/fuzz/artifacts/$t" >&2
    exit 1
  fi
done
