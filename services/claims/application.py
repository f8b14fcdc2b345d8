"""The claims application: commands that record claims and editorial rulings."""

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from services.claims.domain import Claim, RulingStatus
from shared.errors import Rejected, check_version
from shared.eventstore import ANONYMOUS, FactcheckApplication, Recorded, retry_on_conflict
from shared.timeaxes import FUTURE, is_future


class ClaimsApplication(FactcheckApplication):
    """Records claims, their rewording, and editors' rulings."""

    name = "claims"

    def register_claim(
        self,
        text: str,
        context: str | None = None,
        tags: list[str] | None = None,
        metadata: Mapping[str, str] = ANONYMOUS,
    ) -> Recorded:
        with self.recording(metadata) as write:
            write.add(Claim(text=text, context=context, tags=list(tags or [])))
        return write.recorded

    @retry_on_conflict
    def reword_claim(
        self,
        claim_id: UUID,
        text: str,
        reason: str,
        metadata: Mapping[str, str] = ANONYMOUS,
        expected_version: int | None = None,
    ) -> Recorded:
        with self.recording(metadata) as write:
            claim = self.get_aggregate(Claim, claim_id, "claim")
            check_version("claim", claim.version, expected_version)
            if claim.text == text:
                raise Rejected("text", "is the claim's current wording")
            claim.reword(text=text, reason=reason)
            write.add(claim)
        return write.recorded

    @retry_on_conflict
    def issue_ruling(
        self,
        claim_id: UUID,
        status: RulingStatus,
        rationale: str,
        effective_at: datetime,
        metadata: Mapping[str, str] = ANONYMOUS,
        expected_version: int | None = None,
    ) -> Recorded:
        if is_future(effective_at):
            raise Rejected("effective_at", FUTURE)
        with self.recording(metadata) as write:
            claim = self.get_aggregate(Claim, claim_id, "claim")
            check_version("claim", claim.version, expected_version)
            claim.rule(status=status, rationale=rationale, effective_at=effective_at)
            write.add(claim)
        return write.recorded
