#!/usr/bin/env bash
# Real Apache Kafka 4 (KRaft, single node) from its Maven Central jars.
# Usage: kafka.sh start|stop|status
#
# Always: a PLAINTEXT listener on $STREAM_KAFKA_HOST:$STREAM_KAFKA_PORT
# (127.0.0.1:9092) and the controller on $STREAM_KAFKA_CONTROLLER_PORT (9093).
#
# Opt-in SASL_SSL listener, for tests of the clients' TLS and SASL settings:
#   STREAM_KAFKA_SASL_PORT      set it to add a SASL_SSL listener on that port
#                               (same host), mechanisms SCRAM-SHA-512 and PLAIN.
#   STREAM_KAFKA_TLS_DIR        where the certificates live ($VAR/kafka/tls). Made
#                               with openssl/keytool when ca.crt or the keystore
#                               is missing: ca.crt + ca.key (self-signed CA; what a
#                               client trusts), broker.crt + broker.key (SAN:
#                               localhost, 127.0.0.1 and the host), and
#                               broker.keystore.p12 / broker.truststore.p12 (PKCS12).
#   STREAM_KAFKA_TLS_PASSWORD   password of both PKCS12 stores (live-segments).
#   STREAM_KAFKA_SASL_USER      the one SASL user, valid for both mechanisms (stream;
#                               letters, digits, '.', '_', '-').
#   STREAM_KAFKA_SASL_PASSWORD  its password (stream-secret; no ',', ']', '"', '\'
#                               or spaces, which the --add-scram and JAAS syntaxes
#                               cannot carry).
# The SCRAM-SHA-512 credential is written into the KRaft metadata at format
# time (kafka-storage format --add-scram), so it needs a fresh data dir: a
# store formatted without that user refuses to start with SASL (remove
# $VAR/kafka/data, as test.sh does on every run). PLAIN users come from the
# listener's JAAS config. Example:
#   STREAM_KAFKA_SASL_PORT=19094 bash deploy/local/kafka.sh start
#   client: security_protocol=SASL_SSL, sasl_mechanism=SCRAM-SHA-512 or PLAIN,
#           ssl context trusting $STREAM_KAFKA_TLS_DIR/ca.crt, host 127.0.0.1:19094
#   .venv/bin/python deploy/local/kafka_sasl_smoke.py   (same variables) proves
#           produce + consume with both mechanisms and that a wrong password fails.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KDIR="$VAR/kafka"
JARS="$KDIR/jars"
PIDFILE="$VAR/run/kafka.pid"
HERE="$ROOT/deploy/local/kafka"

SASL_PORT="${STREAM_KAFKA_SASL_PORT:-}"
TLS_DIR="${STREAM_KAFKA_TLS_DIR:-$KDIR/tls}"
TLS_PASSWORD="${STREAM_KAFKA_TLS_PASSWORD:-live-segments}"
SASL_USER="${STREAM_KAFKA_SASL_USER:-stream}"
SASL_PASSWORD="${STREAM_KAFKA_SASL_PASSWORD:-stream-secret}"
# Which SASL user the store was formatted with (absent: formatted without SCRAM).
SCRAM_MARK="$KDIR/data/.scram-user"

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

# make_tls: a self-signed CA and a broker certificate it signs, as PKCS12 stores.
make_tls() {
  if [[ -f "$TLS_DIR/ca.crt" && -f "$TLS_DIR/broker.keystore.p12" && -f "$TLS_DIR/broker.truststore.p12" ]]; then
    return 0
  fi
  log "creating a CA and broker certificate in $TLS_DIR"
  need_apt openssl openssl
  mkdir -p "$TLS_DIR"
  local san="DNS:localhost,IP:127.0.0.1"
  if [[ "$KAFKA_HOST" =~ ^[0-9.]+$ ]]; then
    [[ "$KAFKA_HOST" == 127.0.0.1 ]] || san="$san,IP:$KAFKA_HOST"
  elif [[ "$KAFKA_HOST" != localhost ]]; then
    san="$san,DNS:$KAFKA_HOST"
  fi
  (
    set -e
    cd "$TLS_DIR"
    rm -f ca.* broker.*
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=live-segments test CA" \
      -keyout ca.key -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$KAFKA_HOST" -keyout broker.key -out broker.csr
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
      "$san" >broker.ext
    openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
      -extfile broker.ext -out broker.crt
    openssl pkcs12 -export -name broker -in broker.crt -inkey broker.key -certfile ca.crt \
      -passout "pass:$TLS_PASSWORD" -out broker.keystore.p12
    # keytool, not openssl: Java only trusts PKCS12 certificate entries it marked itself.
    keytool -importcert -noprompt -alias ca -file ca.crt -storetype PKCS12 \
      -keystore broker.truststore.p12 -storepass "$TLS_PASSWORD"
    rm -f broker.csr broker.ext ca.srl
    chmod 600 ca.key broker.key
  ) >"$VAR/log/kafka-tls.log" 2>&1 || { log "certificate creation failed"; tail -20 "$VAR/log/kafka-tls.log" >&2; return 1; }
}

# sasl_properties: the SASL_SSL listener's settings, appended to server.properties.
sasl_properties() {
  cat <<EOF

# Opt-in SASL_SSL listener (STREAM_KAFKA_SASL_PORT), written by kafka.sh.
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${SASL_USER}="${SASL_PASSWORD}";
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/broker.keystore.p12
listener.name.sasl_ssl.ssl.keystore.password=$TLS_PASSWORD
listener.name.sasl_ssl.ssl.key.password=$TLS_PASSWORD
listener.name.sasl_ssl.ssl.truststore.type=PKCS12
listener.name.sasl_ssl.ssl.truststore.location=$TLS_DIR/broker.truststore.p12
listener.name.sasl_ssl.ssl.truststore.password=$TLS_PASSWORD
listener.name.sasl_ssl.ssl.client.auth=none
EOF
}

write_config() {
  mkdir -p "$KDIR/data"
  local extra_l="" extra_a="" extra_p=""
  if [[ -n "$SASL_PORT" ]]; then
    extra_l=",SASL_SSL://$KAFKA_HOST:$SASL_PORT"
    extra_a="$extra_l"
    extra_p=",SASL_SSL:SASL_SSL"
  fi
  sed -e "s#@DATA@#$KDIR/data#" -e "s#@HOST@#$KAFKA_HOST#g" \
      -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CPORT@#$KAFKA_CONTROLLER_PORT#g" \
      -e "s#@EXTRA_LISTENERS@#$extra_l#" -e "s#@EXTRA_ADVERTISED@#$extra_a#" \
      -e "s#@EXTRA_PROTOCOLS@#$extra_p#" \
      "$HERE/server.properties.in" >"$KDIR/server.properties"
  if [[ -n "$SASL_PORT" ]]; then sasl_properties >>"$KDIR/server.properties"; fi
  sed -e "s#@LOGDIR@#$VAR/log#g" "$HERE/log4j2.yaml.in" >"$KDIR/log4j2.yaml"
}

java_cmd() { java "${JAVA_OPTS[@]}" -cp "$JARS/*" "$@"; }

format_storage() {
  local args=(format --standalone -t "$(java_cmd kafka.tools.StorageTool random-uuid)" -c "$KDIR/server.properties")
  if [[ -n "$SASL_PORT" ]]; then
    args+=(--add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=\"$SASL_PASSWORD\"]")
  fi
  log "formatting KRaft storage"
  java_cmd kafka.tools.StorageTool "${args[@]}" >"$VAR/log/kafka-format.log" 2>&1 \
    || { tail -20 "$VAR/log/kafka-format.log" >&2; return 1; }
  if [[ -n "$SASL_PORT" ]]; then printf '%s\n' "$SASL_USER" >"$SCRAM_MARK"; fi
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

check_sasl_settings() {
  [[ "$SASL_PORT" =~ ^[0-9]+$ ]] || { log "STREAM_KAFKA_SASL_PORT must be a port number"; return 1; }
  [[ "$SASL_USER" =~ ^[A-Za-z0-9._-]+$ ]] || { log "STREAM_KAFKA_SASL_USER: letters, digits, . _ - only"; return 1; }
  local unsafe='[],"\[:space:]]'  # what --add-scram and the JAAS string cannot carry
  [[ -n "$SASL_PASSWORD" && ! "$SASL_PASSWORD" =~ $unsafe ]] \
    || { log "STREAM_KAFKA_SASL_PASSWORD must be non-empty, without , ] \" \\ or spaces"; return 1; }
}

start() {
  if pid_alive "$PIDFILE"; then log "kafka already running (pid $(cat "$PIDFILE"))"; return 0; fi
  if [[ -n "$SASL_PORT" ]]; then check_sasl_settings; fi
  resolve_jars
  if [[ -n "$SASL_PORT" ]]; then make_tls; fi
  write_config
  if [[ ! -f "$KDIR/data/meta.properties" ]]; then
    format_storage
  elif [[ -n "$SASL_PORT" && "$(cat "$SCRAM_MARK" 2>/dev/null)" != "$SASL_USER" ]]; then
    log "$KDIR/data was formatted without the SCRAM user $SASL_USER; remove it to start with SASL_SSL"
    return 1
  fi
  log "starting kafka on $KAFKA_HOST:$KAFKA_PORT${SASL_PORT:+ (SASL_SSL on $SASL_PORT)}"
  LOG_MARK="$(wc -l <"$VAR/log/kafka-server.log" 2>/dev/null || echo 0)"  # this start's lines follow
  local t0=$SECONDS
  detach "$PIDFILE" "$VAR/log/kafka.out" java "${JAVA_OPTS[@]}" -cp "$JARS/*" kafka.Kafka "$KDIR/server.properties"
  wait_alive "$PIDFILE" "kafka metadata" 120 broker_answers || { startup_failed; return 1; }
  log "kafka ready in $((SECONDS - t0))s"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid kafka "$PIDFILE" 60 ;;  # a clean KRaft shutdown spares the next start a log recovery
  status) pid_alive "$PIDFILE" && broker_answers ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
