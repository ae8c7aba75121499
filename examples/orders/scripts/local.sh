#!/usr/bin/env bash
# `make local`: the emulator on 127.0.0.1:$EMULATOR_PORT (unless AWS_ENDPOINT_URL or
# EVENTFOLD_USE_AWS=1 points elsewhere), resources from the template, the local runner with a
# demo, until Ctrl-C; then the emulator is stopped.
#
#   scripts/local.sh TOOL [ARGS...]   TOOL is the eventfold command line binary (the service's
#                                     own tool crate); ARGS go to its `local` command.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/session-emulator.sh
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
  echo "using the endpoint in AWS_ENDPOINT_URL: $AWS_ENDPOINT_URL"
elif [ "${EVENTFOLD_USE_AWS:-}" = 1 ]; then
  echo "using AWS from your AWS configuration"
else
  start_session_emulator "make local"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  echo "emulator (${EMULATOR:-ministack}) at $AWS_ENDPOINT_URL"
fi
tool=${1:?usage: scripts/local.sh TOOL [ARGS...]}
shift
"$tool" local --port "${PORT:-3000}" "$@"
