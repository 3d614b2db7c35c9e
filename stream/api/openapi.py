"""The OpenAPI document states each route's scope and its 401/403 answers.

FastAPI already lists the bearer scheme and, per operation, a security
requirement naming the scope (`{"HTTPBearer": ["pii"]}`); this adds the scope
to the description and declares the 401 and 403 answers, so a client (and the
access test, which walks this document) knows what each route needs.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}


def document_access(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for path in schema.get("paths", {}).values():
            for op in path.values():
                security = op.get("security") or []
                scopes = sorted({s for req in security for values in req.values() for s in values})
                if not security:
                    continue
                needs = f"Needs an API key with the `{scopes[0]}` scope (or `admin`)." if scopes else \
                    "Needs any valid API key."
                op["description"] = (op.get("description", "") + "\n\n" + needs).strip()
                responses = op.setdefault("responses", {})
                responses.setdefault("401", {"description": "no API key, or an unknown one", **ERROR})
                if scopes:
                    responses.setdefault("403", {"description": f"the key lacks the {scopes[0]} scope", **ERROR})
                op["x-scope"] = scopes[0] if scopes else "any"
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
