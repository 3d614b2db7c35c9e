#!/usr/bin/env bash
# Real Apache Kafka 4 (KRaft, single node) from its Maven Central jars.
# Usage: kafka.sh start|stop|status
#
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KDIR="$VAR/kafka"
JARS="$KDIR/jars"
PIDFILE="$VAR/run/kafka.pid"
HERE="$ROOT/deploy/local/kafka"


JAVA_OPTS=(-Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
           "-Dlog4j2.configurationFile=$KDIR/log4j2.yaml")

resolve_jars() {
  if [[ -f "$JARS/.complete" && "$JARS/.complete" -nt "$HERE/pom.xml" ]]; then return 0; fi
  log "resolving Kafka jars from Maven Central (cached in ~/.m2)"
  rm -rf "$JARS"; mkdir -p "$JARS"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$JARS" -DincludeScope=runtime >"$VAR/log/mvn.log" 2>&1 \
    || { log "mvn failed, see $VAR/log/mvn.log"; tail -20 "$VAR/log/mvn.log" >&2; return 1; }
  touch "$JARS/.complete"
}

write_config() {
  mkdir -p "$KDIR/data"
  local extra_l="" extra_a="" extra_p=""
  sed -e "s#@DATA@#$KDIR/data#" -e "s#@HOST@#$KAFKA_HOST#g" \
      -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CPORT@#$KAFKA_CONTROLLER_PORT#g" \
      -e "s#@EXTRA_LISTENERS@#$extra_l#" -e "s#@EXTRA_ADVERTISED@#$extra_a#" \
      -e "s#@EXTRA_PROTOCOLS@#$extra_p#" \
      "$HERE/server.properties.in" >"$KDIR/server.properties"
  sed -e "s#@LOGDIR@#$VAR/log#g" "$HERE/log4j2.yaml.in" >"$KDIR/log4j2.yaml"
}

java_cmd() { java "${JAVA_OPTS[@]}" -cp "$JARS/*" "$@"; }

format_storage() {
  local args=(format --standalone -t "$(java_cmd kafka.tools.StorageTool random-uuid)" -c "$KDIR/server.properties")
  log "formatting KRaft storage"
  java_cmd kafka.tools.StorageTool "${args[@]}" >"$VAR/log/kafka-format.log" 2>&1 \
    || { tail -20 "$VAR/log/kafka-format.log" >&2; return 1; }
}

broker_answers() {
  "$ROOT/.venv/bin/python" - "$KAFKA_HOST:$KAFKA_PORT" <<'PY'
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient
async def main() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=2000)
    await admin.start()
    try:
        await admin.describe_cluster()
    finally:
        await admin.close()
asyncio.run(main())
PY
}

# broker_ready: the broker answers, or its process is gone (so a bad config fails fast).
broker_ready() { ! pid_alive "$PIDFILE" || broker_answers; }

start() {
  if pid_alive "$PIDFILE"; then log "kafka already running (pid $(cat "$PIDFILE"))"; return 0; fi
  resolve_jars
  write_config
  if [[ ! -f "$KDIR/data/meta.properties" ]]; then
    format_storage
  fi
  log "starting kafka on $KAFKA_HOST:$KAFKA_PORT"
  local t0=$SECONDS
  nohup java "${JAVA_OPTS[@]}" -cp "$JARS/*" kafka.Kafka "$KDIR/server.properties" >"$VAR/log/kafka.out" 2>&1 &
  echo $! >"$PIDFILE"
  if ! wait_for "kafka metadata" 120 broker_ready || ! pid_alive "$PIDFILE"; then
    log "kafka did not start; see $VAR/log/kafka.out and $VAR/log/kafka-server.log"
    tail -30 "$VAR/log/kafka.out" >&2
    return 1
  fi
  log "kafka ready in $((SECONDS - t0))s"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid kafka "$PIDFILE" 60 ;;  # a clean KRaft shutdown spares the next start a log recovery
  status) pid_alive "$PIDFILE" && broker_answers ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
