"""Rebuilding a service's own read models from its event log, once the log verifies."""

import time
from dataclasses import dataclass

from shared.chain import verify
from shared.errors import Conflict
from shared.projection import Projection
from shared.routes import every_item

REBUILD_DRAIN_SECONDS = 30.0
"""How long a rebuild waits for reads in progress to end before it gives up."""


@dataclass(frozen=True)
class Rebuilt:
    """Where a rebuild got to, and how long it spent verifying and then rebuilding."""

    position: int
    verify_seconds: float
    rebuild_seconds: float


def rebuild_from_own_log(projection: Projection, log_name: str) -> Rebuilt:
    """Verify the projection's event log, then rebuild its read models while reads are held
    off. Conflict, with nothing rebuilt, if the log is broken.

    A log found missing its newest events then refuses writes, as it does at start.
    """
    began = time.monotonic()
    own = verify(every_item(projection.application))
    if not own.ok:
        raise Conflict(
            f"the {log_name} log fails verification at position {own.broken_position}: "
            f"{own.reason}; nothing was rebuilt"
        )
    rebuilding = time.monotonic()
    with projection.gate.closed(drain=REBUILD_DRAIN_SECONDS):
        position = projection.rebuild()
    rebuilt = time.monotonic()
    projection.application.refuse_writes(projection.missing_events(), "missing events")
    return Rebuilt(position, rebuilding - began, rebuilt - rebuilding)
