"""Redis connections made from the settings: one Redis or a Redis Cluster, plain or TLS.

Every process builds its clients here, so the worker, the API, jobs and the
raw RESP fast paths (`stream.state.resp`) all use the same nodes, credentials
and certificates. In cluster mode `STREAM_REDIS_URL` lists seed nodes
(comma separated); redis-py's cluster client discovers the rest.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import (
    AskError,
    AuthenticationError,
    ClusterDownError,
    MovedError,
    NoPermissionError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.config import Settings

RedisClient: TypeAlias = Redis | RedisCluster
T = TypeVar("T")


ATOMIC_ATTEMPTS = 6


class Cluster(RedisCluster):
    """redis-py's async cluster client, plus a plain client per master for MULTI/EXEC.

    redis-py 8's async cluster pipeline runs a transaction's commands one by
    one in a thread with a new event loop each (`asyncio.run` inside
    `execute_command`): it blocks the worker's loop and, when the cluster
    client must re-read its topology meanwhile, waits on a lock that loop
    holds (a failover drill froze a worker that way). A transaction here only
    ever touches one hash tag, so it runs as a plain MULTI/EXEC on the master
    of that slot instead (`atomic`)."""

    def __init__(self, *args: Any, node_kwargs: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._node_kwargs = node_kwargs
        self._node_clients: dict[tuple[str, int], Redis] = {}

    async def master_client(self, key: str) -> Redis:
        """A plain client of the master serving `key`'s slot now (as this client's map says)."""
        await self.initialize()
        node = self.get_node_from_key(key)
        if node is None:
            raise ClusterDownError(f"no master serves the slot of {key!r}")
        address = (node.host, int(node.port))
        found = self._node_clients.get(address)
        if found is None:
            found = self._node_clients[address] = Redis(host=address[0], port=address[1], **self._node_kwargs)
        return found

    async def stale_topology(self) -> None:
        """Re-reads the slot map (after a MOVED or an unreachable master, as redis-py does itself)."""
        await self.nodes_manager.initialize()

    async def aclose(self) -> None:
        clients, self._node_clients = list(self._node_clients.values()), {}
        for client in clients:
            await client.aclose()
        await super().aclose()


async def atomic(redis: RedisClient, key: str, build: Callable[[Pipeline], object]) -> list[Any]:
    """MULTI/EXEC of the commands `build` queues, every one on `key`'s hash tag; their replies.

    One Redis: its transaction pipeline. A cluster: the same on the slot's
    master; a MOVED, TRYAGAIN, CLUSTERDOWN or lost master (a failover under
    way) aborts the whole transaction, so the slot map is read again and the
    transaction re-sent, with back-off, before the error reaches the caller."""
    if isinstance(redis, Redis):
        pipe = redis.pipeline(transaction=True)
        build(pipe)
        return list(await pipe.execute())
    if not isinstance(redis, Cluster):
        raise TypeError("a cluster client made by stream.state.client.connect is needed for transactions")
    for attempt in range(ATOMIC_ATTEMPTS):
        try:
            pipe = (await redis.master_client(key)).pipeline(transaction=True)
            build(pipe)
            return list(await pipe.execute())
        except (MovedError, AskError, TryAgainError, ClusterDownError, RedisConnectionError, RedisTimeoutError,
                OSError):
            if attempt == ATOMIC_ATTEMPTS - 1:
                raise
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
            try:
                await redis.stale_topology()
            except (RedisConnectionError, RedisTimeoutError, OSError, ClusterDownError):
                continue
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect, parsed once from the settings."""

    nodes: tuple[tuple[str, int], ...]
    db: int
    username: str | None
    password: str | None
    tls: bool
    ca_certs: str | None
    certfile: str | None
    keyfile: str | None
    cluster: bool

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.ca_certs or None)
        if self.certfile:
            ctx.load_cert_chain(self.certfile, self.keyfile or None)
        return ctx


def endpoint(settings: Settings) -> Endpoint:
    nodes: list[tuple[str, int]] = []
    tls = False
    username = password = None
    db = 0
    for url in settings.redis_url.split(","):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"STREAM_REDIS_URL: unsupported scheme {parts.scheme!r} (redis:// or rediss://)")
        tls = tls or parts.scheme == "rediss"
        nodes.append((parts.hostname or "127.0.0.1", parts.port or 6379))
        username = username or (unquote(parts.username) if parts.username else None)
        password = password or (unquote(parts.password) if parts.password else None)
        if parts.path.strip("/"):
            db = int(parts.path.strip("/"))
    if settings.redis_username:
        username = settings.redis_username
    if settings.redis_password.get_secret_value():
        password = settings.redis_password.get_secret_value()
    if settings.redis_cluster and db:
        raise ValueError("STREAM_REDIS_URL: a Redis Cluster has only database 0")
    return Endpoint(tuple(nodes), db, username, password, tls, settings.redis_ssl_ca_certs or None,
                    settings.redis_ssl_certfile or None, settings.redis_ssl_keyfile or None, settings.redis_cluster)


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error under `exc` (redis-py wraps it in a ConnectionError), if any."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None or isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def refused(exc: BaseException) -> bool:
    """Redis (or its TLS layer) turned these settings down: retrying the same settings cannot help."""
    if isinstance(exc, AuthenticationError | NoPermissionError):
        return True
    tls = _ssl_error(exc)
    return tls is not None and (isinstance(tls, ssl.SSLCertVerificationError)
                                or "WRONG_VERSION_NUMBER" in str(tls) or "CERTIFICATE" in str(tls))


def describe_refusal(exc: BaseException, settings: Settings) -> str:
    """One line saying what Redis refused and which settings to look at."""
    ep = endpoint(settings)
    where = "redis at " + ",".join(f"{h}:{p}" for h, p in ep.nodes)
    user = ep.username or "default"
    if isinstance(exc, AuthenticationError):
        if not ep.password:
            return (f"{where} requires authentication ({exc}); set STREAM_REDIS_USERNAME and STREAM_REDIS_PASSWORD "
                    "(or user:password in STREAM_REDIS_URL)")
        return (f"{where} refused the credentials of user {user!r} ({exc}); check STREAM_REDIS_USERNAME and "
                "STREAM_REDIS_PASSWORD (or the user:password in STREAM_REDIS_URL)")
    if isinstance(exc, NoPermissionError):
        return f"{where}: user {user!r} lacks a permission the product needs ({exc}); see its ACL rules"
    tls = _ssl_error(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        return (f"{where}: its TLS certificate is not trusted ({tls.verify_message}); "
                "set STREAM_REDIS_SSL_CA_CERTS to the CA that signed it")
    if tls is not None:
        hint = "" if ep.tls else "; is it a TLS port (rediss:// in STREAM_REDIS_URL)?"
        return f"{where}: the TLS handshake failed ({tls.reason or tls}){hint}"
    return f"{where}: {exc}"


class _Retry(Retry):
    """redis-py's retry, except for a refusal: AuthenticationError is a ConnectionError to redis-py,
    but a wrong password stays wrong, and retrying it only delays the answer by seconds."""

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[..., Any],
                              is_retryable: Callable[[Exception], bool] | None = None,
                              with_failure_count: bool = False) -> T:
        def retryable(exc: Exception) -> bool:
            return not refused(exc) and (is_retryable is None or is_retryable(exc))

        return await super().call_with_retry(do, fail, retryable, with_failure_count)


def connect(settings: Settings, **overrides: Any) -> RedisClient:
    """A decode_responses client: every product key and value is text."""
    ep = endpoint(settings)
    # A restarted Redis leaves every pooled connection dead: retry on a fresh one, with back-off,
    # before an outage is reported to the caller (which then backs off on its own).
    kwargs: dict[str, Any] = {"decode_responses": True, "username": ep.username, "password": ep.password,
                              "socket_connect_timeout": 5, "health_check_interval": 10,
                              "retry": _Retry(ExponentialBackoff(cap=1.0, base=0.05), 6),
                              "retry_on_error": [RedisConnectionError, RedisTimeoutError, OSError]}
    if ep.tls:
        kwargs.update(ssl=True, ssl_ca_certs=ep.ca_certs, ssl_certfile=ep.certfile, ssl_keyfile=ep.keyfile)
    kwargs.update(overrides)
    if ep.cluster:
        node_kwargs = dict(kwargs)
        kwargs.pop("health_check_interval", None)
        return Cluster(startup_nodes=[ClusterNode(h, p) for h, p in ep.nodes], node_kwargs=node_kwargs, **kwargs)
    host, port = ep.nodes[0]
    return Redis(host=host, port=port, db=ep.db, **kwargs)


async def redis_refusal(settings: Settings) -> str | None:
    """Why Redis refuses these settings, in one line; None when it accepts them or cannot be reached
    (an outage, which the services ride out)."""
    try:
        endpoint(settings).ssl_context()
    except (OSError, ssl.SSLError) as exc:
        files = {"CA_CERTS": settings.redis_ssl_ca_certs, "CERTFILE": settings.redis_ssl_certfile,
                 "KEYFILE": settings.redis_ssl_keyfile}
        named = ", ".join(f"STREAM_REDIS_SSL_{k}={v!r}" for k, v in files.items() if v)
        return f"redis: cannot load the TLS files ({named}): {exc}"
    client = connect(settings, retry=_Retry(NoBackoff(), 0))
    try:
        await client.ping()
    except Exception as exc:
        return describe_refusal(exc, settings) if refused(exc) else None
    finally:
        await client.aclose()
    return None
