# Sourced by local.sh and deploy-local.sh (from the repository root): the emulator for one
# foreground session on 127.0.0.1:$EMULATOR_PORT (default 4566), stopped when the session ends
# if, and only if, the session started it.
emulator_port=${EMULATOR_PORT:-4566}
emulator_started=""
stop_session_emulator() {
  if [ -n "$emulator_started" ]; then scripts/emulator.sh stop "$emulator_port"; echo "emulator stopped"; fi
}
trap stop_session_emulator EXIT
trap 'exit 130' INT TERM

# start_session_emulator WHO: reuses an emulator already serving the port that WHO did not start,
# else starts one; either way AWS_ENDPOINT_URL points at it.
start_session_emulator() {
  if scripts/emulator.sh status "$emulator_port" && [ ! -f ".local/emulator-$emulator_port.pid" ]; then
    echo "port $emulator_port already serves an emulator that $1 did not start; using it"
  else
    scripts/emulator.sh start "$emulator_port" >/dev/null
    emulator_started=1
  fi
  export AWS_ENDPOINT_URL="http://127.0.0.1:$emulator_port"
}
