"""The dashboard as a marketer uses it, on the real stack (Kafka, worker, Redis, API).

Data goes in the way production data does (profiles on Kafka, segments over
HTTP); every wait is either `eventually` on the API or Playwright's `expect`
with a deadline. Each page is screenshotted into test-output/screenshots/.
"""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Page, expect

from tests.browser.conftest import Stack, shot
from tests.integration.conftest import eventually, make_key, produce_json

pytestmark = pytest.mark.browser

TS = "2026-01-10T10:00:00Z"
DAY_MS = 86_400_000
# Members of "Pune" are u-1..u-4; u-3 is blacklisted (counted, never exported); u-5 lives elsewhere.
PROFILES: list[dict[str, Any]] = [
    {"user_id": "u-1", "ts": TS, "set": {"city": "Pune", "name": "Ana", "email": "ana@x.io", "phone": "+911"}},
    {"user_id": "u-2", "ts": TS, "set": {"city": "Pune", "name": "Bo", "email": "bo@x.io", "phone": "+912"},
     "subscriptions": {"email": False}},
    {"user_id": "u-3", "ts": TS, "set": {"city": "Pune", "name": "Cy", "email": "cy@x.io"}, "blacklisted": True},
    {"user_id": "u-4", "ts": TS, "set": {"city": "Pune", "name": "Dee <b>bold</b>", "push_token": "t", "age": 31}},
    {"user_id": "u-5", "ts": TS, "set": {"city": "Goa", "name": "Eve", "email": "eve@x.io"}},
]
PUNE = {"profile": {"prop": "city", "op": "eq", "value": "Pune"}}


async def seed_users(stack: Stack, producer: AIOKafkaProducer) -> None:
    await produce_json(producer, stack.settings.topic_profiles, PROFILES)

    async def all_known() -> bool:
        return all([(await stack.api.get(f"/users/{p['user_id']}")).status_code == 200 for p in PROFILES])

    await eventually(all_known, what="every seeded user to be known")


async def estimate_is(stack: Stack, sid: str, size: int) -> None:
    async def check() -> bool:
        body = (await stack.api.get(f"/segments/{sid}/insights")).json()
        return bool(body["size"]["estimate"] == size)

    await eventually(check, what=f"segment {sid} to hold {size} members")


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


async def test_list_search_hide_and_create(stack: Stack, page: Page) -> None:
    shoppers = await stack.create("Pune shoppers", rule=PUNE)
    lapsed = await stack.create("Lapsed users", kind="past_behavior",
                                rule={"not": {"event": {"name": "App Launched", "within_days": 14}}})
    await stack.create("Old promo", kind="custom_list")
    await stack.api.patch(f"/segments/{(await stack.create('Archived test', rule=PUNE))['id']}",
                          json={"hidden": True})

    await stack.visit(page)
    rows = page.get_by_test_id("segment-row")
    await expect(rows).to_have_count(3)
    await expect(page.locator(f'[data-testid=segment-row][data-id="{lapsed["id"]}"]')).to_contain_text("Past behavior")
    await shot(page, "01-segment-list")

    await page.fill("#segment-search", "pune")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Pune shoppers")
    await shot(page, "02-segment-list-search")
    await page.fill("#segment-search", "no such segment")
    await expect(page.get_by_test_id("no-segments")).to_be_visible()
    await page.fill("#segment-search", "")
    await page.check("#show-hidden")
    await expect(rows).to_have_count(4)
    await expect(page.get_by_test_id("hidden-badge")).to_have_count(1)

    # an invalid rule: the server's 422 detail is shown next to the form, nothing is created
    await page.click("#open-create")
    await page.fill("#create-name", "Broken")
    await page.fill("#create-rule", '{"profile": {"prop": "city", "op": "almost", "value": "Pune"}}')
    await page.click("#create-submit")
    await expect(page.locator("#create-error")).to_contain_text("Invalid segment")
    await expect(page.locator("#create-error")).to_contain_text("almost")
    await shot(page, "03-create-invalid-rule")
    await page.fill("#create-rule", "{not json")
    await page.click("#create-submit")
    await expect(page.locator("#create-error")).to_contain_text("not valid JSON")
    listing = (await stack.api.get("/segments", params={"q": "Broken"})).json()["segments"]
    assert listing == []

    await page.fill("#create-name", "Pune with email")
    await page.fill("#create-rule", '{"all": [{"profile": {"prop": "city", "op": "eq", "value": "Pune"}},'
                                    ' {"reachable": "email"}]}')
    await page.click("#create-submit")
    await expect(page).to_have_url(re.compile(r"#/segments/s-"))
    await expect(page.locator("#segment-name")).to_contain_text("Pune with email")
    await expect(page.locator("#rule-summary")).to_contain_text("email")
    await shot(page, "04-segment-created")
    assert shoppers["id"] not in page.url


async def test_segment_detail_insights_recount_user_and_export(stack: Stack, page: Page,
                                                               producer: AIOKafkaProducer) -> None:
    await seed_users(stack, producer)
    sid = (await stack.create("Pune", kind="past_behavior", rule=PUNE))["id"]
    await estimate_is(stack, sid, 4)

    await stack.visit(page, f"#/segments/{sid}")
    await expect(page.locator("#segment-name")).to_contain_text("Pune")
    await expect(page.locator("#rule-summary")).not_to_be_empty()
    await expect(page.locator("#trend-chart canvas")).to_have_count(1)
    await expect(page.get_by_test_id("trend-today")).to_contain_text("4 members today")
    # created today: the axis is today alone, not an empty week before it
    today = datetime.now(UTC).date().isoformat()
    await expect(page.locator("#trend-chart")).to_have_attribute("data-x-ticks", today)
    await expect(page.locator("#trend-chart")).to_have_attribute("data-days", today)
    await expect(page.locator("#mode-estimate")).to_have_attribute("aria-selected", "true")
    await expect(page.get_by_test_id("insights-estimate").get_by_test_id("insight-size")).to_have_text("4")
    email = page.locator('[data-testid=reach-row][data-channel="email"] [data-testid=reach-value]')
    await expect(email).to_have_text("2")
    await expect(page.get_by_test_id("size-bounds")).to_have_text("exact")  # small segments are counted exactly
    await shot(page, "05-segment-detail-estimate")

    # Exact was never computed: switching starts a recount, whose progress shows until it is done
    await page.click("#mode-exact")
    exact = page.get_by_test_id("insights-exact")
    await expect(exact.get_by_test_id("insight-size")).to_have_text("4")
    await expect(exact.get_by_test_id("insight-blacklisted")).to_have_text("1")
    await expect(page.get_by_test_id("recount-progress")).to_be_hidden()
    await expect(page.locator("#export-blacklisted")).to_contain_text("1 member was blacklisted")
    await shot(page, "06-segment-detail-exact")
    progress = page.get_by_test_id("recount-progress")
    first_job = await progress.get_attribute("data-job-id")
    assert first_job
    await page.click("#recount")
    await expect(progress).not_to_have_attribute("data-job-id", first_job)
    await expect(progress).to_have_attribute("data-status", "done")
    await expect(progress).to_be_hidden()
    await expect(exact.get_by_test_id("insight-size")).to_have_text("4")
    await page.click("#mode-estimate")
    await expect(page.get_by_test_id("insights-estimate")).to_be_visible()

    # sample users open the user panel; markup in a profile value stays text
    samples = page.get_by_test_id("sample-user")
    await expect(samples).to_have_count(4)
    await page.locator('[data-testid=sample-user][data-user-id="u-4"]').click()
    panel = page.locator("#user-panel")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_test_id("user-id")).to_have_text("u-4")
    await expect(panel.locator("#user-panel-title")).to_have_text("Dee <b>bold</b>")
    await expect(panel.locator('[data-channel="push"]')).to_have_class(re.compile(r"\bon\b"))
    await expect(panel.get_by_test_id("user-segments")).to_contain_text("Pune")
    await expect(panel.get_by_test_id("user-profile")).to_contain_text("31")
    await expect(panel.get_by_test_id("explain-verdict")).to_have_text("In because city is Pune.")
    await shot(page, "07-user-panel", full_page=False)  # the panel is fixed to the viewport
    await page.click("#user-panel-close")
    await expect(panel).to_be_hidden()

    # export: pick fields, add a free-text one; blacklisted u-3 is not in the file
    for box in await page.get_by_test_id("export-field").all():
        await box.set_checked(await box.get_attribute("value") in {"user_id", "email", "city", "reachable_email"})
    await page.fill("#export-extra", "bad field!")
    await expect(page.locator("#export-error")).to_contain_text("not a field name")
    await page.fill("#export-extra", "age")
    await expect(page.locator("#export-error")).to_be_hidden()
    await expect(page.locator("#export-columns")).to_have_text("Columns: user_id, email, city, reachable_email, age")
    await page.locator("#export").scroll_into_view_if_needed()
    await shot(page, "08-export-fields")
    async with page.expect_download() as info:
        await page.click("#export-download")
    download = await info.value
    assert download.suggested_filename == f"{sid}.csv"
    rows = read_csv(Path(await download.path()))
    assert rows[0] == ["user_id", "email", "city", "reachable_email", "age"]
    assert sorted(rows[1:]) == [["u-1", "ana@x.io", "Pune", "true", ""], ["u-2", "bo@x.io", "Pune", "false", ""],
                                ["u-4", "", "Pune", "false", "31"]]

    # hide and show again; deleting a segment a campaign uses shows the server's reason
    await page.click("#toggle-hidden")
    await expect(page.locator("#hidden-badge")).to_be_visible()
    assert (await stack.api.get(f"/segments/{sid}")).json()["hidden"] is True
    await page.click("#toggle-hidden")
    await expect(page.locator("#hidden-badge")).to_be_hidden()
    campaign = await stack.api.post("/campaigns", json={"name": "Diwali push", "segment_id": sid, "channel": "push"})
    assert campaign.status_code == 201, campaign.text
    await page.click("#delete-segment")
    await page.click("#confirm-delete")
    await expect(page.locator("#segment-error")).to_contain_text("Diwali push")
    await shot(page, "09-delete-blocked")
    assert (await stack.api.get(f"/segments/{sid}")).status_code == 200
    await stack.api.delete(f"/campaigns/{campaign.json()['id']}")
    await page.click("#delete-segment")
    await page.click("#confirm-delete")
    await expect(page).to_have_url(re.compile(r"#/$"))
    assert (await stack.api.get(f"/segments/{sid}")).status_code == 404


async def test_compare_with_another_segment(stack: Stack, page: Page, producer: AIOKafkaProducer) -> None:
    """Pune (u-1..u-4) against "Email reachable" (u-1, u-3, u-5): 2 in both, 2 only Pune, 1 only the other."""
    await seed_users(stack, producer)
    sid = (await stack.create("Pune", kind="past_behavior", rule=PUNE))["id"]
    email = (await stack.create("Email reachable", kind="past_behavior", rule={"reachable": "email"}))["id"]
    await estimate_is(stack, sid, 4)
    await estimate_is(stack, email, 3)

    await stack.visit(page, f"#/segments/{sid}")
    compare = page.locator("#compare")
    await expect(compare).to_contain_text("Compare with another segment")
    await expect(page.locator("#compare-with option")).to_have_count(2)  # the prompt and the one other segment
    await expect(page.locator("#compare-exact")).to_be_disabled()
    await page.select_option("#compare-with", email)
    estimate = page.get_by_test_id("compare-estimate")
    await expect(estimate).to_have_attribute("data-with", email)
    await expect(estimate.get_by_test_id("compare-both")).to_have_text("2")
    await expect(estimate.get_by_test_id("compare-only-segment")).to_have_text("2")
    await expect(estimate.get_by_test_id("compare-only-with")).to_have_text("1")
    await expect(estimate.get_by_test_id("compare-both-bounds")).to_have_text("exact")  # small samples: exact
    await expect(estimate).to_contain_text("Only in Email reachable")
    await compare.scroll_into_view_if_needed()
    await shot(page, "10-compare-estimate")

    await page.click("#compare-exact")
    exact = page.get_by_test_id("compare-exact")
    await expect(exact.get_by_test_id("compare-both")).to_have_text("2")
    await expect(exact.get_by_test_id("compare-only-segment")).to_have_text("2")
    await expect(exact.get_by_test_id("compare-only-with")).to_have_text("1")
    await expect(exact.get_by_test_id("compare-both-bounds")).to_have_text("exact count")
    await shot(page, "11-compare-exact")
    await page.select_option("#compare-with", "")
    await expect(page.locator("#compare-result")).to_be_empty()
    await expect(page.locator("#compare-exact")).to_be_disabled()


async def test_user_panel_explains_membership(stack: Stack, page: Page, producer: AIOKafkaProducer) -> None:
    """A windowed rule: the panel says why the user is in, when they leave, and shows the rule tree."""
    now = int(time.time() * 1000)
    first, second = now - 10 * DAY_MS, now - 2 * DAY_MS
    await produce_json(producer, stack.settings.topic_profiles, [
        {"user_id": "b-1", "ts": now - 20 * DAY_MS, "set": {"city": "Pune", "name": "Buyer"}}])
    await produce_json(producer, stack.settings.topic_events, [
        {"event_id": f"b-1-{n}", "user_id": "b-1", "name": "Charged", "ts": ts, "props": {"amount": amount}}
        for n, (ts, amount) in enumerate(((first, 60), (second, 50.5)))])
    rule = {"all": [PUNE, {"event": {"name": "Charged", "count": {"op": "gte", "value": 2},
                                     "sum": {"prop": "amount", "op": "gte", "value": 100}, "within_days": 30}}]}
    sid = (await stack.create("Pune buyers", kind="past_behavior", rule=rule))["id"]
    await estimate_is(stack, sid, 1)
    leaves = (await stack.api.get(f"/segments/{sid}/users/b-1/explain")).json()["next_change_at"]
    assert leaves is not None
    leaves_text = datetime.fromisoformat(leaves.replace("Z", "+00:00")).strftime("%-d %b %Y, %H:%M")  # en-GB, UTC

    await stack.visit(page, f"#/segments/{sid}")
    await page.locator('[data-testid=sample-user][data-user-id="b-1"]').click()
    panel = page.locator("#user-panel")
    explain = panel.get_by_test_id("user-explain")
    await expect(explain).to_have_attribute("data-member", "true")
    verdict = explain.get_by_test_id("explain-verdict")
    await expect(verdict).to_contain_text("In because city is Pune; and ")
    await expect(verdict).to_contain_text("(2 events, sum 110.5)")
    await expect(verdict).to_contain_text(f"leaves on {leaves_text}")
    nodes = explain.get_by_test_id("explain-node")
    await expect(nodes).to_have_count(3)  # all, profile, event
    await expect(nodes.first).to_have_attribute("data-type", "all")
    await expect(explain.locator('[data-testid=explain-node][data-value="true"]')).to_have_count(3)
    event = explain.locator('[data-testid=explain-node][data-type="event"]')
    await expect(event).to_contain_text("✓")
    await expect(event.get_by_test_id("explain-facts")).to_contain_text("count: 2")
    await expect(event.get_by_test_id("explain-facts")).to_contain_text("sum: 110.5")
    await expect(event.get_by_test_id("explain-facts")).to_contain_text("window: ")
    await shot(page, "12-user-panel-explain", full_page=False)


async def test_custom_list_upload_usage_and_download(stack: Stack, page: Page, producer: AIOKafkaProducer) -> None:
    await seed_users(stack, producer)
    sid = (await stack.create("VIP list", kind="custom_list"))["id"]
    for body in ({"name": "VIP email", "segment_id": sid, "channel": "email"},):
        assert (await stack.api.post("/campaigns", json=body)).status_code == 201
    for name in ("Welcome", "Win back"):
        assert (await stack.api.post("/journeys", json={"name": name, "segment_ids": [sid]})).status_code == 201

    await stack.visit(page, f"#/segments/{sid}")
    await expect(page.locator("#segment-name")).to_contain_text("VIP list")
    await expect(page.locator("#rule")).to_have_count(0)
    await expect(page.get_by_test_id("usage-campaigns")).to_have_text("1")
    await expect(page.get_by_test_id("usage-journeys")).to_have_text("2")
    await expect(page.get_by_test_id("no-sample")).to_be_visible()

    await page.click("#list-upload")
    await expect(page.locator("#upload-error")).to_contain_text("Choose a CSV file")
    upload = "email,note\nana@x.io,first\ncy@x.io,blacklisted\nnobody@x.io,unknown\neve@x.io,\n"
    await page.set_input_files("#list-file", files=[{"name": "vip.csv", "mimeType": "text/csv",
                                                     "buffer": upload.encode()}])
    await page.click("#list-upload")
    await expect(page.get_by_test_id("upload-rows")).to_have_text("4")
    await expect(page.get_by_test_id("upload-matched")).to_have_text("3")
    await expect(page.get_by_test_id("upload-unmatched")).to_have_text("1")
    # the page refreshes itself after an upload
    await expect(page.get_by_test_id("insights-estimate").get_by_test_id("insight-size")).to_have_text("3")
    await expect(page.get_by_test_id("sample-user")).to_have_count(3)
    await expect(page.get_by_test_id("trend-today")).to_contain_text("3 members today")
    await shot(page, "10-custom-list-uploaded")

    await expect(page.locator("#export-download")).to_have_text("Download CSV")
    async with page.expect_download() as info:
        await page.click("#export-download")
    rows = read_csv(Path(await (await info.value).path()))
    assert rows[0] == ["user_id", "name", "email"]
    assert sorted(rows[1:]) == [["u-1", "Ana", "ana@x.io"], ["u-5", "Eve", "eve@x.io"]]  # u-3 is blacklisted


async def test_sign_in_with_a_key_shows_only_what_its_scopes_allow(stack: Stack, page: Page) -> None:
    """A read-only key sees segments and insights but no create, delete, export or sample users;
    a wrong key is refused at the sign-in form."""
    sid = (await stack.create("Readers", rule={"reachable": "email"}))["id"]
    reader = await make_key(stack.settings, "reader", ["read"])
    await page.goto(f"{stack.base}/")
    await expect(page.locator("#sign-in")).to_be_visible()
    await page.fill("#key-input", "lsk_nope_nope")
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("#key-error")).to_contain_text("refused")
    await page.fill("#key-input", reader)
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("#key-scopes")).to_have_text("read")
    await expect(page.locator(f"[data-testid=segment-row][data-id='{sid}']")).to_be_visible()
    await expect(page.locator("#open-create")).to_be_hidden()
    await page.goto(f"{stack.base}/#/segments/{sid}")
    await expect(page.locator("#insights-card")).to_be_visible()
    for hidden in ("#export", "#sample-card", "#delete-segment", "#toggle-hidden"):
        await expect(page.locator(hidden)).to_be_hidden()
    await shot(page, "read-only-key")
    assert await page.evaluate("sessionStorage.getItem('live-segments.key')") == reader
