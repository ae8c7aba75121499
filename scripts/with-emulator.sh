#!/usr/bin/env bash
# Runs a command with a private emulator on a free port, and stops it afterwards whatever
# happens. The command finds the endpoint in EVENTFOLD_EMULATOR_ENDPOINT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
endpoint=$("$here/emulator.sh" start auto)
port=${endpoint##*:}
trap '"$here/emulator.sh" stop "$port"' EXIT INT TERM
echo "emulator (${EMULATOR:-ministack}) at $endpoint" >&2
EVENTFOLD_EMULATOR_ENDPOINT=$endpoint "$@"
