"""Browser tier: Debian's chromium, driven by Playwright, against the real stack.

The integration fixtures (real Kafka, Redis, worker and `stream api`
subprocesses) are re-exported, so a browser test seeds data exactly as the
integration tests do and then looks at it through the dashboard. No browser is
downloaded: Playwright launches `/usr/bin/chromium`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect
from redis.asyncio import Redis

from stream.config import Settings
from tests.integration.conftest import *  # noqa: F403  (fixtures: services, topics, redis, producer, start_*)
from tests.integration.conftest import ROOT, Proc, bearer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "test-output" / "screenshots"

# Pages wait on the real worker (memberships, recounts); give assertions room without ever sleeping.
expect.set_options(timeout=30_000)


def chromium_or_fail() -> str:
    """deploy/local/provision.sh installs it; missing means provisioning broke, so fail, never skip."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed (make provision installs Debian's chromium)")
    return CHROMIUM


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_or_fail()
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh context per test; an uncaught script error anywhere fails the test."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                        locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(30_000)
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    await context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


class Stack:
    """The dashboard's URL plus an API client to seed and check data with."""

    def __init__(self, settings: Settings, url: str, client: httpx.AsyncClient, key: str) -> None:
        self.settings, self.api, self.key = settings, client, key
        self.base = url
        self.url = f"{url}/#key={key}"  # signed in, as the URL `make run` prints

    async def visit(self, page: Page, route: str = "#/") -> None:
        """Signs in through the URL fragment (as `make run` prints it), then opens `route`."""
        await page.goto(self.url)
        await expect(page.locator("#key-name")).to_have_text("test-admin")
        await page.goto(f"{self.base}/{route}")

    async def create(self, name: str, kind: str = "live", rule: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "kind": kind}
        if rule is not None:
            body["rule"] = rule
        resp = await self.api.post("/segments", json=body)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())


@pytest_asyncio.fixture
async def stack(topics: Settings, redis: Redis, admin_key: str, start_worker: Callable[[Settings], Awaitable[Proc]],
                start_api: Callable[[Settings], Awaitable[str]]) -> AsyncIterator[Stack]:
    await start_worker(topics)
    url = await start_api(topics)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=bearer(admin_key)) as client:
        index = await client.get("/")
        wired = "GET / does not serve the dashboard: is routes.dashboard included in create_app()?"
        assert index.status_code == 200, wired
        assert "text/html" in index.headers["content-type"], wired
        yield Stack(topics, url, client, admin_key)


async def shot(page: Page, name: str, full_page: bool = True) -> None:
    """Keeps a screenshot in test-output/screenshots/ (git-ignored) to look at after a run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
