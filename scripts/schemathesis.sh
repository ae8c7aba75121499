#!/usr/bin/env bash
# Fuzzes the API with schemathesis against its own OpenAPI document: the local runner on a free
# port over the emulator in EVENTFOLD_EMULATOR_ENDPOINT, its own resources, bounded in examples
# and time, on 127.0.0.1 only. Part of `make test`. The stateful phase follows the document's
# links (open an account, then deposit into it, read its stream, verify its chain, …), so
# fuzzing reaches accounts and streams that exist. Checks and their settings: schemathesis.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${EVENTFOLD_EMULATOR_ENDPOINT:?run under scripts/with-emulator.sh}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
prefix="st$(date +%s)"
log=.local/schemathesis-runner.log
mkdir -p .local
AWS_ENDPOINT_URL=$EVENTFOLD_EMULATOR_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1 RUST_LOG=warn \
  target/debug/eventfold local --port "$port" --prefix "$prefix" --no-demo >"$log" 2>&1 &
runner=$!
trap 'kill "$runner" 2>/dev/null || true; wait "$runner" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
    "http://127.0.0.1:$port/openapi.json" 2>/dev/null && break
  kill -0 "$runner" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
# One worker: CPython 3.11 ast.parse is not thread-safe under hypothesis (SystemError: AST
# constructor recursion depth mismatch).
.venv-schemathesis/bin/schemathesis --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,positive_data_acceptance \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples 25 --workers 1 --max-time 240 --seed 20261123 \
  --request-timeout 20 --suppress-health-check too_slow,filter_too_much \
  --no-color
