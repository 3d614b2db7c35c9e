"""The dashboard: a static single-page app served by the API itself, at `/`.

No separate web server and nothing fetched at run time: `index.html`, the JS
modules, the CSS and the vendored chart library ship inside the package
(`stream/api/static/`). Paths are resolved and checked to stay inside that
folder, so `..`, absolute paths or symlinks out of it answer 404 like any
unknown file. Content types come from a fixed table, not the host's
`mimetypes` database, because browsers refuse a module script that is not
served as JavaScript. The routes are left out of the OpenAPI schema: they are
the UI, not the API contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
CONTENT_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
# Revalidate on every load (cheap: FileResponse sends ETag/Last-Modified), so an upgrade shows at once.
NO_CACHE: Final = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def resolve_static(relative: str) -> Path | None:
    """The file `relative` names inside STATIC_DIR, or None when it is unknown, hidden or outside."""
    if not relative or len(relative) > 200 or "\x00" in relative or "\\" in relative:
        return None
    parts = relative.split("/")
    if any(not p or p.startswith(".") for p in parts):
        return None
    root = STATIC_DIR.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    if candidate.suffix.lower() not in CONTENT_TYPES:
        return None
    return candidate


def _file(path: Path) -> FileResponse:
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix.lower()], headers=NO_CACHE)


@router.api_route("/", methods=["GET", "HEAD"])
async def index() -> FileResponse:
    return _file(STATIC_DIR / "index.html")


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"])
async def static(path: str) -> FileResponse:
    found = resolve_static(path)
    if found is None:
        raise HTTPException(404, detail=f"static file {path[:100]!r} not found")
    return _file(found)
