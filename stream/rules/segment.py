"""The JSON face of a segment: the create body in, the canonical rule out.

The canonical form is what gets stored and echoed back by the API, so two
spellings of the same rule (defaults omitted or written out, `2.0` or `2`
as a count) end up as one stored definition.
"""

from __future__ import annotations

from datetime import UTC, datetime

from stream.rules.model import (
    KINDS,
    All,
    AnyOf,
    Bounds,
    Duration,
    EventCond,
    InSegment,
    Node,
    Not,
    ProfileCond,
    PropFilter,
    RuleError,
    SegmentSpec,
    SequenceCond,
)
from stream.rules.parse import parse_rule

MAX_NAME_LENGTH = 200
_FIELDS = ("name", "kind", "rule")


def parse_segment(body: object) -> SegmentSpec:
    """Validates a create body; the id and created_at are the API's to assign, not the client's."""
    if not isinstance(body, dict):
        raise RuleError("body", "expected an object with name, kind and rule")
    obj: dict[str, object] = body
    for key in obj:
        if key not in _FIELDS:
            raise RuleError(str(key), f"unknown field; expected one of {', '.join(_FIELDS)}")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RuleError("name", "must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise RuleError("name", f"must be at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    kind = obj.get("kind", "live")
    if not isinstance(kind, str) or kind not in KINDS:
        raise RuleError("kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    raw_rule = obj.get("rule")
    if kind == "custom_list":
        if raw_rule is not None:
            raise RuleError("rule", "a custom_list segment takes no rule; its members come from uploads")
        return SegmentSpec(name, kind, None)
    if raw_rule is None:
        raise RuleError("rule", f"a {kind} segment needs a rule")
    return SegmentSpec(name, kind, parse_rule(raw_rule, "rule"))


def _filter_json(f: ProfileCond | PropFilter) -> dict[str, object]:
    out: dict[str, object] = {"prop": f.prop, "op": f.op}
    if isinstance(f.value, tuple):
        out["value"] = list(f.value)
    elif f.value is not None:
        out["value"] = f.value
    return out


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _duration_json(d: Duration) -> dict[str, object]:
    return {d.unit: _number(d.amount)}


def iso_ms(ms: int) -> str:
    """An instant as the API writes instants: UTC, milliseconds, `Z`."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bounds_json(b: Bounds, out: dict[str, object]) -> None:
    """`within_days` stays the spelling of a whole-day window, as v1 stored it."""
    if b.within is not None:
        if b.within.unit == "days":
            out["within_days"] = _number(b.within.amount)
        else:
            out["within"] = _duration_json(b.within)
    if b.before is not None:
        out["before"] = _duration_json(b.before)
    if b.from_ms is not None:
        out["from"] = iso_ms(b.from_ms)
    if b.to_ms is not None:
        out["to"] = iso_ms(b.to_ms)


def _event_json(e: EventCond) -> dict[str, object]:
    out: dict[str, object] = {"name": e.name}
    if e.where:
        out["where"] = [_filter_json(f) for f in e.where]
    out["count"] = {"op": e.count.op, "value": _number(e.count.value)}
    for t in e.tests:
        out[t.kind] = {"prop": t.prop, "op": t.op, "value": _number(t.value) if t.kind == "distinct" else t.value}
    _bounds_json(e.bounds, out)
    return out


def _sequence_json(q: SequenceCond) -> dict[str, object]:
    steps: list[dict[str, object]] = []
    for step in q.steps:
        body: dict[str, object] = {"name": step.name}
        if step.where:
            body["where"] = [_filter_json(f) for f in step.where]
        steps.append(body)
    out: dict[str, object] = {"steps": steps}
    if q.max_span is not None:
        out["max_span"] = _duration_json(q.max_span)
    _bounds_json(q.bounds, out)
    return out


def rule_to_json(node: Node) -> dict[str, object]:
    """Canonical: `count` always spelled out, empty `where` and absent tests and bounds omitted."""
    if isinstance(node, All):
        return {"all": [rule_to_json(c) for c in node.children]}
    if isinstance(node, AnyOf):
        return {"any": [rule_to_json(c) for c in node.children]}
    if isinstance(node, Not):
        return {"not": rule_to_json(node.child)}
    if isinstance(node, ProfileCond):
        return {"profile": _filter_json(node)}
    if isinstance(node, EventCond):
        return {"event": _event_json(node)}
    if isinstance(node, SequenceCond):
        return {"sequence": _sequence_json(node)}
    if isinstance(node, InSegment):
        return {"in_segment": node.segment_id}
    return {"reachable": node.channel}
