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
for _ in $(seq 1 150); do
  grep -q "The API is at" "$log" && break
  kill -0 "$runner" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
# The fuzzer calls as a registered customer holding every scope (operators read every stream),
# with a token of the environment's user pool, as API Gateway's JWT authorizer takes it.
export AWS_ENDPOINT_URL=$EVENTFOLD_EMULATOR_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1
token=$(target/debug/eventfold --prefix "$prefix" token --user "fuzzer-$prefix" \
  --scope "bank/read bank/write bank/operator")
schema=.local/schemathesis-openapi.json
python3 - "http://127.0.0.1:$port" "$token" "$schema" "fuzzer-$prefix@example.com" <<'PY'
import json, sys, urllib.request
base, token, schema, email = sys.argv[1:]
auth = {"authorization": f"Bearer {token}"}
with urllib.request.urlopen(urllib.request.Request(f"{base}/openapi.json", headers=auth), timeout=10) as answer:
    open(schema, "wb").write(answer.read())
body = json.dumps({"email": email, "name": "Fuzzer"}).encode()
register = urllib.request.Request(f"{base}/users", data=body, method="POST",
                                  headers={**auth, "content-type": "application/json"})
with urllib.request.urlopen(register, timeout=10) as answer:
    assert answer.status == 201, answer.status
PY
# One worker: CPython 3.11 ast.parse is not thread-safe under hypothesis (SystemError: AST
# constructor recursion depth mismatch). ignored_auth sends each request again without (and with
# a broken) token: it must be refused.
.venv-schemathesis/bin/schemathesis --config-file scripts/schemathesis.toml run "$schema" \
  --url "http://127.0.0.1:$port" --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,positive_data_acceptance,ignored_auth \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples 25 --workers 1 --max-time 200 --seed 20261123 \
  --request-timeout 20 --suppress-health-check too_slow,filter_too_much \
  --no-color
