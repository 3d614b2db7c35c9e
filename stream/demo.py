"""Demo data for `make run`: a few segments and a few thousand users to look at."""

from __future__ import annotations

from typing import Any

import httpx

from stream.config import Settings
from stream.generate import Workload, produce

DEMO_SEGMENTS: list[dict[str, Any]] = [
    {"name": "Pune shoppers", "kind": "past_behavior", "rule": {"all": [
        {"profile": {"prop": "city", "op": "eq", "value": "Pune"}},
        {"event": {"name": "Charged", "count": {"op": "gte", "value": 2}, "within_days": 30}}]}},
    {"name": "Big spenders (90 days)", "kind": "past_behavior", "rule": {
        "event": {"name": "Charged", "sum": {"prop": "amount", "op": "gte", "value": 300}, "within_days": 90}}},
    {"name": "Lapsed: no launch in 14 days", "kind": "past_behavior", "rule": {
        "not": {"event": {"name": "App Launched", "within_days": 14}}}},
    {"name": "Reachable by WhatsApp, under 30", "kind": "live", "rule": {"all": [
        {"reachable": "whatsapp"}, {"profile": {"prop": "age", "op": "lt", "value": 30}}]}},
    {"name": "Abandoned cart (last day)", "kind": "past_behavior", "rule": {"all": [
        {"event": {"name": "Added To Cart", "within_days": 1, "before": {"hours": 1}}},
        {"not": {"sequence": {"steps": [{"name": "Added To Cart"}, {"name": "Charged"}],
                              "max_span": {"hours": 1}}}}]}},
    {"name": "Browsed 3+ categories this week", "kind": "past_behavior", "rule": {
        "event": {"name": "Viewed", "distinct": {"prop": "category", "op": "gte", "value": 3}, "within_days": 7}}},
    {"name": "VIP list", "kind": "custom_list"},
]


async def load_demo(settings: Settings, users: int, events: int, api_url: str | None, api_key: str) -> None:
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"authorization": f"Bearer {api_key}"}) as api:
        found = await api.get("/segments", params={"include_hidden": "true"})
        found.raise_for_status()
        listing = found.json()["segments"]
        existing = {s["name"] for s in listing}
        await produce(settings, Workload(seed=42, users=users, events=events))
        for body in DEMO_SEGMENTS:
            if body["name"] not in existing:
                created = await api.post("/segments", json=body)
                created.raise_for_status()
        print(f"demo: {users} users, {events} events, {len(DEMO_SEGMENTS)} segments")
