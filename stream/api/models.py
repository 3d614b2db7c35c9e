"""Request and response bodies, so /openapi.json says exactly what the routes send.

Response models are declared on every route: FastAPI validates each answer
against them, which keeps the published schema honest (the schemathesis test
checks the two agree).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"\S")]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Channel = Literal["email", "sms", "whatsapp", "push", "web_push"]
Scalar = str | bool | int | float


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentOut(BaseModel):
    id: str
    name: str
    kind: str
    rule: dict[str, Any] | None
    created_at: str
    hidden: bool


class SegmentCreated(SegmentOut):
    backfill_job_id: str | None = Field(description="the creation backfill; none for custom lists")


class SegmentListItem(SegmentOut):
    estimated_size: float


class SegmentList(BaseModel):
    segments: list[SegmentListItem]


class BackfillOut(BaseModel):
    job_id: str
    status: str
    progress: float


class SegmentDetail(SegmentOut):
    summary: str
    backfill: BackfillOut | None


class SegmentPatch(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    name: Name | None = None
    hidden: bool | None = None


class TrendPoint(BaseModel):
    date: str
    size: int
    entered: int
    exited: int


class TrendOut(BaseModel):
    points: list[TrendPoint]
    today: TrendPoint
    created_date: str = Field(description="The segment's creation day in the trend's zone (STREAM_TIMEZONE): "
                                          "points start the day after it, a chart's axis on it.")


class EstimateOut(BaseModel):
    estimate: float
    lower_95: float
    upper_95: float


class EstimateInsights(BaseModel):
    mode: Literal["estimate"]
    as_of: str
    size: EstimateOut
    reachability: dict[str, EstimateOut]


class ExactInsights(BaseModel):
    mode: Literal["exact"]
    computed_at: str
    size: int
    blacklisted: int
    reachability: dict[str, int]
    drift: int = Field(description="memberships the recount corrected (0 when the live path was right)")
    users_scanned: int


class OverlapEstimate(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    mode: Literal["estimate"]
    segment_id: str
    with_: str = Field(alias="with", description="the other segment's id")
    both: EstimateOut = Field(description="members of both segments")
    only_segment: EstimateOut = Field(description="members of `segment_id` who are not in `with`")
    only_with: EstimateOut = Field(description="members of `with` who are not in `segment_id`")


class OverlapExact(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    mode: Literal["exact"]
    segment_id: str
    with_: str = Field(alias="with", description="the other segment's id")
    both: int
    only_segment: int
    only_with: int


class JobAccepted(BaseModel):
    job_id: str


class JobOut(BaseModel):
    job_id: str
    type: str
    segment_id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(ge=0, le=1)
    result: dict[str, Any] | None
    error: str | None


class UserOut(BaseModel):
    user_id: str
    profile: dict[str, Scalar]
    reachability: dict[str, bool]
    blacklisted: bool
    segments: list[str]


class UsersOut(BaseModel):
    users: list[UserOut]


class ExplainWindow(BaseModel):
    from_: str | None = Field(alias="from", description="earliest event time that counts (null: no lower bound)")
    to: str | None = Field(description="latest event time that counts (null: no upper bound)")


class ExplainNode(BaseModel):
    """One node of the rule with its value for the user now; leaves carry their evidence.

    Only the keys that apply to the node are sent (no `children` on a leaf, no
    `count` outside `event`/`sequence`); further evidence keys may be added."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str = Field(description="all, any, not, profile, event, sequence, in_segment or reachable")
    value: bool
    summary: str
    children: list[ExplainNode] | None = None
    count: int | None = Field(None, description="events (or sequences) counted in the window")
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    distinct: int | None = None
    window: ExplainWindow | None = None
    found: list[str] | None = Field(None, description="a sequence's steps as found, oldest first (null: none)")
    actual: Scalar | None = Field(None, description="the profile property's value (profile nodes)")
    segment_id: str | None = Field(None, description="the segment an in_segment node names")


class ExplainOut(BaseModel):
    segment_id: str
    user_id: str
    member: bool = Field(description="the stored membership")
    matches: bool = Field(description="the rule's verdict now (differs from member only until the worker catches up)")
    next_change_at: str | None = Field(description="earliest instant at which time alone changes `matches`")
    rule: ExplainNode | None = Field(description="null for a custom list")


class UploadOut(BaseModel):
    rows: int
    matched: int
    unmatched: int


class CampaignIn(Strict):
    name: Name
    segment_id: Ref
    channel: Channel


class CampaignOut(BaseModel):
    id: str
    name: str
    segment_id: str
    channel: str
    created_at: str


class CampaignList(BaseModel):
    campaigns: list[CampaignOut]


class JourneyIn(Strict):
    name: Name
    segment_ids: Annotated[list[Ref], Field(min_length=1, max_length=50)]


class JourneyOut(BaseModel):
    id: str
    name: str
    segment_ids: list[str]
    created_at: str


class JourneyList(BaseModel):
    journeys: list[JourneyOut]


class UsageOut(BaseModel):
    campaigns: int
    journeys: int
    segments: int = Field(0, description="segments whose rule uses this one (in_segment)")


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    ts: int
    key: str
    method: str
    route: str
    status: int
    segment_id: str | None = None
    user_id: str | None = None
    fields: str | None = None
    rows: int | None = None


class AuditOut(BaseModel):
    records: list[AuditRecord]


class WhoAmI(BaseModel):
    name: str
    scopes: list[str]


class ErrorOut(BaseModel):
    detail: str


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each listed status answers `{"detail": ...}`."""
    return {code: {"model": ErrorOut} for code in codes}
