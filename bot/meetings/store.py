"""The meetings' tables (the digests read them too). Functions take a connection first and run
inside ``bot.database.run``.

- ``meeting_reports``: one row per meeting whose report thread was opened. ``meeting_key``
  names the meeting (``<series>/<UTC start>``, plus ``@<uid hash>`` for a feed's event);
  ``notice_key`` is the key of the notice that opened the thread (``report:<meeting_key>``).
  ``state``: ``open`` | ``closed``; ``rendered``: the report text as last posted.
- ``meeting_items``: what was said in the thread, in order: ``kind`` is ``topic``, ``info``,
  ``idea``, ``link``, ``decision``, ``action`` or ``discussion`` (a plain reply); ``topic_id``
  is the topic it falls under; ``owner`` is an action's person; ``removed_at`` is set by
  ``#undo``; ``done_at``/``done_by`` by ``report done``; ``edited_at``/``edited_by`` by the
  last ``#edit``/``report edit``, with ``previous_text`` the text it replaced (migration 2).
- ``meeting_tickets``: an action item's tracker issue (one per item: the primary key is the
  item), ``state`` as last seen (``open`` | ``closed``).
- ``meeting_feeds``: each iCal series' last good feed text, and the error of the last failed
  fetch (a feed that fails keeps its last good copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    update,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects import postgresql, sqlite

from bot.db import as_utc

metadata = MetaData()
OPEN, CLOSED = "open", "closed"
MARKER_KINDS = ("topic", "info", "idea", "link", "decision", "action")
DISCUSSION = "discussion"

reports = Table(
    "meeting_reports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("series", String(100), nullable=False),
    Column("meeting_key", String(300), nullable=False, unique=True),
    Column("title", String(300), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("notice_key", String(300), nullable=False, unique=True),
    Column("state", String(10), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("closed_by", String(100), nullable=True),
    Column("rendered", Text, nullable=True),
    Index("ix_meeting_reports_series", "series", "starts_at"),
)

items = Table(
    "meeting_items", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("report_id", Integer, ForeignKey("meeting_reports.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("author", String(100), nullable=False),
    Column("owner", String(100), nullable=True),
    Column("text", Text, nullable=False),
    Column("topic_id", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("removed_at", DateTime(timezone=True), nullable=True),
    Column("done_at", DateTime(timezone=True), nullable=True),
    Column("done_by", String(100), nullable=True),
    Column("edited_at", DateTime(timezone=True), nullable=True),  # migration 2
    Column("edited_by", String(100), nullable=True),
    Column("previous_text", Text, nullable=True),
    Index("ix_meeting_items_report", "report_id", "id"),
)

tickets = Table(
    "meeting_tickets", metadata,
    Column("item_id", Integer, ForeignKey("meeting_items.id"), primary_key=True),
    Column("tracker", String(10), nullable=False),  # gitlab | github
    Column("project", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("url", String(500), nullable=False),
    Column("state", String(10), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)

feeds = Table(
    "meeting_feeds", metadata,
    Column("series", String(100), primary_key=True),
    Column("body", Text, nullable=True),
    Column("fetched_at", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=True),
    Column("tried_at", DateTime(timezone=True), nullable=True),
)


def create_tables(conn: Connection) -> None:
    """Feature migration step 1."""
    metadata.create_all(conn)


EDIT_COLUMNS = (("edited_at", "TIMESTAMP WITH TIME ZONE"), ("edited_by", "VARCHAR(100)"),
                ("previous_text", "TEXT"))


def add_edit_columns(conn: Connection) -> None:
    """Feature migration step 2: who edited an item last, and the text it replaced. Step 1
    creates ``meeting_items`` from the current definition, which has them already: only
    databases made before step 2 existed need them added."""
    have = {column["name"] for column in inspect(conn).get_columns("meeting_items")}
    for name, sql_type in EDIT_COLUMNS:
        if name not in have:
            conn.execute(sql_text(f"ALTER TABLE meeting_items ADD COLUMN {name} {sql_type}"))


def _insert(conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    series: str
    meeting_key: str
    title: str
    starts_at: datetime
    ends_at: datetime
    notice_key: str
    state: str
    closed_at: datetime | None
    closed_by: str | None
    rendered: str | None


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    report_id: int
    kind: str
    author: str
    owner: str | None
    text: str
    topic_id: int | None
    created_at: datetime
    done_at: datetime | None = None
    done_by: str | None = None
    edited_at: datetime | None = None
    edited_by: str | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    item_id: int
    tracker: str
    project: str
    number: int
    url: str
    state: str


def _report(row: object) -> Report:
    r = row
    return Report(r.id, r.series, r.meeting_key, r.title, as_utc(r.starts_at),  # type: ignore[attr-defined,arg-type]
                  as_utc(r.ends_at), r.notice_key, r.state, as_utc(r.closed_at),  # type: ignore[attr-defined,arg-type]
                  r.closed_by, r.rendered)  # type: ignore[attr-defined]


def _item(row: object) -> Item:
    r = row
    return Item(r.id, r.report_id, r.kind, r.author, r.owner, r.text, r.topic_id,  # type: ignore[attr-defined]
                as_utc(r.created_at), as_utc(r.done_at), r.done_by,  # type: ignore[attr-defined,arg-type]
                as_utc(r.edited_at), r.edited_by)  # type: ignore[attr-defined,arg-type]


def _ticket(row: object) -> Ticket:
    r = row
    return Ticket(r.item_id, r.tracker, r.project, r.number, r.url, r.state)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------ reports


def open_report(conn: Connection, *, series: str, meeting_key: str, title: str,
                starts_at: datetime, ends_at: datetime, notice_key: str,
                now: datetime) -> Report:
    """The meeting's report, made now unless it exists (a retried occurrence)."""
    conn.execute(_insert(conn, reports).values(
        series=series, meeting_key=meeting_key, title=title[:300], starts_at=starts_at,
        ends_at=ends_at, notice_key=notice_key, state=OPEN, opened_at=now,
    ).on_conflict_do_nothing(index_elements=["meeting_key"]))
    found = report_by(conn, meeting_key=meeting_key)
    assert found is not None
    return found


def report_by(conn: Connection, *, meeting_key: str | None = None,
              notice_key: str | None = None, report_id: int | None = None) -> Report | None:
    query = select(reports)
    if meeting_key is not None:
        query = query.where(reports.c.meeting_key == meeting_key)
    if notice_key is not None:
        query = query.where(reports.c.notice_key == notice_key)
    if report_id is not None:
        query = query.where(reports.c.id == report_id)
    row = conn.execute(query.limit(1)).first()
    return None if row is None else _report(row)


def reports_of(conn: Connection, series: str, *, start: datetime | None = None,
               end: datetime | None = None, limit: int = 1) -> list[Report]:
    """The series' reports of meetings starting in [start, end), newest first."""
    query = select(reports).where(reports.c.series == series)
    if start is not None:
        query = query.where(reports.c.starts_at >= start)
    if end is not None:
        query = query.where(reports.c.starts_at < end)
    rows = conn.execute(query.order_by(reports.c.starts_at.desc(), reports.c.id.desc())
                        .limit(limit))
    return [_report(row) for row in rows]


def close_report(conn: Connection, report_id: int, by: str, now: datetime) -> bool:
    """Open -> closed; False when it was closed already (by someone else, or auto-close)."""
    done = conn.execute(update(reports).where(reports.c.id == report_id,
                                              reports.c.state == OPEN)
                        .values(state=CLOSED, closed_at=now, closed_by=by[:100]))
    return bool(done.rowcount)


def set_rendered(conn: Connection, report_id: int, text: str) -> None:
    conn.execute(update(reports).where(reports.c.id == report_id).values(rendered=text))


# ------------------------------------------------------------------------ items


def add_item(conn: Connection, report_id: int, kind: str, author: str, text: str,
             now: datetime, owner: str | None = None) -> Item:
    """Record an item under the report's current topic (the last one not undone)."""
    topic = conn.execute(select(items.c.id).where(
        items.c.report_id == report_id, items.c.kind == "topic", items.c.removed_at.is_(None))
        .order_by(items.c.id.desc()).limit(1)).scalar()
    new_id = conn.execute(items.insert().values(
        report_id=report_id, kind=kind, author=author[:100], owner=owner and owner[:100],
        text=text, topic_id=None if kind == "topic" else topic, created_at=now,
    )).inserted_primary_key[0]  # type: ignore[index]
    found = item(conn, int(new_id))
    assert found is not None
    return found


def undo(conn: Connection, report_id: int, author: str, now: datetime) -> Item | None:
    """Remove ``author``'s last marker item of the report (not plain discussion)."""
    row = conn.execute(select(items).where(
        items.c.report_id == report_id, items.c.author == author,
        items.c.kind.in_(MARKER_KINDS), items.c.removed_at.is_(None))
        .order_by(items.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    conn.execute(update(items).where(items.c.id == row.id).values(removed_at=now))
    return _item(row)


def item(conn: Connection, item_id: int) -> Item | None:
    row = conn.execute(select(items).where(items.c.id == item_id,
                                           items.c.removed_at.is_(None))).first()
    return None if row is None else _item(row)


def items_of(conn: Connection, report_id: int) -> list[Item]:
    """The report's items in the order they were said (undone ones left out)."""
    rows = conn.execute(select(items).where(items.c.report_id == report_id,
                                            items.c.removed_at.is_(None))
                        .order_by(items.c.id))
    return [_item(row) for row in rows]


def mark_done(conn: Connection, item_id: int, by: str, now: datetime) -> Item | None:
    """An action item is done (None: no such action item); done twice keeps the first."""
    found = item(conn, item_id)
    if found is None or found.kind != "action":
        return None
    conn.execute(update(items).where(items.c.id == item_id, items.c.done_at.is_(None))
                 .values(done_at=now, done_by=by[:100]))
    return item(conn, item_id)


def edit_item(conn: Connection, item_id: int, by: str, now: datetime, *, text: str | None,
              owner: str | None = None) -> Item | None:
    """Replace a marker item's text (``None``: keep it) and, for an action item, its owner
    (``None``: keep it); the text it had is kept in ``previous_text``. None: no such item
    (undone ones and plain discussion included)."""
    found = item(conn, item_id)
    if found is None or found.kind not in MARKER_KINDS:
        return None
    values: dict[str, object] = {"edited_at": now, "edited_by": by[:100],
                                 "previous_text": found.text}
    if text is not None:
        values["text"] = text
    if owner is not None and found.kind == "action":
        values["owner"] = owner[:100]
    conn.execute(update(items).where(items.c.id == item_id).values(**values))
    return item(conn, item_id)


def open_actions(conn: Connection, series: str, limit: int) -> list[tuple[Item, Ticket | None]]:
    """The series' action items still open (not done, no closed ticket), oldest first."""
    query = (select(items, tickets.c.tracker, tickets.c.project, tickets.c.number,
                    tickets.c.url, tickets.c.state.label("ticket_state"))
             .join(reports, reports.c.id == items.c.report_id)
             .outerjoin(tickets, tickets.c.item_id == items.c.id)
             .where(reports.c.series == series, items.c.kind == "action",
                    items.c.removed_at.is_(None), items.c.done_at.is_(None))
             .where((tickets.c.state.is_(None)) | (tickets.c.state != CLOSED))
             .order_by(items.c.id).limit(limit))
    out = []
    for row in conn.execute(query):
        ticket = None if row.tracker is None else Ticket(
            row.id, row.tracker, row.project, row.number, row.url, row.ticket_state)
        out.append((_item(row), ticket))
    return out


# ------------------------------------------------------------------------ tickets


def ticket_of(conn: Connection, item_id: int) -> Ticket | None:
    row = conn.execute(select(tickets).where(tickets.c.item_id == item_id)).first()
    return None if row is None else _ticket(row)


def tickets_of(conn: Connection, report_id: int) -> dict[int, Ticket]:
    rows = conn.execute(select(tickets).join(items, items.c.id == tickets.c.item_id)
                        .where(items.c.report_id == report_id))
    return {row.item_id: _ticket(row) for row in rows}


def record_ticket(conn: Connection, ticket: Ticket, now: datetime) -> Ticket:
    """Map the item to its issue unless it is mapped already; the mapping that holds."""
    conn.execute(_insert(conn, tickets).values(
        item_id=ticket.item_id, tracker=ticket.tracker, project=ticket.project,
        number=ticket.number, url=ticket.url, state=ticket.state, created_at=now,
        checked_at=now).on_conflict_do_nothing(index_elements=["item_id"]))
    held = ticket_of(conn, ticket.item_id)
    assert held is not None
    return held


def set_ticket_state(conn: Connection, item_id: int, state: str, now: datetime) -> None:
    conn.execute(update(tickets).where(tickets.c.item_id == item_id)
                 .values(state=state, checked_at=now))


# ------------------------------------------------------------------------ feeds


@dataclass(frozen=True, slots=True)
class Feed:
    series: str
    body: str | None
    fetched_at: datetime | None
    error: str | None
    tried_at: datetime | None


def feed(conn: Connection, series: str) -> Feed | None:
    row = conn.execute(select(feeds).where(feeds.c.series == series)).first()
    if row is None:
        return None
    return Feed(row.series, row.body, as_utc(row.fetched_at), row.error, as_utc(row.tried_at))


def store_feed(conn: Connection, series: str, now: datetime, *, body: str | None = None,
               error: str | None = None) -> None:
    """A good fetch (``body``) replaces the copy; a failed one (``error``) keeps it."""
    values: dict[str, object] = {"tried_at": now, "error": error and error[:2000]}
    if body is not None:
        values.update(body=body, fetched_at=now)
    done = conn.execute(update(feeds).where(feeds.c.series == series).values(**values))
    if not done.rowcount:
        conn.execute(_insert(conn, feeds).values(series=series, **values)
                     .on_conflict_do_nothing(index_elements=["series"]))
