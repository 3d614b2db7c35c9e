"""Request metrics labelled by route template, as plain ASGI so streams are timed whole.

A `BaseHTTPMiddleware` would stop the clock when a streamed export's headers
leave; wrapping `send` times the request until its last byte. The template
(`/segments/{sid}`) comes from the matched route Starlette leaves in the
scope; a path that matched nothing is "unmatched", and odd methods "other",
so neither a crawler nor a fuzzer can grow the label sets.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream import metrics

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(scope: Scope) -> str:
    """The matched route's template. FastAPI leaves its own routes in the scope; for plain
    Starlette routes (/openapi.json, /docs, static mounts) the app's routes are asked again."""
    route: Any = scope.get("route")
    if route is None:
        partial: Any = None
        for candidate in getattr(scope.get("app"), "routes", ()):
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else "unmatched"


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope.get("method", "GET")
            method = method if method in METHODS else "other"
            route = route_label(scope)
            metrics.API_REQUESTS.labels(route, method, str(status)).inc()
            metrics.API_REQUEST_DURATION.labels(route, method).observe(time.perf_counter() - started)
