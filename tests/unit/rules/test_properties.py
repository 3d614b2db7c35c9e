"""Property tests: incremental aggregates versus the brute-force oracle, over random v2 rules and streams.

The harness plays the worker's part (dedupe by event_id, the kind's lower
bound, fold as events arrive, prune at each tick, the stored aggregates
round-tripped through JSON at random points) and checks membership against
`tests.oracle.oracle_member` at every tick. Between ticks it follows the
product's `next_change_ms` from change point to change point: no change the
oracle finds by brute force may come before the product's next one, and the
product's verdict at each point it names must be the oracle's.

Timestamps sit on a coarse grid (with a few 1 ms offsets and many equal
timestamps) and the durations are multiples of the grid, so window edges,
`before` edges and sequence spans are hit exactly.

Blocks of 2 entries and a tail slack of 1 (`small_blocks`) instead of 512 and 64: a generated stream's
pending entries are then mostly sealed (`stream.rules.blocks`), so every
range test runs over whole blocks, blocks a window edge cuts, and the tail.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

import stream.rules.aggregate as aggregate_module
from stream.rules import (
    CHANNELS,
    COMPARISON_OPS,
    OPERATORS,
    Aggregate,
    AggTest,
    All,
    AnyOf,
    Bounds,
    Comparison,
    Duration,
    EventCond,
    InSegment,
    Node,
    Not,
    ProfileCond,
    PropFilter,
    Reachable,
    Scalar,
    SequenceCond,
    Step,
    aggregates_from_json,
    aggregates_to_json,
    cond_matches,
    describe,
    evaluate,
    fold,
    new_aggregate,
    next_change_ms,
    parse_rule,
    prune,
    reachability,
    rule_to_json,
    stateful_conditions,
)
from stream.rules.storage import block_ids, changed_blocks
from tests.oracle import RawEvent, oracle_changes, oracle_member

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True, scope="module")
def small_blocks() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aggregate_module, "BLOCK_ENTRIES", 2)
        mp.setattr(aggregate_module, "TAIL_ENTRIES", 1)
        yield

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_800_000_000_000
GRIDS = (15 * MIN, HOUR, 6 * HOUR, DAY)
SEGMENTS = ("s-1", "s-2")
NAMES = ("A", "B", "C")

# --- rule strategies -----------------------------------------------------------

strings = st.sampled_from(["", "a", "b", "ab", "Pune", "3"])
numbers = st.one_of(st.integers(-2, 5), st.sampled_from([0.5, 1.5, 2.0, -0.5, 1.0, 3.0]))
"""Sums of these are exact in any order: float rounding is `test_aggregate_tests_are_exact`'s business."""
scalars: st.SearchStrategy[Scalar] = st.one_of(strings, numbers, st.booleans())


@st.composite
def operand(draw: st.DrawFn, op: str) -> Scalar | tuple[Scalar, ...] | None:
    if op in ("exists", "not_exists"):
        return None
    if op in ("in", "not_in"):
        return tuple(draw(st.lists(scalars, min_size=1, max_size=3)))
    if op == "contains":
        return draw(strings)
    if op in ("eq", "neq"):
        return draw(scalars)
    return draw(st.one_of(strings, numbers))


@st.composite
def profile_conds(draw: st.DrawFn) -> ProfileCond:
    op = draw(st.sampled_from(OPERATORS))
    prop = draw(st.sampled_from(["city", "age", "vip", "email", "missing"]))
    return ProfileCond(prop, op, draw(operand(op)))


@st.composite
def prop_filters(draw: st.DrawFn) -> PropFilter:
    op = draw(st.sampled_from(OPERATORS))
    return PropFilter(draw(st.sampled_from(["cat", "amount", "flag"])), op, draw(operand(op)))


DURATIONS = (
    Duration("minutes", 15), Duration("minutes", 30), Duration("minutes", 45), Duration("minutes", 90),
    Duration("hours", 1), Duration("hours", 2), Duration("hours", 6), Duration("hours", 12),
    Duration("days", 1), Duration("days", 2), Duration("days", 3),
)
LEGACY_DAYS = (Duration("days", 0.25), Duration("days", 0.5), Duration("days", 1 / 3), Duration("days", 0.1))
"""`within_days` has always taken fractions of a day; `before` and the units take whole amounts."""


def _ms(d: Duration) -> int:
    return round(d.amount * {"minutes": MIN, "hours": HOUR, "days": DAY}[d.unit])


@st.composite
def bounds(draw: st.DrawFn, moving: bool = False) -> Bounds:
    shape = draw(st.sampled_from(["none", "within", "within", "before", "range", "fixed"]))
    if moving and shape in ("none", "fixed"):
        shape = "within"
    within = before = None
    if shape in ("within", "range"):
        within = draw(st.sampled_from(DURATIONS + LEGACY_DAYS if shape == "within" else DURATIONS))
    if shape in ("before", "range"):
        shorter = [d for d in DURATIONS if within is None or _ms(d) < _ms(within)]
        before = draw(st.sampled_from(shorter)) if shorter else None
    from_ms = to_ms = None
    if draw(st.integers(0, 3)) == 0 or shape == "fixed":
        start = T0 + draw(st.integers(-8, 24)) * HOUR + draw(st.sampled_from([0, 0, 1]))
        which = draw(st.sampled_from(["from", "to", "both"]))
        if which in ("from", "both"):
            from_ms = start
        if which in ("to", "both"):
            to_ms = start + draw(st.integers(1, 48)) * HOUR if which == "both" else start
    return Bounds(within, before, from_ms, to_ms)


@st.composite
def agg_tests(draw: st.DrawFn) -> tuple[AggTest, ...]:
    kinds = draw(st.lists(st.sampled_from(["sum", "min", "max", "avg", "distinct"]), max_size=3, unique=True))
    out = []
    for kind in ("sum", "min", "max", "avg", "distinct"):  # the stored order
        if kind not in kinds:
            continue
        op = draw(st.sampled_from(COMPARISON_OPS))
        if kind == "distinct":
            out.append(AggTest(kind, draw(st.sampled_from(["cat", "amount", "flag"])), op, draw(st.integers(0, 4))))
        else:
            value = draw(st.one_of(st.integers(-4, 12).map(lambda v: v / 2), st.sampled_from([0.1, 0.3, 0.6])))
            out.append(AggTest(kind, draw(st.sampled_from(["amount", "amount", "amount", "cat"])), op, value))
    return tuple(out)


@st.composite
def event_conds(draw: st.DrawFn, moving: bool = False) -> EventCond:
    count = Comparison(draw(st.sampled_from(COMPARISON_OPS)), draw(st.integers(0, 3)))
    if draw(st.integers(0, 3)) == 0:
        count = Comparison("gte", 1)
    return EventCond(
        name=draw(st.sampled_from(NAMES)),
        where=tuple(draw(st.lists(prop_filters(), max_size=2))) if draw(st.booleans()) else (),
        count=count,
        tests=draw(agg_tests()) if draw(st.booleans()) else (),
        bounds=draw(bounds(moving)),
    )


@st.composite
def steps(draw: st.DrawFn) -> Step:
    where = (draw(prop_filters()),) if draw(st.integers(0, 3)) == 0 else ()
    return Step(draw(st.sampled_from(NAMES)), where)


@st.composite
def sequence_conds(draw: st.DrawFn, moving: bool = False) -> SequenceCond:
    return SequenceCond(
        steps=tuple(draw(st.lists(steps(), min_size=2, max_size=5))),
        max_span=draw(st.one_of(st.none(), st.sampled_from(DURATIONS))),
        bounds=draw(bounds(moving)) if moving or draw(st.booleans()) else Bounds(),
    )


leaves = st.one_of(
    profile_conds(),
    event_conds(),
    event_conds(),
    event_conds(),
    sequence_conds(),
    sequence_conds(),
    st.sampled_from(CHANNELS).map(Reachable),
    st.sampled_from(SEGMENTS).map(InSegment),
)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    kids = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(kids.map(All), kids.map(AnyOf), children.map(Not))


@st.composite
def first_times(draw: st.DrawFn) -> Node:
    """`all: [X within W, not X before W]`: did X for the first time in the last W."""
    name, window = draw(st.sampled_from(NAMES)), draw(st.sampled_from(DURATIONS))
    once = EventCond(name, (), Comparison("gte", 1), (), Bounds(within=window))
    return All((once, Not(EventCond(name, (), Comparison("gte", 1), (), Bounds(before=window)))))


@st.composite
def abandoned_carts(draw: st.DrawFn) -> Node:
    """`all: [A within W before B, not sequence [A, C] max_span S]`."""
    within = draw(st.sampled_from(DURATIONS[1:]))
    before = draw(st.sampled_from([d for d in DURATIONS if _ms(d) < _ms(within)]))
    cart = EventCond("A", (), Comparison("gte", 1), (), Bounds(within=within, before=before))
    paid = SequenceCond((Step("A"), Step("C")), draw(st.sampled_from(DURATIONS)), draw(bounds()))
    return All((cart, Not(paid)))


rules: st.SearchStrategy[Node] = st.recursive(leaves, _extend, max_leaves=7)
time_rules: st.SearchStrategy[Node] = st.recursive(
    st.one_of(event_conds(moving=True), sequence_conds(moving=True), first_times(), abandoned_carts()),
    _extend,
    max_leaves=4,
)
"""Only conditions with moving bounds: dense in the boundary cases that `rules` reaches less often."""

# --- user strategies ---------------------------------------------------------------

identities = st.sampled_from(["", " ", "id-1", "x@y.z"])
profiles = st.fixed_dictionaries(
    {},
    optional={
        "city": st.one_of(strings, numbers),
        "age": st.one_of(numbers, strings, st.booleans()),
        "vip": st.one_of(st.booleans(), numbers),
        "email": identities,
        "phone": identities,
        "push_token": identities,
        "web_push_token": identities,
    },
)
subscriptions = st.dictionaries(st.sampled_from(CHANNELS), st.booleans(), max_size=5)
memberships = st.frozensets(st.sampled_from(SEGMENTS))


def _filters(rule: Node) -> list[PropFilter]:
    out: list[PropFilter] = []
    for cond in stateful_conditions(rule):
        if isinstance(cond, EventCond):
            out.extend(cond.where)
        else:
            out.extend(f for s in cond.steps for f in s.where)
    return out


def event_props(rule: Node) -> st.SearchStrategy[dict[str, Scalar]]:
    """Props biased towards the rule's own filter values, so filters pass often enough to matter."""
    hints: list[Scalar] = []
    for f in _filters(rule):
        hints.extend(f.value if isinstance(f.value, tuple) else () if f.value is None else (f.value,))
    hinted = st.sampled_from(hints) if hints else scalars
    return st.fixed_dictionaries(
        {},
        optional={
            "cat": st.one_of(strings, hinted, hinted),
            "amount": st.one_of(numbers, numbers, hinted, strings, st.booleans()),
            "flag": st.one_of(st.booleans(), hinted),
        },
    )


@dataclass
class Tick:
    advance_ms: int


@st.composite
def event_at(draw: st.DrawFn, rule: Node, grid: int) -> RawEvent:
    ts = T0 + draw(st.integers(-6, 16)) * grid + draw(st.sampled_from([0, 0, 0, 0, 1, -1]))
    event_id = f"e{draw(st.integers(0, 24))}"
    names = sorted({n for c in stateful_conditions(rule) for n in _names(c)} | {"D"})
    return (event_id, draw(st.sampled_from(names)), ts, draw(event_props(rule)))


def _names(cond: EventCond | SequenceCond) -> list[str]:
    return [cond.name] if isinstance(cond, EventCond) else [s.name for s in cond.steps]


def ticks(grid: int) -> st.SearchStrategy[Tick]:
    return st.builds(
        Tick,
        st.one_of(
            st.integers(0, 2).map(lambda k: k * grid),
            st.integers(0, 2).map(lambda k: k * grid),
            st.sampled_from([1, 1, 15 * MIN, HOUR, DAY, 2 * DAY]),
        ),
    )


@st.composite
def streams(draw: st.DrawFn, rule: Node, grid: int) -> list[RawEvent | Tick]:
    items: st.SearchStrategy[RawEvent | Tick] = st.one_of(event_at(rule, grid), event_at(rule, grid), ticks(grid))
    out = draw(st.lists(items, min_size=4, max_size=30))
    if draw(st.booleans()) and out:
        repeat = [s for s in out if not isinstance(s, Tick)]
        if repeat:
            out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(repeat)))  # exact redelivery
    out.append(Tick(draw(st.integers(0, 2)) * grid))
    return out


# --- harness --------------------------------------------------------------------

FOREVER = 2**62
CHAIN = 8
"""How many of the product's change points to follow after a tick."""


@dataclass
class User:
    rule: Node
    kind: str
    created_at: int
    profile: Mapping[str, Scalar]
    subscriptions: Mapping[str, bool]
    members: frozenset[str]
    delivered: list[RawEvent] = field(default_factory=list)

    def oracle(self, now: int) -> bool:
        return oracle_member(
            self.rule,
            kind=self.kind,
            created_at_ms=self.created_at,
            profile=self.profile,
            subscriptions=self.subscriptions,
            events=self.delivered,
            now_ms=now,
            member_of=self.members.__contains__,
        )

    def changes(self, now: int) -> list[tuple[int, bool]]:
        return oracle_changes(
            self.rule,
            kind=self.kind,
            created_at_ms=self.created_at,
            profile=self.profile,
            subscriptions=self.subscriptions,
            events=self.delivered,
            start_ms=now,
            end_ms=FOREVER,
            member_of=self.members.__contains__,
        )


class Product:
    """The worker's side: one aggregate per stateful condition, fed and pruned incrementally."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.conds = stateful_conditions(user.rule)
        self.aggs = [new_aggregate(c) for c in self.conds]
        self.blocks: dict[tuple[int, int], str] = {}  # (condition index, block id) -> stored text
        self.seen: set[str] = set()
        self.reach = reachability(user.profile, user.subscriptions)

    def deliver(self, event: RawEvent) -> None:
        self.user.delivered.append(event)
        event_id, name, ts, props = event
        if event_id in self.seen:
            return
        self.seen.add(event_id)
        if self.user.kind == "live" and ts < self.user.created_at:
            return
        for cond, agg in zip(self.conds, self.aggs, strict=True):
            if cond_matches(cond, name, props):
                fold(cond, agg, ts, props, name=name)

    def round_trip(self) -> None:
        """As the user hash stores them: the aggregates' field, and a field per written block."""
        text = aggregates_to_json(self.aggs)
        put, gone = changed_blocks(self.aggs)
        for ci, bid in gone:
            self.blocks.pop((ci, bid), None)
        self.blocks.update(((ci, bid), raw) for ci, bid, raw in put)
        self.aggs = aggregates_from_json(text, self.conds, lambda ci, bid: self.blocks.get((ci, bid)))
        assert aggregates_to_json(self.aggs) == text, "stored aggregates do not read back as written"
        assert set(self.blocks) == set(block_ids(text)), "stored blocks are the ones the directory names"

    def prune(self, aggs: Sequence[Aggregate], now: int) -> None:
        for cond, agg in zip(self.conds, aggs, strict=True):
            prune(cond, agg, now)

    def evaluate(self, aggs: Sequence[Aggregate], now: int) -> bool:
        u = self.user
        return evaluate(u.rule, u.profile, self.reach, aggs, now, u.members)


def follow_changes(product: Product, now: int, verdict: bool) -> None:
    """From `now`, hop along the product's change points on a copy of its state: the oracle's first change
    after each point is not before the product's next one, and the verdicts agree at every point and just
    before it."""
    user = product.user
    oracle_changes_after = user.changes(now)
    aggs = copy.deepcopy(product.aggs)
    t, previous = now, verdict
    for hop in range(CHAIN):
        point = next_change_ms(user.rule, aggs, t)
        first = next((c for c, _ in oracle_changes_after if c > t), None)
        if point is not None and point == first:
            event("a change point is exactly the oracle's next change")
        if point is None:
            assert first is None, f"product sees no change after {t}, oracle changes at {first}"
            event(f"change points followed: {hop}")
            return
        assert point > t, f"next change {point} is not after {t}"
        assert first is None or point <= first, f"oracle changes at {first}, before the product's {point}"
        if point - 1 > t:
            product.prune(aggs, point - 1)
            assert product.evaluate(aggs, point - 1) == user.oracle(point - 1), f"at {point - 1} (change point - 1)"
        product.prune(aggs, point)
        verdict = product.evaluate(aggs, point)
        assert verdict == user.oracle(point), f"at change point {point}"
        if verdict != previous:
            event("the verdict flips at a change point")
        previous, t = verdict, point
    event(f"change points followed: {CHAIN}+")


@settings(max_examples=400, deadline=None)
@given(
    rule=st.one_of(rules, time_rules, time_rules),
    kind=st.sampled_from(["live", "past_behavior"]),
    created_offset=st.integers(-4, 8),
    profile=profiles,
    subs=subscriptions,
    members=memberships,
    data=st.data(),
)
def test_incremental_evaluation_matches_oracle(
    rule: Node,
    kind: str,
    created_offset: int,
    profile: Mapping[str, Scalar],
    subs: Mapping[str, bool],
    members: frozenset[str],
    data: st.DataObject,
) -> None:
    grid = data.draw(st.sampled_from(GRIDS), label="grid")
    items = data.draw(streams(rule, grid), label="stream")
    play(User(rule, kind, T0 + created_offset * grid, profile, subs, members), items, data)


def play(user: User, items: Sequence[RawEvent | Tick], data: st.DataObject) -> None:
    note(f"rule: {json.dumps(rule_to_json(user.rule))}")
    note(f"kind={user.kind} created_at={user.created_at} members={sorted(user.members)}")
    product = Product(user)
    now = T0
    verdicts: set[bool] = set()
    sealed = False
    for item in items:
        if not isinstance(item, Tick):
            product.deliver(item)
            if data.draw(st.integers(0, 4), label="round trip after event") == 0:
                product.round_trip()
            continue
        now += item.advance_ms
        product.prune(product.aggs, now)
        if data.draw(st.booleans(), label="round trip at tick"):
            product.round_trip()
        sealed = sealed or any(a.blocks.items for a in product.aggs)
        verdict = product.evaluate(product.aggs, now)
        assert verdict == user.oracle(now), f"at tick {now}"
        verdicts.add(verdict)
        follow_changes(product, now, verdict)
    event(f"verdicts seen at ticks: {sorted(verdicts)}")
    event(f"blocks sealed at some tick: {sealed}")


TRICKY: tuple[Scalar, ...] = (0.1, 0.2, 0.3, 0.7, 1.0, 1, 2, 2.0, 1e16, -1e16, "1", "2", True, False)
"""Amounts whose float sums depend on the order of addition (math.fsum does not), ints equal to floats,
and strings and bools beside the numbers they spell."""
EXACT: tuple[Scalar, ...] = (0.5, 0.25, 1.0, 1, 2, 2.0, -3, "1", "2", True, False)
"""The same kinds of value, minus the order-dependent sums."""


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["sum", "min", "max", "avg", "distinct"]),
    op=st.sampled_from(COMPARISON_OPS),
    window=st.one_of(st.none(), st.sampled_from(DURATIONS[:6])),
    data=st.data(),
)
def test_aggregate_tests_are_exact(kind: str, op: str, window: Duration | None, data: st.DataObject) -> None:
    """One event condition with one aggregate test, its value what a prefix of the events adds up to."""
    grid = 15 * MIN
    pool = TRICKY
    amounts = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=8), label="amounts")
    pick = amounts[: data.draw(st.integers(1, len(amounts)), label="prefix")]
    nums = [float(a) for a in pick if isinstance(a, int | float) and not isinstance(a, bool)]
    value: float
    if kind == "distinct":
        value = len({(type(a) is str, type(a) is bool, a) for a in pick})
    elif kind == "sum":
        value = math.fsum(nums)
    elif kind == "avg":
        value = math.fsum(nums) / len(nums) if nums else 0.5
    else:
        value = (min if kind == "min" else max)(nums, default=0.5)
    rule = EventCond("C", (), Comparison("gte", 0), (AggTest(kind, "amount", op, value),), Bounds(within=window))
    items: list[RawEvent | Tick] = []
    for i, amount in enumerate(amounts):
        ts = T0 + data.draw(st.integers(-4, 8), label="slot") * grid
        items.append((f"e{i}", "C", ts, {"amount": amount}))
        if data.draw(st.booleans(), label="tick"):
            items.append(Tick(data.draw(st.integers(0, 2)) * grid))
    items.append(Tick(grid))
    play(User(rule, "past_behavior", T0, {}, {}, frozenset()), items, data)


def _settled(kind: str, amounts: Sequence[float], value: float, bounds: Bounds) -> tuple[bool, bool]:
    """(product, oracle) for `C <kind> amount eq value` over events at T0 with these amounts, at T0 + 1."""
    rule = EventCond("C", (), Comparison("gte", 0), (AggTest(kind, "amount", "eq", value),), bounds)
    user = User(rule, "past_behavior", T0, {}, {}, frozenset())
    product = Product(user)
    for i, amount in enumerate(amounts):
        product.deliver((f"e{i}", "C", T0, {"amount": amount}))
    product.prune(product.aggs, T0 + 1)
    return product.evaluate(product.aggs, T0 + 1), user.oracle(T0 + 1)


ORDER_DEPENDENT = [([0.1, 0.2, 0.3], 0.6), ([1e16, 1.0, -1e16], 1.0), ([0.1, 0.1, 0.7, 0.1], 1.0)]
"""Amounts and their math.fsum; adding left to right gives 0.6000000000000001, 0.0 and 0.9999999999999999."""


@pytest.mark.parametrize(("amounts", "total"), ORDER_DEPENDENT)
def test_windowed_sum_and_avg_are_fsum(amounts: list[float], total: float) -> None:
    window = Bounds(within=Duration("hours", 1))
    assert _settled("sum", amounts, total, window) == (True, True)
    assert _settled("avg", amounts, total / len(amounts), window) == (True, True)


@pytest.mark.parametrize(("amounts", "total"), ORDER_DEPENDENT)
@pytest.mark.parametrize("bounds", [Bounds(), Bounds(from_ms=T0 - HOUR)], ids=["unbounded", "from"])
def test_settled_sum_and_avg_are_fsum(amounts: list[float], total: float, bounds: Bounds) -> None:
    assert _settled("sum", amounts, total, bounds) == (True, True)
    assert _settled("avg", amounts, total / len(amounts), bounds) == (True, True)


@settings(max_examples=400, deadline=None)
@given(rule=rules)
def test_canonical_json_round_trips(rule: Node) -> None:
    data = rule_to_json(rule)
    text = json.dumps(data, sort_keys=True)
    again = parse_rule(json.loads(text))
    assert again == rule
    assert json.dumps(rule_to_json(again), sort_keys=True) == text
    assert describe(rule)
