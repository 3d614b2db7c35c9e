"""The rule AST and its vocabulary.

Nodes are frozen, slotted dataclasses so that a parsed rule can be shared
between agents, cached and compared without anyone mutating it underneath.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class SumCond:
    prop: str
    op: str
    value: float


@dataclass(frozen=True, slots=True)
class EventCond:
    name: str
    where: tuple[PropFilter, ...]
    count: Comparison
    sum: SumCond | None
    within_days: float | None


@dataclass(frozen=True, slots=True)
class Reachable:
    channel: str


Node: TypeAlias = All | AnyOf | Not | ProfileCond | EventCond | Reachable


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
