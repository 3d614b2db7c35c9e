"""Every failure answers 4xx/503 JSON `{"detail": "..."}`, never a bare 500.

FastAPI's own validation answer is a list of error objects that can carry
non-JSON values (bytes, exceptions) and then fails to serialise; a short
string naming each bad location is both safer and easier to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import ClientDisconnect

from stream.control.log import RebuildRequired
from stream.kafkaio.outputs import KafkaUnavailable

MAX_DETAIL = 1000


def describe_errors(errors: Sequence[Any]) -> str:
    parts: list[str] = []
    for err in errors:
        if not isinstance(err, dict):
            parts.append(str(err)[:200])
            continue
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    text = "; ".join(parts) or "invalid request"
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": describe_errors(exc.errors())}, status_code=422)


async def _disconnected(_: Request, exc: Exception) -> JSONResponse:
    """Nobody reads this answer; it only keeps an aborted upload from being logged as a 500."""
    return JSONResponse({"detail": "client disconnected before the request body was read"}, status_code=400)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, RebuildRequired):
        return JSONResponse({"detail": str(exc)}, status_code=503)
    what = "kafka" if isinstance(exc, KafkaUnavailable) else "redis"
    return JSONResponse({"detail": f"{what} is unavailable, try again later"}, status_code=503)


async def _too_deep(_: Request, exc: Exception) -> JSONResponse:
    """The JSON parser recursed past Python's limit: a body nested absurdly deep."""
    return JSONResponse({"detail": "request body nests too deeply to be a valid request"}, status_code=400)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RecursionError, _too_deep)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ClientDisconnect, _disconnected)
    for exc_type in (KafkaUnavailable, RedisConnectionError, RedisTimeoutError, RebuildRequired):
        app.add_exception_handler(exc_type, _unavailable)
