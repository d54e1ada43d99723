#!/usr/bin/env bash
# Fuzzes a running node's RPC against its own OpenAPI document with schemathesis (PyPI):
# every response must be no 5xx, have a documented status and content type, and match its
# schema. Starts a throwaway node on port 0, runs for a bounded number of examples per
# operation (MAX_EXAMPLES, default 20), stops the node. Run longer with MAX_EXAMPLES=500.
# Needs schemathesis in ~/.cache/cairn/venv (scripts/setup.sh --test puts it there) and a
# release build.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}/release/cairn"
[ -x "$bin" ] || bin=target/release/cairn
st="${SCHEMATHESIS:-$HOME/.cache/cairn/venv/bin/st}"
dir=$(mktemp -d)
log="$dir/node.log"
"$bin" node --no-mdns --rpc-port 0 --p2p-port 0 --data-dir "$dir/data" >"$log" 2>&1 &
node=$!
trap 'kill "$node" 2>/dev/null; wait "$node" 2>/dev/null; rm -rf "$dir"' EXIT
url=""
for _ in $(seq 1 300); do
  url=$(grep -o 'RPC listening on http://[0-9.:]*' "$log" | head -1 | sed 's/RPC listening on //') || true
  [ -n "$url" ] && break
  kill -0 "$node" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "schemathesis: the node did not start" >&2; cat "$log" >&2; exit 1; }
# The positive/negative data checks are left out on purpose: a schema-valid transaction with
# a bad signature is rightly refused (422), and schema-invalid JSON that still parses (an
# array entry that is null) is answered per entry.
"$st" run "$url/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${MAX_EXAMPLES:-20}" --request-timeout 20 --workers 2 --no-color
kill -0 "$node" 2>/dev/null || { echo "schemathesis: the node died" >&2; tail -20 "$log" >&2; exit 1; }
