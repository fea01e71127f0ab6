"""What shifts keep in the database (feature migration ``shifts``); digests may read these.

``shift_overrides``: one row per override or half of a swap. ``person`` is on shift from
``start_at`` to ``end_at`` (UTC, end exclusive) whatever the rota says; ``kind`` is
``override`` or ``swap`` (a swap is two rows sharing ``swap_id``, the id of its first row);
``by`` who made it, ``created_at`` when. Rows are laid over the rota by ``id``: the latest wins.

``shift_acks``: one row per acknowledged handover: ``handover_key`` (the handover
occurrence's key, ``handover:shifts.bob/2026-03-30T07:00:00Z``), ``person`` (the incoming
shifter), ``handover_at``, ``by`` (who acknowledged: the shifter, or someone allowed
``shift.override``), ``at``.

Functions take a connection first and run inside ``bot.database.run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from bot.shifts.rota import Layer, utc

metadata = MetaData()
OVERRIDE, SWAP = "override", "swap"

overrides = Table(
    "shift_overrides", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("person", String(100), nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("swap_id", Integer, nullable=True),
    Column("by", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_shift_overrides_end", "end_at"),
)

acks = Table(
    "shift_acks", metadata,
    Column("handover_key", String(300), primary_key=True),
    Column("person", String(100), nullable=False),
    Column("handover_at", DateTime(timezone=True), nullable=False),
    Column("by", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


def create_tables(conn: Connection) -> None:
    """Feature migration step 1."""
    metadata.create_all(conn)


@dataclass(frozen=True, slots=True)
class Override:
    id: int
    person: str
    start: datetime
    end: datetime
    kind: str
    swap_id: int | None
    by: str
    created_at: datetime

    def layer(self) -> Layer:
        return Layer(self.person, self.start, self.end, f"{self.kind} #{self.swap_id or self.id}")


@dataclass(frozen=True, slots=True)
class Ack:
    handover_key: str
    person: str
    handover_at: datetime
    by: str
    at: datetime


def add_override(conn: Connection, person: str, start: datetime, end: datetime, by: str,
                 now: datetime, kind: str = OVERRIDE, swap_id: int | None = None) -> int:
    result = conn.execute(overrides.insert().values(
        person=person, start_at=start, end_at=end, kind=kind, swap_id=swap_id, by=by,
        created_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def add_swap(conn: Connection, first: tuple[str, datetime, datetime],
             second: tuple[str, datetime, datetime], by: str, now: datetime) -> int:
    """Both halves of a swap in one transaction; returns the swap's id."""
    swap_id = add_override(conn, *first, by, now, SWAP)
    conn.execute(update(overrides).where(overrides.c.id == swap_id).values(swap_id=swap_id))
    add_override(conn, *second, by, now, SWAP, swap_id)
    return swap_id


def active_overrides(conn: Connection, ending_after: datetime) -> list[Override]:
    """The overrides that end after ``ending_after``, oldest first (the layering order)."""
    rows = conn.execute(select(overrides).where(overrides.c.end_at > ending_after)
                        .order_by(overrides.c.id))
    return [Override(r.id, r.person, utc(r.start_at), utc(r.end_at), r.kind, r.swap_id, r.by,
                     utc(r.created_at)) for r in rows]


def record_ack(conn: Connection, key: str, person: str, handover_at: datetime, by: str,
               now: datetime) -> Ack | None:
    """Record the acknowledgement; None when this handover was acknowledged already (the
    first one stands: two clicks at once record one)."""
    try:
        with conn.begin_nested():
            conn.execute(acks.insert().values(handover_key=key, person=person,
                                              handover_at=handover_at, by=by, at=now))
    except IntegrityError:
        return None
    return Ack(key, person, handover_at, by, now)


def ack_of(conn: Connection, key: str) -> Ack | None:
    row = conn.execute(select(acks).where(acks.c.handover_key == key)).first()
    if row is None:
        return None
    return Ack(row.handover_key, row.person, utc(row.handover_at), row.by, utc(row.at))
