"""The API serves the dashboard's files itself, with the right types and nothing outside static/.

Browsers refuse module scripts served with a non-JavaScript type, and a
path parameter is an invitation to walk out of the folder; both are checked
on the real `stream api` process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import pytest_asyncio

from stream.config import Settings

pytestmark = pytest.mark.browser


@pytest_asyncio.fixture
async def api(topics: Settings, start_api: Callable[[Settings], Awaitable[str]]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=await start_api(topics), timeout=30) as client:
        yield client


TYPES = [
    ("/", "text/html"),
    ("/static/app.js", "text/javascript"),
    ("/static/app.css", "text/css"),
    ("/static/vendor/uPlot.iife.min.js", "text/javascript"),
    ("/static/vendor/uPlot.min.css", "text/css"),
    ("/static/vendor/uPlot.LICENSE.txt", "text/plain"),
    ("/static/favicon.svg", "image/svg+xml"),
]
REFUSED = [
    "/static/nope.js",
    "/static/",
    "/static/vendor",
    "/static/%2e%2e/routes/dashboard.py",
    "/static/..%2f..%2fconfig.py",
    "/static/%2fetc%2fpasswd",
    "/static/vendor/..%5c..%5capp.py",
    "/static/.hidden",
    "/static/app.js%00.css",
]


async def test_serves_its_files_and_nothing_else(api: httpx.AsyncClient) -> None:
    for path, content_type in TYPES:
        resp = await api.get(path)
        assert resp.status_code == 200, (path, resp.text)
        assert resp.headers["content-type"].startswith(content_type), path
        assert resp.content, path
    for path in REFUSED:
        resp = await api.get(path)
        assert resp.status_code == 404, (path, resp.status_code)
        assert "detail" in resp.json(), path
    # the UI is not part of the API contract
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith("/static")]
