"""The sources application: commands that record sources, ratings and evidence."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from services.sources.claims import ClaimDirectory
from services.sources.derivations import Derivations
from services.sources.domain import Evidence, Source
from shared.errors import Checks, Conflict, NotFound, Rejected, check_version
from shared.eventstore import (
    ANONYMOUS,
    FactcheckApplication,
    Recorded,
    retry_on_conflict,
)
from shared.sources_feed import Reliability, Stance, Strength
from shared.storage import Storage
from shared.timeaxes import FUTURE, format_instant, is_future


class SourcesApplication(FactcheckApplication):
    """Records sources, their ratings, and the evidence they give; validates before recording."""

    name = "sources"

    def __init__(self, storage: Storage, claims: ClaimDirectory) -> None:
        super().__init__(storage)
        self.claims = claims
        self._known_sources: set[UUID] = set()
        """Sources found before: a source is never removed, so it need not be read again."""
        self._derivations = Derivations()

    def register_source(
        self,
        name: str,
        kind: str,
        url: str | None = None,
        country: str | None = None,
        notes: str | None = None,
        metadata: Mapping[str, str] = ANONYMOUS,
    ) -> Recorded:
        with self.recording(metadata) as write:
            write.add(Source(name=name, kind=kind, url=url, country=country, notes=notes))
        return write.recorded

    @retry_on_conflict
    def rate_source(
        self,
        source_id: UUID,
        reliability: Reliability,
        rationale: str,
        rater: str,
        metadata: Mapping[str, str] = ANONYMOUS,
        expected_version: int | None = None,
    ) -> Recorded:
        with self.recording(metadata) as write:
            source = self.get_aggregate(Source, source_id, "source")
            check_version("source", source.version, expected_version)
            source.rate(reliability=reliability, rationale=rationale, rater=rater)
            write.add(source)
        return write.recorded

    def submit_evidence(
        self,
        source_id: UUID,
        claim_id: UUID,
        stance: Stance,
        strength: Strength,
        published_at: datetime,
        summary: str,
        url: str | None = None,
        quote: str | None = None,
        derived_from: list[UUID] | None = None,
        metadata: Mapping[str, str] = ANONYMOUS,
    ) -> Recorded:
        checks = Checks()
        with checks.check():
            self._check_claim(claim_id, "claim_id")
        known_claim = checks.passed()
        with checks.check():
            _check_not_future(published_at, "published_at")
        with self.recording(metadata) as write:
            with checks.check():
                self._check_source(source_id, "source_id")
            derived = list(dict.fromkeys(derived_from or []))
            with checks.check():
                self._check_derived_from(
                    derived, None, claim_id if known_claim else None, "derived_from"
                )
            checks.done()
            evidence = Evidence(
                source_id=source_id,
                claim_id=claim_id,
                stance=stance,
                strength=strength,
                published_at=published_at,
                url=url,
                quote=quote,
                summary=summary,
                derived_from=derived,
            )
            write.add(evidence)
        return write.recorded

    @retry_on_conflict
    def retract_evidence(
        self,
        evidence_id: UUID,
        published_at: datetime,
        reason: str,
        metadata: Mapping[str, str] = ANONYMOUS,
        expected_version: int | None = None,
    ) -> Recorded:
        _check_not_future(published_at, "published_at")
        with self.recording(metadata) as write:
            evidence = self.get_aggregate(Evidence, evidence_id, "evidence")
            check_version("evidence", evidence.version, expected_version)
            if evidence.retracted_from is not None:
                raise Conflict(f"evidence {evidence_id} was already retracted", field="evidence_id")
            if published_at < evidence.published_at:
                raise Rejected(
                    "published_at",
                    "a retraction cannot be published before the evidence it retracts "
                    f"({format_instant(evidence.published_at)})",
                )
            evidence.retract(published_at=published_at, reason=reason)
            write.add(evidence)
        return write.recorded

    @retry_on_conflict
    def correct_evidence(
        self,
        evidence_id: UUID,
        changes: dict[str, Any],
        reason: str,
        metadata: Mapping[str, str] = ANONYMOUS,
        expected_version: int | None = None,
    ) -> Recorded:
        checks = Checks()
        if "derived_from" in changes:
            changes = {**changes, "derived_from": list(dict.fromkeys(changes["derived_from"]))}
        if "claim_id" in changes:
            with checks.check():
                self._check_claim(changes["claim_id"], "changes.claim_id")
        known_claim = checks.passed()
        for field in ("published_at", "retracted_from"):
            if changes.get(field) is not None:
                with checks.check():
                    _check_not_future(changes[field], f"changes.{field}")
        if "claim_id" in changes and known_claim:
            self._derivations.catch_up(self)
        with self.recording(metadata) as write:
            evidence = self.get_aggregate(Evidence, evidence_id, "evidence")
            check_version("evidence", evidence.version, expected_version)
            unretracted = "retracted_from" in changes and evidence.retracted_from is None
            if unretracted:
                checks.reject(
                    "changes.retracted_from",
                    f"evidence {evidence_id} has no retraction to correct; "
                    "POST its retraction to record one",
                )
            for field, value in changes.items():
                if _unchanged(getattr(evidence, field), value) and not (
                    unretracted and field == "retracted_from"
                ):
                    checks.reject(f"changes.{field}", "already has that value; name only changes")
            if "source_id" in changes:
                with checks.check():
                    self._check_source(changes["source_id"], "changes.source_id")
            claim_id = changes.get("claim_id", evidence.claim_id) if known_claim else None
            if "derived_from" in changes:
                with checks.check():
                    self._check_derived_from(
                        changes["derived_from"], evidence_id, claim_id, "changes.derived_from"
                    )
            elif "claim_id" in changes and known_claim:
                for parent_id in evidence.derived_from:
                    parent = self.get_aggregate(Evidence, parent_id, "evidence")
                    if parent.claim_id != claim_id:
                        checks.reject(
                            "changes.claim_id",
                            f"the evidence derives from {parent_id}, which is about another "
                            "claim; correct derived_from with it",
                        )
                        break
            if "claim_id" in changes and known_claim:
                self._store_through()
                children = [
                    child
                    for child in self._derivations.children_of(self, evidence_id)
                    if self.get_aggregate(Evidence, child, "evidence").claim_id == evidence.claim_id
                ]
                if children:
                    checks.reject(
                        "changes.claim_id",
                        f"evidence {children[0]} derives from this one, about this claim; "
                        "correct its derived_from first",
                    )
            published_at = changes.get("published_at", evidence.published_at)
            retracted_from = changes.get("retracted_from", evidence.retracted_from)
            if retracted_from is not None and published_at > retracted_from:
                if "published_at" in changes and "retracted_from" not in changes:
                    checks.reject(
                        "changes.published_at", "would fall after the evidence's own retraction"
                    )
                else:
                    checks.reject(
                        "changes.retracted_from",
                        "would fall before the evidence's own published_at "
                        f"({format_instant(published_at)})",
                    )
            checks.done()
            evidence.correct(changes=changes, reason=reason)
            write.add(evidence)
        return write.recorded

    def _check_source(self, source_id: UUID, field: str) -> None:
        if source_id in self._known_sources:
            return
        try:
            self.get_aggregate(Source, source_id, "source")
        except NotFound:
            raise Rejected(field, f"no source with id {source_id}") from None
        self._known_sources.add(source_id)

    def _check_claim(self, claim_id: UUID, field: str) -> None:
        if not self.claims.exists(claim_id):
            raise Rejected(field, f"no claim with id {claim_id}")

    def _check_derived_from(
        self,
        derived_from: list[UUID],
        evidence_id: UUID | None,
        claim_id: UUID | None,
        field_name: str,
    ) -> None:
        """Every id must be known evidence, about `claim_id` when that is known, and no chain
        may lead back to `evidence_id`."""
        checks = Checks()
        for index, parent_id in enumerate(derived_from):
            with checks.check():
                self._check_parent(parent_id, evidence_id, claim_id, f"{field_name}.{index}")
        checks.done()

    def _check_parent(
        self, parent_id: UUID, evidence_id: UUID | None, claim_id: UUID | None, field: str
    ) -> None:
        if parent_id == evidence_id:
            raise Rejected(field, "evidence cannot be derived from itself")
        try:
            parent = self.get_aggregate(Evidence, parent_id, "evidence")
        except NotFound:
            raise Rejected(field, f"no evidence with id {parent_id}") from None
        if claim_id is not None and parent.claim_id != claim_id:
            raise Rejected(
                field,
                f"evidence {parent_id} is about another claim; an item derives only from "
                "evidence about its own claim",
            )
        if evidence_id is not None and self._leads_to(parent, evidence_id):
            raise Rejected(field, f"evidence {parent_id} is itself derived from this one")

    def _leads_to(self, start: Evidence, target: UUID) -> bool:
        seen: set[UUID] = set()
        stack = list(start.derived_from)
        while stack:
            current = stack.pop()
            if current == target:
                return True
            if current in seen:
                continue
            seen.add(current)
            stack.extend(self.get_aggregate(Evidence, current, "evidence").derived_from)
        return False


def _unchanged(current: Any, value: Any) -> bool:
    """Whether a correction gives a field the value it holds; `derived_from` is a set."""
    if isinstance(value, list):
        return set(current) == set(value)
    return bool(current == value)


def _check_not_future(value: datetime, field: str) -> None:
    if is_future(value):
        raise Rejected(field, FUTURE)
