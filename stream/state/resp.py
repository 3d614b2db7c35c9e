"""Raw RESP over plain sockets, routed by slot: the fast paths' connection to Redis.

The worker commits one script per user per batch, exports and recounts read
one hash per user, millions of times. Through redis-py each pipelined command
costs ~15-20 µs of Python (argument encoding, packing, a coroutine per reply);
here a command is one bytes join and hiredis parses a whole window of replies
in C (measured in the last round: commit path 2x, export 3x faster).

The same code serves one Redis and a Redis Cluster. In cluster mode commands
are grouped by the node owning their key's slot (`CLUSTER SLOTS`, CRC16 with
hash tags, as redis-py computes it), each node's group is pipelined on its own
connection and the replies are put back in order. MOVED refreshes the slot map
and re-sends to the new owner, ASK sends `ASKING` + the command to the target,
TRYAGAIN / CLUSTERDOWN / LOADING back off and retry, and a dropped connection
is reopened after a topology refresh and its commands re-sent. Every caller's
commands are idempotent or compare-and-set (a re-sent commit answers
"conflict" or "duplicate"), so re-sending after an unknown outcome is safe.
Still one key's slot per command: no command spans two users.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis.crc import key_slot
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from stream.state.client import Endpoint, refused

READ_CHUNK = 1 << 20
SLOTS = 16384
MAX_REDIRECTS = 8
# No reply for this long means a dead peer the kernel has not noticed (a partitioned node) or a
# connection out of step: it is reset and its commands re-sent, instead of hanging the caller.
# Far above any one command's time (WAIT blocks at most STREAM_REDIS_WAIT_TIMEOUT_MS).
READ_TIMEOUT = 30.0

class RedisRestarted(RedisConnectionError):
    """A Redis process restarted (or a master failed over) under a step: writes it answered may be
    gone, so the step must run again from the start rather than go on against the new process."""


class Frame(bytes):
    """A command already in RESP form: bulk reads build one per user from a fixed template
    (`bulk.HmgetTemplate`) instead of encoding every argument again (the generic `encode` was
    ~10% of an export's CPU). Sent as it is, re-sent as it is after MOVED or ASK."""


# Arguments as bytes, or str/int/float that hiredis writes as UTF-8 / decimal text.
Args = Sequence[bytes | str | int | float] | Frame
# (routing key, or None for "the one node" / "any node"; the command's arguments)
Command = tuple[str | None, Args]


def encode(args: Args) -> bytes:
    """hiredis's C packer: 2.4x the Python join it replaced, which with the str -> bytes step
    before it was ~6% of the worker's CPU (py-spy, 20 live segments)."""
    if isinstance(args, Frame):
        return args
    packed: bytes = hiredis.pack_command(cast(Any, tuple(args)))  # its stub types a 1-tuple
    return packed


def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


class _Conn:
    """One connection with its own hiredis parser (a read may hold the start of later replies)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.parser = hiredis.Reader(encoding="utf-8", errors="surrogateescape")
        self.generation = 0
        self.queue: deque[_Part] = deque()  # parts written and not yet read, in write order
        self.run_id = ""
        # Set once the setup replies (AUTH, SELECT, INFO) are read: before that another caller
        # seeing the socket as open wrote behind the setup and read it concurrently (CI: "read()
        # called while another coroutine is already waiting for incoming data").
        self.ready = False
        # One reader at a time, one opener at a time: the router is shared by coroutines that do
        # not hold the engine lock (a recount's sample rebuild, a list upload's commits, the
        # control tailer), and two reads on one StreamReader raise, or take each other's replies;
        # a read cut short (a cancelled task) would shift every later reply by what it left.
        self.read_lock = asyncio.Lock()
        self.open_lock = asyncio.Lock()

    async def open(self, ep: Endpoint) -> None:
        ctx = ep.ssl_context()
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=ctx, server_hostname=self.host if ctx else None),
            timeout=5)
        setup: list[Sequence[bytes]] = []
        if ep.password:
            setup.append([b"AUTH", *([ep.username.encode()] if ep.username else []), ep.password.encode()])
        if ep.db:
            setup.append([b"SELECT", str(ep.db).encode()])
        setup.append([b"INFO", b"server"])
        self.write(b"".join(encode(c) for c in setup))
        replies = await self.read(len(setup))
        for reply in replies:  # INFO too: without AUTH, a Redis that requires it answers NOAUTH there
            if isinstance(reply, hiredis.ReplyError):
                auth = str(reply).startswith(("WRONGPASS", "NOAUTH"))
                raise (AuthenticationError if auth else RedisConnectionError)(
                    f"redis refused the connection setup: {reply}")
        self.run_id = next((line.split(":", 1)[1].strip() for line in str(replies[-1]).splitlines()
                            if line.startswith("run_id:")), "")
        self.ready = True

    @property
    def is_open(self) -> bool:
        return self.ready and self.writer is not None and not self.writer.is_closing()

    def write(self, payload: bytes) -> None:
        if self.writer is None:
            raise RedisConnectionError("connection is closed")
        self.writer.write(payload)

    async def read(self, expected: int) -> list[Any]:
        if self.reader is None or self.writer is None:
            raise RedisConnectionError("connection is closed")
        await self.writer.drain()
        replies: list[Any] = []
        while len(replies) < expected:
            reply = self.parser.gets()
            if reply is False:
                try:
                    async with asyncio.timeout(READ_TIMEOUT):  # no task per read, unlike wait_for
                        data = await self.reader.read(READ_CHUNK)
                except TimeoutError:
                    raise RedisConnectionError(f"redis {self.host}:{self.port} sent nothing for "
                                               f"{READ_TIMEOUT:.0f} s") from None
                if not data:
                    raise RedisConnectionError(f"redis {self.host}:{self.port} closed the connection")
                self.parser.feed(data)
                continue
            replies.append(reply)
        return replies

    def reset(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
        self.ready = False
        self.parser = hiredis.Reader(encoding="utf-8", errors="surrogateescape")
        self.generation += 1
        self.queue.clear()

    async def read_part(self, part: _Part) -> list[Any]:
        """A part's replies; replies of parts written before it are read first and kept for them,
        so a re-send written behind a queued window cannot be read out of order.

        Safe for concurrent callers (the engine, the control tailer and job parts of one worker
        share a router): reads are serialised, and a read that fails or is cancelled midway
        resets the connection, so no later caller can be handed someone else's reply (seen:
        a worker stuck taking every INFO reply for another command's after a segment creation)."""
        async with self.read_lock:
            if part.buffer is not None:
                return part.buffer
            if part.generation != self.generation:
                raise RedisConnectionError(f"redis {self.host}:{self.port}: connection reset before the reply")
            try:
                while self.queue and self.queue[0] is not part:
                    head = self.queue.popleft()
                    head.buffer = await self.read(head.expected)
                if self.queue and self.queue[0] is part:
                    self.queue.popleft()
                return await self.read(part.expected)
            except BaseException:
                self.reset()
                raise


@dataclass
class _Part:
    conn: _Conn
    generation: int
    indices: list[int]
    commands: list[Args]
    asking: bool = False
    failed: bool = False
    buffer: list[Any] | None = None

    @property
    def expected(self) -> int:
        return len(self.commands) * (2 if self.asking else 1)


@dataclass
class Pending:
    """Commands written but not yet read: `RespRouter.result` collects them, in submission order."""

    commands: list[Command]
    parts: list[_Part] = field(default_factory=list)


class RespRouter:
    """Raw connections to one Redis or every master of a cluster.

    Concurrent callers are safe (each connection serialises its reads; a write is one
    synchronous call, so payloads never interleave). `submit` writes and returns at once so the caller
    can work while Redis does; `result` reads, fixes redirects and returns the
    replies in command order, with error replies as `hiredis.ReplyError` values.
    """

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self._conns: dict[tuple[str, int], _Conn] = {}
        self._slots: list[tuple[str, int]] | None = None
        self._refresh_after = 0.0
        # The process each node was last accepted as (`accept`, from the engine's instance check):
        # a connection opened to another process refuses commands until the new one is accepted.
        self._run_ids: dict[tuple[str, int], str] = {}
        self.restart_seen = False  # a command was refused that way: someone must check and accept

    # -- topology ----------------------------------------------------------------------------------

    async def _conn(self, node: tuple[str, int]) -> _Conn:
        conn = self._conns.get(node)
        if conn is None:
            conn = self._conns[node] = _Conn(*node)
        if not conn.is_open:
            async with conn.open_lock:  # two tasks must not both open it (the second would replace the first)
                if not conn.is_open:
                    await self._open(conn, node)
        return conn

    async def _open(self, conn: _Conn, node: tuple[str, int]) -> None:
        try:
            await conn.open(self.ep)
        except RedisConnectionError:
            conn.reset()  # a refused AUTH or SELECT: else the next call would take it for an open connection
            raise
        except (TimeoutError, OSError) as exc:
            conn.reset()
            raise RedisConnectionError(f"redis {node[0]}:{node[1]} unreachable: {exc}") from exc
        except BaseException:
            conn.reset()
            raise

    async def refresh(self) -> None:
        """Reads the slot map from any node that answers (known owners first, then the seeds)."""
        if not self.ep.cluster:
            return
        candidates = [n for n in dict.fromkeys([*(self._slots or []), *self.ep.nodes]) if n != ("", 0)]
        last: Exception | None = None
        for node in candidates:
            try:
                # Through the node's queue like any command: a caller may have windows written and
                # not yet read on this connection (an export, a backfill), whose replies come first.
                (reply,) = await self.on_node(node, [[b"CLUSTER", b"SLOTS"]], fenced=False)
            except (RedisConnectionError, OSError) as exc:
                last = exc
                continue
            if isinstance(reply, hiredis.ReplyError):
                last = RedisConnectionError(str(reply))
                continue
            slots: list[tuple[str, int]] = [("", 0)] * SLOTS
            for start, end, master, *_replicas in reply:
                host = master[0] or node[0]
                for s in range(int(start), int(end) + 1):
                    slots[s] = (host, int(master[1]))
            self._slots = slots
            self._refresh_after = 0.0
            return
        raise RedisConnectionError(f"no Redis Cluster node answered CLUSTER SLOTS: {last}")

    async def masters(self) -> list[tuple[str, int]]:
        if not self.ep.cluster:
            return [self.ep.nodes[0]]
        if self._stale():
            await self.refresh()
        assert self._slots is not None
        return sorted(set(self._slots) - {("", 0)})

    def _stale(self) -> bool:
        """No slot map yet, or a MOVED or an unreachable node said the map is out of date."""
        return self._slots is None or bool(self._refresh_after and time.monotonic() >= self._refresh_after)

    async def node_for(self, key: str | None) -> tuple[str, int]:
        if not self.ep.cluster:
            return self.ep.nodes[0]
        if self._stale():
            await self.refresh()
        assert self._slots is not None
        if key is None:
            return self._slots[0]
        node = self._slots[slot_of(key)]
        if node == ("", 0):
            await self.refresh()
            node = self._slots[slot_of(key)]
        return node

    # -- commands ----------------------------------------------------------------------------------

    async def submit(self, commands: Sequence[Command]) -> Pending:
        pending = Pending(list(commands))
        groups: dict[tuple[str, int], list[int]] = {}
        for i, (key, _) in enumerate(commands):
            groups.setdefault(await self.node_for(key), []).append(i)
        for node, indices in groups.items():
            await self._send(pending, node, indices, [commands[i][1] for i in indices])
        return pending

    def accept(self, run_ids: dict[tuple[str, int], str]) -> None:
        """The Redis processes the caller checked its state against (after a restart: once it
        reconciled). Until then, commands on a connection to another process are refused."""
        self._run_ids = dict(run_ids)
        self.restart_seen = False

    def _fence(self, node: tuple[str, int], conn: _Conn) -> None:
        """A step begun on one Redis process never goes on against the next one.

        The router reconnects and re-sends by itself, so without this a step whose
        Redis was killed and restored from an older copy would finish its commits
        on the copy (a profile update applied on top of a state that lacks the
        updates before it, which the replay then finds stale and drops)."""
        accepted = self._run_ids.get(node)
        if accepted and conn.run_id and conn.run_id != accepted:
            self.restart_seen = True
            raise RedisRestarted(f"redis {node[0]}:{node[1]} is another process now (run_id {accepted} -> "
                                 f"{conn.run_id}); the step begun on the old one stops here")

    async def _send(self, pending: Pending, node: tuple[str, int], indices: list[int],
                    commands: list[Args], asking: bool = False, fenced: bool = True) -> None:
        try:
            conn = await self._conn(node)
        except RedisConnectionError as exc:
            if refused(exc):
                raise  # credentials or certificate refused: re-sending cannot help, the caller must learn why
            pending.parts.append(_Part(_Conn(*node), -1, indices, commands, asking, failed=True))
            return
        if fenced:
            self._fence(node, conn)
        payload = b"".join((encode([b"ASKING"]) if asking else b"") + encode(c) for c in commands)
        part = _Part(conn, conn.generation, indices, commands, asking)
        try:
            conn.write(payload)
            conn.queue.append(part)
        except (RedisConnectionError, OSError):
            conn.reset()
            part.failed = True
        pending.parts.append(part)

    async def result(self, pending: Pending, attempt: int = 0) -> list[Any]:
        replies: list[Any] = [None] * len(pending.commands)
        redo: list[int] = []
        asks: dict[tuple[str, int], list[int]] = {}
        backoff = False
        for part in pending.parts:
            got: list[Any] | None = None
            if part.buffer is not None or (not part.failed and part.conn.generation == part.generation):
                try:
                    raw = await part.conn.read_part(part)
                    got = raw[1::2] if part.asking else raw
                except (RedisConnectionError, OSError):
                    part.conn.reset()
            if got is None:
                redo.extend(part.indices)
                continue
            for i, reply in zip(part.indices, got, strict=True):
                if isinstance(reply, hiredis.ReplyError):
                    text = str(reply)
                    if text.startswith("MOVED "):
                        self._refresh_after = time.monotonic()
                        redo.append(i)
                        continue
                    if text.startswith("ASK "):
                        host, _, port = text.split()[2].rpartition(":")
                        asks.setdefault((host, int(port)), []).append(i)
                        continue
                    if text.startswith(("TRYAGAIN", "CLUSTERDOWN", "LOADING")):
                        backoff = True
                        redo.append(i)
                        continue
                replies[i] = reply
        if not redo and not asks:
            return replies
        if attempt >= MAX_REDIRECTS:
            raise RedisConnectionError(f"redis kept redirecting or failing after {attempt} attempts")
        if backoff or redo:
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        if redo:
            with contextlib.suppress(RedisConnectionError):
                await self.refresh()
        again = Pending([pending.commands[i] for i in [*redo, *[j for v in asks.values() for j in v]]])
        order = [*redo, *[j for v in asks.values() for j in v]]
        position = {i: n for n, i in enumerate(order)}
        by_node: dict[tuple[str, int], list[int]] = {}
        for i in redo:
            by_node.setdefault(await self.node_for(pending.commands[i][0]), []).append(i)
        for node, indices in by_node.items():
            await self._send(again, node, [position[i] for i in indices], [pending.commands[i][1] for i in indices])
        for node, indices in asks.items():
            await self._send(again, node, [position[i] for i in indices],
                             [pending.commands[i][1] for i in indices], asking=True)
        fixed = await self.result(again, attempt + 1)
        for i in order:
            replies[i] = fixed[position[i]]
        return replies

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        return await self.result(await self.submit(commands))

    async def on_every_master(self, command: Sequence[bytes], fenced: bool = True) -> dict[tuple[str, int], Any]:
        """The same command on each master (one Redis: on it), for SCRIPT LOAD and INFO
        (`fenced=False`: the instance check itself, which must reach a new process)."""
        return {node: (await self.on_node(node, [command], fenced))[0] for node in await self.masters()}

    async def on_node(self, node: tuple[str, int], commands: Sequence[Sequence[bytes]],
                      fenced: bool = True) -> list[Any]:
        """Commands for one node in particular (WAIT must run on the master it waits for)."""
        pending = Pending([(None, c) for c in commands])
        await self._send(pending, node, list(range(len(commands))), list(commands), fenced=fenced)
        part = pending.parts[0]
        try:
            if part.failed:
                raise RedisConnectionError(f"redis {node[0]}:{node[1]} unreachable")
            try:
                return await part.conn.read_part(part)
            except (RedisConnectionError, OSError):
                part.conn.reset()
                raise
        except (RedisConnectionError, OSError):
            if self.ep.cluster:  # a master gone (failed over?): the next call reads the slot map again
                self._refresh_after = time.monotonic()
            raise

    async def close(self) -> None:
        for conn in self._conns.values():
            writer = conn.writer
            conn.reset()
            if writer is not None:
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        self._conns.clear()
