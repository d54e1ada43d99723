#!/usr/bin/env bash
# Runs the whole test suite, installing what a fresh machine lacks first.
# Everything builds in the release profile only: RocksDB compiles once (~14 min on 2 cores) and
# the cache under ~/.cache/cairn is shared with scripts/run.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
# Style and lints first: seconds for fmt; clippy reuses the release build's dependencies.
cargo fmt --check
cargo clippy --release --workspace --tests --benches --quiet -- -D warnings
cargo test --release --workspace "$@"
