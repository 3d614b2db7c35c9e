"""FastAPI application factory: state on app.state, routes in small modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.asyncio import Redis

from stream import __version__, metrics
from stream.api import errors
from stream.api.deps import Services
from stream.api.observe import RequestMetrics
from stream.api.routes import dashboard, export, insights, lists, registry, segments, users
from stream.config import Settings, get_settings
from stream.topics import kafka_reachable


class Alive(BaseModel):
    status: str


class Ready(BaseModel):
    redis: bool
    kafka: bool


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        app.state.services = Services.build(redis, settings)
        metrics.set_build_info()
        try:
            yield
        finally:
            await app.state.services.outputs.close()
            await app.state.services.users.close()
            await redis.aclose()

    app = FastAPI(title="Live segments", version=__version__, lifespan=lifespan)
    app.add_middleware(RequestMetrics)
    errors.install(app)

    @app.get("/livez", tags=["ops"], response_model=Alive)
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=Ready,
             responses={503: {"model": Ready, "description": "a dependency is unreachable"}})
    async def readyz() -> JSONResponse:
        services: Services = app.state.services
        try:
            redis_ok = bool(await services.redis.ping())
        except Exception:
            redis_ok = False
        kafka_ok = await kafka_reachable(settings.kafka_bootstrap)
        ok = redis_ok and kafka_ok
        return JSONResponse({"redis": redis_ok, "kafka": kafka_ok}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics_page() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    for module in (segments, insights, users, export, lists, registry, dashboard):
        app.include_router(module.router)
    return app
