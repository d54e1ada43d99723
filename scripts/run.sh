#!/usr/bin/env bash
# Builds (release) and runs `cairn devnet --farm`: three farming nodes on loopback with a live
# status and stdin commands (help lists them); Ctrl-C stops them. Arguments replace the
# default: `scripts/run.sh node` runs a single node on its defaults (shipped devnet chain spec,
# data in ./cairn-data, P2P on 9090, RPC on 127.0.0.1:8080), `scripts/run.sh devnet --nodes 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
if [ $# -eq 0 ]; then
  set -- devnet --farm
fi
exec cargo run --release --quiet -- "$@"
