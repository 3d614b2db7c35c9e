"""stream.client against scripted answers (httpx.MockTransport): retries, back-off, errors, streaming.

The real API is exercised in tests/integration/client/; here each transport
answer is chosen to hit one branch: a 503 then success, a 4xx that must not be
retried, a connection refused, a stream cut mid-export.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from stream.api.models import EstimateInsights, ExactInsights, SegmentDetail
from stream.client import ApiError, ApiUnreachable, AsyncClient, Client, JobFailed, Retry

pytestmark = pytest.mark.unit

BASE = "http://api.test"
FAST = Retry(attempts=4, base_delay=0.5, multiplier=2.0, max_delay=1.5, jitter=0.0)
SEGMENT = {"id": "s-1", "name": "Chargers", "kind": "live", "rule": {"event": {"name": "Charged"}},
           "created_at": "2026-12-01T00:00:00.000Z", "hidden": False, "summary": "did Charged", "backfill": None}
ESTIMATE = {"mode": "estimate", "as_of": "2026-12-01T00:00:00.000Z",
            "size": {"estimate": 3.0, "lower_95": 3.0, "upper_95": 3.0},
            "reachability": {"email": {"estimate": 1.0, "lower_95": 1.0, "upper_95": 1.0}}}


def job(status: str, progress: float = 0.5, error: str | None = None) -> dict[str, Any]:
    return {"job_id": "j-1", "type": "recount", "segment_id": "s-1", "status": status, "progress": progress,
            "result": None, "error": error}


class Script:
    """Answers requests in order from a list of responders; records every request it saw."""

    def __init__(self, *responders: Callable[[httpx.Request], httpx.Response] | httpx.Response) -> None:
        self.responders = list(responders)
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(request.read())
        assert self.responders, f"unexpected extra request {request.method} {request.url}"
        nxt = self.responders.pop(0)
        return nxt(request) if callable(nxt) else nxt

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(await request.aread())
        assert self.responders, f"unexpected extra request {request.method} {request.url}"
        nxt = self.responders.pop(0)
        return nxt(request) if callable(nxt) else nxt


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def time_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("read timed out", request=request)


def unavailable() -> httpx.Response:
    return httpx.Response(503, json={"detail": "redis is unavailable, try again later"})


def client(script: Script, retry: Retry = FAST, key: str | None = "lsk_a_b") -> tuple[Client, list[float]]:
    slept: list[float] = []
    return Client(BASE, api_key=key, retry=retry, transport=httpx.MockTransport(script), sleep=slept.append), slept


def aclient(script: Script, retry: Retry = FAST) -> tuple[AsyncClient, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return AsyncClient(BASE, api_key="lsk_a_b", retry=retry, transport=httpx.MockTransport(script.handle_async),
                       sleep=sleep), slept


# --- retries and back-off ----------------------------------------------------------------------


def test_503_is_retried_with_exponential_backoff_then_answers() -> None:
    script = Script(unavailable(), unavailable(), httpx.Response(200, json=SEGMENT))
    api, slept = client(script)
    seg = api.get_segment("s-1")
    assert isinstance(seg, SegmentDetail) and seg.summary == "did Charged"
    assert len(script.requests) == 3
    assert slept == [0.5, 1.0]


def test_503_until_the_last_attempt_raises_it_with_the_detail() -> None:
    script = Script(*(unavailable() for _ in range(4)))
    api, slept = client(script)
    with pytest.raises(ApiError) as raised:
        api.trend("s-1")
    assert raised.value.status == 503
    assert raised.value.detail == "redis is unavailable, try again later"
    assert len(script.requests) == 4
    assert slept == [0.5, 1.0, 1.5]  # capped at max_delay


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 415, 422])
def test_4xx_is_never_retried(status: int) -> None:
    script = Script(httpx.Response(status, json={"detail": f"nope {status}"}))
    api, slept = client(script)
    with pytest.raises(ApiError) as raised:
        api.delete_segment("s-1")
    assert (raised.value.status, raised.value.detail) == (status, f"nope {status}")
    assert raised.value.method == "DELETE" and raised.value.url == f"{BASE}/segments/s-1"
    assert len(script.requests) == 1 and slept == []


def test_500_is_not_retried_by_default_but_can_be() -> None:
    api, slept = client(Script(httpx.Response(500, text="boom")))
    with pytest.raises(ApiError) as raised:
        api.me()
    assert raised.value.status == 500 and raised.value.detail == "boom" and slept == []
    script = Script(httpx.Response(502, text="bad gateway"), httpx.Response(200, json={"name": "k", "scopes": []}))
    api, slept = client(script, Retry(attempts=2, base_delay=0.1, jitter=0.0, statuses=frozenset({502, 503})))
    assert api.me().name == "k" and slept == [0.1]


def test_connection_refused_is_retried_and_then_unreachable() -> None:
    script = Script(refuse, refuse, refuse, refuse)
    api, slept = client(script)
    with pytest.raises(ApiUnreachable) as raised:
        api.list_segments()
    assert raised.value.attempts == 4
    assert isinstance(raised.value.__cause__, httpx.ConnectError)
    assert slept == [0.5, 1.0, 1.5]


def test_connection_refused_then_up() -> None:
    script = Script(refuse, httpx.Response(200, json={"segments": []}))
    api, _ = client(script)
    assert api.list_segments() == []


def test_a_timeout_after_sending_is_retried_for_reads_only() -> None:
    """A POST that timed out may have been applied: sending it again could create a second segment."""
    script = Script(time_out)
    api, slept = client(script)
    with pytest.raises(ApiUnreachable):
        api.create_segment("x", {"event": {"name": "Charged"}})
    assert len(script.requests) == 1 and slept == []
    script = Script(time_out, httpx.Response(200, json=SEGMENT))
    api, slept = client(script)
    assert api.get_segment("s-1").id == "s-1" and len(slept) == 1


def test_a_post_is_retried_on_503_and_on_a_refused_connection() -> None:
    created = {**SEGMENT, "backfill_job_id": "j-1"}
    del created["summary"], created["backfill"]
    script = Script(unavailable(), refuse, httpx.Response(201, json=created))
    api, _ = client(script)
    assert api.create_segment("Chargers", {"event": {"name": "Charged"}}).backfill_job_id == "j-1"
    assert [json.loads(b) for b in script.bodies] == [{"name": "Chargers", "kind": "live",
                                                      "rule": {"event": {"name": "Charged"}}}] * 3


def test_no_retry_policy_tries_once() -> None:
    script = Script(unavailable())
    api, _ = client(script, Retry(attempts=1))
    with pytest.raises(ApiError):
        api.estimate("s-1")
    assert len(script.requests) == 1


def test_retry_after_wins_but_is_capped() -> None:
    script = Script(httpx.Response(503, headers={"Retry-After": "1.2"}, json={"detail": "x"}),
                    httpx.Response(503, headers={"Retry-After": "60"}, json={"detail": "x"}),
                    httpx.Response(200, json=ESTIMATE))
    api, slept = client(script)
    api.estimate("s-1")
    assert slept == [1.2, 1.5]


def test_jitter_stays_within_its_band() -> None:
    policy = Retry(base_delay=1.0, multiplier=2.0, max_delay=100.0, jitter=0.5)
    for n in range(1, 6):
        assert all(0.5 * 2 ** (n - 1) <= policy.delay(n) <= 2 ** (n - 1) for _ in range(50))


def test_bad_policies_are_refused() -> None:
    for bad in ({"attempts": 0}, {"multiplier": 0.5}, {"jitter": 2.0}, {"base_delay": -1.0}):
        with pytest.raises(ValueError, match="Retry"):
            Retry(**bad)


# --- requests and answers ------------------------------------------------------------------------


def test_key_goes_as_a_bearer_header_and_ids_are_escaped() -> None:
    script = Script(httpx.Response(200, json={"user_id": "a/b c", "profile": {}, "reachability": {},
                                              "blacklisted": False, "segments": []}))
    api, _ = client(script, key="lsk_id_secret")
    assert api.user("a/b c").user_id == "a/b c"
    request = script.requests[0]
    assert request.headers["authorization"] == "Bearer lsk_id_secret"
    assert request.url.raw_path == b"/users/a%2Fb%20c"


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_API_KEY", "lsk_env_key\n")
    script = Script(httpx.Response(200, json={"name": "env", "scopes": ["read"]}))
    api, _ = client(script, key=None)
    api.me()
    assert script.requests[0].headers["authorization"] == "Bearer lsk_env_key"


def test_an_error_body_that_is_not_json_is_kept_as_text() -> None:
    api, _ = client(Script(httpx.Response(404, text="<html>not here</html>")))
    with pytest.raises(ApiError) as raised:
        api.job("j-9")
    assert raised.value.detail == "<html>not here</html>" and "404" in str(raised.value)


def test_an_answer_that_breaks_the_model_is_a_validation_error() -> None:
    api, _ = client(Script(httpx.Response(200, json={"id": "s-1"})))
    with pytest.raises(pydantic.ValidationError):
        api.get_segment("s-1")


def test_insights_modes_get_their_own_models() -> None:
    exact = {"mode": "exact", "computed_at": "2026-12-01T00:00:00.000Z", "size": 4, "blacklisted": 1,
             "reachability": {"email": 2}, "drift": 0, "users_scanned": 10}
    script = Script(httpx.Response(200, json=ESTIMATE), httpx.Response(200, json=exact))
    api, _ = client(script)
    assert isinstance(api.estimate("s-1"), EstimateInsights)
    got = api.exact("s-1")
    assert isinstance(got, ExactInsights) and got.blacklisted == 1
    assert [r.url.params["mode"] for r in script.requests] == ["estimate", "exact"]


def test_list_params_and_patch_body() -> None:
    out = {k: v for k, v in SEGMENT.items() if k not in ("summary", "backfill")}
    script = Script(httpx.Response(200, json={"segments": [{**out, "estimated_size": 2.0}]}),
                    httpx.Response(200, json={**out, "hidden": True}))
    api, _ = client(script)
    assert api.list_segments(q="Char", include_hidden=True)[0].estimated_size == 2.0
    assert api.update_segment("s-1", hidden=True).hidden is True
    assert dict(script.requests[0].url.params) == {"q": "Char", "include_hidden": "true"}
    assert script.requests[1].method == "PATCH" and json.loads(script.bodies[1]) == {"hidden": True}
    with pytest.raises(ValueError, match="name and/or hidden"):
        api.update_segment("s-1")


# --- jobs ----------------------------------------------------------------------------------------


def test_recount_polls_the_job_until_done_then_reads_the_result() -> None:
    exact = {"mode": "exact", "computed_at": "2026-12-01T00:00:00.000Z", "size": 7, "blacklisted": 0,
             "reachability": {}, "drift": 2, "users_scanned": 9}
    script = Script(httpx.Response(202, json={"job_id": "j-1"}), httpx.Response(200, json=job("queued", 0)),
                    httpx.Response(200, json=job("running")), httpx.Response(200, json=job("done", 1)),
                    httpx.Response(200, json=exact))
    api, slept = client(script)
    result = api.recount("s-1")
    assert (result.size, result.drift) == (7, 2)
    assert [r.url.path for r in script.requests] == ["/segments/s-1/recount", "/jobs/j-1", "/jobs/j-1",
                                                     "/jobs/j-1", "/segments/s-1/insights"]
    assert slept == [0.1, 0.2]  # the poll interval grows


def test_a_failed_job_raises_with_its_error() -> None:
    api, _ = client(Script(httpx.Response(200, json=job("failed", error="partition 3: redis gone"))))
    with pytest.raises(JobFailed, match="redis gone") as raised:
        api.wait_job("j-1")
    assert raised.value.job.status == "failed"


def test_a_job_past_its_deadline_raises_timeout() -> None:
    api, _ = client(Script(httpx.Response(200, json=job("running"))))
    with pytest.raises(TimeoutError, match="still running"):
        api.wait_job("j-1", timeout=0)


# --- export and upload ----------------------------------------------------------------------------


class CutStream(httpx.SyncByteStream):
    """A body that breaks after its first chunk, as a dropped connection does."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"user_id\r\nu-1\r\n"
        raise httpx.ReadError("connection reset")


class ACutStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"user_id\r\nu-1\r\n"
        raise httpx.ReadError("connection reset")


CSV = b"user_id,email\r\nu-1,a@x.io\r\nu-2,b@x.io\r\n"


def test_export_streams_to_the_file_and_retries_a_cut_stream_whole(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"old export")
    script = Script(unavailable(), httpx.Response(200, stream=CutStream()),
                    httpx.Response(200, content=CSV, headers={"content-type": "text/csv"}))
    api, _ = client(script)
    assert api.export("s-1", target, fields=["user_id", "email"]) == target
    assert target.read_bytes() == CSV
    assert dict(script.requests[0].url.params) == {"fields": "user_id,email"}
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no partial file left behind


def test_a_failed_export_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"old export")
    api, _ = client(Script(httpx.Response(200, stream=CutStream())), Retry(attempts=1))
    with pytest.raises(ApiUnreachable):
        api.export("s-1", target)
    api, _ = client(Script(httpx.Response(403, json={"detail": "lacks the pii scope"})))
    with pytest.raises(ApiError, match="pii"):
        api.export("s-1", target, raw=True)
    assert target.read_bytes() == b"old export"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_upload_ids_as_csv_resent_whole_on_retry() -> None:
    script = Script(unavailable(), httpx.Response(200, json={"rows": 3, "matched": 2, "unmatched": 1}))
    api, _ = client(script)
    ids = (u for u in ["u-1", "u,2", 'u"3'])  # a one-shot iterator: the spool makes the retry possible
    assert api.upload_list("s-1", ids).matched == 2
    assert script.bodies[0] == script.bodies[1] == b'user_id\r\nu-1\r\n"u,2"\r\n"u""3"\r\n'
    assert script.requests[0].headers["content-type"] == "text/csv"


def test_upload_a_file_by_path(tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_bytes(b"email\r\n" + b"".join(f"u{i}@x.io\r\n".encode() for i in range(20_000)))
    script = Script(httpx.Response(200, json={"rows": 20_000, "matched": 0, "unmatched": 20_000}))
    api, _ = client(script)
    assert api.upload_list("s-1", source).rows == 20_000
    assert script.bodies[0] == source.read_bytes()


# --- async ---------------------------------------------------------------------------------------


async def test_async_retries_503_and_maps_4xx() -> None:
    script = Script(unavailable(), httpx.Response(200, json=SEGMENT), httpx.Response(404, json={"detail": "gone"}))
    api, slept = aclient(script)
    async with api:
        assert (await api.get_segment("s-1")).name == "Chargers"
        with pytest.raises(ApiError) as raised:
            await api.get_segment("s-2")
    assert raised.value.status == 404 and raised.value.detail == "gone"
    assert slept == [0.5] and len(script.requests) == 3


async def test_async_connection_errors_exhaust() -> None:
    api, slept = aclient(Script(refuse, refuse, refuse, refuse))
    async with api:
        with pytest.raises(ApiUnreachable):
            await api.campaigns()
    assert slept == [0.5, 1.0, 1.5]


async def test_async_export_and_upload(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    script = Script(httpx.Response(200, stream=ACutStream()), httpx.Response(200, content=CSV),
                    unavailable(), httpx.Response(200, json={"rows": 2, "matched": 2, "unmatched": 0}))
    api, _ = aclient(script)
    async with api:
        await api.export("s-1", target, fields="user_id,email")
        assert target.read_bytes() == CSV
        assert (await api.upload_list("s-1", ["a@x.io", "b@x.io"], column="email")).matched == 2
    assert script.bodies[2] == script.bodies[3] == b"email\r\na@x.io\r\nb@x.io\r\n"
    assert [p.name for p in target.parent.glob("*.part")] == []


async def test_async_wait_job() -> None:
    script = Script(httpx.Response(200, json=job("running")), httpx.Response(200, json=job("done", 1)))
    api, slept = aclient(script)
    async with api:
        assert (await api.wait_job("j-1")).status == "done"
    assert slept == [0.1]


# --- layering ------------------------------------------------------------------------------------


def test_the_client_imports_no_engine_state_or_agents() -> None:
    """API clients install the package for the client alone: it must not drag in Redis, Faust or the engine."""
    code = ("import sys, stream.client; "
            "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in ('stream', 'redis', 'faust', "
            "'aiokafka', 'fastapi', 'datasketches'))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                 .stdout.split())
    assert "stream.client" in loaded
    assert loaded <= {"stream", "stream.client", "stream.api", "stream.api.models"}, loaded
