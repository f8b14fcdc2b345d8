"""The public feed contract: every recorded event as plain JSON, in recorded order."""

from datetime import datetime
from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import DomainEventProtocol
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from shared.timeaxes import UtcDatetime

FEED_MAX_LIMIT = 1000
POSITION_MAX = 2**63 - 1
"""The largest feed position a query may name: a signed 64-bit integer."""
FEED_DEFAULT_LIMIT = 100
FEED_MAX_WAIT_SECONDS = 30.0
EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:factcheck:event")
_ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "metadata"}
)


class FeedItem(BaseModel):
    """One recorded event."""

    position: int = Field(description="Position in this service's feed; increasing, with gaps.")
    id: UUID = Field(description="The event's id: uuid5 of the stream id and stream version.")
    type: str = Field(description="Event type, such as EvidenceSubmitted.")
    version: int = Field(description="Version of the event type's data schema.")
    stream_id: UUID = Field(description="The aggregate the event belongs to.")
    stream_version: int = Field(description="The event's version within its stream, from 1.")
    recorded_at: UtcDatetime = Field(description="Transaction time: when this service recorded it.")
    data: dict[str, Any]
    metadata: dict[str, Any]


ServiceName = Literal["sources", "claims"]


class FeedPage(BaseModel):
    """A page of the feed."""

    service: ServiceName | None = Field(
        default=None,
        description="Whose feed this is, so that a follower pointed at the wrong service knows; "
        "absent only from services older than this field.",
    )
    items: list[FeedItem]
    next_after: int = Field(description="Pass as `after` to read the next page.")
    head: int = Field(description="The highest position recorded when the page was read.")
    head_known_at: UtcDatetime = Field(
        description="Server time when `head` was read: anything recorded later is later than this."
    )


def event_type(event: DomainEventProtocol[UUID]) -> str:
    """The public type name of an event, such as `EvidenceSubmitted` for Evidence.Submitted."""
    return type(event).__qualname__.replace(".", "")


def event_id(stream_id: UUID, stream_version: int) -> UUID:
    """The stable id of the event at `stream_version` in stream `stream_id`."""
    return uuid5(EVENT_ID_NAMESPACE, f"{stream_id}/{stream_version}")


def feed_item(position: int, event: DomainEventProtocol[UUID]) -> FeedItem:
    """Render a domain event as its public feed item."""
    fields = vars(event)
    return FeedItem(
        position=position,
        id=event_id(event.originator_id, event.originator_version),
        type=event_type(event),
        version=getattr(type(event), "class_version", 1),
        stream_id=event.originator_id,
        stream_version=event.originator_version,
        recorded_at=event.timestamp,
        data=to_jsonable_python(
            {key: value for key, value in fields.items() if key not in _ENVELOPE_FIELDS}
        ),
        metadata=to_jsonable_python(fields.get("metadata", {})),
    )


def feed_page(
    service: ServiceName,
    items: list[FeedItem],
    after: int,
    head: int,
    head_known_at: datetime,
) -> FeedPage:
    """A page of `service`'s items read after `after`."""
    return FeedPage(
        service=service,
        items=items,
        next_after=items[-1].position if items else after,
        head=head,
        head_known_at=head_known_at,
    )
