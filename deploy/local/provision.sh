#!/usr/bin/env bash
# Installs what a fresh machine lacks: the Debian packages the stack and tests
# use, and the Python venv. Idempotent and quick when everything is there.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need_apt redis-server redis-server
need_apt redis-tools redis-cli
need_apt prometheus promtool
need_apt chromium chromium
command -v mvn >/dev/null || need_apt maven mvn
command -v java >/dev/null || need_apt openjdk-17-jre-headless java

stamp="$ROOT/.venv/.installed"
if [[ ! -f "$stamp" || "$ROOT/pyproject.toml" -nt "$stamp" ]]; then
  log "preparing the Python venv (.venv)"
  [[ -x "$ROOT/.venv/bin/python" ]] || python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install -q --upgrade pip >/dev/null
  "$ROOT/.venv/bin/pip" install -q -e "$ROOT[dev]"
  touch "$stamp"
fi
