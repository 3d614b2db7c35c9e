#!/usr/bin/env bash
# Real redis-server (Debian package) on our own port, AOF on, data under var/.
# Usage: redis.sh start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RDIR="$VAR/redis"
PIDFILE="$VAR/run/redis.pid"

ping() { redis-cli -p "$REDIS_PORT" ping | grep -q PONG; }

start() {
  need_apt redis-server redis-server
  if pid_alive "$PIDFILE"; then log "redis already running (pid $(cat "$PIDFILE"))"; return 0; fi
  mkdir -p "$RDIR"
  log "starting redis on 127.0.0.1:$REDIS_PORT"
  redis-server "$ROOT/deploy/redis/redis.conf" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RDIR" \
    --daemonize yes --pidfile "$PIDFILE" --logfile "$VAR/log/redis.log"
  wait_for redis 30 ping || { tail -20 "$VAR/log/redis.log" >&2; return 1; }
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid redis "$PIDFILE" ;;
  status) pid_alive "$PIDFILE" && ping ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
