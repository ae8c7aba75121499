#!/usr/bin/env bash
# A service as `eventfold new` writes it, checked as its user would: its `make test` (fmt,
# clippy, template lint, its domain, drift and HTTP tests) and its `make local` (the API served,
# the demo run to its end against it, the read model following). Runs on make test's emulator
# (EVENTFOLD_EMULATOR_ENDPOINT), with this workspace's target folder, lock file and tools, so
# only the new service's own crates (and eventfold's, at its profile) are built.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
: "${EVENTFOLD_EMULATOR_ENDPOINT:?run under scripts/with-emulator.sh}"
work=$(mktemp -d)
local_pid=""
cleanup() {
  if [ -n "$local_pid" ]; then kill -TERM -- "-$local_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
started=$(date +%s)
target/debug/eventfold new "$work/loans" --aggregate Book
cp Cargo.lock "$work/loans/"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export TOOLS_VENV="$root/.venv" MINISTACK_VENV="$root/.venv-ministack"
cd "$work/loans"
make --no-print-directory test
tested=$(date +%s)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log="$work/local.log"
AWS_ENDPOINT_URL=$EVENTFOLD_EMULATOR_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1 EVENTFOLD_PREFIX="scaffold$RANDOM" PORT=$port \
  setsid make --no-print-directory local >"$log" 2>&1 </dev/null &
local_pid=$!
for _ in $(seq 1 900); do
  if grep -q "The API is at" "$log" || ! kill -0 "$local_pid" 2>/dev/null; then break; fi
  sleep 0.2
done
if ! grep -q "The API is at" "$log" || grep -q "demo failed" "$log" || ! grep -q "→ 422" "$log"; then
  echo "make local of a new service did not serve its demo:" >&2
  cat "$log" >&2
  exit 1
fi
echo "a new service: make test passed in $((tested - started)) s; make local served $(grep -c '  → ' "$log") demo calls in $(($(date +%s) - tested)) s"
