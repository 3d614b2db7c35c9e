#!/usr/bin/env bash
# The whole local product: Kafka, Redis, one worker, the API.
# Usage: [REDIS=single|cluster] [WORKERS=N] stack.sh up|down|status|demo
#   REDIS=cluster runs a Redis Cluster (3 masters + 3 replicas, deploy/local/redis_cluster.sh, ports
#   7001-7006) instead of the single Redis; WORKERS=N starts `worker`, `worker-2`, ... `worker-N`,
#   each with its own web port (STREAM_WORKER_WEB_PORT + i - 1) and Faust data dir. `up` remembers
#   the Redis mode in var/run/redis-mode for status and demo; `down` stops whatever runs.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PY="$ROOT/.venv/bin/python"
MODE="${REDIS:-}"
if [[ -z "$MODE" && "${1:-}" != up ]]; then MODE="$(cat "$VAR/run/redis-mode" 2>/dev/null || true)"; fi
MODE="${MODE:-single}"
WORKERS="${WORKERS:-1}"
[[ "$MODE" == single || "$MODE" == cluster ]] || { echo "REDIS must be single or cluster, not $MODE" >&2; exit 2; }
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || { echo "WORKERS must be a positive number, not $WORKERS" >&2; exit 2; }
if [[ "$MODE" == cluster ]]; then
  export STREAM_REDIS_CLUSTER=true
  STREAM_REDIS_URL="${STREAM_REDIS_URL:-$(bash "$ROOT/deploy/local/redis_cluster.sh" nodes)}"
  export STREAM_REDIS_URL
fi
stack_env

ready() { curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null; }
worker_alive() { "$PY" -m stream.cli check >/dev/null; }
# At least WORKERS workers wrote a heartbeat in the last 10 s.
workers_alive() { local n; n="$("$PY" -m stream.cli check | grep -o '^[0-9]*')"; ((n >= WORKERS)); }

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
  if [[ "$MODE" == cluster ]]; then
    bash "$ROOT/deploy/local/redis_cluster.sh" start
  else
    bash "$ROOT/deploy/local/redis.sh" start
  fi
  echo "$MODE" >"$VAR/run/redis-mode"
  bash "$ROOT/deploy/local/kafka.sh" start
  "$PY" -m stream.cli topics
  start_proc worker "$PY" -m stream.cli worker
  local i
  for ((i = 2; i <= WORKERS; i++)); do
    start_proc "worker-$i" env STREAM_WORKER_WEB_PORT=$((WORKER_WEB_PORT + i - 1)) \
      STREAM_DATA_DIR="$STREAM_DATA_DIR-$i" "$PY" -m stream.cli worker
  done
  start_proc api "$PY" -m stream.cli api
  wait_alive "$VAR/run/api.pid" "the API's /readyz" 120 ready || { tail -20 "$VAR/log/api.log" >&2; exit 1; }
  wait_alive "$VAR/run/worker.pid" "a worker heartbeat" 120 worker_alive || { tail -40 "$VAR/log/worker.log" >&2; exit 1; }
  if ((WORKERS > 1)); then
    wait_alive "$VAR/run/worker-$WORKERS.pid" "$WORKERS worker heartbeats" 120 workers_alive \
      || { tail -40 "$VAR/log/worker-$WORKERS.log" >&2; exit 1; }
  fi
  admin_key
  log "stack up in $((SECONDS - t0))s ($WORKERS worker(s), $MODE Redis): API and dashboard at http://127.0.0.1:$API_PORT/"
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
  local pidfile name  # the extra workers of WORKERS=N, whatever N was: each by its pid file, together
  for pidfile in "$VAR"/run/worker-*.pid; do
    [[ -e "$pidfile" ]] || continue
    name="$(basename "$pidfile" .pid)"
    stop_pid "$name" "$pidfile" &
  done
  wait
  bash "$ROOT/deploy/local/kafka.sh" stop
  bash "$ROOT/deploy/local/redis.sh" stop
  bash "$ROOT/deploy/local/redis_cluster.sh" stop
  rm -f "$VAR/run/redis-mode"
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
