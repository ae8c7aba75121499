#!/usr/bin/env bash
# Starts, health-checks and stops the local AWS emulator, by PID file, on 127.0.0.1 only.
#
#   scripts/emulator.sh start [PORT|auto]   start (or reuse) an emulator; prints its endpoint
#   scripts/emulator.sh stop [PORT]         stop the emulator this script started on PORT
#   scripts/emulator.sh status [PORT]       exit 0 if it answers its health check
#
# EMULATOR=ministack (default) or moto picks the implementation; each lives in its own
# virtualenv (MINISTACK_VENV, default .venv-ministack), installed by `make emulator-deps`.
# PORT defaults to EMULATOR_PORT or 4566.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state_dir="$root/.local"
emulator=${EMULATOR:-ministack}
command=${1:-}
port=${2:-${EMULATOR_PORT:-4566}}

case "$emulator" in
  ministack) binary="${MINISTACK_VENV:-$root/.venv-ministack}/bin/ministack"; health_path="/_ministack/health" ;;
  moto) binary="$root/.venv-moto/bin/python"; health_path="/moto-api/" ;;
  *) echo "EMULATOR must be ministack or moto, not '$emulator'" >&2; exit 2 ;;
esac

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Python's standard library, not curl: a fresh machine is only promised Python.
http_ok() {
  python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

healthy() {
  http_ok "http://127.0.0.1:$1$health_path"
}

pid_file() { echo "$state_dir/emulator-$1.pid"; }

alive() {
  local file; file=$(pid_file "$1")
  [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null
}

start() {
  [ "$port" = auto ] && port=$(free_port)
  mkdir -p "$state_dir"
  if alive "$port" && healthy "$port"; then
    echo "http://127.0.0.1:$port"
    return 0
  fi
  if healthy "$port"; then
    echo "port $port already serves an emulator this script did not start; reusing it" >&2
    echo "http://127.0.0.1:$port"
    return 0
  fi
  if [ ! -x "$binary" ]; then
    echo "$emulator is not installed: run 'make emulator-deps'" >&2
    exit 1
  fi
  local log="$state_dir/emulator-$port.log"
  if [ "$emulator" = ministack ]; then
    # MiniStack binds 0.0.0.0 unless told otherwise: never let it. The functions it runs (a
    # deployed stack) inherit its environment: AWS_ENDPOINT_URL sends their SDK calls back here.
    # MINISTACK_HOST is where its API Gateway fetches a user pool's keys (not `localhost`, which
    # may resolve to ::1); STATE_DIR keeps its files (pool signing keys) in this checkout.
    BIND_HOST=127.0.0.1 MINISTACK_HOST=127.0.0.1 GATEWAY_PORT="$port" LOG_LEVEL=WARNING \
      TMPDIR="$state_dir" STATE_DIR="$state_dir/ministack-$port" \
      AWS_ENDPOINT_URL="http://127.0.0.1:$port" \
      setsid "$binary" >"$log" 2>&1 </dev/null &
  else
    # DynamoDB requests one at a time: moto is not safe for them concurrently (scripts/moto-server.py).
    MOTO_PORT="$port" setsid "$binary" "$root/scripts/moto-server.py" "$port" >"$log" 2>&1 </dev/null &
  fi
  echo $! >"$(pid_file "$port")"
  for _ in $(seq 1 150); do
    if healthy "$port"; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    if ! alive "$port"; then break; fi
    sleep 0.2
  done
  echo "$emulator did not become healthy on port $port; log follows" >&2
  cat "$log" >&2 || true
  stop
  exit 1
}

stop() {
  local file; file=$(pid_file "$port")
  [ -f "$file" ] || return 0
  local pid; pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    # setsid made it a process group leader: stop the group, children included.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

case "$command" in
  start) start ;;
  stop) stop ;;
  status) healthy "$port" ;;
  *) echo "usage: $0 start|stop|status [PORT|auto]" >&2; exit 2 ;;
esac
