"""`in_segment` references: where a rule names a segment, and the order to decide segments in.

A segment that uses another must be decided after it, in the same pass, so
that a change of the inner membership reaches the outer one in the same
commit. References cannot form a cycle: a rule may only name segments that
exist when it is created (the catalog checks that under its lock, a 422
naming the node otherwise), ids are assigned at creation and rules never
change afterwards, so no existing segment can come to use a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from stream.rules.model import All, AnyOf, InSegment, Node, Not


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
