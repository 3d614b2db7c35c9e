"""`make run` under a real pseudo-terminal: Ctrl-C or SIGTERM stops everything and returns 0.

make runs as the leader of a session whose controlling terminal is a pty, as
in a shell, so Ctrl-C (b"\\x03" written to the master) reaches the terminal's
foreground process group the way a keystroke does, make's own group included
until run.sh takes the terminal. The stack uses its own ports and var dir
(never the default stack's nor the test tier's) and a small demo, and is
stopped by `stack.sh down` whatever the test's outcome.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

URL = re.compile(rb"Dashboard: (http://127\.0\.0\.1:\d+/)#key=(lsk_[A-Za-z0-9_-]+)")
STARTUP_SECONDS = 360  # Kafka on 2 busy cores, plus resolving its jars on a fresh var dir
STOP_SECONDS = 150     # stack.sh down gives Kafka up to 60 s, the worker and API 20 s each
SERVICES = {"api", "worker", "kafka", "redis"}


def listen_port(taken: set[int]) -> int:
    """A free port below Linux's ephemeral range (32768+): a port there can be any client connection's
    local port the moment the service binds it, which on a busy machine made Kafka fail to start."""
    while True:
        port = random.randrange(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in taken:
            taken.add(port)
            return port


def run_env(var: Path) -> dict[str, str]:
    """This test's stack: ports from STREAM_TEST_RUN_* (or free ones), nothing from the outer make or stack."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STREAM_", "MAKE")) and k not in ("MFLAGS", "MAKEFLAGS")}
    taken: set[int] = set()
    for name in ("API", "KAFKA", "KAFKA_CONTROLLER", "REDIS", "WORKER_WEB"):
        env[f"STREAM_{name}_PORT"] = os.environ.get(f"STREAM_TEST_RUN_{name}_PORT") or str(listen_port(taken))
    env.update(STREAM_VAR_DIR=str(var), STREAM_DEMO_USERS="50", STREAM_DEMO_EVENTS="300", TERM="dumb")
    return env


def alive(pid: int) -> bool:
    """Running, and not merely a zombie nobody has reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def as_a_shell_starts_a_job() -> None:
    """In the child before exec: the pty becomes its controlling terminal, and SIGINT and SIGQUIT are
    back to their defaults, as an interactive shell sets them for a foreground job. A runner started
    in the background of a non-interactive shell (`cmd &`) inherits both ignored, and a signal ignored
    on entry cannot be trapped by bash: run.sh's Ctrl-C trap never fired, and the Ctrl-C test failed
    after 150 s with "^C" as the last output (seen in a clean-clone run started with `setsid ... &`)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


class Terminal:
    """`make run` in a new session with a pty as its controlling terminal; the output is drained continuously."""

    def __init__(self, env: dict[str, str], var: Path) -> None:
        self.key = ""
        self.env, self.var = env, var
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdin=slave,
                                     stdout=slave, stderr=slave, start_new_session=True,
                                     preexec_fn=as_a_shell_starts_a_job)
        os.close(slave)
        self._out = bytearray()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:  # a full pty buffer would block every writer in the stack
        while not self._closing.is_set():
            if not select.select([self.master], [], [], 0.2)[0]:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every holder of the slave side is gone
                return
            if not chunk:
                return
            with self._lock:
                self._out += chunk

    def hang_up(self) -> None:
        """Closes the master, as a terminal window being closed does (the reader lets go of it first)."""
        self._closing.set()
        self._reader.join(timeout=10)
        os.close(self.master)
        self.master = -1

    @property
    def output(self) -> str:
        with self._lock:
            return self._out.decode(errors="replace")

    def await_url(self) -> str:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            with self._lock:
                found = URL.search(self._out)
            if found:
                self.key = found.group(2).decode()
                return found.group(1).decode()
            assert self.proc.poll() is None, f"make run exited with {self.proc.returncode}:\n{self.output}{self.logs()}"
            time.sleep(0.2)
        raise AssertionError(f"no dashboard URL after {STARTUP_SECONDS}s:\n{self.output}{self.logs()}")

    def logs(self, lines: int = 25) -> str:
        """The stack's own logs, for a failure message (the next test starts from an empty log dir)."""
        parts = []
        for log in sorted((self.var / "log").glob("*")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"\n--- {log.name} ---\n" + "\n".join(tail))
        return "".join(parts)

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"make run still running {STOP_SECONDS}s after the signal:\n{self.output}") from None

    def close(self) -> None:
        """After a failure: SIGTERM to run.sh's group (an orderly stop), then SIGKILL to what is left."""
        if self.proc.poll() is None:
            groups = {self.proc.pid}
            with contextlib.suppress(OSError):
                groups.add(os.tcgetpgrp(self.master))
            groups |= {pid for pid in [self.waiter()] if pid}
            for group in groups - {self.proc.pid}:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                for group in groups:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(group, signal.SIGKILL)
                self.proc.wait()
        self._closing.set()
        self._reader.join(timeout=10)
        if self.master >= 0:
            os.close(self.master)

    def waiter(self) -> int | None:
        """make's child, run.sh (the leader of its own process group once it holds the terminal)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError, ValueError):
            return int(children.read_text().split()[0])
        return None


def stack(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "deploy" / "local" / "stack.sh"), command], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240, check=False)


def recorded_pids(var: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (var / "run").glob("*.pid")}


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    """A var dir for this test's stack only (Kafka's jars kept between runs, its data and Redis's not)."""
    var = Path(os.environ.get("STREAM_TEST_VAR_DIR") or ROOT / "var" / "test") / "make-run"
    env = run_env(var)
    stack(env, "down")  # whatever a crashed earlier run may have left
    for sub in ("kafka/data", "redis", "faust", "run", "log"):
        shutil.rmtree(var / sub, ignore_errors=True)
    term = Terminal(env, var)
    try:
        yield term
    finally:
        term.close()
        if [pid for pid in recorded_pids(var).values() if alive(pid)]:  # only after a failure
            stack(env, "down")


def assert_all_stopped(term: Terminal, pids: dict[str, int]) -> None:
    assert not [name for name, pid in pids.items() if alive(pid)], f"still running:\n{term.output}"
    status = stack(term.env, "status")
    assert status.returncode != 0, status.stdout
    down = subprocess.run(["make", "--no-print-directory", "down"], cwd=ROOT, env=term.env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert down.returncode == 0, down.stderr
    assert "stopping" not in down.stderr, f"make down found something running:\n{down.stderr}"


def started(term: Terminal) -> dict[str, int]:
    url = term.await_url()
    assert url == f"http://127.0.0.1:{term.env['STREAM_API_PORT']}/"
    assert stack(term.env, "status").returncode == 0
    key_file = term.var / "admin.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.read_text().strip() == term.key
    me = subprocess.run(["curl", "-fsS", "-H", f"authorization: Bearer {term.key}", url + "auth/me"],
                        capture_output=True, text=True, timeout=30, check=False)
    assert me.returncode == 0 and '"admin"' in me.stdout, me.stdout + me.stderr
    pids = recorded_pids(term.var)
    assert pids.keys() >= SERVICES and all(map(alive, pids.values())), pids
    return pids


def test_ctrl_c_stops_everything_and_exits_0(terminal: Terminal) -> None:
    pids = started(terminal)
    os.write(terminal.master, b"\x03")
    assert terminal.wait() == 0, terminal.output
    assert "Interrupt" not in terminal.output and "***" not in terminal.output, terminal.output
    assert "stopping everything" in terminal.output
    assert_all_stopped(terminal, pids)


def test_sigterm_to_the_foreground_stops_everything_and_exits_0(terminal: Terminal) -> None:
    """SIGTERM to the terminal's foreground group (where Ctrl-C goes): run.sh's group, not make's."""
    pids = started(terminal)
    foreground = os.tcgetpgrp(terminal.master)
    assert foreground != terminal.proc.pid, "run.sh did not take the terminal from make"
    os.killpg(foreground, signal.SIGTERM)
    assert terminal.wait() == 0, terminal.output
    assert "***" not in terminal.output and "stopping everything" in terminal.output, terminal.output
    assert_all_stopped(terminal, pids)


def test_sigterm_to_make_stops_everything(terminal: Terminal) -> None:
    """make forwards SIGTERM to run.sh, which stops the stack and exits 0; GNU make then re-raises the
    signal on itself (it does for every fatal signal it receives), so the status is SIGTERM's, not 0."""
    pids = started(terminal)
    terminal.proc.send_signal(signal.SIGTERM)
    assert terminal.wait() == -signal.SIGTERM, terminal.output
    assert "***" not in terminal.output, terminal.output  # the recipe itself did not fail
    assert "stopping everything" in terminal.output
    assert_all_stopped(terminal, pids)


def test_closing_the_terminal_stops_everything(terminal: Terminal) -> None:
    """A hangup signals make (the session leader here; the closing shell's job in real life), never
    run.sh's own group: run.sh notices the terminal is gone and stops the stack, logging to run.log.
    make, signalled, then re-raises SIGHUP on itself."""
    pids = started(terminal)
    terminal.hang_up()
    assert terminal.wait() == -signal.SIGHUP, terminal.output
    assert_all_stopped(terminal, pids)
    log = (terminal.var / "log" / "run.log").read_text()
    assert "stopping everything" in log and "stopping kafka" in log, log
