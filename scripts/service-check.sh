#!/usr/bin/env bash
# A service of its own (the example, or one `eventfold new` just wrote), checked as its user
# would from its folder: its `make test` (fmt, clippy, template lint, its domain, drift and HTTP
# tests) and its `make local` (the API served, its infra/demo.yaml run to the end against it).
# Runs on make test's emulator (EVENTFOLD_EMULATOR_ENDPOINT) with this workspace's target
# folder and tools, so only the service's own crates (and eventfold's, at its profile) build.
#
#   scripts/service-check.sh DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(cd "${1:?usage: scripts/service-check.sh DIR}" && pwd)
: "${EVENTFOLD_EMULATOR_ENDPOINT:?run under scripts/with-emulator.sh}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export TOOLS_VENV="$root/.venv" MINISTACK_VENV="$root/.venv-ministack"
log=$(mktemp)
local_pid=""
cleanup() {
  if [ -n "$local_pid" ]; then kill -TERM -- "-$local_pid" 2>/dev/null || true; fi
  rm -f "$log"
}
trap cleanup EXIT
cd "$dir"
started=$(date +%s)
make --no-print-directory test
tested=$(date +%s)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
AWS_ENDPOINT_URL=$EVENTFOLD_EMULATOR_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1 EVENTFOLD_PREFIX="check$RANDOM" PORT=$port \
  setsid make --no-print-directory local >"$log" 2>&1 </dev/null &
local_pid=$!
for _ in $(seq 1 900); do
  if grep -q "The API is at" "$log" || ! kill -0 "$local_pid" 2>/dev/null; then break; fi
  sleep 0.2
done
if ! grep -q "The API is at" "$log" || grep -q "demo failed" "$log" || ! grep -q "^Demo: " "$log"; then
  echo "make local in $dir did not serve its demo:" >&2
  cat "$log" >&2
  exit 1
fi
echo "$(basename "$dir"): make test passed in $((tested - started)) s; make local served $(grep -c '  → ' "$log") demo calls in $(($(date +%s) - tested)) s"
