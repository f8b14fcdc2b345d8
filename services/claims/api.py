"""HTTP routes and schemas of the claims service."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema
from sqlmodel import Session

from services.claims.application import ClaimsApplication
from services.claims.basis import Basis, basis_for_claim, query_time_form
from services.claims.claimreview import Appearance, EditorsRuling, claim_review
from services.claims.confidence import LOGODDS_PER_UNIT, MODEL_VERSION
from services.claims.domain import RulingStatus
from services.claims.projections import (
    ClaimView,
    list_claims,
    rejected_items,
    rulings_of,
    wording_known_at,
)
from services.claims.verdicts import (
    VerdictIndex,
    appearances,
    evidence_page,
    history,
    judge,
    ruling_at,
    standing,
    timeline,
    verdict,
)
from shared.auth import Requires
from shared.errors import NotFound
from shared.follower import FeedFollower
from shared.idempotency import Once, once_per_key
from shared.problems import problem_responses
from shared.routes import add_audit_routes, add_feed_route
from shared.schemas import (
    CREATED,
    PAGE_MAX,
    AfterQuery,
    ExpectedVersion,
    Line,
    MinPositionQuery,
    PageLimit,
    Paragraph,
    RebuildAnswer,
    Strict,
    Written,
    distinct,
    whole_number,
)
from shared.service import Reads, in_health_thread, service_router
from shared.timeaxes import (
    UtcDatetime,
    format_instant,
    from_micros,
    recording_clock,
    to_micros,
)

router = service_router()
MAX_TAGS = 20


async def get_claims(request: Request) -> ClaimsApplication:
    return request.app.state.claims


async def get_follower(request: Request) -> FeedFollower:
    return request.app.state.follower


async def get_index(request: Request) -> VerdictIndex:
    return request.app.state.index


async def verdict_reads(request: Request) -> AsyncIterator[None]:
    """Held while a route reads the verdict read models; 503 while they are being rebuilt."""
    with request.app.state.verdict_gate.reading():
        yield


VERDICT_READS = [Depends(verdict_reads, scope="function")]


Claims = Annotated[ClaimsApplication, Depends(get_claims)]
Follower = Annotated[FeedFollower, Depends(get_follower)]
Index = Annotated[VerdictIndex, Depends(get_index)]
Writes = Annotated[Once, Depends(once_per_key)]
QUERY_TIME_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
        ]
    }
)
"""A time in a query, as documented: an RFC 3339 date-time with its offset, or a date."""
AtQuery = Annotated[
    str | None,
    Query(description="Valid time: ISO 8601 with an offset, or a date (its end, UTC). Now."),
    AfterValidator(query_time_form),
    QUERY_TIME_SCHEMA,
]
KnownAtQuery = Annotated[
    str | None,
    Query(description="Transaction time, same forms. Default: all the feed applied so far."),
    AfterValidator(query_time_form),
    QUERY_TIME_SCHEMA,
]
add_feed_route(router, get_claims, "claims")
add_audit_routes(router, get_claims)


class ClaimIn(Strict):
    text: Paragraph
    context: Paragraph | None = None
    tags: Annotated[list[Line], AfterValidator(distinct), Field(max_length=MAX_TAGS)] = Field(
        default_factory=list, description="A set: each tag is kept once, and counted once."
    )


class ClaimWritten(Written):
    text: str
    context: str | None
    tags: list[str]


class RewordingIn(Strict):
    text: Paragraph
    reason: Paragraph


class RewordingWritten(Written):
    text: str
    reason: str


class RulingIn(Strict):
    status: RulingStatus
    rationale: Paragraph
    effective_at: UtcDatetime = Field(description="From when the ruling holds (valid time).")


class Ruling(BaseModel):
    status: str
    rationale: str
    effective_at: UtcDatetime
    recorded_at: UtcDatetime
    actor: str


class RulingWritten(Written):
    status: str
    rationale: str
    effective_at: UtcDatetime


class ClaimOut(BaseModel):
    id: UUID
    text: str
    context: str | None
    tags: list[str]
    registered_at: UtcDatetime
    version: int
    position: int
    rulings: list[Ruling]


class ClaimPage(BaseModel):
    items: list[ClaimOut]
    next_after: int


FeedPosition = Annotated[
    int, Field(description="The sources-feed position the answer was computed from.")
]


class BasisOut(BaseModel):
    at: UtcDatetime
    known_at: UtcDatetime
    position: FeedPosition


class TimelineBasisOut(BaseModel):
    """A timeline's basis: it spans every `at`, so only `known_at` and the position pin it."""

    known_at: UtcDatetime
    position: FeedPosition


class DecisiveItem(BaseModel):
    evidence_id: UUID
    source_id: UUID
    stance: str
    strength: str
    reliability: str
    weight: int = Field(description="Weight in units; log-odds = weight x 0.035.")


class DecisiveEvidence(BaseModel):
    items: list[DecisiveItem]
    limit: int
    counted_origins: int
    items_total: int = Field(description="Evidence items on the claim published by `at`.")
    weight: int = Field(description="Signed sum of the counted weights, in units.")
    log_odds: float


class VerdictOut(BaseModel):
    claim_id: UUID
    probability: float
    likelihood: str
    status: str
    model: str
    independent_origins: int
    supporting_origins: int
    refuting_origins: int
    evidence: DecisiveEvidence
    ruling: Ruling | None
    basis: BasisOut


class JudgedItem(BaseModel):
    evidence_id: UUID
    source_id: UUID
    stance: str
    strength: str
    published_at: UtcDatetime
    retracted_from: UtcDatetime | None
    derived_from: list[UUID]
    reliability: str
    weight: int
    counted: bool
    reason: str | None = Field(description="Why it does not count, when it does not.")
    position: int


class EvidenceList(BaseModel):
    items: list[JudgedItem]
    next_after: int
    next: str | None = Field(
        description="The next page's path and query, with this page's `at` and `known_at` "
        "pinned so that every page answers on one basis; null on the last page."
    )
    basis: BasisOut


class TimelinePoint(BaseModel):
    at: UtcDatetime
    probability: float
    likelihood: str
    status: str
    supporting_origins: int
    refuting_origins: int
    published: list[UUID] = Field(description="Evidence published at this instant.")
    retracted: list[UUID] = Field(description="Evidence retracted at this instant.")


class TimelineOut(BaseModel):
    claim_id: UUID
    model: str
    points: list[TimelinePoint]
    basis: TimelineBasisOut


class HistoryEvent(BaseModel):
    service: str
    position: int
    type: str
    stream_id: UUID
    recorded_at: UtcDatetime = Field(description="Transaction time.")
    at: str | None = Field(description="Valid time the event carries, if any.")
    data: dict[str, Any]
    metadata: dict[str, Any]


class HistoryBasisOut(TimelineBasisOut):
    """A history's basis: it holds the claims service's events recorded by `known_at`, and the
    sources service's up to `position`, so every one recorded by `known_at`."""


class HistoryOut(BaseModel):
    claim_id: UUID
    basis: HistoryBasisOut
    events: list[HistoryEvent]


class RejectedItem(BaseModel):
    position: int
    id: UUID
    type: str
    recorded_at: UtcDatetime
    reason: str


class FollowerOut(BaseModel):
    position: int
    head: int | None
    lag: int | None
    known_through: UtcDatetime | None
    connected: bool
    last_error: str | None
    applied_hash: str | None = Field(
        description="The hash of the last sources-feed item applied; null before the first."
    )


class Health(BaseModel):
    status: str
    service: str
    head: int
    follower: FollowerOut
    writes_refused: str | None = Field(description="Why writes answer 503, if they do.")
    clock: UtcDatetime = Field(
        description="This service's recording clock when it answered: every event it records "
        "takes its time from it. Compare it with the other service's to see whether they differ."
    )


class Rebuilt(RebuildAnswer):
    claims: int = Field(description="Claims in the rebuilt read models.")


def _claim_out(claim: ClaimView, session: Session) -> ClaimOut:
    rulings = [Ruling(**ruling.model_dump()) for ruling in rulings_of(session, claim.id)]
    return ClaimOut(**claim.model_dump(), rulings=rulings)


def _claim_or_404(session: Session, claim_id: UUID) -> ClaimView:
    claim = session.get(ClaimView, claim_id)
    if claim is None:
        raise NotFound("claim", claim_id)
    return claim


def _basis(
    request: Request,
    reads: Reads,
    claim_id: UUID,
    at: str | None,
    known_at: str | None,
    min_position: int | None = None,
) -> Basis:
    claim = _claim_or_404(reads, claim_id)
    return basis_for_claim(
        request.app.state.follower,
        reads,
        claim,
        at,
        known_at,
        min_position,
        request.app.state.settings.read_wait,
        request.app.state.projection.hold_recorded_writes,
    )


def _basis_out(basis: Basis) -> BasisOut:
    return BasisOut(at=basis.at, known_at=basis.known_at, position=basis.position)


def _pinned(path: str, basis: Basis, **more: int) -> str:
    """`path` asked again on `basis`: the same question, the same answer."""
    pinned = {"at": format_instant(basis.at), "known_at": format_instant(basis.known_at)}
    return f"{path}?{urlencode({**pinned, **more})}"


@router.post(
    "/claims",
    status_code=201,
    dependencies=[Depends(Requires("submit"))],
    response_model=ClaimWritten,
    responses=CREATED,
)
async def register_claim(
    body: ClaimIn, claims: Claims, once: Writes, response: Response
) -> ClaimWritten:
    recorded = await once(
        body,
        lambda metadata: claims.register_claim(
            body.text, body.context, body.tags, metadata=metadata
        ),
    )
    response.headers["Location"] = f"/claims/{recorded.id}"
    return ClaimWritten(**vars(recorded), **body.model_dump())


@router.get("/claims", response_model=ClaimPage)
def get_claims_page(
    reads: Reads,
    after: AfterQuery = 0,
    limit: PageLimit = 100,
) -> ClaimPage:
    claims = list_claims(reads, after, limit)
    return ClaimPage(
        items=[_claim_out(claim, reads) for claim in claims],
        next_after=claims[-1].position if claims else after,
    )


@router.get("/claims/{claim_id}", response_model=ClaimOut)
def get_claim(claim_id: UUID, reads: Reads) -> ClaimOut:
    return _claim_out(_claim_or_404(reads, claim_id), reads)


@router.post(
    "/claims/{claim_id}/rewording",
    status_code=201,
    dependencies=[Depends(Requires("edit"))],
    response_model=RewordingWritten,
)
async def reword_claim(
    claim_id: UUID,
    body: RewordingIn,
    claims: Claims,
    once: Writes,
    expected: ExpectedVersion = None,
) -> RewordingWritten:
    recorded = await once(
        body,
        lambda metadata: claims.reword_claim(
            claim_id, body.text, body.reason, metadata=metadata, expected_version=expected
        ),
    )
    return RewordingWritten(**vars(recorded), **body.model_dump())


@router.post(
    "/claims/{claim_id}/rulings",
    status_code=201,
    dependencies=[Depends(Requires("edit"))],
    response_model=RulingWritten,
)
async def issue_ruling(
    claim_id: UUID, body: RulingIn, claims: Claims, once: Writes, expected: ExpectedVersion = None
) -> RulingWritten:
    recorded = await once(
        body,
        lambda metadata: claims.issue_ruling(
            claim_id,
            body.status,
            body.rationale,
            body.effective_at,
            metadata=metadata,
            expected_version=expected,
        ),
    )
    return RulingWritten(**vars(recorded), **body.model_dump())


@router.get("/claims/{claim_id}/verdict", response_model=VerdictOut, dependencies=VERDICT_READS)
def get_verdict(
    claim_id: UUID,
    reads: Reads,
    index: Index,
    request: Request,
    at: AtQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
    evidence_limit: Annotated[whole_number(0, PAGE_MAX), Query()] = 20,
) -> VerdictOut:
    basis = _basis(request, reads, claim_id, at, known_at, min_position)
    answer = verdict(index, claim_id, basis.at, basis.known_at, evidence_limit)
    ruling = ruling_at(reads, claim_id, basis.at, basis.known_at)
    tally = answer.tally
    return VerdictOut(
        claim_id=claim_id,
        probability=answer.assessment.probability,
        likelihood=answer.assessment.likelihood,
        status=answer.assessment.status,
        model=answer.assessment.model,
        independent_origins=tally.origins,
        supporting_origins=tally.supporting,
        refuting_origins=tally.refuting,
        evidence=DecisiveEvidence(
            items=[
                DecisiveItem(
                    evidence_id=UUID(entry.evidence_id),
                    source_id=entry.source_id,
                    stance=entry.stance,
                    strength=entry.strength,
                    reliability=entry.reliability,
                    weight=entry.units,
                )
                for entry in answer.counted
            ],
            limit=evidence_limit,
            counted_origins=tally.origins,
            items_total=answer.items,
            weight=tally.units,
            log_odds=round(tally.units * LOGODDS_PER_UNIT, 4),
        ),
        ruling=Ruling(**ruling.model_dump()) if ruling else None,
        basis=_basis_out(basis),
    )


@router.get("/claims/{claim_id}/evidence", response_model=EvidenceList, dependencies=VERDICT_READS)
def get_claim_evidence(
    claim_id: UUID,
    reads: Reads,
    index: Index,
    request: Request,
    at: AtQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
    after: AfterQuery = 0,
    limit: PageLimit = 100,
) -> EvidenceList:
    basis = _basis(request, reads, claim_id, at, known_at, min_position)
    page, more = evidence_page(reads, claim_id, to_micros(basis.known_at), after, limit)
    judged = judge(index, claim_id, page, basis.at, basis.known_at)
    return EvidenceList(
        items=[
            JudgedItem(
                evidence_id=entry.version.evidence_id,
                source_id=entry.version.source_id,
                stance=entry.version.stance,
                strength=entry.version.strength,
                published_at=from_micros(entry.version.published),
                retracted_from=_maybe_time(entry.version.retracted),
                derived_from=[UUID(parent) for parent in entry.version.derived_from],
                reliability=entry.reliability,
                weight=entry.units,
                counted=entry.counted,
                reason=entry.reason,
                position=entry.version.position,
            )
            for entry in judged
        ],
        next_after=page[-1].position if page else after,
        next=_pinned(request.url.path, basis, after=page[-1].position, limit=limit)
        if more
        else None,
        basis=_basis_out(basis),
    )


@router.get("/claims/{claim_id}/timeline", response_model=TimelineOut, dependencies=VERDICT_READS)
def get_timeline(
    claim_id: UUID,
    reads: Reads,
    index: Index,
    request: Request,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> TimelineOut:
    basis = _basis(request, reads, claim_id, None, known_at, min_position)
    points = timeline(index, reads, claim_id, basis.known_at)
    return TimelineOut(
        claim_id=claim_id,
        model=MODEL_VERSION,
        points=[
            TimelinePoint(
                at=point.at,
                probability=point.assessment.probability,
                likelihood=point.assessment.likelihood,
                status=point.assessment.status,
                supporting_origins=point.tally.supporting,
                refuting_origins=point.tally.refuting,
                published=[UUID(item) for item in point.published],
                retracted=[UUID(item) for item in point.retracted],
            )
            for point in points
        ],
        basis=TimelineBasisOut(known_at=basis.known_at, position=basis.position),
    )


@router.get(
    "/claims/{claim_id}/claimreview",
    dependencies=VERDICT_READS,
    response_class=JSONResponse,
    responses={200: {"content": {"application/ld+json": {"schema": {"type": "object"}}}}},
)
def get_claim_review(
    claim_id: UUID,
    reads: Reads,
    index: Index,
    request: Request,
    at: AtQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> JSONResponse:
    """The verdict as schema.org ClaimReview JSON-LD, the claim worded as known at `known_at`."""
    basis = _basis(request, reads, claim_id, at, known_at, min_position)
    answer = verdict(index, claim_id, basis.at, basis.known_at, evidence_limit=0)
    known = to_micros(basis.known_at)
    items = standing(reads, claim_id, to_micros(basis.at), known)
    ruling = ruling_at(reads, claim_id, basis.at, basis.known_at)
    public_url = request.app.state.settings.public_url or str(request.base_url).rstrip("/")
    review = claim_review(
        url=f"{public_url}/claims/{claim_id}",
        claim_text=wording_known_at(reads, claim_id, basis.known_at),
        assessment=answer.assessment,
        known_at=basis.known_at,
        publisher=request.app.state.settings.publisher,
        appearances=[
            Appearance(url, from_micros(row.published), source, summary)
            for row, url, source, summary in appearances(reads, items, known)
        ],
        ruling=EditorsRuling(ruling.status, ruling.rationale, ruling.effective_at)
        if ruling
        else None,
    )
    return JSONResponse(
        review,
        media_type="application/ld+json",
        headers={
            "Content-Location": _pinned(request.url.path, basis),
            "Basis": f'at="{format_instant(basis.at)}", '
            f'known_at="{format_instant(basis.known_at)}", position={basis.position}',
        },
    )


@router.get("/claims/{claim_id}/history", response_model=HistoryOut, dependencies=VERDICT_READS)
def get_history(
    claim_id: UUID,
    reads: Reads,
    request: Request,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> HistoryOut:
    basis = _basis(request, reads, claim_id, None, known_at, min_position)
    return HistoryOut(
        claim_id=claim_id,
        basis=HistoryBasisOut(known_at=basis.known_at, position=basis.position),
        events=[
            HistoryEvent(
                service=entry.service,
                position=entry.position,
                type=entry.type,
                stream_id=entry.stream_id,
                recorded_at=entry.recorded_at,
                at=entry.at,
                data=entry.data,
                metadata=entry.metadata,
            )
            for entry in history(reads, claim_id, basis.known_at, basis.position)
        ],
    )


@router.get("/follower/rejected", response_model=list[RejectedItem], dependencies=VERDICT_READS)
def get_rejected_items(
    reads: Reads,
    after: AfterQuery = 0,
    limit: PageLimit = 100,
) -> list[RejectedItem]:
    """Sources-feed items the claims service could not use, with the reason."""
    return [
        RejectedItem(
            position=row.position,
            id=row.id,
            type=row.type,
            recorded_at=row.recorded_at,
            reason=row.rejected or "",
        )
        for row in rejected_items(reads, after, limit)
    ]


@router.post(
    "/admin/rebuild",
    response_model=Rebuilt,
    dependencies=[Depends(Requires("admin"))],
    responses=problem_responses(409),
)
def rebuild(request: Request) -> Rebuilt:
    """Drop every read model and rebuild it from the events alone."""
    return Rebuilt(**request.app.state.rebuild())


@router.get("/health", response_model=Health)
async def health(request: Request, claims: Claims, follower: Follower) -> Health:
    return await in_health_thread(request, lambda: service_health(claims, follower))


def service_health(claims: ClaimsApplication, follower: FeedFollower) -> Health:
    status = follower.status()
    healthy = status.connected and status.last_error is None and claims.refusal is None
    return Health(
        status="ok" if healthy else "degraded",
        service="claims",
        head=claims.head(),
        follower=FollowerOut(**vars(status)),
        writes_refused=claims.refusal,
        clock=recording_clock.now(),
    )


def _maybe_time(value: int | None) -> datetime | None:
    return None if value is None else from_micros(value)
