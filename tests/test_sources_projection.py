"""The sources read models when one batch both adds evidence and changes it."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from services.sources.application import SourcesApplication
from services.sources.domain import Evidence
from services.sources.projections import (
    EvidenceView,
    RetractionView,
    SourcesProjection,
    records_by_item,
)
from shared.storage import parse_storage_url
from tests.conftest import KnownClaims

PUBLISHED = datetime(2024, 1, 6, 12, tzinfo=UTC)


@pytest.fixture
def recorded(
    database_url: str, known_claims: KnownClaims
) -> Iterator[tuple[SourcesApplication, SourcesProjection]]:
    """Two items about one claim, one retracted and one corrected, then a third item, recorded
    before any projection runs, so that a catch-up applies all of them in one batch."""
    storage = parse_storage_url("SOURCES_DATABASE_URL", database_url)
    storage.prepare()
    application = SourcesApplication(storage, known_claims)
    engine = storage.create_engine()
    claim = uuid.UUID(known_claims.add())
    source = application.register_source("Kharkiv Region Prosecutor's Office", "official").id
    first, second = (
        application.submit_evidence(source, claim, "supports", "moderate", PUBLISHED, summary).id
        for summary in ("first", "second")
    )
    application.retract_evidence(first, PUBLISHED + timedelta(days=1), "withdrawn")
    application.correct_evidence(second, {"strength": "strong"}, "re-read")
    application.submit_evidence(source, claim, "refutes", "weak", PUBLISHED, "third")
    projection = SourcesProjection(engine, application)
    projection.create_tables()
    yield application, projection
    application.close()
    engine.dispose()


def evidence_by_summary(projection: SourcesProjection) -> dict[str, EvidenceView]:
    with Session(projection.engine) as session:
        return {row.summary: row for row in session.exec(select(EvidenceView))}


def retraction_reasons(projection: SourcesProjection, evidence: EvidenceView) -> list[str]:
    """The reasons of the item's retractions, as recorded."""
    with Session(projection.engine) as session:
        found = records_by_item(session, RetractionView, [evidence.id])
    return [row.reason for row in found[evidence.id]]


def test_a_batch_changes_evidence_it_added_itself(
    recorded: tuple[SourcesApplication, SourcesProjection],
) -> None:
    application, projection = recorded
    assert projection.catch_up() == application.head()
    rows = evidence_by_summary(projection)
    assert rows["first"].retracted_from == PUBLISHED + timedelta(days=1)
    assert retraction_reasons(projection, rows["first"]) == ["withdrawn"]
    assert (rows["first"].strength, rows["first"].version) == ("moderate", 2)
    assert rows["second"].retracted_from is None
    assert (rows["second"].strength, rows["second"].version) == ("strong", 2)
    assert (rows["third"].stance, rows["third"].version) == ("refutes", 1)


def test_a_failed_batch_stores_nothing_and_is_applied_whole_next_time(
    recorded: tuple[SourcesApplication, SourcesProjection], monkeypatch: pytest.MonkeyPatch
) -> None:
    application, projection = recorded
    apply = SourcesProjection.apply
    # once as the empty read models are filled, once as the batch is applied one by one
    failures = [RuntimeError("the read models could not be written") for _ in range(2)]

    def failing_at_the_retraction(self: SourcesProjection, *args: Any) -> None:
        if failures and isinstance(args[-1], Evidence.Retracted):
            raise failures.pop()
        apply(self, *args)

    monkeypatch.setattr(SourcesProjection, "apply", failing_at_the_retraction)
    with pytest.raises(RuntimeError):
        projection.catch_up()
    assert failures == []
    assert evidence_by_summary(projection) == {}
    assert projection.position() == 0
    assert projection.catch_up() == application.head()
    rows = evidence_by_summary(projection)
    assert sorted(rows) == ["first", "second", "third"]
    assert retraction_reasons(projection, rows["first"]) == ["withdrawn"]


def test_a_projector_that_failed_tries_again_without_a_new_write(
    recorded: tuple[SourcesApplication, SourcesProjection],
) -> None:
    """As after a database outage: the writes are stored, the catch-up that followed failed."""
    application, projection = recorded

    class FailsOnce(SourcesProjection):
        failures = 1

        def apply(self, session: Any, position: int, event: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("the database went away")
            super().apply(session, position, event)

    flaky = FailsOnce(projection.engine, application)
    flaky.follow()
    try:
        application.register_source("a source registered as the database goes away", "k")
        assert flaky.wait_for_writes(timeout=5), "caught up with no further write to wake it"
        assert flaky.failures == 0
    finally:
        flaky.stop()
