#!/usr/bin/env bash
# Installs what building Cairn needs on a fresh Debian/Ubuntu machine: libclang (bindgen for
# RocksDB's -sys crate) and a C++ compiler. With `--test`, also what the test suite needs: for
# the network-namespace tests (tests/netns) iproute2 (`ip netns`), nftables, curl, and avahi
# (`avahi-browse`, a third-party mDNS client, with its daemon and D-Bus), and `promtool` (Debian's
# prometheus package) to check the node's /metrics. Running a node needs
# none of those. Idempotent and quiet when everything is there already.
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
# Without recommends: avahi-daemon's (libnss-mdns) would change the machine's name resolution.
tools=()
if [ "${1:-}" = "--test" ]; then
  for pkg in iproute2 nftables curl dbus avahi-daemon avahi-utils prometheus; do
    dpkg -s "$pkg" >/dev/null 2>&1 || tools+=("$pkg")
  done
fi
if [ ${#need[@]} -gt 0 ] || [ ${#tools[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]} ${tools[*]}" >&2
  $sudo apt-get update -qq
  [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  [ ${#tools[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust from rustup first" >&2; exit 1; }
