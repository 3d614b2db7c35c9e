"""Segment rules: parsing, validation, evaluation and incremental aggregates.

Pure by design (stdlib only, no I/O) so the agents, the API and the exact
recount all share one definition of membership, and it can be tested
exhaustively without Kafka or Redis.
"""

from stream.rules.aggregate import (
    Aggregate,
    event_matches,
    fold,
    new_aggregate,
    next_window_change,
    prune,
    sum_value,
    window_stats,
)
from stream.rules.channels import CHANNELS, IDENTITY_PROP, channel_mask, reachability, reachable
from stream.rules.evaluate import Compiled, compile_rule, evaluate, event_conditions, event_holds, next_change_ms
from stream.rules.model import (
    COMPARISON_OPS,
    KINDS,
    MAX_WITHIN_DAYS,
    MS_PER_DAY,
    OPERATORS,
    All,
    AnyOf,
    Comparison,
    EventCond,
    Node,
    Not,
    ProfileCond,
    PropFilter,
    Reachable,
    RuleError,
    Scalar,
    SegmentSpec,
    SumCond,
    window_ms,
)
from stream.rules.ops import compare
from stream.rules.parse import MAX_DEPTH, parse_rule
from stream.rules.segment import MAX_NAME_LENGTH, parse_segment, rule_to_json
from stream.rules.storage import aggregates_from_json, aggregates_to_json
from stream.rules.summary import describe

__all__ = [
    "CHANNELS",
    "COMPARISON_OPS",
    "IDENTITY_PROP",
    "KINDS",
    "MAX_DEPTH",
    "MAX_NAME_LENGTH",
    "MAX_WITHIN_DAYS",
    "MS_PER_DAY",
    "OPERATORS",
    "Aggregate",
    "All",
    "AnyOf",
    "Comparison",
    "Compiled",
    "EventCond",
    "Node",
    "Not",
    "ProfileCond",
    "PropFilter",
    "Reachable",
    "RuleError",
    "Scalar",
    "SegmentSpec",
    "SumCond",
    "aggregates_from_json",
    "aggregates_to_json",
    "channel_mask",
    "compare",
    "compile_rule",
    "describe",
    "evaluate",
    "event_conditions",
    "event_holds",
    "event_matches",
    "fold",
    "new_aggregate",
    "next_change_ms",
    "next_window_change",
    "parse_rule",
    "parse_segment",
    "prune",
    "reachability",
    "reachable",
    "rule_to_json",
    "sum_value",
    "window_ms",
    "window_stats",
]
