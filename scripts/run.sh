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
bin="$CARGO_TARGET_DIR/release/cairn"
if [ ! -x "$bin" ]; then
  echo "run: first build of cairn (release) into $CARGO_TARGET_DIR: RocksDB compiles from source," >&2
  echo "run: about 35 minutes on 2 cores; cargo shows its progress below. Later runs start at once." >&2
fi
# Built as scripts/test.sh builds it (the whole workspace, the same features), so a build made
# by either is reused by the other.
cargo build --release --workspace --bins
exec "$bin" "$@"
