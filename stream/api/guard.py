"""One ASGI layer around every request: body limits, security headers, the audit trail.

- Bodies are bounded: a Content-Length over the limit answers 413 at once,
  a chunked body is counted as it arrives (413 when it passes the limit), and
  a client that stops sending for `STREAM_API_BODY_TIMEOUT_SECONDS` gets 408.
  JSON bodies may be `STREAM_API_MAX_BODY_BYTES`, list uploads
  `STREAM_API_MAX_UPLOAD_BYTES`.
- Every response carries a Content-Security-Policy allowing only the
  project's own scripts, styles and API (`frame-ancestors 'none'`),
  `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`;
  responses holding PII are `Cache-Control: no-store`.
- Every pii, write and admin request is appended to the `audit` topic once its
  response is complete (so an export's record carries the rows actually
  sent): key name, method, route template, status, and the segment, user,
  fields and rows where the route has them. Never the secret. The record goes
  to the app's `AuditTrail` (api/audit.py), which writes them in groups.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream.api.auth import AUDITED, Principal
from stream.api.observe import route_label

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def is_upload(scope: Scope) -> bool:
    return scope.get("method") == "POST" and str(scope.get("path", "")).endswith("/list")


class Guard:
    def __init__(self, app: ASGIApp, max_body: int, max_upload: int, body_timeout: float) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload if is_upload(scope) else self.max_body
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _plain(send, 413, f"request body is {int(declared)} bytes; at most {limit} are read here")
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), timeout=self.body_timeout)
            except TimeoutError:
                raise HTTPException(408, detail=f"no request body data for {self.body_timeout:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, detail=f"request body is over {limit} bytes")
            return message

        status = 500

        async def guarded_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                extra = list(SECURITY_HEADERS)
                if state.get("no_store"):
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        finally:
            principal = state.get("principal")
            if isinstance(principal, Principal) and state.get("scope") in AUDITED:
                await self._audit(scope, state, principal, status)

    async def _audit(self, scope: Scope, state: dict[str, Any], principal: Principal, status: int) -> None:
        record: dict[str, Any] = {"ts": int(time.time() * 1000), "key": principal.name,
                                  "method": scope.get("method"), "route": route_label(scope), "status": status}
        params = scope.get("path_params") or {}
        if "sid" in params:
            record["segment_id"] = params["sid"]
        if "user_id" in params:
            record["user_id"] = params["user_id"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "fields" in query:
            record["fields"] = query["fields"][0][:4000]
        if "rows" in state:
            record["rows"] = state["rows"]
        app = scope.get("app")
        services = app.state.services if app is not None else None
        if services is not None:
            await services.audit.append(principal.name, record)


async def _plain(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
