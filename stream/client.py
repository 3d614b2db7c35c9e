"""A Python client for the query API: `Client` (sync) and `AsyncClient` (asyncio), on httpx.

    from stream.client import Client

    with Client("http://127.0.0.1:8000", api_key=open("var/admin.key").read().strip()) as api:
        seg = api.create_segment("Chargers", {"event": {"name": "Charged"}})
        api.export(seg.id, "chargers.csv", fields=["user_id", "email"])

Why it is shaped this way:

* **Typed answers from the API's own models.** Every method returns the
  pydantic model the route declares (`stream.api.models`), so a field renamed
  in the API is a validation error here, not a silent `KeyError` in a caller.
  Only those models are imported: nothing of the engine, the state stores or
  the agents (a unit test checks it), so the client costs httpx and pydantic.
* **One description per call, two transports.** Each endpoint is a `Call`
  (method, path, params, body, how to read the answer) built by a function
  of `Endpoints`; `Client` and `AsyncClient` only send it. The two classes
  cannot drift apart in paths or parsing.
* **Retries only where a retry is safe.** A 503 means the API could not reach
  Redis or Kafka and changed nothing it will not redo (the API says "retry"
  in those answers), and a connection that never opened sent nothing: both
  are retried with capped exponential back-off (`Retry`). A timeout or a
  dropped connection after the request went out is retried for reads only:
  a `POST` may have been applied. A 4xx is the caller's mistake and is never
  retried; it raises `ApiError` with the status and the API's `detail`.
* **Big bodies never sit in memory.** `export` streams the CSV to a
  temporary file beside the target and renames it into place when complete
  (a broken stream leaves no half file under the target's name; the whole
  export is retried from the start, and each export walks the members afresh,
  giving each once, so a retry is never a mix of two attempts). `upload_list` streams a file, or spools an iterable of
  ids to a temporary file first, so a retry can send the same bytes again.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from stream.api.models import (
    AuditOut,
    AuditRecord,
    CampaignList,
    CampaignOut,
    EstimateInsights,
    ExactInsights,
    ExplainOut,
    JobAccepted,
    JobOut,
    JourneyList,
    JourneyOut,
    OverlapEstimate,
    OverlapExact,
    SegmentCreated,
    SegmentDetail,
    SegmentList,
    SegmentListItem,
    SegmentOut,
    TrendOut,
    UploadOut,
    UsageOut,
    UserOut,
    UsersOut,
    WhoAmI,
)

__all__ = [
    "ApiError",
    "ApiUnreachable",
    "AsyncClient",
    "Client",
    "ClientError",
    "JobFailed",
    "Retry",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_URL = "http://127.0.0.1:8000"
CHUNK = 64 * 1024
# Job polling: quick at first (a small recount finishes in well under a second), then every 2 s.
POLL_FIRST, POLL_MAX = 0.1, 2.0
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
Identity = Literal["user_id", "email", "phone"]


# --- errors -------------------------------------------------------------------------------------


class ClientError(Exception):
    """Base of everything this module raises on purpose."""


class ApiError(ClientError):
    """The API answered with an error status; `detail` is its `{"detail": ...}` (or the raw text)."""

    def __init__(self, status: int, detail: Any, method: str, url: str) -> None:
        self.status, self.detail, self.method, self.url = status, detail, method, url
        super().__init__(f"{method} {url} -> {status}: {detail}")


class ApiUnreachable(ClientError):
    """No answer after the retries (connection refused, timeouts); the last httpx error is the cause."""

    def __init__(self, method: str, url: str, attempts: int, error: Exception) -> None:
        self.method, self.url, self.attempts = method, url, attempts
        super().__init__(f"{method} {url}: no answer after {attempts} attempt(s): {error!r}")


class JobFailed(ClientError):
    """A job (recount, forget) ended `failed`; `job.error` says why."""

    def __init__(self, job: JobOut) -> None:
        self.job = job
        super().__init__(f"job {job.job_id} ({job.type}) failed: {job.error}")


# --- retry policy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retry:
    """How many times a call is tried and how long to wait between tries.

    The n-th retry waits `min(max_delay, base_delay * multiplier**(n-1))`, scaled
    by a random factor in `[1 - jitter, 1]` so a fleet of clients does not come back
    in lockstep after an outage. `attempts=1` disables retries.
    """

    attempts: int = 5
    base_delay: float = 0.2
    multiplier: float = 2.0
    max_delay: float = 5.0
    jitter: float = 0.2
    #: Statuses that mean "not now, nothing done": the API's own is 503 (Redis or Kafka unreachable).
    statuses: frozenset[int] = frozenset({503})

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("Retry: delays must be >= 0, multiplier >= 1, jitter in [0, 1]")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds before retry number `retry` (1-based); a server's Retry-After wins, capped at max_delay."""
        if retry_after is not None:
            return min(self.max_delay, max(0.0, retry_after))
        raw = min(self.max_delay, self.base_delay * self.multiplier ** (retry - 1))
        return raw * (1 - self.jitter * random.random())


NO_RETRY: Retry = Retry(attempts=1)


def _retryable_transport(method: str, exc: httpx.TransportError) -> bool:
    """A connection that never opened sent nothing; anything later may have reached the API."""
    return method in IDEMPOTENT or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# --- calls --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call(Generic[T]):
    """One endpoint invocation, independent of the transport that sends it."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str | int | bool] = field(default_factory=dict)
    json: Any = None


def _seg(sid: str) -> str:
    return "/segments/" + quote(sid, safe="")


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        return model.model_validate_json(response.content)

    return parse


def _nothing(_: httpx.Response) -> None:
    return None


def _insights(response: httpx.Response) -> EstimateInsights | ExactInsights:
    body = response.json()
    if body.get("mode") == "exact":
        return ExactInsights.model_validate(body)
    return EstimateInsights.model_validate(body)


def error_of(response: httpx.Response, method: str) -> ApiError:
    """The API's `{"detail": ...}` when it sent one, else the start of the body's text."""
    detail: Any
    try:
        body = response.json()
        detail = body["detail"] if isinstance(body, dict) and "detail" in body else body
    except ValueError:
        detail = response.text[:1000]
    return ApiError(response.status_code, detail, method, str(response.request.url))


class Endpoints:
    """The endpoints, each as a `Call`; DESIGN.md "HTTP API" is the contract they follow."""

    @staticmethod
    def list_segments(q: str = "", include_hidden: bool = False) -> Call[list[SegmentListItem]]:
        params: dict[str, str | int | bool] = {"include_hidden": "true"} if include_hidden else {}
        if q:
            params["q"] = q
        return Call("GET", "/segments", lambda r: SegmentList.model_validate_json(r.content).segments, params)

    @staticmethod
    def create_segment(name: str, rule: Mapping[str, Any] | None, kind: str) -> Call[SegmentCreated]:
        body: dict[str, Any] = {"name": name, "kind": kind}
        if rule is not None:
            body["rule"] = rule
        return Call("POST", "/segments", _model(SegmentCreated), json=body)

    @staticmethod
    def get_segment(sid: str) -> Call[SegmentDetail]:
        return Call("GET", _seg(sid), _model(SegmentDetail))

    @staticmethod
    def update_segment(sid: str, name: str | None, hidden: bool | None) -> Call[SegmentOut]:
        body = {k: v for k, v in (("name", name), ("hidden", hidden)) if v is not None}
        if not body:
            raise ValueError("update_segment: give name and/or hidden")
        return Call("PATCH", _seg(sid), _model(SegmentOut), json=body)

    @staticmethod
    def delete_segment(sid: str) -> Call[None]:
        return Call("DELETE", _seg(sid), _nothing)

    @staticmethod
    def trend(sid: str) -> Call[TrendOut]:
        return Call("GET", _seg(sid) + "/trend", _model(TrendOut))

    @staticmethod
    def estimate(sid: str) -> Call[EstimateInsights]:
        return Call("GET", _seg(sid) + "/insights", _model(EstimateInsights), {"mode": "estimate"})

    @staticmethod
    def exact(sid: str) -> Call[ExactInsights]:
        return Call("GET", _seg(sid) + "/insights", _model(ExactInsights), {"mode": "exact"})

    @staticmethod
    def insights(sid: str, mode: Literal["estimate", "exact"]) -> Call[EstimateInsights | ExactInsights]:
        return Call("GET", _seg(sid) + "/insights", _insights, {"mode": mode})

    @staticmethod
    def start_recount(sid: str) -> Call[str]:
        return Call("POST", _seg(sid) + "/recount", lambda r: JobAccepted.model_validate_json(r.content).job_id)

    @staticmethod
    def job(job_id: str) -> Call[JobOut]:
        return Call("GET", "/jobs/" + quote(job_id, safe=""), _model(JobOut))

    @staticmethod
    def sample_users(sid: str, limit: int) -> Call[list[UserOut]]:
        return Call("GET", _seg(sid) + "/users", lambda r: UsersOut.model_validate_json(r.content).users,
                    {"limit": limit})

    @staticmethod
    def user(user_id: str) -> Call[UserOut]:
        return Call("GET", "/users/" + quote(user_id, safe=""), _model(UserOut))

    @staticmethod
    def forget_user(user_id: str) -> Call[str]:
        return Call("DELETE", "/users/" + quote(user_id, safe=""),
                    lambda r: JobAccepted.model_validate_json(r.content).job_id)

    @staticmethod
    def usage(sid: str) -> Call[UsageOut]:
        return Call("GET", _seg(sid) + "/usage", _model(UsageOut))

    @staticmethod
    def explain(sid: str, user_id: str) -> Call[ExplainOut]:
        return Call("GET", _seg(sid) + "/users/" + quote(user_id, safe="") + "/explain", _model(ExplainOut))

    @staticmethod
    def overlap(sid: str, other: str, mode: Literal["estimate", "exact"]) -> Call[OverlapEstimate | OverlapExact]:
        model: type[OverlapEstimate] | type[OverlapExact] = OverlapEstimate if mode == "estimate" else OverlapExact
        return Call("GET", _seg(sid) + "/overlap", _model(model), {"with": other, "mode": mode})

    @staticmethod
    def create_campaign(name: str, segment_id: str, channel: str) -> Call[CampaignOut]:
        return Call("POST", "/campaigns", _model(CampaignOut),
                    json={"name": name, "segment_id": segment_id, "channel": channel})

    @staticmethod
    def campaigns() -> Call[list[CampaignOut]]:
        return Call("GET", "/campaigns", lambda r: CampaignList.model_validate_json(r.content).campaigns)

    @staticmethod
    def campaign(campaign_id: str) -> Call[CampaignOut]:
        return Call("GET", "/campaigns/" + quote(campaign_id, safe=""), _model(CampaignOut))

    @staticmethod
    def delete_campaign(campaign_id: str) -> Call[None]:
        return Call("DELETE", "/campaigns/" + quote(campaign_id, safe=""), _nothing)

    @staticmethod
    def create_journey(name: str, segment_ids: Sequence[str]) -> Call[JourneyOut]:
        return Call("POST", "/journeys", _model(JourneyOut), json={"name": name, "segment_ids": list(segment_ids)})

    @staticmethod
    def journeys() -> Call[list[JourneyOut]]:
        return Call("GET", "/journeys", lambda r: JourneyList.model_validate_json(r.content).journeys)

    @staticmethod
    def journey(journey_id: str) -> Call[JourneyOut]:
        return Call("GET", "/journeys/" + quote(journey_id, safe=""), _model(JourneyOut))

    @staticmethod
    def delete_journey(journey_id: str) -> Call[None]:
        return Call("DELETE", "/journeys/" + quote(journey_id, safe=""), _nothing)

    @staticmethod
    def audit(limit: int) -> Call[list[AuditRecord]]:
        return Call("GET", "/audit", lambda r: AuditOut.model_validate_json(r.content).records, {"limit": limit})

    @staticmethod
    def me() -> Call[WhoAmI]:
        return Call("GET", "/auth/me", _model(WhoAmI))


def _export_params(fields: Sequence[str] | str, raw: bool) -> dict[str, str | int | bool]:
    names = fields if isinstance(fields, str) else ",".join(fields)
    params: dict[str, str | int | bool] = {"fields": names}
    if raw:
        params["raw"] = "true"
    return params


def _spool_ids(ids: Iterable[str], column: Identity) -> IO[bytes]:
    """The ids as a one-column CSV in a temporary file (memory up to 1 MB, disk beyond), rewound."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115 - returned open, closed by the caller
    try:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow([column])
        for value in ids:
            writer.writerow([value])
        text.flush()
        text.detach()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _chunks(fh: IO[bytes]) -> Iterator[bytes]:
    while chunk := fh.read(CHUNK):
        yield chunk


async def _achunks(fh: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(fh.read, CHUNK):
        yield chunk


def _partial_path(target: Path) -> Path:
    """A hidden sibling, unique per call, so two exports to one target never share a partial file."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")


def _job_finished(job: JobOut) -> bool:
    if job.status == "failed":
        raise JobFailed(job)
    return job.status == "done"


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("STREAM_API_KEY", "")
    headers = {"User-Agent": "live-segments-client", "Accept": "application/json"}
    if key.strip():
        headers["Authorization"] = f"Bearer {key.strip()}"
    return headers


# --- sync client ---------------------------------------------------------------------------------


class Client:
    """Synchronous client. `api_key` defaults to `$STREAM_API_KEY`; use it as a context manager.

    `retry` bounds the attempts on 503 and connection errors; `transport` and `sleep`
    are for tests (an `httpx.MockTransport`, a recorder of the back-off delays).
    """

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *, timeout: float = 30.0,
                 retry: Retry | None = None, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.retry = retry or Retry()
        self._sleep = sleep
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport --

    def _attempts(self, method: str, url: str, send: Callable[[], T]) -> T:
        """Runs `send` until it returns; `send` raises `_Again` on a 503, httpx errors on transport trouble."""
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                return send()
            except _Again as again:
                if last or again.error.status not in self.retry.statuses:
                    raise again.error from None
                self._sleep(self.retry.delay(attempt, again.retry_after))
            except httpx.TransportError as exc:
                if last or not _retryable_transport(method, exc):
                    raise ApiUnreachable(method, url, attempt, exc) from exc
                self._sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def send(self, call: Call[T]) -> T:
        """Sends one `Call` with the retry policy and reads its answer (or raises `ApiError`)."""

        def once() -> T:
            response = self._http.request(call.method, call.path, params=dict(call.params), json=call.json)
            return _answer(call, response)

        return self._attempts(call.method, call.path, once)

    # -- segments --

    def list_segments(self, q: str = "", include_hidden: bool = False) -> list[SegmentListItem]:
        """Segments whose name contains `q`, oldest first, each with its estimated size."""
        return self.send(Endpoints.list_segments(q, include_hidden))

    def create_segment(self, name: str, rule: Mapping[str, Any] | None = None, kind: str = "live") -> SegmentCreated:
        """Creates a segment (`kind`: live, past_behavior, custom_list, which takes no rule)."""
        return self.send(Endpoints.create_segment(name, rule, kind))

    def get_segment(self, segment_id: str) -> SegmentDetail:
        return self.send(Endpoints.get_segment(segment_id))

    def update_segment(self, segment_id: str, *, name: str | None = None, hidden: bool | None = None) -> SegmentOut:
        """Renames a segment and/or hides it from the list."""
        return self.send(Endpoints.update_segment(segment_id, name, hidden))

    def delete_segment(self, segment_id: str) -> None:
        """Deletes it; 409 (`ApiError`) while a campaign, journey or segment still uses it."""
        self.send(Endpoints.delete_segment(segment_id))

    def trend(self, segment_id: str) -> TrendOut:
        return self.send(Endpoints.trend(segment_id))

    # -- insights and jobs --

    def estimate(self, segment_id: str) -> EstimateInsights:
        """Size and reachability from the sketches, with 95% bounds (milliseconds at any size)."""
        return self.send(Endpoints.estimate(segment_id))

    def exact(self, segment_id: str) -> ExactInsights:
        """The latest exact recount; `ApiError` 404 if the segment was never recounted."""
        return self.send(Endpoints.exact(segment_id))

    def start_recount(self, segment_id: str) -> str:
        """Starts an exact recount and returns its job id (two recounts of a segment share one job)."""
        return self.send(Endpoints.start_recount(segment_id))

    def recount(self, segment_id: str, timeout: float = 600.0) -> ExactInsights:
        """Recounts exactly and waits: the job is polled until done, then the result read."""
        self.wait_job(self.start_recount(segment_id), timeout=timeout)
        return self.exact(segment_id)

    def job(self, job_id: str) -> JobOut:
        return self.send(Endpoints.job(job_id))

    def wait_job(self, job_id: str, timeout: float = 600.0) -> JobOut:
        """Polls the job until it is done (`JobFailed` if it failed, `TimeoutError` at the deadline).

        The API has no push channel for jobs, so polling is the only way; the
        interval starts at 0.1 s and doubles up to 2 s.
        """
        deadline = time.monotonic() + timeout
        interval = POLL_FIRST
        while True:
            job = self.job(job_id)
            if _job_finished(job):
                return job
            if time.monotonic() + interval > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} ({job.progress:.0%}) after {timeout}s")
            self._sleep(interval)
            interval = min(POLL_MAX, interval * 2)

    # -- users --

    def sample_users(self, segment_id: str, limit: int = 10) -> list[UserOut]:
        """A random sample of members (pii scope)."""
        return self.send(Endpoints.sample_users(segment_id, limit))

    def user(self, user_id: str) -> UserOut:
        """A user's profile, reachability and segments (pii scope); `ApiError` 404 if unknown."""
        return self.send(Endpoints.user(user_id))

    def forget_user(self, user_id: str) -> str:
        """Forgets the user (admin scope); returns the job id."""
        return self.send(Endpoints.forget_user(user_id))

    # -- export and lists --

    def export(self, segment_id: str, path: str | os.PathLike[str], fields: Sequence[str] | str = ("user_id",),
               *, raw: bool = False) -> Path:
        """Streams the segment's CSV export to `path` (pii scope); returns the path.

        Written to a temporary file beside `path` and renamed when complete, so
        `path` only ever holds a whole export.
        """
        target = Path(path)
        partial = _partial_path(target)
        call_path = _seg(segment_id) + "/export.csv"
        params = _export_params(fields, raw)

        def once() -> None:
            with self._http.stream("GET", call_path, params=params, headers={"Accept": "text/csv"}) as response:
                if response.status_code != 200:
                    response.read()
                    _raise_for(response, "GET")
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)

        try:
            self._attempts("GET", call_path, once)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def upload_list(self, segment_id: str, source: str | os.PathLike[str] | Iterable[str], *,
                    column: Identity = "user_id") -> UploadOut:
        """Adds users to a custom_list segment (write scope).

        `source` is a CSV file's path (with a `user_id`, `email` or `phone` column,
        streamed as it is) or an iterable of identities of kind `column` (written
        as a one-column CSV to a temporary file first, so retries resend it).
        """
        call_path = _seg(segment_id) + "/list"
        with _open_source(source, column) as fh:

            def once() -> UploadOut:
                fh.seek(0)
                response = self._http.post(call_path, content=_chunks(fh), headers={"Content-Type": "text/csv"})
                return _answer(Call("POST", call_path, _model(UploadOut)), response)

            return self._attempts("POST", call_path, once)

    def usage(self, segment_id: str) -> UsageOut:
        """How many campaigns, journeys and segments use the segment."""
        return self.send(Endpoints.usage(segment_id))

    def explain(self, segment_id: str, user_id: str) -> ExplainOut:
        """Why the user is in or out, each rule node's evidence, and when time alone changes it (pii)."""
        return self.send(Endpoints.explain(segment_id, user_id))

    def overlap(self, segment_id: str, other: str,
                mode: Literal["estimate", "exact"] = "estimate") -> OverlapEstimate | OverlapExact:
        """Users in both segments and in only one: estimated with 95% bounds, or counted exactly."""
        return self.send(Endpoints.overlap(segment_id, other, mode))

    # -- campaigns and journeys --

    def create_campaign(self, name: str, segment_id: str, channel: str) -> CampaignOut:
        return self.send(Endpoints.create_campaign(name, segment_id, channel))

    def campaigns(self) -> list[CampaignOut]:
        return self.send(Endpoints.campaigns())

    def campaign(self, campaign_id: str) -> CampaignOut:
        return self.send(Endpoints.campaign(campaign_id))

    def delete_campaign(self, campaign_id: str) -> None:
        self.send(Endpoints.delete_campaign(campaign_id))

    def create_journey(self, name: str, segment_ids: Sequence[str]) -> JourneyOut:
        return self.send(Endpoints.create_journey(name, segment_ids))

    def journeys(self) -> list[JourneyOut]:
        return self.send(Endpoints.journeys())

    def journey(self, journey_id: str) -> JourneyOut:
        return self.send(Endpoints.journey(journey_id))

    def delete_journey(self, journey_id: str) -> None:
        self.send(Endpoints.delete_journey(journey_id))

    # -- access --

    def audit(self, limit: int = 100) -> list[AuditRecord]:
        """The newest audit records first (admin scope)."""
        return self.send(Endpoints.audit(limit))

    def me(self) -> WhoAmI:
        """The calling key's name and scopes."""
        return self.send(Endpoints.me())


# --- async client --------------------------------------------------------------------------------


class AsyncClient:
    """The same API as `Client`, every method a coroutine; use it with `async with`."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *, timeout: float = 30.0,
                 retry: Retry | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.retry = retry or Retry()
        self._sleep = sleep
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key), timeout=timeout,
                                       transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport --

    async def _attempts(self, method: str, url: str, send: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                return await send()
            except _Again as again:
                if last or again.error.status not in self.retry.statuses:
                    raise again.error from None
                await self._sleep(self.retry.delay(attempt, again.retry_after))
            except httpx.TransportError as exc:
                if last or not _retryable_transport(method, exc):
                    raise ApiUnreachable(method, url, attempt, exc) from exc
                await self._sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def send(self, call: Call[T]) -> T:
        async def once() -> T:
            response = await self._http.request(call.method, call.path, params=dict(call.params), json=call.json)
            return _answer(call, response)

        return await self._attempts(call.method, call.path, once)

    # -- segments --

    async def list_segments(self, q: str = "", include_hidden: bool = False) -> list[SegmentListItem]:
        return await self.send(Endpoints.list_segments(q, include_hidden))

    async def create_segment(self, name: str, rule: Mapping[str, Any] | None = None,
                             kind: str = "live") -> SegmentCreated:
        return await self.send(Endpoints.create_segment(name, rule, kind))

    async def get_segment(self, segment_id: str) -> SegmentDetail:
        return await self.send(Endpoints.get_segment(segment_id))

    async def update_segment(self, segment_id: str, *, name: str | None = None,
                             hidden: bool | None = None) -> SegmentOut:
        return await self.send(Endpoints.update_segment(segment_id, name, hidden))

    async def delete_segment(self, segment_id: str) -> None:
        await self.send(Endpoints.delete_segment(segment_id))

    async def trend(self, segment_id: str) -> TrendOut:
        return await self.send(Endpoints.trend(segment_id))

    # -- insights and jobs --

    async def estimate(self, segment_id: str) -> EstimateInsights:
        return await self.send(Endpoints.estimate(segment_id))

    async def exact(self, segment_id: str) -> ExactInsights:
        return await self.send(Endpoints.exact(segment_id))

    async def start_recount(self, segment_id: str) -> str:
        return await self.send(Endpoints.start_recount(segment_id))

    # `timeout` rather than asyncio.timeout: the deadline's TimeoutError says how far the job got.
    async def recount(self, segment_id: str, timeout: float = 600.0) -> ExactInsights:  # noqa: ASYNC109
        await self.wait_job(await self.start_recount(segment_id), timeout=timeout)
        return await self.exact(segment_id)

    async def job(self, job_id: str) -> JobOut:
        return await self.send(Endpoints.job(job_id))

    async def wait_job(self, job_id: str, timeout: float = 600.0) -> JobOut:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        interval = POLL_FIRST
        while True:
            job = await self.job(job_id)
            if _job_finished(job):
                return job
            if time.monotonic() + interval > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} ({job.progress:.0%}) after {timeout}s")
            await self._sleep(interval)
            interval = min(POLL_MAX, interval * 2)

    # -- users --

    async def sample_users(self, segment_id: str, limit: int = 10) -> list[UserOut]:
        return await self.send(Endpoints.sample_users(segment_id, limit))

    async def user(self, user_id: str) -> UserOut:
        return await self.send(Endpoints.user(user_id))

    async def forget_user(self, user_id: str) -> str:
        return await self.send(Endpoints.forget_user(user_id))

    # -- export and lists --

    async def export(self, segment_id: str, path: str | os.PathLike[str],
                     fields: Sequence[str] | str = ("user_id",), *, raw: bool = False) -> Path:
        target = Path(path)
        partial = _partial_path(target)
        call_path = _seg(segment_id) + "/export.csv"
        params = _export_params(fields, raw)

        async def once() -> None:
            async with self._http.stream("GET", call_path, params=params,
                                         headers={"Accept": "text/csv"}) as response:
                if response.status_code != 200:
                    await response.aread()
                    _raise_for(response, "GET")
                out = await asyncio.to_thread(partial.open, "wb")
                try:
                    async for chunk in response.aiter_bytes(CHUNK):
                        await asyncio.to_thread(out.write, chunk)
                finally:
                    await asyncio.to_thread(out.close)

        try:
            await self._attempts("GET", call_path, once)
            await asyncio.to_thread(partial.replace, target)
        finally:
            await asyncio.to_thread(partial.unlink, True)
        return target

    async def upload_list(self, segment_id: str, source: str | os.PathLike[str] | Iterable[str], *,
                          column: Identity = "user_id") -> UploadOut:
        call_path = _seg(segment_id) + "/list"
        fh = await asyncio.to_thread(_open_source, source, column)
        try:

            async def once() -> UploadOut:
                await asyncio.to_thread(fh.seek, 0)
                response = await self._http.post(call_path, content=_achunks(fh),
                                                 headers={"Content-Type": "text/csv"})
                return _answer(Call("POST", call_path, _model(UploadOut)), response)

            return await self._attempts("POST", call_path, once)
        finally:
            await asyncio.to_thread(fh.close)

    async def usage(self, segment_id: str) -> UsageOut:
        return await self.send(Endpoints.usage(segment_id))

    async def explain(self, segment_id: str, user_id: str) -> ExplainOut:
        return await self.send(Endpoints.explain(segment_id, user_id))

    async def overlap(self, segment_id: str, other: str,
                      mode: Literal["estimate", "exact"] = "estimate") -> OverlapEstimate | OverlapExact:
        return await self.send(Endpoints.overlap(segment_id, other, mode))

    # -- campaigns and journeys --

    async def create_campaign(self, name: str, segment_id: str, channel: str) -> CampaignOut:
        return await self.send(Endpoints.create_campaign(name, segment_id, channel))

    async def campaigns(self) -> list[CampaignOut]:
        return await self.send(Endpoints.campaigns())

    async def campaign(self, campaign_id: str) -> CampaignOut:
        return await self.send(Endpoints.campaign(campaign_id))

    async def delete_campaign(self, campaign_id: str) -> None:
        await self.send(Endpoints.delete_campaign(campaign_id))

    async def create_journey(self, name: str, segment_ids: Sequence[str]) -> JourneyOut:
        return await self.send(Endpoints.create_journey(name, segment_ids))

    async def journeys(self) -> list[JourneyOut]:
        return await self.send(Endpoints.journeys())

    async def journey(self, journey_id: str) -> JourneyOut:
        return await self.send(Endpoints.journey(journey_id))

    async def delete_journey(self, journey_id: str) -> None:
        await self.send(Endpoints.delete_journey(journey_id))

    # -- access --

    async def audit(self, limit: int = 100) -> list[AuditRecord]:
        return await self.send(Endpoints.audit(limit))

    async def me(self) -> WhoAmI:
        return await self.send(Endpoints.me())


# --- shared answer handling -------------------------------------------------------------------------


class _Again(Exception):
    """A 5xx: the attempt loop retries it if `Retry.statuses` holds it, else (or at the end) raises `error`."""

    def __init__(self, error: ApiError, retry_after: float | None) -> None:
        self.error, self.retry_after = error, retry_after


def _raise_for(response: httpx.Response, method: str) -> None:
    error = error_of(response, method)
    if response.status_code >= 500:
        raise _Again(error, _retry_after(response))
    raise error


def _answer(call: Call[T], response: httpx.Response) -> T:
    if response.is_success:
        return call.parse(response)
    _raise_for(response, call.method)
    raise AssertionError("unreachable: _raise_for raises")


def _open_source(source: str | os.PathLike[str] | Iterable[str], column: Identity) -> IO[bytes]:
    if isinstance(source, str | os.PathLike):
        return cast(IO[bytes], Path(source).open("rb"))
    return _spool_ids(source, column)
