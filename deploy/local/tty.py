"""Moves `make run`'s foreground script into the terminal's foreground process group, and back.

A terminal delivers Ctrl-C (SIGINT) to its whole foreground process group,
and `make run` leaves make in that group beside its recipe. GNU make answers
SIGINT by waiting for the recipe and then re-raising the signal on itself, so
the command ends with status 130 and "Interrupt" however cleanly the recipe
stopped. `take` gives the recipe a process group of its own and hands it the
terminal: Ctrl-C then reaches the recipe alone, and make just sees it exit.
`give` hands the terminal back to the group it came from before the recipe
ends. Both do nothing when stdin is not the terminal or the caller is not in
its foreground (`make run &` must never steal the shell's terminal).

Usage: tty.py take -- COMMAND [ARGS...]   (execs COMMAND, same pid)
       tty.py give                          (reads STREAM_RUN_TTY_PGRP)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

ENV = "STREAM_RUN_TTY_PGRP"


def _foreground(fd: int) -> bool:
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def _set_foreground(fd: int, pgrp: int) -> None:
    # tcsetpgrp from a group that is (or is about to become) a background one raises SIGTTOU.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgrp)
    finally:
        signal.signal(signal.SIGTTOU, previous)


def take(command: list[str]) -> None:
    if _foreground(0):
        original = os.getpgrp()
        try:
            os.setpgid(0, 0)
            _set_foreground(0, os.getpgrp())
            os.environ[ENV] = str(original)
        except OSError:  # a session leader cannot change group; it already gets the signals alone
            if os.getpgrp() != original:
                os.setpgid(0, original)
    os.execvp(command[0], command)


def give() -> None:
    original = os.environ.get(ENV)
    if original and _foreground(0):
        # OSError: that group is gone (make was killed) or the terminal hung up.
        with contextlib.suppress(OSError, ValueError):
            _set_foreground(0, int(original))


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "take" and argv[1] == "--":
        take(argv[2:])
    elif argv == ["give"]:
        give()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
