"""Loads the Lua scripts shipped in stream/state/lua once per Redis client."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def lua_source(name: str) -> str:
    return (files("stream.state") / "lua" / f"{name}.lua").read_text(encoding="utf-8")
