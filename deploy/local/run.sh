#!/usr/bin/env bash
# `make run`: the stack and the demo data, in the foreground until Ctrl-C, SIGTERM or a hangup;
# then the stack is stopped once, in order, and the script exits 0.
#
# * It waits with `wait` on a sleeping child, which a trapped signal interrupts at once (bash
#   defers a trap while a foreground child runs: that is what kept the old loop sleeping).
# * Ctrl-C goes to the terminal's whole foreground process group, and GNU make, in that group,
#   would wait for this script and then re-raise SIGINT on itself (status 130, "Interrupt").
#   tty.py moves this script into a group of its own that holds the terminal, so the keystroke
#   reaches it alone and make sees a recipe that exited 0. The services run in sessions of their
#   own (common.sh `detach`), so it never reaches them either: stack.sh down stops them.
# * SIGTERM sent to this script ends it with 0 as well. Sent to make itself, make forwards it
#   here and everything stops the same way, but make then re-raises it (exit 143): GNU make does
#   that for any fatal signal it receives, whatever its recipe does.
# * Started and stopped once: a failure while starting stops what did start and exits non-zero;
#   more signals during the stop are ignored so that it always finishes.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${STREAM_RUN_TTY_TAKEN:-}" ]]; then
  export STREAM_RUN_TTY_TAKEN=1
  exec python3 "$HERE/tty.py" take -- bash "${BASH_SOURCE[0]}" "$@"
fi
unset STREAM_RUN_TTY_TAKEN  # not inherited by the services
source "$HERE/common.sh"
stack_env

sleeper=""
stopping=0
on_tty=0
[[ -t 2 ]] && on_tty=1
finish() {  # finish STATUS: the only way out
  local rc="$1"
  ((stopping)) && return 0
  stopping=1
  trap '' INT TERM HUP  # children inherit the ignore: a second Ctrl-C cannot cut the stop short
  set +e
  [[ -n "$sleeper" ]] && kill "$sleeper" 2>/dev/null
  # After a hangup the terminal is gone and writing to it fails: the stop logs to a file instead.
  if ((on_tty)) && [[ ! -t 2 ]]; then exec >>"$VAR/log/run.log" 2>&1; fi
  echo >&2
  log "stopping everything"
  bash "$HERE/stack.sh" down
  python3 "$HERE/tty.py" give
  trap - EXIT
  exit "$rc"
}
trap 'finish 0' INT TERM HUP
trap 'finish $?' EXIT

# Holding the terminal, this script is what a hangup no longer reaches: a closing terminal signals
# its shell, which signals make's process group. So the waiting child reads the terminal, and its
# read ends when the terminal goes away (typed lines and Ctrl-D are read and ignored).
watch_terminal() { while read -r _ || [[ -t 0 ]]; do :; done; }

bash "$HERE/stack.sh" up
bash "$HERE/stack.sh" demo
cat <<EOF

  Dashboard: http://127.0.0.1:$API_PORT/#key=$(cat "$VAR/admin.key")
  (signed in as the local admin; the key is in $VAR/admin.key. Ctrl-C stops everything)
  Worker metrics: http://127.0.0.1:$WORKER_WEB_PORT/metrics   Logs: $VAR/log/

EOF
if [[ -n "${STREAM_RUN_TTY_PGRP:-}" ]]; then
  watch_terminal <&0 &  # a redirection of its own, or bash gives a background child /dev/null
else
  sleep infinity &
fi
sleeper=$!
wait "$sleeper" || true
finish 0
