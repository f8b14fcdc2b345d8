"""What a newsroom client does over HTTP, written once for the end-to-end tests."""

from typing import Any

from tests.conftest import Services

KHARKIV_CLAIM = (
    "Russia struck Kharkiv on 2 January 2024 with a ballistic missile supplied by North Korea."
)


def new_claim(services: Services, text: str = KHARKIV_CLAIM) -> str:
    response = services.claims.post("/claims", json={"text": text})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def new_source(services: Services, name: str, reliability: str | None = None) -> str:
    response = services.sources.post("/sources", json={"name": name, "kind": "test source"})
    assert response.status_code == 201, response.text
    source_id = response.json()["id"]
    if reliability:
        rate(services, source_id, reliability)
    return source_id


def rate(services: Services, source_id: str, reliability: str) -> dict[str, Any]:
    response = services.sources.post(
        f"/sources/{source_id}/ratings", json={"reliability": reliability, "rationale": "test"}
    )
    assert response.status_code == 201, response.text
    return response.json()


def post_evidence(
    services: Services,
    source_id: str,
    claim_id: str,
    published_at: str,
    stance: str = "supports",
    strength: str = "moderate",
    derived_from: list[str] | None = None,
) -> dict[str, Any]:
    response = services.sources.post(
        "/evidence",
        json={
            "source_id": source_id,
            "claim_id": claim_id,
            "stance": stance,
            "strength": strength,
            "published_at": published_at,
            "summary": "test evidence",
            "derived_from": derived_from or [],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def rule(services: Services, claim_id: str, status: str, effective_at: str) -> dict[str, Any]:
    """Record an editor's ruling on the claim."""
    response = services.claims.post(
        f"/claims/{claim_id}/rulings",
        json={"status": status, "rationale": "test", "effective_at": effective_at},
    )
    assert response.status_code == 201, response.text
    return response.json()


def verdict(services: Services, claim_id: str, **params: Any) -> dict[str, Any]:
    """The verdict, once the claims service has applied everything the sources recorded (or,
    with a `known_at`, everything recorded by then)."""
    if "known_at" not in params:
        head = services.sources.get("/feed", params={"limit": 1}).json()["head"]
        params.setdefault("min_position", head)
    response = services.claims.get(f"/claims/{claim_id}/verdict", params=params)
    assert response.status_code == 200, response.text
    return response.json()
