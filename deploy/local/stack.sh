#!/usr/bin/env bash
# The whole local product: Kafka, Redis, one worker, the API.
# Usage: stack.sh up|down|status
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PY="$ROOT/.venv/bin/python"
API_PORT="${STREAM_API_PORT:-8000}"
export STREAM_KAFKA_BOOTSTRAP="${STREAM_KAFKA_BOOTSTRAP:-$KAFKA_HOST:$KAFKA_PORT}"
export STREAM_REDIS_URL="${STREAM_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export STREAM_DATA_DIR="${STREAM_DATA_DIR:-$VAR/faust}"

ready() { curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null; }
worker_alive() { "$PY" -m stream.cli check >/dev/null; }

start_proc() {  # NAME COMMAND...
  local name="$1"; shift
  local pidfile="$VAR/run/$name.pid"
  if pid_alive "$pidfile"; then log "$name already running (pid $(cat "$pidfile"))"; return 0; fi
  log "starting $name"
  nohup "$@" >"$VAR/log/$name.log" 2>&1 &
  echo $! >"$pidfile"
}

up() {
  bash "$ROOT/deploy/local/provision.sh"
  local t0=$SECONDS
  bash "$ROOT/deploy/local/redis.sh" start
  bash "$ROOT/deploy/local/kafka.sh" start
  "$PY" -m stream.cli topics
  start_proc worker "$PY" -m stream.cli worker
  start_proc api "$PY" -m stream.cli api
  wait_for "the API's /readyz" 120 ready || { tail -20 "$VAR/log/api.log" >&2; exit 1; }
  wait_for "a worker heartbeat" 120 worker_alive || { tail -40 "$VAR/log/worker.log" >&2; exit 1; }
  log "stack up in $((SECONDS - t0))s: API and dashboard at http://127.0.0.1:$API_PORT/"
}

down() {
  stop_pid api "$VAR/run/api.pid"
  stop_pid worker "$VAR/run/worker.pid"
  bash "$ROOT/deploy/local/kafka.sh" stop
  bash "$ROOT/deploy/local/redis.sh" stop
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) ready && worker_alive && echo "up" ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
