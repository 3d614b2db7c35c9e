#!/usr/bin/env bash
# Starts a test Kafka and Redis (own ports, own var dir), runs pytest, stops them.
# Usage: test.sh [pytest args...]   (no args: every tier, unit first)
export STREAM_VAR_DIR="${STREAM_TEST_VAR_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/var/test}"
export STREAM_KAFKA_PORT="${STREAM_TEST_KAFKA_PORT:-19092}"
export STREAM_KAFKA_CONTROLLER_PORT="${STREAM_TEST_KAFKA_CONTROLLER_PORT:-19093}"
export STREAM_REDIS_PORT="${STREAM_TEST_REDIS_PORT:-16380}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Tests need no history: a fresh broker and Redis each run start fast and never
# spend minutes recovering logs and consumer groups left by earlier runs.
pid_alive "$VAR/run/kafka.pid" || rm -rf "$VAR/kafka/data"
pid_alive "$VAR/run/redis.pid" || rm -rf "$VAR/redis"
bash "$ROOT/deploy/local/redis.sh" start
bash "$ROOT/deploy/local/kafka.sh" start
cleanup() {
  bash "$ROOT/deploy/local/kafka.sh" stop
  bash "$ROOT/deploy/local/redis.sh" stop
}
trap cleanup EXIT

export STREAM_TEST_KAFKA="$KAFKA_HOST:$KAFKA_PORT"
export STREAM_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
cd "$ROOT"
if [[ "${1:-}" == "--bench" ]]; then
  shift
  .venv/bin/python -m bench.run "$@"
elif [[ $# -gt 0 ]]; then
  .venv/bin/python -m pytest "$@"
else
  # Tests are isolated by a tag per test (topics, key prefix, ports), so tiers run on several
  # processes (pytest-xdist). Integration tests mostly wait on brokers, timers and subprocesses:
  # 3 processes took that tier from 30 to ~15 min on 2 cores; --dist loadfile keeps a module's
  # tests (and its one shared stack) in one process, and each process has its own Redis Cluster
  # (tests/integration/cluster/conftest.py). (loadgroup does not group on pytest 9: xdist 3.8
  # writes the group into item._nodeid, which pytest 9 no longer reads.)
  # STREAM_TEST_PROCESSES=1 runs each tier in one process.
  procs="${STREAM_TEST_PROCESSES:-3}"
  .venv/bin/python -m pytest -m unit -q -p no:cacheprovider -n "$(( procs < 2 ? procs : 2 ))" || exit $?
  .venv/bin/python -m pytest -m integration -q -p no:cacheprovider -n "$procs" --dist loadfile --durations=15 \
    || exit $?
  if compgen -G "tests/browser/test_*.py" >/dev/null; then
    .venv/bin/python -m pytest -m browser -q -p no:cacheprovider
  fi
fi
