#!/usr/bin/env bash
# The whole local product: Kafka, Redis, one worker, the API.
# Usage: stack.sh up|down|status|demo
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PY="$ROOT/.venv/bin/python"
stack_env

ready() { curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null; }
worker_alive() { "$PY" -m stream.cli check >/dev/null; }

start_proc() {  # NAME COMMAND...
  local name="$1"; shift
  local pidfile="$VAR/run/$name.pid"
  if pid_alive "$pidfile"; then log "$name already running (pid $(cat "$pidfile"))"; return 0; fi
  log "starting $name"
  detach "$pidfile" "$VAR/log/$name.log" "$@"
}

up() {
  bash "$ROOT/deploy/local/provision.sh"
  local t0=$SECONDS
  bash "$ROOT/deploy/local/redis.sh" start
  bash "$ROOT/deploy/local/kafka.sh" start
  "$PY" -m stream.cli topics
  start_proc worker "$PY" -m stream.cli worker
  start_proc api "$PY" -m stream.cli api
  wait_alive "$VAR/run/api.pid" "the API's /readyz" 120 ready || { tail -20 "$VAR/log/api.log" >&2; exit 1; }
  wait_alive "$VAR/run/worker.pid" "a worker heartbeat" 120 worker_alive || { tail -40 "$VAR/log/worker.log" >&2; exit 1; }
  admin_key
  log "stack up in $((SECONDS - t0))s: API and dashboard at http://127.0.0.1:$API_PORT/"
}

# An admin key, once, in var/admin.key (0600). It is kept while the API accepts it; after a wiped
# stack (the key is gone with the control topic) a new one replaces it.
admin_key() {
  local file="$VAR/admin.key" key
  if [[ -s "$file" ]] && curl -fsS -o /dev/null -H "authorization: Bearer $(cat "$file")" \
      "http://127.0.0.1:$API_PORT/auth/me"; then return 0; fi
  "$PY" -m stream.cli keys revoke local-admin 2>/dev/null || true
  # Its "shown only now" notice would be wrong here: the key goes to the file, not the screen.
  key="$("$PY" -m stream.cli keys create --name local-admin --scope admin 2>"$VAR/log/admin-key.log" | tail -1)" \
    || { cat "$VAR/log/admin-key.log" >&2; exit 1; }
  (umask 077 && printf '%s\n' "$key" >"$file.tmp") && mv "$file.tmp" "$file"
  log "admin key written to $file (mode 0600)"
}

down() {
  stop_pid api "$VAR/run/api.pid"
  stop_pid worker "$VAR/run/worker.pid"
  bash "$ROOT/deploy/local/kafka.sh" stop
  bash "$ROOT/deploy/local/redis.sh" stop
}

# The demo: STREAM_DEMO_DAYS (14) days of history lived by the demo's own engine on a simulated
# clock (stream/demo_history.py), so the worker is stopped around it and started again after;
# it skips what the demo applied. STREAM_DEMO_DAYS=0 loads users and segments through the API
# instead (sizes from STREAM_DEMO_USERS / _EVENTS). A stack that has segments is left as it is.
demo() {
  local days="${STREAM_DEMO_DAYS:-14}" rc=0
  if ((days == 0)); then
    "$PY" -m stream.cli demo --days 0 --api-url "http://127.0.0.1:$API_PORT" --api-key-file "$VAR/admin.key"
    return
  fi
  stop_pid worker "$VAR/run/worker.pid"
  "$PY" -m stream.cli demo --days "$days" || rc=$?
  start_proc worker "$PY" -m stream.cli worker
  wait_alive "$VAR/run/worker.pid" "a worker heartbeat" 120 worker_alive || { tail -40 "$VAR/log/worker.log" >&2; exit 1; }
  return "$rc"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) ready && worker_alive && echo "up" ;;
  demo) demo ;;
  *) echo "usage: $0 up|down|status|demo" >&2; exit 2 ;;
esac
