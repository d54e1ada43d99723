#!/usr/bin/env bash
# Builds (release) and runs `cairn node` on its defaults: the shipped devnet chain spec,
# data in ./cairn-data, P2P on 9090, RPC on 127.0.0.1:8080. Extra arguments go to `cairn node`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
exec cargo run --release --quiet -- node "$@"
