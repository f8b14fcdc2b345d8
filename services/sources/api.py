"""HTTP routes and schemas of the sources service."""

from typing import Annotated, Any, ClassVar
from uuid import UUID

from fastapi import Depends, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import Session
from starlette.datastructures import State

from services.sources.application import SourcesApplication
from services.sources.projections import (
    CorrectionView,
    EvidenceView,
    RatingView,
    RetractionView,
    SourceView,
    evidence_for_claim,
    list_sources,
    rating_history,
    records_by_item,
)
from shared.auth import Requires
from shared.errors import NotFound
from shared.idempotency import Once, once_per_key
from shared.problems import problem_responses
from shared.routes import add_audit_routes, add_feed_route
from shared.schemas import (
    CREATED,
    AfterQuery,
    CountryCode,
    ExpectedVersion,
    Line,
    PageLimit,
    Paragraph,
    RebuildAnswer,
    Strict,
    Url,
    Written,
    distinct,
)
from shared.service import Reads, in_health_thread, service_router
from shared.sources_feed import Reliability, Stance, Strength
from shared.timeaxes import UtcDatetime, recording_clock

router = service_router()
MAX_DERIVED_FROM = 50


async def get_sources(request: Request) -> SourcesApplication:
    return request.app.state.sources


Sources = Annotated[SourcesApplication, Depends(get_sources)]
add_feed_route(router, get_sources, "sources")
add_audit_routes(router, get_sources)
Writes = Annotated[Once, Depends(once_per_key)]


class SourceIn(Strict):
    name: Line
    kind: Line = Field(description="What sort of speaker: prosecutor's office, wire agency, ...")
    url: Url | None = None
    country: CountryCode | None = Field(default=None, description="ISO 3166-1 alpha-2 code.")
    notes: Paragraph | None = Field(default=None, description="Interests, e.g. party to the war.")


class RatingIn(Strict):
    reliability: Reliability = Field(description="NATO Admiralty scale, A (reliable) to F.")
    rationale: Paragraph
    rater: Line | None = Field(default=None, description="Who rated; defaults to the caller.")


class Rating(BaseModel):
    reliability: str
    rationale: str
    rater: str
    recorded_at: UtcDatetime
    position: int


class SourceOut(BaseModel):
    id: UUID
    name: str
    kind: str
    url: str | None
    country: str | None
    notes: str | None
    reliability: str = Field(description="The rating in force; F until the first rating.")
    registered_at: UtcDatetime
    version: int
    ratings: list[Rating]


class SourceWritten(Written):
    name: str
    kind: str
    url: str | None
    country: str | None
    notes: str | None
    reliability: str


class RatingWritten(Written):
    reliability: str
    rationale: str
    rater: str


Parents = Annotated[list[UUID], AfterValidator(distinct), Field(max_length=MAX_DERIVED_FROM)]
"""The evidence an item repeats or relies on: a set, kept in the order first given; the limit
counts each id once."""


class EvidenceIn(Strict):
    source_id: UUID
    claim_id: UUID
    stance: Stance
    strength: Strength
    published_at: UtcDatetime = Field(description="When it became public (valid time).")
    url: Url | None = None
    quote: Paragraph | None = None
    summary: Paragraph
    derived_from: Parents = Field(default_factory=list)


class EvidenceWritten(Written):
    source_id: UUID
    claim_id: UUID
    stance: str
    strength: str
    published_at: UtcDatetime
    url: str | None
    quote: str | None
    summary: str
    derived_from: list[UUID]


class Retraction(BaseModel):
    published_at: UtcDatetime
    reason: str
    recorded_at: UtcDatetime
    position: int


class Correction(BaseModel):
    changes: dict[str, Any]
    reason: str
    recorded_at: UtcDatetime
    position: int


class EvidenceOut(BaseModel):
    id: UUID
    source_id: UUID
    claim_id: UUID
    stance: str
    strength: str
    published_at: UtcDatetime
    url: str | None
    quote: str | None
    summary: str
    derived_from: list[UUID]
    retraction: Retraction | None = Field(
        description="The retraction in force, with its date as corrected since; null if none."
    )
    retractions: list[Retraction] = Field(
        description="Every retraction recorded, oldest first, each with the date and reason it "
        "was recorded with, including one a correction has since moved or withdrawn."
    )
    corrections: list[Correction]
    recorded_at: UtcDatetime
    position: int
    version: int


class EvidencePage(BaseModel):
    items: list[EvidenceOut]
    next_after: int = Field(description="Pass as `after` for the next page.")


class RetractionIn(Strict):
    published_at: UtcDatetime = Field(description="When the source retracted (valid time).")
    reason: Paragraph


class RetractionWritten(Written):
    published_at: UtcDatetime
    reason: str


_REQUIRED_FIELDS = ("source_id", "claim_id", "stance", "strength", "published_at", "summary")


class EvidenceChanges(Strict):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    source_id: UUID | None = None
    claim_id: UUID | None = None
    stance: Stance | None = None
    strength: Strength | None = None
    published_at: UtcDatetime | None = None
    url: Url | None = None
    quote: Paragraph | None = None
    summary: Paragraph | None = None
    derived_from: Parents | None = None
    retracted_from: UtcDatetime | None = Field(
        default=None,
        description="A retracted item's retraction date (its `published_at`), corrected; null "
        "withdraws a retraction recorded in error.",
    )

    @field_validator(*_REQUIRED_FIELDS)
    @classmethod
    def _required_field_stays_set(cls, value: object) -> object:
        if value is None:
            raise ValueError("is required, so it cannot be cleared")
        return value

    @model_validator(mode="after")
    def _names_a_change(self) -> "EvidenceChanges":
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self

    def given(self) -> dict[str, Any]:
        changes = self.model_dump(exclude_unset=True)
        if changes.get("derived_from") is None and "derived_from" in changes:
            changes["derived_from"] = []
        return changes


class CorrectionIn(Strict):
    changes: EvidenceChanges
    reason: Paragraph

    unset_differs_from_null: ClassVar[bool] = True
    """A change to null (a url cleared, a retraction withdrawn) is not the field left out."""


class CorrectionWritten(Written):
    changes: dict[str, Any]
    reason: str


class Health(BaseModel):
    status: str
    service: str
    head: int
    projection_position: int
    writes_refused: str | None = Field(description="Why writes answer 503, if they do.")
    claims_setting: str | None = Field(
        description="Why CLAIMS_URL or CLAIMS_API_KEY does not work, if it does not: evidence "
        "then answers 503. Checked at start, once the claims service answers, and at each ask."
    )
    clock: UtcDatetime = Field(
        description="This service's recording clock when it answered: every event it records "
        "takes its time from it. Compare it with the other service's to see whether they differ."
    )


class Rebuilt(RebuildAnswer):
    evidence: int = Field(description="Evidence items in the rebuilt read models.")


def _source_out(source: SourceView, ratings: list[RatingView]) -> SourceOut:
    return SourceOut(
        **source.model_dump(),
        ratings=[Rating(**rating.model_dump()) for rating in ratings],
    )


def _evidence_out(reads: Session, items: list[EvidenceView]) -> list[EvidenceOut]:
    """The items as answered, with their retractions and corrections read in two queries."""
    ids = [item.id for item in items]
    retractions = records_by_item(reads, RetractionView, ids)
    corrections = records_by_item(reads, CorrectionView, ids)
    return [_one_evidence_out(item, retractions[item.id], corrections[item.id]) for item in items]


def _one_evidence_out(
    evidence: EvidenceView, retractions: list[RetractionView], corrections: list[CorrectionView]
) -> EvidenceOut:
    """The retraction in force is the last one recorded, at its date as corrected since."""
    retraction = None
    if evidence.retracted_from is not None and retractions:
        latest = retractions[-1]
        retraction = Retraction(
            published_at=evidence.retracted_from,
            reason=latest.reason,
            recorded_at=latest.recorded_at,
            position=latest.position,
        )
    return EvidenceOut(
        **evidence.model_dump(exclude={"retracted_from"}),
        retraction=retraction,
        retractions=[Retraction(**row.model_dump()) for row in retractions],
        corrections=[Correction(**row.model_dump()) for row in corrections],
    )


@router.post(
    "/sources",
    status_code=201,
    dependencies=[Depends(Requires("submit"))],
    response_model=SourceWritten,
    responses=CREATED,
)
async def register_source(
    body: SourceIn, sources: Sources, once: Writes, response: Response
) -> SourceWritten:
    recorded = await once(
        body, lambda metadata: sources.register_source(**body.model_dump(), metadata=metadata)
    )
    response.headers["Location"] = f"/sources/{recorded.id}"
    return SourceWritten(**vars(recorded), **body.model_dump(), reliability="F")


@router.get("/sources", response_model=list[SourceOut])
def get_sources_list(reads: Reads) -> list[SourceOut]:
    return [_source_out(source, ratings) for source, ratings in list_sources(reads)]


@router.get("/sources/{source_id}", response_model=SourceOut)
def get_source(source_id: UUID, reads: Reads) -> SourceOut:
    source = reads.get(SourceView, source_id)
    if source is None:
        raise NotFound("source", source_id)
    return _source_out(source, rating_history(reads, source_id))


@router.post(
    "/sources/{source_id}/ratings",
    status_code=201,
    dependencies=[Depends(Requires("edit"))],
    response_model=RatingWritten,
)
async def rate_source(
    source_id: UUID,
    body: RatingIn,
    sources: Sources,
    once: Writes,
    expected: ExpectedVersion = None,
) -> RatingWritten:
    rater = body.rater or once.actor
    recorded = await once(
        body,
        lambda metadata: sources.rate_source(
            source_id,
            body.reliability,
            body.rationale,
            rater,
            metadata=metadata,
            expected_version=expected,
        ),
    )
    return RatingWritten(
        **vars(recorded), reliability=body.reliability, rationale=body.rationale, rater=rater
    )


@router.post(
    "/evidence",
    status_code=201,
    dependencies=[Depends(Requires("submit"))],
    response_model=EvidenceWritten,
    responses=CREATED,
)
async def submit_evidence(
    body: EvidenceIn, sources: Sources, once: Writes, response: Response
) -> EvidenceWritten:
    recorded = await once(
        body,
        lambda metadata: sources.submit_evidence(**body.model_dump(), metadata=metadata),
    )
    response.headers["Location"] = f"/evidence/{recorded.id}"
    return EvidenceWritten(**vars(recorded), **body.model_dump())


@router.get("/evidence", response_model=EvidencePage)
def list_evidence(
    reads: Reads,
    claim_id: UUID | None = None,
    after: AfterQuery = 0,
    limit: PageLimit = 100,
) -> EvidencePage:
    items = evidence_for_claim(reads, claim_id, after, limit)
    return EvidencePage(
        items=_evidence_out(reads, items),
        next_after=items[-1].position if items else after,
    )


@router.get("/evidence/{evidence_id}", response_model=EvidenceOut)
def get_evidence(evidence_id: UUID, reads: Reads) -> EvidenceOut:
    evidence = reads.get(EvidenceView, evidence_id)
    if evidence is None:
        raise NotFound("evidence", evidence_id)
    return _evidence_out(reads, [evidence])[0]


@router.post(
    "/evidence/{evidence_id}/retraction",
    status_code=201,
    dependencies=[Depends(Requires("edit"))],
    response_model=RetractionWritten,
)
async def retract_evidence(
    evidence_id: UUID,
    body: RetractionIn,
    sources: Sources,
    once: Writes,
    expected: ExpectedVersion = None,
) -> RetractionWritten:
    recorded = await once(
        body,
        lambda metadata: sources.retract_evidence(
            evidence_id,
            body.published_at,
            body.reason,
            metadata=metadata,
            expected_version=expected,
        ),
    )
    return RetractionWritten(**vars(recorded), **body.model_dump())


@router.post(
    "/evidence/{evidence_id}/correction",
    status_code=201,
    dependencies=[Depends(Requires("edit"))],
    response_model=CorrectionWritten,
)
async def correct_evidence(
    evidence_id: UUID,
    body: CorrectionIn,
    sources: Sources,
    once: Writes,
    expected: ExpectedVersion = None,
) -> CorrectionWritten:
    changes = body.changes.given()
    recorded = await once(
        body,
        lambda metadata: sources.correct_evidence(
            evidence_id, changes, body.reason, metadata=metadata, expected_version=expected
        ),
    )
    return CorrectionWritten(**vars(recorded), changes=changes, reason=body.reason)


@router.post(
    "/admin/rebuild",
    response_model=Rebuilt,
    dependencies=[Depends(Requires("admin"))],
    responses=problem_responses(409),
)
def rebuild(request: Request) -> Rebuilt:
    """Verify the event log, drop every read model and rebuild it from the events alone."""
    return Rebuilt(**request.app.state.rebuild())


HEALTH_WAIT_SECONDS = 1.0
"""How long health gives the read models to take in writes already answered."""


@router.get("/health", response_model=Health)
async def health(sources: Sources, request: Request) -> Health:
    return await in_health_thread(request, lambda: service_health(sources, request.app.state))


def service_health(sources: SourcesApplication, state: State) -> Health:
    projection = state.projection
    projection.wait_for_writes(HEALTH_WAIT_SECONDS)
    head, position = sources.head(), projection.applied_position
    claims_setting = state.claims_directory.fault
    whole = position == head and sources.refusal is None and claims_setting is None
    return Health(
        status="ok" if whole else "degraded",
        service="sources",
        head=head,
        projection_position=position,
        writes_refused=sources.refusal,
        claims_setting=claims_setting,
        clock=recording_clock.now(),
    )
