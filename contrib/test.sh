#!/usr/bin/env bash
# Runs Berth's whole test suite, as root: unit tests of every crate, then the
# compat tests, which drive the real docker CLI against real berthd,
# berth-core, berth-shim, runc and overlayfs. Installs missing Debian
# packages first (contrib/setup.sh --deps).
set -euo pipefail
cd "$(dirname "$0")/.."

bash contrib/setup.sh --deps
# compat-tests/bollard is a workspace of its own (its Cargo.toml says why);
# it shares target/ with the main one.
bollard=(--manifest-path compat-tests/bollard/Cargo.toml)
# The tree is rustfmt-formatted (default settings); keep it so.
cargo fmt --all --check
cargo fmt "${bollard[@]}" --check
# No warnings, and the workspace lints of Cargo.toml ([workspace.lints]).
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo clippy --locked "${bollard[@]}" --target-dir target --all-targets -- -D warnings
cargo build --release --locked -p berth-engine -p berth-core -p berth-shim
# The upgrade tests replace the previous release by this build.
bash contrib/previous-release.sh
export BERTH_BIN_DIR=$PWD/target/release
cargo test --locked --workspace -- --test-threads=2
cargo test --locked "${bollard[@]}" --target-dir target -- --test-threads=2
