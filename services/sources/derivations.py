"""Which evidence derives from which, read from the sources log as far as it is stored."""

import threading
from uuid import UUID

from eventsourcing.utils import get_topic

from services.sources.domain import Evidence
from shared.eventstore import FactcheckApplication

PAGE = 500
TOPICS = (get_topic(Evidence.Submitted), get_topic(Evidence.Corrected))
"""The only events that set an item's `derived_from`."""


class Derivations:
    """Each evidence item's children: the items whose `derived_from` names it.

    Kept in memory and brought up to the stored log when asked, so it holds only what is
    stored: ask under the write lock, after storing every write decided before. Catching up
    beforehand, outside the write lock, leaves only the newest events to read under it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._position = 0
        self._parents: dict[UUID, list[UUID]] = {}
        self._children: dict[UUID, set[UUID]] = {}

    def catch_up(self, log: FactcheckApplication) -> None:
        """Read the links the stored log holds past those already read."""
        with self._lock:
            while events := log.events_after(self._position, PAGE, topics=TOPICS):
                for position, event in events:
                    self._position = position
                    if isinstance(event, Evidence.Submitted):
                        self._link(event.originator_id, event.derived_from)
                    elif isinstance(event, Evidence.Corrected) and "derived_from" in event.changes:
                        self._link(event.originator_id, event.changes["derived_from"])

    def children_of(self, log: FactcheckApplication, evidence_id: UUID) -> list[UUID]:
        """The items that derive from `evidence_id` in the stored log, in id order."""
        self.catch_up(log)
        with self._lock:
            return sorted(self._children.get(evidence_id, ()), key=str)

    def _link(self, child: UUID, parents: list[UUID]) -> None:
        for parent in self._parents.pop(child, []):
            self._children[parent].discard(child)
        if parents:
            self._parents[child] = list(parents)
            for parent in parents:
                self._children.setdefault(parent, set()).add(child)
