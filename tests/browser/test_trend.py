"""The trend chart of a segment created days ago: its axis starts on the creation day, nothing is
drawn before it, and hovering a day shows its date, size, entered and exited.

The segment is born through the same catalog call the API uses, only with a creation instant three
days back, and its trend counters and members are written the way the worker's commit script
writes them; the chart then reads them through the real API. uPlot draws on a canvas, so what it
drew (the x-axis ticks, the plotted days) is read from the chart's data-* attributes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from playwright.async_api import Browser, Locator, Page, Route, expect
from redis.asyncio import Redis

from stream.rules import parse_segment
from stream.state.keys import Keys
from stream.state.members import plant_members
from stream.testing import ms
from stream.wiring import Core
from tests.browser.conftest import Stack, shot
from tests.integration.conftest import eventually

pytestmark = pytest.mark.browser


def day(created: date, n: int) -> str:
    return (created + timedelta(days=n)).isoformat()


async def three_days_old(stack: Stack, redis: Redis) -> tuple[str, date]:
    """A custom list created at 10:00 three days ago: 2 joined that day, then (+3 −1), (+1), today (+2 −1)."""
    created = datetime.now(UTC).date() - timedelta(days=3)
    keys = Keys(stack.settings.key_prefix)
    core = Core.build(stack.settings)
    try:
        seg, _ = await core.catalog.create_segment(parse_segment({"name": "Three days old", "kind": "custom_list"}),
                                                   created_ms=ms(datetime.combine(created, time(10), UTC)))
    finally:
        await core.close()
    await redis.hset(keys.trend(seg.id), mapping={
        f"e:{day(created, 0)}": 2, f"e:{day(created, 1)}": 3, f"x:{day(created, 1)}": 1,
        f"e:{day(created, 2)}": 1, f"e:{day(created, 3)}": 2, f"x:{day(created, 3)}": 1})
    await plant_members(redis, keys, seg.id, [f"u-{i}" for i in range(6)])

    async def served() -> bool:
        return bool((await stack.api.get(f"/segments/{seg.id}")).status_code == 200)

    await eventually(served, what="the API to know the segment")
    trend = (await stack.api.get(f"/segments/{seg.id}/trend")).json()
    assert trend["created_date"] == day(created, 0)
    assert [(p["date"], p["size"], p["entered"], p["exited"]) for p in trend["points"]] == [
        (day(created, 1), 4, 3, 1), (day(created, 2), 5, 1, 0)]
    assert trend["today"] == {"date": day(created, 3), "size": 6, "entered": 2, "exited": 1}
    return seg.id, created


async def hover_day(over: Locator, index: int, days_on_axis: int) -> None:
    """The pointer over day `index` of the axis (0: the creation day), whose ends are half a day wider."""
    box = await over.bounding_box()
    assert box, "the chart has no plot area"
    await over.hover(position={"x": box["width"] * (index + 0.5) / days_on_axis, "y": box["height"] / 2})


async def assert_axis(page: Page, created: date) -> None:
    chart = page.locator("#trend-chart")
    await expect(chart.locator("canvas")).to_have_count(1)
    await expect(chart).to_have_attribute("data-created", day(created, 0))
    ticks = (await chart.get_attribute("data-x-ticks") or "").split(",")
    assert ticks[0] == day(created, 0), f"x-axis ticks {ticks}: the first is not the creation day"
    assert ticks == [day(created, n) for n in range(4)], ticks
    # plotted: the full days after creation and today; nothing before the creation day, no zero filler
    assert await chart.get_attribute("data-days") == ",".join(day(created, n) for n in (1, 2, 3))


# What the dashboard will be served with: its own files only, no inline script, style or handler.
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'"


async def with_strict_csp(page: Page) -> list[str]:
    """Serves every page of the stack with STRICT_CSP; returns the violations Chromium reports."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)

    async def add_header(route: Route) -> None:
        response = await route.fetch()
        await route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    await page.route("**/*", add_header)
    return violations


async def test_trend_axis_starts_on_the_creation_day_with_tooltips(stack: Stack, page: Page, redis: Redis) -> None:
    sid, created = await three_days_old(stack, redis)
    violations = await with_strict_csp(page)
    await stack.visit(page, f"#/segments/{sid}")
    await expect(page.locator("#segment-name")).to_contain_text("Three days old")
    await expect(page.get_by_test_id("trend-today")).to_contain_text("6 members today")
    await assert_axis(page, created)

    over = page.locator("#trend-chart .u-over")
    tip = page.get_by_test_id("trend-tooltip")
    await expect(tip).to_be_hidden()
    await hover_day(over, 2, 4)
    await expect(tip).to_be_visible()
    await expect(tip).to_have_attribute("data-date", day(created, 2))
    await expect(tip.get_by_test_id("tooltip-size")).to_have_text("5")
    await expect(tip.get_by_test_id("tooltip-entered")).to_have_text("+1")
    await expect(tip.get_by_test_id("tooltip-exited")).to_have_text("−0")
    d2 = date.fromisoformat(day(created, 2))
    await expect(tip.get_by_test_id("tooltip-date")).to_contain_text(d2.strftime("%b"))
    await expect(tip.get_by_test_id("tooltip-date")).to_contain_text(str(d2.day))
    await shot(page, "11-trend-tooltip", full_page=False)

    # today's point says so; the creation day has no point, so the nearest is the first full day's
    await hover_day(over, 3, 4)
    await expect(tip).to_have_attribute("data-date", day(created, 3))
    await expect(tip.get_by_test_id("tooltip-date")).to_contain_text("today, so far")
    await expect(tip.get_by_test_id("tooltip-size")).to_have_text("6")
    await expect(tip.get_by_test_id("tooltip-entered")).to_have_text("+2")
    await expect(tip.get_by_test_id("tooltip-exited")).to_have_text("−1")
    await hover_day(over, 0, 4)
    await expect(tip).to_have_attribute("data-date", day(created, 1))
    await expect(tip.get_by_test_id("tooltip-size")).to_have_text("4")
    await expect(tip.get_by_test_id("tooltip-entered")).to_have_text("+3")
    await expect(tip.get_by_test_id("tooltip-exited")).to_have_text("−1")

    await page.mouse.move(0, 0)
    await expect(tip).to_be_hidden()
    assert not violations, violations


async def test_trend_days_do_not_shift_with_the_browsers_zone(stack: Stack, browser: Browser, redis: Redis) -> None:
    """Days are the server's: a browser ten hours behind UTC draws the same axis."""
    sid, created = await three_days_old(stack, redis)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Pacific/Honolulu")
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await stack.visit(page, f"#/segments/{sid}")
        await assert_axis(page, created)
        await hover_day(page.locator("#trend-chart .u-over"), 1, 4)
        await expect(page.get_by_test_id("trend-tooltip")).to_have_attribute("data-date", day(created, 1))
        assert not errors, errors
    finally:
        await context.close()
