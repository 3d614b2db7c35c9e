# Shared by the local stack scripts: where state lives and how to wait.
# Everything runs from the repo's var/ folder so a clone is self-contained.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR="${STREAM_VAR_DIR:-$ROOT/var}"
mkdir -p "$VAR/log" "$VAR/run"

KAFKA_HOST="${STREAM_KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${STREAM_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${STREAM_KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${STREAM_REDIS_PORT:-6380}"
API_PORT="${STREAM_API_PORT:-8000}"
WORKER_WEB_PORT="${STREAM_WORKER_WEB_PORT:-6066}"

# stack_env: the services' own settings, derived from the ports and var dir above unless set
# explicitly, so every process of one stack (and its demo loader) talks to that stack only.
stack_env() {
  export STREAM_KAFKA_BOOTSTRAP="${STREAM_KAFKA_BOOTSTRAP:-$KAFKA_HOST:$KAFKA_PORT}"
  export STREAM_REDIS_URL="${STREAM_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
  export STREAM_DATA_DIR="${STREAM_DATA_DIR:-$VAR/faust}"
  export STREAM_API_PORT="$API_PORT" STREAM_WORKER_WEB_PORT="$WORKER_WEB_PORT"
}

# A log line that cannot be written (the terminal closed) must not abort a stop half way under set -e.
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2 || true; }

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: polls until COMMAND succeeds.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then log "timed out after ${timeout}s waiting for $what"; return 1; fi
    sleep 0.2
  done
}

# wait_alive PIDFILE DESCRIPTION TIMEOUT_SECONDS COMMAND...: wait_for, but gives up as soon as the
# process in PIDFILE is gone (a service that exits at once, say on a taken port, fails in seconds).
wait_alive() {
  local pidfile="$1" what="$2" timeout="$3"; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then log "gave up waiting for $what: the process exited"; return 1; fi
    if ((SECONDS >= deadline)); then log "timed out after ${timeout}s waiting for $what"; return 1; fi
    sleep 0.2
  done
}

# detach PIDFILE LOGFILE COMMAND...: runs COMMAND in the background in a session of its own and
# records its pid. Without a controlling terminal a service never gets the Ctrl-C (or hangup) meant
# for the script in the foreground: it stops when stop_pid asks, in the stack's order. (setsid only
# forks when it leads a process group, and a background child of a script never does, so $! is
# the service itself.)
detach() {
  local pidfile="$1" logfile="$2"; shift 2
  nohup setsid "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

# pid_alive PIDFILE: the recorded process still runs.
pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid NAME PIDFILE [GRACE]: TERM, wait up to GRACE s (20), then KILL; only the recorded pid.
stop_pid() {
  local name="$1" pidfile="$2" grace="${3:-20}"
  if ! pid_alive "$pidfile"; then rm -f "$pidfile"; return 0; fi
  local pid; pid="$(cat "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then kill -KILL "$pid" 2>/dev/null || true; break; fi
    sleep 0.2
  done
  rm -f "$pidfile"
}

# need_apt PACKAGE BINARY: installs a Debian package when its binary is missing.
need_apt() {
  local pkg="$1" bin="$2"
  command -v "$bin" >/dev/null 2>&1 && return 0
  log "installing Debian package $pkg"
  if [[ ! -f "$VAR/run/apt-updated" ]]; then apt-get update -qq && touch "$VAR/run/apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >"$VAR/log/apt-$pkg.log" 2>&1
}
