"""SQL over the event store's own table, for read models filled inside the database.

The store keeps each event as the JSON that eventsourcing's transcoder writes: a UUID as
`{"_type_": "uuid_hex", "_data_": hex}`, a datetime as `{"_type_": "datetime_iso", "_data_":
iso}`. These expressions turn such fields into the values the read models' columns hold, so
that one `INSERT ... SELECT` fills a table without a row passing through Python.
"""

from dataclasses import dataclass

ALIAS = "stored"
"""The name `StoredEvents.rows` gives its rows; the expressions read the event from it."""


@dataclass(frozen=True)
class StoredEvents:
    """SQL fragments over the stored events, in one database's dialect."""

    dialect: str
    """`sqlite` or `postgresql`."""
    table: str
    """The table the store keeps its events in."""

    def rows(self, topic: bool = False, containing: bool = False) -> str:
        """A FROM item: one row per event up to the `:head` parameter, as `position`,
        `stream_id`, `version` and `event`; if `topic`, only of the `:topic` parameter's
        class; if `containing`, only where the stored JSON holds the `:containing` text."""
        sqlite = self.dialect == "sqlite"
        position = "rowid" if sqlite else "notification_id"
        where = f"WHERE {position} <= :head"
        if topic:
            where += " AND topic = :topic"
        if containing:
            found = (
                "instr(state, :containing)"
                if sqlite
                else "position(convert_to(:containing, 'UTF8') in state)"
            )
            where += f" AND {found} > 0"
        event = "CAST(state AS TEXT)" if sqlite else "convert_from(state, 'UTF8')::jsonb"
        fence = "" if sqlite else " OFFSET 0"
        return (
            f"(SELECT {position} AS position, originator_id AS stream_id, "
            f"originator_version AS version, {event} AS event "
            f"FROM {self.table} {where}{fence}) AS {ALIAS}"
        )

    def text(self, *path: str) -> str:
        """A string field, or NULL where it is null or missing."""
        if self.dialect == "sqlite":
            return f"json_extract({ALIAS}.event, '$.{'.'.join(path)}')"
        return f"({ALIAS}.event #>> '{{{','.join(path)}}}')"

    def uuid(self, *path: str) -> str:
        """A tagged UUID field, as a UUID column holds it."""
        if self.dialect == "sqlite":
            return self.text(*path, "_data_")
        return f"{self.text(*path, '_data_')}::uuid"

    def instant(self, *path: str) -> str:
        """A tagged datetime field, in UTC, as a timezone-aware DateTime column holds it.

        The store writes `YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM`. SQLite's own date functions
        keep milliseconds only, and round: they are given the whole seconds and the offset,
        and the microseconds are copied as they are.
        """
        iso = self.text(*path, "_data_")
        if self.dialect == "postgresql":
            return f"{iso}::timestamptz"
        utc = f"replace(substr({iso}, 1, 19), 'T', ' ')"
        shifted = f"strftime('%Y-%m-%d %H:%M:%S', substr({iso}, 1, 19) || substr({iso}, -6))"
        seconds = f"CASE WHEN substr({iso}, -6) = '+00:00' THEN {utc} ELSE {shifted} END"
        fraction = f"CASE WHEN length({iso}) = 32 THEN substr({iso}, 21, 6) ELSE '000000' END"
        return f"({seconds} || '.' || {fraction})"

    def uuid_texts(self, *path: str) -> str:
        """A list of tagged UUIDs, as a JSON column holds a list of their hyphenated texts,
        spaced as Python's `json` spaces them."""
        if self.dialect == "postgresql":
            listed = f"{ALIAS}.event #> '{{{','.join(path)}}}'"
            return (
                f"(CASE WHEN {listed} = '[]'::jsonb THEN '[]'::json ELSE (SELECT "
                "json_agg((element ->> '_data_')::uuid::text ORDER BY n) FROM "
                f"jsonb_array_elements({listed}) WITH ORDINALITY AS elements(element, n)) END)"
            )
        hex_ = "json_extract(value, '$._data_')"
        hyphenated = " || '-' || ".join(
            f"substr({hex_}, {start}, {size})" for start, size in _UUID_GROUPS
        )
        listed = f"json_extract({ALIAS}.event, '$.{'.'.join(path)}')"
        return (
            f"(CASE WHEN {listed} = '[]' THEN '[]' ELSE (SELECT replace(json_group_array("
            f"{hyphenated}), '\",\"', '\", \"') FROM json_each({ALIAS}.event, "
            f"'$.{'.'.join(path)}')) END)"
        )


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
"""Where each hyphen-separated group of a UUID lies in its 32 hex digits."""
