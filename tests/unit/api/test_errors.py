"""Error details and metric labels: short, readable, bounded."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from stream.api.errors import MAX_DETAIL, describe_errors
from stream.api.observe import route_label

pytestmark = pytest.mark.unit


def test_validation_errors_name_their_location() -> None:
    detail = describe_errors([
        {"loc": ("query", "limit"), "msg": "Input should be less than or equal to 100", "input": b"\xff"},
        {"loc": ("body", "channel"), "msg": "Input should be 'email'", "ctx": {"error": ValueError("x")}},
    ])
    assert detail == "query.limit: Input should be less than or equal to 100; body.channel: Input should be 'email'"


def test_details_stay_short() -> None:
    detail = describe_errors([{"loc": ("body", i), "msg": "x" * 50} for i in range(100)])
    assert len(detail) == MAX_DETAIL
    assert detail.endswith("...")
    assert describe_errors([]) == "invalid request"


class FakeRoute:
    path_format = "/segments/{sid}"


def test_route_label_is_the_template_or_unmatched() -> None:
    app = FastAPI()

    @app.get("/users/{user_id}")
    def user(user_id: str) -> str:
        return user_id

    def scope(path: str, method: str = "GET") -> dict[str, object]:
        return {"type": "http", "path": path, "method": method, "app": app}

    assert route_label({"route": FakeRoute()}) == "/segments/{sid}"
    assert route_label(scope("/users/u-42")) == "/users/{user_id}"
    assert route_label(scope("/users/u-42", "DELETE")) == "/users/{user_id}"
    assert route_label(scope("/openapi.json")) == "/openapi.json"
    assert route_label(scope("/wp-admin/u-42")) == "unmatched"
    assert route_label({}) == "unmatched"
