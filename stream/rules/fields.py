"""Field-level validators shared by rule nodes and event filters.

Each one either returns a value already narrowed to what evaluation expects
or raises RuleError at the exact path, so callers never re-check types.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeGuard

from stream.rules.model import OPERATORS, RuleError, Scalar


def obj_at(obj: object, path: str, allowed: frozenset[str]) -> Mapping[str, object]:
    """Unknown keys are errors, not ignored, so a typo like `withn_days` cannot silently widen a rule."""
    if not isinstance(obj, dict):
        raise RuleError(path, f"expected an object, got {type_name(obj)}")
    for key in obj:
        if key not in allowed:
            raise RuleError(f"{path}.{key}", f"unknown field; expected one of {', '.join(sorted(allowed))}")
    return obj


def type_name(obj: object) -> str:
    """What an error says it got: the JSON-ish kind, or why a value of the right kind is still wrong."""
    if obj is None:
        return "null"
    if isinstance(obj, str | list | dict) and not (obj.strip() if isinstance(obj, str) else obj):
        return {str: "a blank string", list: "an empty list", dict: "an empty object"}[type(obj)]
    return type(obj).__name__


def finite_number(value: object) -> TypeGuard[int | float]:
    """JSON allows NaN and Infinity in Python's parser; neither can be compared or stored canonically."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def is_scalar(value: object) -> TypeGuard[Scalar]:
    return isinstance(value, str | bool) or finite_number(value)


def text_field(obj: Mapping[str, object], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{path}.{key}", f"must be a non-empty string, got {type_name(value)}")
    return value


def op_field(obj: Mapping[str, object], path: str, allowed: tuple[str, ...]) -> str:
    op = obj.get("op")
    if not isinstance(op, str) or op not in allowed:
        raise RuleError(f"{path}.op", f"unknown operator {op!r}; expected one of {', '.join(allowed)}")
    return op


def operand(op: str, obj: Mapping[str, object], path: str) -> Scalar | tuple[Scalar, ...] | None:
    value, vpath = obj.get("value"), f"{path}.value"
    if op in ("exists", "not_exists"):
        if value is not None:
            raise RuleError(vpath, f"operator {op} takes no value")
        return None
    if value is None:
        raise RuleError(vpath, f"operator {op} needs a value")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleError(vpath, f"operator {op} needs a non-empty list, got {type_name(value)}")
        for i, item in enumerate(value):
            if not is_scalar(item):
                raise RuleError(f"{vpath}[{i}]", f"must be a string, number or boolean, got {type_name(item)}")
        return tuple(value)
    if op == "contains":
        if not isinstance(value, str):
            raise RuleError(vpath, f"operator contains needs a string, got {type_name(value)}")
        return value
    if op in ("eq", "neq"):
        if is_scalar(value):
            return value
        raise RuleError(vpath, f"operator {op} needs a string, number or boolean, got {type_name(value)}")
    if isinstance(value, str) or finite_number(value):
        return value
    raise RuleError(vpath, f"operator {op} needs a number or a string, got {type_name(value)}")


def filter_fields(obj: object, path: str) -> tuple[str, str, Scalar | tuple[Scalar, ...] | None]:
    body = obj_at(obj, path, frozenset(("prop", "op", "value")))
    prop = text_field(body, "prop", path)
    op = op_field(body, path, OPERATORS)
    return prop, op, operand(op, body, path)
