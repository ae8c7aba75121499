#!/usr/bin/env bash
# `make deploy-local`: infra/template.yaml deployed through CloudFormation on the emulator, with
# host builds of the template's functions run by the emulator itself. Starts the emulator on
# 127.0.0.1:$EMULATOR_PORT unless AWS_ENDPOINT_URL names one; then stays in the foreground until
# Ctrl-C, and stops it. Run again after a change: the stack is updated in place.
#
#   STACK=name (default eventfold-local); extra arguments go to scripts/deploy_local.py
#   (e.g. --parameter SnapshotEvery=10).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/session-emulator.sh
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
  echo "deploying to the endpoint in AWS_ENDPOINT_URL: $AWS_ENDPOINT_URL"
else
  start_session_emulator "make deploy-local"
fi
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1}
# Host builds: the emulator runs each bootstrap as a local process (it ignores Architectures).
# The binaries the template names (each function's BuildProperties.Binary).
bins=$(sed -n 's/^ *Binary: *//p' infra/template.yaml | sed 's/^/--bin /')
# shellcheck disable=SC2086
cargo build -q $bins
"${TOOLS_VENV:-.venv}/bin/python" scripts/deploy_local.py --stack "${STACK:-eventfold-local}" \
  --binaries "${CARGO_TARGET_DIR:-target}/debug" "$@"
if [ -n "$emulator_started" ]; then
  echo "Requests are signed with SigV4 (any credentials; the emulator checks that they are there)."
  echo "Serving until Ctrl-C."
  while true; do sleep 3600; done
fi
