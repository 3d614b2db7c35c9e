#!/usr/bin/env bash
# A real Redis Cluster from Debian's redis-server: 3 masters + 3 replicas on consecutive ports
# (STREAM_REDIS_CLUSTER_PORT, default 7001..7006), their cluster-bus ports from
# STREAM_REDIS_CLUSTER_BUS_PORT on (default port+10000, as Redis picks). The tests and the bench keep
# both below Linux's ephemeral range (32768+): 27001 gave bus port 37006, which a client connection's
# local port held in CI, and the node aborted. AOF as deploy/redis/redis.conf, data under
# $VAR/redis-cluster/<port>, pid files in $VAR/run. A short cluster-node-timeout (2 s) makes a
# replica take over within seconds of its master dying, which the failover drill relies on.
# Usage: redis_cluster.sh start|stop|status|nodes|pid PORT
#   start  starts the nodes that are not running; creates the cluster on first start only (a node
#          restarted later finds its peers in its nodes.conf and rejoins, as a replica if its
#          slots failed over meanwhile); waits until every node says cluster_state:ok.
#   stop   stops every node by its recorded pid.
#   nodes  prints the seed URL list (comma separated) for STREAM_REDIS_URL.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
FIRST_PORT="${STREAM_REDIS_CLUSTER_PORT:-7001}"
FIRST_BUS_PORT="${STREAM_REDIS_CLUSTER_BUS_PORT:-$((FIRST_PORT + 10000))}"
NODE_TIMEOUT_MS="${STREAM_REDIS_CLUSTER_NODE_TIMEOUT_MS:-2000}"
PORTS=()
for i in 0 1 2 3 4 5; do PORTS+=($((FIRST_PORT + i))); done
CDIR="$VAR/redis-cluster"

pidfile() { echo "$VAR/run/redis-cluster-$1.pid"; }
cli() { local port="$1"; shift; redis-cli -p "$port" "$@"; }
ping() { cli "$1" ping | grep -q PONG; }
# The node on PORT is the process of our pid file (not another cluster's node holding the port).
ours() {
  pid_alive "$(pidfile "$1")" || return 2
  [[ "$(cli "$1" info server | tr -d '\r' | sed -n 's/^process_id://p')" == "$(cat "$(pidfile "$1")")" ]]
}
info_field() { cli "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"; }

# Every node sees all 6 nodes and a full slot map, and every replica has synced with its master.
healthy() {
  local port role
  for port in "${PORTS[@]}"; do
    [[ "$(info_field "$port" cluster_state)" == ok ]] || return 1
    [[ "$(info_field "$port" cluster_known_nodes)" == 6 ]] || return 1
    role="$(cli "$port" info replication | tr -d '\r')"
    if grep -q '^role:slave' <<<"$role"; then grep -q '^master_link_status:up' <<<"$role" || return 1; fi
  done
}

start_node() {
  local port="$1" dir="$CDIR/$1"
  if pid_alive "$(pidfile "$port")"; then return 0; fi
  mkdir -p "$dir"
  rm -f "$(pidfile "$port")"  # a kill -9 leaves it behind; the new process writes its own once listening
  log "starting redis cluster node on 127.0.0.1:$port"
  redis-server "$ROOT/deploy/redis/redis.conf" --port "$port" --bind 127.0.0.1 --dir "$dir" \
    --cluster-port "$((FIRST_BUS_PORT + port - FIRST_PORT))" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout "$NODE_TIMEOUT_MS" \
    --daemonize yes --pidfile "$(pidfile "$port")" --logfile "$VAR/log/redis-cluster-$port.log"
}

start() {
  need_apt redis-server redis-server
  local port
  for port in "${PORTS[@]}"; do start_node "$port"; done
  for port in "${PORTS[@]}"; do
    wait_for "redis cluster node $port to listen" 15 test -s "$(pidfile "$port")" \
      || { tail -5 "$VAR/log/redis-cluster-$port.log" >&2; return 1; }
    wait_alive "$(pidfile "$port")" "redis cluster node $port" 30 ours "$port" \
      || { tail -5 "$VAR/log/redis-cluster-$port.log" >&2; return 1; }
  done
  # Created once: a node that has ever been part of it keeps its peers and slots in nodes.conf.
  if [[ "$(info_field "${PORTS[0]}" cluster_slots_assigned)" == 0 ]]; then
    log "creating the cluster (3 masters, 3 replicas)"
    local addrs=()
    for port in "${PORTS[@]}"; do addrs+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$VAR/log/redis-cluster-create.log" 2>&1 \
      || { cat "$VAR/log/redis-cluster-create.log" >&2; return 1; }
  fi
  wait_for "cluster_state:ok on every node" 60 healthy || { cli "${PORTS[0]}" cluster nodes >&2; return 1; }
  log "redis cluster up on ports ${PORTS[0]}-${PORTS[5]}"
}

# All at once: each node flushes its AOF on SIGTERM, which takes a second or two.
stop() {
  local port
  for port in "${PORTS[@]}"; do stop_pid "redis cluster node $port" "$(pidfile "$port")" & done
  wait
}

status() {
  local port
  for port in "${PORTS[@]}"; do pid_alive "$(pidfile "$port")" || return 1; done
  healthy
}

nodes() {
  local port urls=()
  for port in "${PORTS[@]:0:3}"; do urls+=("redis://127.0.0.1:$port"); done
  (IFS=,; echo "${urls[*]}")
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  nodes) nodes ;;
  pid) cat "$(pidfile "${2:?port}")" ;;
  *) echo "usage: $0 start|stop|status|nodes|pid PORT" >&2; exit 2 ;;
esac
