#!/usr/bin/env bash
# Installs what building and testing Cairn needs on a fresh Debian/Ubuntu machine:
# libclang (bindgen for RocksDB's -sys crate) and a C++ compiler. Idempotent and quiet when
# everything is there already.
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust from rustup first" >&2; exit 1; }
