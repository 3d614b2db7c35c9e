"""A segment's daily trend, reconstructed backwards from its current size.

The worker only counts, per day in the configured zone, how many users entered
(`e:YYYY-MM-DD`) and exited (`x:YYYY-MM-DD`); nobody snapshots the size at
midnight. Walking back from the current member count instead is exact even
when no worker was up at midnight, and costs nothing on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from stream.state.client import RedisClient, atomic
from stream.state.keys import Keys


@dataclass(frozen=True, slots=True)
class DayPoint:
    date: str
    size: int
    entered: int
    exited: int


def _day_counts(counters: Mapping[str, int]) -> dict[date, tuple[int, int]]:
    """(entered, exited) per day; malformed fields are skipped rather than failing the page."""
    days: dict[date, tuple[int, int]] = {}
    for field, value in counters.items():
        kind, _, day_text = field.partition(":")
        if kind not in ("e", "x"):
            continue
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            continue
        entered, exited = days.get(day, (0, 0))
        days[day] = (entered + int(value), exited) if kind == "e" else (entered, exited + int(value))
    return days


def build_trend(counters: Mapping[str, int], current_size: int, created: date,
                today: date) -> tuple[list[DayPoint], DayPoint]:
    """One point per full day strictly after `created` and before `today`, plus today so far.

    A day's closing size is the current size minus the net change of every
    later day; counters dated after `today` (a worker clock ahead of ours) are
    part of the current size, so they are subtracted too.
    """
    days = _day_counts(counters)
    net_after: int = sum(e - x for d, (e, x) in days.items() if d > today)
    e_today, x_today = days.get(today, (0, 0))
    today_point = DayPoint(today.isoformat(), current_size, e_today, x_today)
    size_at_end = current_size - net_after - (e_today - x_today)  # closing size of yesterday
    points: list[DayPoint] = []
    day = today - timedelta(days=1)
    while day > created:
        entered, exited = days.get(day, (0, 0))
        points.append(DayPoint(day.isoformat(), max(0, size_at_end), entered, exited))
        size_at_end -= entered - exited
        day -= timedelta(days=1)
    points.reverse()
    return points, today_point


def local_day(ms: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, zone).date()


async def read_trend(redis: RedisClient, keys: Keys, sid: str) -> tuple[dict[str, int], int]:
    """Counters and size in one MULTI: the worker moves both in one script, so they agree."""
    raw, size = await atomic(redis, keys.trend(sid), lambda pipe: (
        pipe.hgetall(keys.trend(sid)), pipe.get(keys.member_count(sid))))
    counters: dict[str, int] = {}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        try:
            counters[name] = int(value)
        except ValueError:
            continue
    return counters, int(size or 0)
