#!/usr/bin/env bash
# Builds every cargo-fuzz target of fuzz/ and runs each for SECONDS (default 60); fails if any
# target crashes (a panic, an overflow, a timeout or an out-of-memory: libFuzzer exits non-zero
# and leaves the input in fuzz/artifacts/TARGET/). `scripts/fuzz.sh 600` is the 10-minute run;
# `FUZZ_TARGETS="wire_frames handshake" scripts/fuzz.sh 60` runs only those.
#
# Stable Rust only: without a sanitizer cargo-fuzz passes only stable `-C` flags (sancov
# instrumentation, `--cfg fuzzing`), so no nightly is needed. The targets are safe Rust, where
# AddressSanitizer finds nothing a panic would not; `FUZZ_SANITIZER=address` turns it on
# anyway, through RUSTC_BOOTSTRAP=1 (it needs `-Zsanitizer`). Debug assertions and overflow
# checks are on: an arithmetic overflow is a crash here.
#
# Its own target dir (~/.cache/cairn/fuzz-target): cargo-fuzz's RUSTFLAGS differ from the node's,
# and the fuzz crate depends on nothing that builds RocksDB (cairn-chain without `rocksdb`).
# Each target's corpus grows in that dir, seeded from the committed fuzz/corpus/TARGET, so a
# run leaves the work tree as it was (but for fuzz/artifacts on a crash).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/cairn/fuzz-target}"
command -v cargo-fuzz >/dev/null 2>&1 || { echo "fuzz: cargo-fuzz not found; run scripts/setup.sh --test" >&2; exit 1; }
sanitizer="${FUZZ_SANITIZER:-none}"
[ "$sanitizer" = none ] || export RUSTC_BOOTSTRAP=1
flags=(--sanitizer "$sanitizer" --debug-assertions)
start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz: built in $(( $(date +%s) - start )) s"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
status=0
for t in $targets; do
  work="$CARGO_TARGET_DIR/corpus/$t"
  mkdir -p "$work" "corpus/$t" "artifacts/$t"
  log="$CARGO_TARGET_DIR/$t.log"
  # -rss_limit_mb: well under the machine's memory with the node's tests beside it.
  if cargo fuzz run "${flags[@]}" "$t" "$work" "corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    execs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    echo "fuzz: $t ok: ${execs:-?} runs in ${secs} s, cov ${cov:-?}, ft ${ft:-?}, corpus $(ls "$work" | wc -l)"
  else
    status=1
    echo "fuzz: $t FAILED (log: $log; input in fuzz/artifacts/$t/)"
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -20 || true
  fi
done
exit "$status"
