#!/usr/bin/env bash
# Real Apache Kafka (KRaft, single node) from its Maven Central jars.
# Usage: kafka.sh start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KDIR="$VAR/kafka"
JARS="$KDIR/jars"
PIDFILE="$VAR/run/kafka.pid"
HERE="$ROOT/deploy/local/kafka"

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
  sed -e "s#@DATA@#$KDIR/data#" -e "s#@HOST@#$KAFKA_HOST#g" \
      -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CPORT@#$KAFKA_CONTROLLER_PORT#g" \
      "$HERE/server.properties.in" >"$KDIR/server.properties"
  sed -e "s#@LOGDIR@#$VAR/log#" "$HERE/log4j.properties.in" >"$KDIR/log4j.properties"
}

java_cmd() {
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j.configuration="file:$KDIR/log4j.properties" \
       -cp "$JARS/*" "$@"
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

# Kafka logs to kafka-server.log (log4j); its stdout only gets what the JVM itself prints.
startup_failed() {
  pid_alive "$PIDFILE" || log "kafka exited (is port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT taken?)"
  tail -30 "$VAR/log/kafka.out" >&2 || true
  tail -n "+$((LOG_MARK + 1))" "$VAR/log/kafka-server.log" 2>/dev/null | grep -E " (ERROR|FATAL) " | tail -10 >&2 || true
}

start() {
  if pid_alive "$PIDFILE"; then log "kafka already running (pid $(cat "$PIDFILE"))"; return 0; fi
  resolve_jars
  write_config
  if [[ ! -f "$KDIR/data/meta.properties" ]]; then
    log "formatting KRaft storage"
    java_cmd kafka.tools.StorageTool format --standalone -t "$(java_cmd kafka.tools.StorageTool random-uuid)" \
      -c "$KDIR/server.properties" >"$VAR/log/kafka-format.log" 2>&1 \
      || { tail -20 "$VAR/log/kafka-format.log" >&2; return 1; }
  fi
  log "starting kafka on $KAFKA_HOST:$KAFKA_PORT"
  LOG_MARK="$(wc -l <"$VAR/log/kafka-server.log" 2>/dev/null || echo 0)"  # this start's lines follow
  local t0=$SECONDS
  detach "$PIDFILE" "$VAR/log/kafka.out" java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j.configuration="file:$KDIR/log4j.properties" \
       -cp "$JARS/*" kafka.Kafka "$KDIR/server.properties"
  wait_alive "$PIDFILE" "kafka metadata" 120 broker_answers || { startup_failed; return 1; }
  log "kafka ready in $((SECONDS - t0))s"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid kafka "$PIDFILE" 60 ;;  # a clean KRaft shutdown spares the next start a log recovery
  status) pid_alive "$PIDFILE" && broker_answers ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
