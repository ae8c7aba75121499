#!/usr/bin/env bash
# Runs a command with a private emulator on a free port, and stops it afterwards whatever
# happens. The command finds the endpoint in EVENTFOLD_EMULATOR_ENDPOINT; if that is set
# already, the emulator it names is used and nothing is started.
set -euo pipefail
if [ -n "${EVENTFOLD_EMULATOR_ENDPOINT:-}" ]; then
  exec "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
endpoint=$("$here/emulator.sh" start auto)
port=${endpoint##*:}
trap '"$here/emulator.sh" stop "$port"' EXIT INT TERM
echo "emulator (${EMULATOR:-ministack}) at $endpoint" >&2
EVENTFOLD_EMULATOR_ENDPOINT=$endpoint "$@"
