"""Scenario files: a claim, its sources and evidence, and the order they are recorded in.

Loading is idempotent: what is already recorded (the claim by its text, a source by every
field it was registered with, evidence by source, publication time and summary) is found, not
recorded again. A source someone else registered under the same name is taken for the
scenario's own only if every field it was registered with is the scenario's too.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.client import FactcheckClient, ServiceError
from shared.timeaxes import UtcDatetime, parse_instant


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScenarioRating(_Strict):
    reliability: str
    rationale: str


class ScenarioSource(_Strict):
    key: str
    name: str
    kind: str
    url: str | None = None
    country: str | None = None
    notes: str | None = None
    rating: ScenarioRating | None = None


class ScenarioEvidence(_Strict):
    key: str
    source: str
    stance: str
    strength: str
    published_at: UtcDatetime
    url: str | None = None
    quote: str | None = None
    summary: str
    derived_from: list[str] = Field(default_factory=list)
    note: str | None = Field(default=None, description="Why it is entered so; not recorded.")


class ScenarioClaim(_Strict):
    text: str
    context: str | None = None
    tags: list[str] = Field(default_factory=list)


class ScenarioStep(_Strict):
    label: str
    evidence: list[str]


class Scenario(_Strict):
    name: str
    report: str
    claim: ScenarioClaim
    sources: list[ScenarioSource]
    evidence: list[ScenarioEvidence]
    steps: list[ScenarioStep]

    @model_validator(mode="after")
    def _references_hold(self) -> "Scenario":
        sources = {source.key for source in self.sources}
        evidence = {item.key: item for item in self.evidence}
        if len(sources) != len(self.sources) or len(evidence) != len(self.evidence):
            raise ValueError("source and evidence keys must be unique")
        order = [key for step in self.steps for key in step.evidence]
        if sorted(order) != sorted(evidence):
            raise ValueError("every evidence key must be recorded in exactly one step")
        seen: set[str] = set()
        for key in order:
            item = evidence[key]
            if item.source not in sources:
                raise ValueError(f"evidence {key}: unknown source {item.source}")
            missing = [parent for parent in item.derived_from if parent not in seen]
            if missing:
                raise ValueError(f"evidence {key}: derived from {missing[0]}, not recorded before")
            seen.add(key)
        return self


def read_scenario(path: Path) -> Scenario:
    return Scenario.model_validate_json(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class LoadedStep:
    label: str
    known_at: datetime
    position: int


@dataclass(frozen=True)
class Loaded:
    claim_id: str
    evidence_ids: dict[str, str]
    steps: list[LoadedStep]
    recorded: int

    def labels(self, scenario: Scenario) -> dict[str, str]:
        """Evidence id to a short label: source name and the evidence key."""
        names = {source.key: source.name for source in scenario.sources}
        return {
            self.evidence_ids[item.key]: f"{item.key} ({names[item.source]})"
            for item in scenario.evidence
        }


def writes_needed(scenario: Scenario) -> int:
    """How many writes a first load makes, for a progress bar."""
    ratings = sum(1 for source in scenario.sources if source.rating)
    return 1 + len(scenario.sources) + ratings + len(scenario.evidence)


class ScenarioConflict(ValueError):
    """The scenario's item differs from what was recorded for it: loading would duplicate it."""


def load(
    client: FactcheckClient, scenario: Scenario, advance: Callable[[], None] = lambda: None
) -> Loaded:
    """Record what of the scenario is not recorded yet, step by step; describe every step.

    An item is found by its source, publication time and summary; failing that, it is posted
    with an idempotency key of the scenario's name and the item's key, so that one this caller
    recorded from the scenario before, and corrected since, is found by its key. A scenario
    edited since raises ScenarioConflict at its first edited item, rather than recording the
    same statement twice. A post counts as a new write if the sources service recorded it
    after this load began (its clock then), not if it gave back an earlier one by its key.
    """
    recorded = 0
    claim_id = next(
        (claim["id"] for claim in client.claims_list() if claim["text"] == scenario.claim.text),
        None,
    )
    if claim_id is None:
        claim_id = client.post_claims("/claims", scenario.claim.model_dump())["id"]
        recorded += 1
    advance()

    source_ids, sources_recorded = _load_sources(client, scenario, advance)
    recorded += sources_recorded

    started = parse_instant(client.check_services("sources")["sources"]["clock"])
    existing = list(client.evidence_for(claim_id))
    by_identity = {
        (item["source_id"], parse_instant(item["published_at"]), item["summary"]): item
        for item in existing
    }
    by_key = {item.key: item for item in scenario.evidence}
    evidence_ids: dict[str, str] = {}
    steps: list[LoadedStep] = []
    for step in scenario.steps:
        written: list[dict[str, Any]] = []
        for key in step.evidence:
            item = by_key[key]
            source_id = source_ids[item.source]
            found = by_identity.get((source_id, item.published_at, item.summary))
            if found is None:
                body = item.model_dump(mode="json", exclude={"key", "source", "note"})
                body.update(
                    source_id=source_id,
                    claim_id=claim_id,
                    derived_from=[evidence_ids[parent] for parent in item.derived_from],
                )
                found = _post_once(client, body, scenario, item.key)
                recorded += parse_instant(found["recorded_at"]) > started
            evidence_ids[key] = found["id"]
            written.append(found)
            advance()
        steps.append(
            LoadedStep(
                label=step.label,
                known_at=max(parse_instant(item["recorded_at"]) for item in written),
                position=max(item["position"] for item in written),
            )
        )
    return Loaded(claim_id=claim_id, evidence_ids=evidence_ids, steps=steps, recorded=recorded)


def _scenario_key(scenario: Scenario) -> str:
    """The start of the idempotency keys of a scenario's evidence: its name, hashed."""
    return "scenario-" + hashlib.sha256(scenario.name.encode()).hexdigest()[:16]


def _post_once(
    client: FactcheckClient, body: dict[str, Any], scenario: Scenario, item_key: str
) -> dict[str, Any]:
    """POST /evidence keyed by the scenario and the item: the item this caller recorded from
    it before, or a new one."""
    key = f"{_scenario_key(scenario)}-{item_key}"
    try:
        return client.post_sources("/evidence", body, idempotency_key=key)
    except ServiceError as error:
        if error.status == 422 and "Idempotency-Key" in str(error):
            raise ScenarioConflict(
                f"evidence {item_key!r} was recorded from this scenario as it "
                "was before, and differs from it now; loading it would record the same "
                "statement twice. Correct the recorded item instead "
                "(POST /evidence/{id}/correction), and leave the scenario as it was"
            ) from None
        raise


def _load_sources(
    client: FactcheckClient, scenario: Scenario, advance: Callable[[], None]
) -> tuple[dict[str, str], int]:
    """Each scenario source's id, registered and rated unless it already is; and the writes."""
    known = client.sources_list()
    ids: dict[str, str] = {}
    recorded = 0
    for source in scenario.sources:
        registered = source.model_dump(exclude={"key", "rating"})
        found = next(
            (
                candidate
                for candidate in known
                if all(candidate.get(field) == value for field, value in registered.items())
            ),
            None,
        )
        if found is None:
            body = {field: value for field, value in registered.items() if value is not None}
            found = {**client.post_sources("/sources", body), "ratings": []}
            recorded += 1
        advance()
        ids[source.key] = found["id"]
        rating = source.rating
        if rating is None:
            continue
        already = any(
            (entry["reliability"], entry["rationale"]) == (rating.reliability, rating.rationale)
            for entry in found["ratings"]
        )
        if not already:
            client.post_sources(f"/sources/{found['id']}/ratings", rating.model_dump())
            recorded += 1
        advance()
    return ids, recorded
