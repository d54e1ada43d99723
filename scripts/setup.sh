#!/usr/bin/env bash
# Installs what building Cairn needs on a fresh Debian/Ubuntu machine: libclang (bindgen for
# RocksDB's -sys crate) and a C++ compiler. With `--test`, also what the test suite needs: for
# the network-namespace tests (tests/netns) iproute2 (`ip netns`), nftables, curl, and avahi
# (`avahi-browse`, a third-party mDNS client, with its daemon and D-Bus); `promtool` (Debian's
# prometheus package) to check the node's /metrics; schemathesis (PyPI, in a venv under
# ~/.cache/cairn) to fuzz the RPC against its OpenAPI document; for the dashboard's
# browser tests (tests/browser) Debian's chromium, Node.js and npm, then `npm ci` there (the
# pinned playwright-core, which drives that chromium: no browser is downloaded); cargo-fuzz
# (crates.io, pinned) for scripts/fuzz.sh. Running a node
# needs none of those. Idempotent and quiet when everything is there already.
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
# Without recommends: avahi-daemon's (libnss-mdns) would change the machine's name resolution.
tools=()
if [ "${1:-}" = "--test" ]; then
  for pkg in iproute2 nftables curl dbus avahi-daemon avahi-utils prometheus chromium python3-venv; do
    dpkg -s "$pkg" >/dev/null 2>&1 || tools+=("$pkg")
  done
  command -v node >/dev/null 2>&1 || tools+=(nodejs)
  command -v npm >/dev/null 2>&1 || tools+=(npm)
fi
if [ ${#need[@]} -gt 0 ] || [ ${#tools[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]} ${tools[*]}" >&2
  $sudo apt-get update -qq
  [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  [ ${#tools[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust from rustup first" >&2; exit 1; }
if [ "${1:-}" = "--test" ]; then
  # Again only when the lockfile changed since the last install.
  browser="$(dirname "$0")/../tests/browser"
  if [ ! -f "$browser/node_modules/.package-lock.json" ] || [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
    echo "setup: npm ci in tests/browser" >&2
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
if [ "${1:-}" = "--test" ]; then
  # schemathesis (PyPI, pinned) in its own venv: scripts/schemathesis.sh fuzzes the RPC with it.
  venv="$HOME/.cache/cairn/venv"
  if ! "$venv/bin/st" --version 2>/dev/null | grep -q 4.32.5; then
    echo "setup: schemathesis into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check schemathesis==4.32.5
  fi
fi
if [ "${1:-}" = "--test" ]; then
  # cargo-fuzz (crates.io, pinned) for scripts/fuzz.sh, into ~/.cargo/bin; built in its own
  # cached target dir, so a reinstall after a cache wipe is the only cost (~1 min).
  if ! cargo fuzz --version 2>/dev/null | grep -q "0.13.1"; then
    echo "setup: cargo-fuzz into ~/.cargo/bin" >&2
    CARGO_TARGET_DIR="$HOME/.cache/cairn/cargo-install" cargo install --quiet --locked cargo-fuzz --version 0.13.1
  fi
fi
