"""`in_segment` references: which ids must exist, cycles, and the order to decide segments in.

A segment that uses another must be decided after it, in the same pass, so
that a change of the inner membership reaches the outer one in the same
commit; that needs the references to form no cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from stream.rules.evaluate import referenced_segments
from stream.rules.model import All, AnyOf, InSegment, Node, Not, RuleError


def check_references(rule: Node | None, known: Set[str], uses: Mapping[str, Set[str]],
                     own_id: str | None = None, path: str = "rule") -> None:
    """Raises RuleError (a 422) for an unknown id, or for an id whose own references lead back.

    `uses` maps each existing segment to the segments its rule names."""
    for sid in sorted(referenced_segments(rule)):
        if sid not in known:
            raise RuleError(reference_path(rule, sid, path), f"unknown segment {sid!r}")
        if own_id is not None and _reaches(sid, own_id, uses):
            raise RuleError(reference_path(rule, sid, path), f"segment {sid!r} uses this segment: a cycle")


def reference_path(node: Node | None, sid: str, path: str = "rule") -> str:
    """Where the first `in_segment` naming `sid` sits, spelled as parse errors spell paths."""
    if isinstance(node, InSegment):
        return f"{path}.in_segment" if node.segment_id == sid else ""
    if isinstance(node, All | AnyOf):
        key = "all" if isinstance(node, All) else "any"
        for i, child in enumerate(node.children):
            if found := reference_path(child, sid, f"{path}.{key}[{i}]"):
                return found
    if isinstance(node, Not):
        return reference_path(node.child, sid, f"{path}.not")
    return ""


def _reaches(start: str, target: str, uses: Mapping[str, Set[str]]) -> bool:
    seen: set[str] = set()
    stack = [start]
    while stack:
        sid = stack.pop()
        if sid == target:
            return True
        if sid not in seen:
            seen.add(sid)
            stack.extend(uses.get(sid, ()))
    return False


def dependency_order(uses: Mapping[str, Set[str]]) -> dict[str, int]:
    """A rank per segment, inner before outer (Kahn's algorithm, ties by id for determinism).

    A cycle cannot be created through the API; should stored definitions hold
    one anyway, its members get ranks after everything else rather than
    hanging the workers, and each is decided once per pass."""
    ids = set(uses) | {d for deps in uses.values() for d in deps}
    pending = {sid: len(uses.get(sid, set()) & ids) for sid in ids}
    users: dict[str, list[str]] = {}
    for sid, deps in uses.items():
        for dep in deps:
            users.setdefault(dep, []).append(sid)
    ready = sorted(sid for sid, n in pending.items() if n == 0)
    rank: dict[str, int] = {}
    while ready:
        sid = ready.pop(0)
        rank[sid] = len(rank)
        for outer in sorted(users.get(sid, ())):
            pending[outer] -= 1
            if pending[outer] == 0:
                ready.append(outer)
        ready.sort()
    for sid in sorted(ids - set(rank)):
        rank[sid] = len(rank)
    return rank
