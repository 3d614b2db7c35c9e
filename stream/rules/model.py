"""The rule AST and its vocabulary.

Nodes are frozen, slotted dataclasses so that a parsed rule can be shared
between agents, cached and compared without anyone mutating it underneath.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

Scalar: TypeAlias = str | int | float | bool

COMPARISON_OPS: tuple[str, ...] = ("eq", "neq", "gt", "gte", "lt", "lte")
"""Operators allowed where the operand is a count or a sum."""

OPERATORS: tuple[str, ...] = (*COMPARISON_OPS, "in", "not_in", "contains", "exists", "not_exists")

KINDS: tuple[str, ...] = ("live", "past_behavior", "custom_list")

MAX_WITHIN_DAYS = 3650
MS_PER_DAY = 86_400_000


class RuleError(ValueError):
    """Carries the path of the bad part so the API can answer a 422 that points at it."""

    path: str
    message: str

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class ProfileCond:
    prop: str
    op: str
    value: Scalar | tuple[Scalar, ...] | None


@dataclass(frozen=True, slots=True)
class PropFilter:
    prop: str
    op: str
    value: Scalar | tuple[Scalar, ...] | None


@dataclass(frozen=True, slots=True)
class Comparison:
    op: str
    value: float


AGG_KINDS: tuple[str, ...] = ("sum", "min", "max", "avg", "distinct")
"""Aggregate tests an `event` takes besides `count`, in the order they are stored and shown."""

UNITS: Mapping[str, int] = {"minutes": 60_000, "hours": 3_600_000, "days": MS_PER_DAY}


@dataclass(frozen=True, slots=True)
class AggTest:
    """`sum`/`min`/`max`/`avg` over a numeric prop of the counted events, or `distinct` values of it."""

    kind: str
    prop: str
    op: str
    value: float


@dataclass(frozen=True, slots=True)
class Duration:
    """One unit and its amount, kept as written so the canonical rule echoes it back.

    Amounts are positive integers, except the legacy `within_days` shorthand,
    which has always accepted fractions of a day (0.5).
    """

    unit: str
    amount: float
    # In milliseconds, decided once: windows are measured per condition and touch, and as a
    # property this was ~2.6% of a creation backfill's profile.
    ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ms", round(self.amount * UNITS[self.unit]))


@dataclass(frozen=True, slots=True)
class Bounds:
    """Time bounds, ANDed: `now - within < ts`, `ts <= now - before` (or `ts <= now` with
    `within` alone), `from <= ts < to`. Only `within` and `before` move with time."""

    within: Duration | None = None
    before: Duration | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    # Derived once (asked per event and touch): whether the range moves with time, the window,
    # and the shift of the upper bound behind now (0 without `before`).
    moving: bool = field(init=False, repr=False, compare=False)
    within_ms: int | None = field(init=False, repr=False, compare=False)
    before_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "moving", self.within is not None or self.before is not None)
        object.__setattr__(self, "within_ms", None if self.within is None else self.within.ms)
        object.__setattr__(self, "before_ms", 0 if self.before is None else self.before.ms)

    def fixed(self, ts_ms: int) -> bool:
        """The `from`/`to` part, decided once when the event is folded."""
        return (self.from_ms is None or ts_ms >= self.from_ms) and (self.to_ms is None or ts_ms < self.to_ms)

    def contains(self, ts_ms: int, now_ms: int) -> bool:
        if not self.fixed(ts_ms):
            return False
        if not self.moving:
            return True
        within = self.within_ms
        return (within is None or now_ms - within < ts_ms) and ts_ms <= now_ms - self.before_ms


NO_BOUNDS = Bounds()


@dataclass(frozen=True, slots=True)
class EventCond:
    name: str
    where: tuple[PropFilter, ...]
    count: Comparison
    tests: tuple[AggTest, ...] = ()
    bounds: Bounds = NO_BOUNDS
    # The v1 shape (a count and at most a sum), stored as [count, total, ts, v, ...]; decided once
    # here, since the hot path asked it per condition and touch (2.5% of the worker's profile).
    legacy: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "legacy", len(self.tests) <= 1 and all(t.kind == "sum" for t in self.tests))

    @property
    def sum(self) -> AggTest | None:
        return next((t for t in self.tests if t.kind == "sum"), None)

    @property
    def within_days(self) -> float | None:
        """The window in days when it is the only bound (the v1 shape), else None."""
        b = self.bounds
        if b.within is None or b.before is not None or b.from_ms is not None or b.to_ms is not None:
            return None
        return b.within.ms / MS_PER_DAY


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    where: tuple[PropFilter, ...] = ()


MIN_STEPS, MAX_STEPS = 2, 5


@dataclass(frozen=True, slots=True)
class SequenceCond:
    """Events e1..ek, one per step, strictly increasing in ts, ek - e1 <= max_span, all in bounds."""

    steps: tuple[Step, ...]
    max_span: Duration | None = None
    bounds: Bounds = NO_BOUNDS


@dataclass(frozen=True, slots=True)
class InSegment:
    segment_id: str


@dataclass(frozen=True, slots=True)
class Reachable:
    channel: str


Node: TypeAlias = All | AnyOf | Not | ProfileCond | EventCond | SequenceCond | InSegment | Reachable

Stateful: TypeAlias = EventCond | SequenceCond
"""Conditions that keep per-user state (an aggregate), numbered in pre-order."""


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    name: str
    kind: str
    rule: Node | None


def window_ms(within_days: float) -> int:
    """Windows are whole milliseconds, like event timestamps.

    Rounding here (and in every other evaluator, the test oracle included) is
    what makes "now - D days < ts <= now" decidable without float surprises
    such as 0.1 * 86400000 not being an exact product.
    """
    return round(within_days * MS_PER_DAY)
