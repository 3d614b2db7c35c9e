"""API keys and scopes: who may call a route, and the audit trail of what they did.

`Authorization: Bearer lsk_<id>_<secret>`. The id finds the key's record (as
materialised from the control log), the secret is hashed and compared with
`hmac.compare_digest`, so neither the lookup nor the comparison leaks the
secret through timing. Scopes are `read`, `pii`, `write`, `admin` (admin
holds all). No key or an unknown one answers 401 with `WWW-Authenticate`;
a key without the route's scope answers 403 naming the scope. A key's record
is looked up at most every 0.5 s per process, so a revoke reaches every API
process within a second.

Every route declares its scope with `Depends(need(Scope.X))`, which also puts
the scope into the OpenAPI document (an HTTP bearer security scheme, with the
scope in the operation's security requirement and description).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stream.api.deps import Services, services
from stream.control.catalog import split_token

CACHE_SECONDS = 0.5


class Scope(StrEnum):
    READ = "read"
    PII = "pii"
    WRITE = "write"
    ADMIN = "admin"


AUDITED = frozenset({Scope.PII, Scope.WRITE, Scope.ADMIN})


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]

    def holds(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


bearer = HTTPBearer(auto_error=False, description="An API key made with `stream keys create`.")


class KeyCache:
    """Key id -> (record or None, fetched at): one Redis read per key per 0.5 s at most."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[dict[str, Any] | None, float]] = {}

    async def get(self, svc: Services, key_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        hit = self._found.get(key_id)
        if hit is not None and now - hit[1] < CACHE_SECONDS:
            return hit[0]
        raw = await svc.core.redis.hget(svc.core.keys.api_keys, key_id)
        record = json.loads(raw) if raw else None
        if len(self._found) > 10_000:
            self._found.clear()
        self._found[key_id] = (record, now)
        return record


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="live-segments"'})


async def authenticate(request: Request, svc: Services,
                       credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing API key: send Authorization: Bearer <key>")
    parts = split_token(credentials.credentials)
    if parts is None:
        raise _unauthorized("unknown API key")
    key_id, secret = parts
    cache: KeyCache = request.app.state.keys
    record = await cache.get(svc, key_id)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    if record is None or not hmac.compare_digest(digest, str(record.get("sha256", ""))):
        raise _unauthorized("unknown API key")
    return Principal(key_id, str(record["name"]), frozenset(record.get("scopes", ())))


def need(scope: Scope) -> Any:
    """The dependency a route declares: a key holding `scope` (admin holds every scope)."""

    # Defaults, not Annotated: the scope is a local of `need`, which a postponed annotation
    # (this module uses `from __future__ import annotations`) could not see.
    async def check(request: Request, svc: Services = Depends(services),  # noqa: B008
                    credentials: HTTPAuthorizationCredentials | None = Security(bearer, scopes=[scope]),  # noqa: B008
                    ) -> Principal:
        principal = await authenticate(request, svc, credentials)
        if not principal.holds(scope):
            raise HTTPException(403, detail=f"this API key ({principal.name}) lacks the {scope!s} scope")
        request.state.principal = principal
        request.state.scope = scope
        if scope in (Scope.PII, Scope.ADMIN):
            request.state.no_store = True
        return principal

    check.__name__ = f"need_{scope}"
    return Depends(check)


async def _any_key(request: Request, svc: Annotated[Services, Depends(services)],
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Principal:
    return await authenticate(request, svc, credentials)


authenticated = Depends(_any_key)
READ = need(Scope.READ)
PII = need(Scope.PII)
WRITE = need(Scope.WRITE)
ADMIN = need(Scope.ADMIN)
