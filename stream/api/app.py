"""FastAPI application factory: state on app.state, routes in small modules."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import AuthenticationError, NoPermissionError

from stream import __version__, metrics
from stream.api import errors, openapi
from stream.api.auth import KeyCache
from stream.api.deps import Services
from stream.api.guard import Guard
from stream.api.observe import RequestMetrics
from stream.api.routes import (
    admin,
    campaigns,
    dashboard,
    explain,
    export,
    insights,
    lists,
    overlap,
    segments,
    users,
)
from stream.config import Settings, get_settings
from stream.control.epoch import ensure_epoch
from stream.kafkaio.topics import kafka_reachable
from stream.state.client import describe_refusal, refused

log = logging.getLogger(__name__)


class Alive(BaseModel):
    status: str


class Ready(BaseModel):
    redis: bool
    kafka: bool
    rebuild_required: bool = False
    # Why not ready, one short line per cause (empty when ready). The endpoint needs no key, so a
    # reason names no host, user or file: the API's log has the full line (state.client.describe_refusal).
    reasons: list[str] = []


def redis_reason(exc: BaseException, settings: Settings) -> str:
    """What /readyz says about a failed PING; a refusal is logged in full for the operator."""
    if not refused(exc):
        return "redis unreachable"
    log.warning("readyz: %s", describe_refusal(exc, settings))
    if isinstance(exc, AuthenticationError):
        return "redis refused the credentials (see the API log)"
    if isinstance(exc, NoPermissionError):
        return "redis: the user lacks a permission the product needs (see the API log)"
    return "redis refused the TLS settings (see the API log)"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services.build(settings)
        metrics.set_build_info()
        try:
            yield
        finally:
            await app.state.services.audit.close()
            await app.state.services.core.close()

    app = FastAPI(title="Live segments", version=__version__, lifespan=lifespan)
    app.state.keys = KeyCache()
    app.add_middleware(Guard, max_body=settings.api_max_body_bytes, max_upload=settings.api_max_upload_bytes,
                       body_timeout=settings.api_body_timeout_seconds)
    app.add_middleware(RequestMetrics)
    errors.install(app)

    @app.get("/livez", tags=["ops"], response_model=Alive)
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=Ready,
             responses={503: {"model": Ready, "description": "a dependency is unreachable"}})
    async def readyz() -> JSONResponse:
        services: Services = app.state.services
        core = services.core
        reasons: list[str] = []
        try:
            redis_ok = bool(await core.redis.ping())
        except Exception as exc:
            redis_ok = False
            reasons.append(redis_reason(exc, settings))
        kafka_ok = await kafka_reachable(settings)
        if not kafka_ok:
            reasons.append("kafka unreachable")
        rebuild = False
        if redis_ok and kafka_ok:
            try:
                rebuild = not await ensure_epoch(settings, core.redis, core.keys)
            except Exception:
                kafka_ok = False
                reasons.append("kafka unreachable (reading the control log's epoch)")
        if rebuild:
            reasons.append("rebuild required: Redis holds no state but Kafka does; run `stream rebuild`")
        metrics.REBUILD_REQUIRED.set(1 if rebuild else 0)
        for dep, up in (("redis", redis_ok), ("kafka", kafka_ok)):
            metrics.DEPENDENCY_UP.labels(dep).set(1 if up else 0)
        ok = redis_ok and kafka_ok and not rebuild
        return JSONResponse({"redis": redis_ok, "kafka": kafka_ok, "rebuild_required": rebuild, "reasons": reasons},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics_page() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    for module in (segments, insights, overlap, users, explain, export, lists, campaigns, admin, dashboard):
        app.include_router(module.router)
    openapi.document_access(app)
    return app
