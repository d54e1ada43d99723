#!/usr/bin/env bash
# Runs the whole test suite, installing what a fresh machine lacks first.
# Everything builds in the release profile only: RocksDB compiles once (~14 min on 2 cores) and
# the cache under ~/.cache/cairn is shared with scripts/run.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
# Style and lints first: seconds for fmt; clippy reuses the release build's dependencies.
cargo fmt --check
cargo clippy --release --workspace --tests --benches --quiet -- -D warnings
# The summary line closes the run: every test binary's counts added up (the last binary cargo
# runs is a doc-test one with nothing in it, which would otherwise close the output).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# The workspace includes the network simulator's scenarios (cairn-sim, `--test sim`, ~35 s: each
# scenario twice with one seed, the trace hashes compared); alone:
# `cargo test --release -p cairn-sim --test sim`.
cargo test --release --workspace "$@" 2>&1 | tee "$log" || status=$?
# Their own group: the dashboard in headless chromium (tests/browser), against real processes of
# the release binary the cargo tests just built; screenshots in $CARGO_TARGET_DIR/browser-artifacts.
if [ "$status" -eq 0 ]; then
  npm --prefix tests/browser test 2>&1 | tee -a "$log" || status=$?
else
  echo "browser tests skipped: the cargo tests failed"
fi
# The RPC fuzzed against its own OpenAPI document (a short budget; MAX_EXAMPLES=500 for long).
if [ "$status" -eq 0 ]; then
  if scripts/schemathesis.sh 2>&1 | tee -a "$log"; then echo "schemathesis: ok" | tee -a "$log"; else echo "schemathesis: failed" | tee -a "$log"; status=1; fi
fi
# Every fuzz target for a few seconds (FUZZ_SECONDS, default 15; scripts/fuzz.sh 600 for the
# 10-minute run): a crash fails the run. Its own target dir, never RocksDB.
if [ "$status" -eq 0 ]; then
  if scripts/fuzz.sh "${FUZZ_SECONDS:-15}" 2>&1 | tee -a "$log"; then echo "fuzz: ok" | tee -a "$log"; else echo "fuzz: failed" | tee -a "$log"; status=1; fi
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^ℹ pass [0-9]+$/ { p += $3 } /^ℹ fail [0-9]+$/ { f += $3 }
     /^schemathesis: ok$/ { p += 1 } /^schemathesis: failed$/ { f += 1 }
     /^fuzz: ok$/ { p += 1 } /^fuzz: failed$/ { f += 1 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
