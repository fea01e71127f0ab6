"""The outbox tables (``notices``, ``notice_deliveries``): every query the notices make.

Plain functions of a connection, run on the database executor (``Database.run``). A delivery
row is one message to send: step 0 posts the notice in one channel of one platform, later
steps update that message or reply in its thread. Rows of one (platform, channel) are sent in
id order; a row is ``pending`` until it is ``sent`` or ``failed``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot import db
from bot.messaging.claims import _claim  # the claim primitive, inside our own transaction
from bot.messaging.port import MessageRef

PENDING, SENT, FAILED = "pending", "sent", "failed"
POST, UPDATE, THREAD = "post", "update", "thread"

D = db.notice_deliveries


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    notice_key: str
    step: int
    kind: str
    platform: str
    channel_id: str
    reply: str
    attempts: int
    next_at: datetime
    created_at: datetime
    status: str = PENDING
    message_id: str | None = None
    last_error: str | None = None

    @property
    def tag(self) -> str:
        """Stored on the message (``NOTICE_TAG``) so a restart can find it: key#step."""
        return f"{self.notice_key}#{self.step}"

    @property
    def channel(self) -> tuple[str, str]:
        return (self.platform, self.channel_id)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A delivery this process claimed, with what sending it needs."""

    row: Delivery
    attempt: int  # attempts made before this one: > 0 means "look before you post"
    mention: list[str]
    root_id: str | None  # step 0's message in this channel (updates and thread replies)
    root_status: str | None


def _row(r: object) -> Delivery:
    return Delivery(r.id, r.notice_key, r.step, r.kind, r.platform, r.channel_id,  # type: ignore[attr-defined]
                    r.reply, r.attempts, db.as_utc(r.next_at), db.as_utc(r.created_at),  # type: ignore[attr-defined]
                    r.status, r.message_id, r.last_error)  # type: ignore[attr-defined]


def _insert(conn: Connection) -> object:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def insert_notice(conn: Connection, key: str, targets: list[str], mention: list[str],
                  owner: str | None, reply: str,
                  channels: Sequence[tuple[str, str]]) -> list[MessageRef] | None:
    """Store a new notice and its step-0 rows; None when it is new, else (the key exists:
    a notice posts once, ever) the references of the first one's messages sent so far."""
    now = db.utcnow()
    created = conn.execute(
        _insert(conn).insert(db.notices).values(  # type: ignore[attr-defined]
            key=key, created_at=now, targets=json.dumps(targets), mention=json.dumps(mention),
            owner=owner).on_conflict_do_nothing(index_elements=["key"])
        .returning(db.notices.c.key)).first()
    if created is None:
        return refs(conn, key)
    if channels:
        conn.execute(D.insert(), [
            {"notice_key": key, "step": 0, "kind": POST, "platform": platform,
             "channel_id": channel, "reply": reply, "status": PENDING, "attempts": 0,
             "next_at": now, "created_at": now} for platform, channel in channels])
    return None


def refs(conn: Connection, key: str) -> list[MessageRef]:
    rows = conn.execute(select(D.c.platform, D.c.channel_id, D.c.message_id)
                        .where(D.c.notice_key == key, D.c.step == 0, D.c.status == SENT)
                        .order_by(D.c.id))
    return [MessageRef(r.platform, r.channel_id, r.message_id) for r in rows]


def step_zero_done(conn: Connection, key: str) -> bool | None:
    """None: no such notice; else whether none of its posts is still pending."""
    if conn.execute(select(db.notices.c.key).where(db.notices.c.key == key)).first() is None:
        return None
    left = conn.execute(select(func.count()).select_from(D).where(
        D.c.notice_key == key, D.c.step == 0, D.c.status == PENDING)).scalar()
    return not left


def add_step(conn: Connection, key: str, kind: str, reply: str) -> list[tuple[str, str]]:
    """Queue an update or thread reply in every channel the notice was posted to; returns
    those (platform, channel)s. KeyError for an unknown notice."""
    if conn.execute(select(db.notices.c.key).where(db.notices.c.key == key)).first() is None:
        raise KeyError(key)
    step = (conn.execute(select(func.max(D.c.step)).where(D.c.notice_key == key)).scalar()
            or 0) + 1
    now = db.utcnow()
    channels = conn.execute(select(D.c.platform, D.c.channel_id).where(
        D.c.notice_key == key, D.c.step == 0).order_by(D.c.id)).all()
    if channels:
        conn.execute(D.insert(), [
            {"notice_key": key, "step": step, "kind": kind, "platform": platform,
             "channel_id": channel, "reply": reply, "status": PENDING, "attempts": 0,
             "next_at": now, "created_at": now} for platform, channel in channels])
    return [(platform, channel) for platform, channel in channels]


def heads(conn: Connection, platforms: Sequence[str]) -> list[Delivery]:
    """The oldest pending row of every channel on ``platforms`` (due or not)."""
    if not platforms:
        return []
    first = (select(func.min(D.c.id)).where(D.c.status == PENDING, D.c.platform.in_(platforms))
             .group_by(D.c.platform, D.c.channel_id))
    return [_row(r) for r in conn.execute(select(D).where(D.c.id.in_(first)).order_by(D.c.id))]


def begin(conn: Connection, platform: str, channel_id: str, owner: str, lease: timedelta,
          limit: int) -> list[Attempt] | None:
    """Claim the channel's next due rows, in order (up to ``limit``), one claim per attempt
    (``notice:<id>:<attempt>``, replica-safe), and count each attempt before anything is
    sent: a crash from here on leaves ``attempts > 0``, so the next try looks for the message
    first. [] when nothing is due; None when another process holds the channel's head."""
    now = db.utcnow()
    rows = conn.execute(select(D).where(D.c.status == PENDING, D.c.platform == platform,
                                        D.c.channel_id == channel_id)
                        .order_by(D.c.id).limit(limit)).all()
    attempts: list[Attempt] = []
    mention_of: dict[str, list[str]] = {}
    for raw in rows:
        row = _row(raw)
        if row.next_at > now or not _claim(conn, f"notice:{row.id}:{row.attempts}", owner,
                                           lease):
            break  # order: nothing after a row that must wait
        conn.execute(update(D).where(D.c.id == row.id)
                     .values(attempts=row.attempts + 1, next_at=now + lease))
        if row.notice_key not in mention_of:
            mention_of[row.notice_key] = json.loads(conn.execute(
                select(db.notices.c.mention).where(db.notices.c.key == row.notice_key))
                .scalar() or "[]")
        root = None
        if row.step > 0:
            root = conn.execute(select(D.c.message_id, D.c.status).where(
                D.c.notice_key == row.notice_key, D.c.step == 0, D.c.platform == platform,
                D.c.channel_id == channel_id)).first()
        attempts.append(Attempt(row, row.attempts, mention_of[row.notice_key],
                                root.message_id if root else None,
                                root.status if root else None))
    if not attempts and rows and _row(rows[0]).next_at <= now:
        return None
    return attempts


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one attempt: ``sent`` (message_id), ``failed`` (error), ``retry``
    (error, next_at) or ``untried`` (claimed behind a row that must wait: due again with it)."""

    row: Delivery
    status: str
    message_id: str | None = None
    error: str | None = None
    next_at: datetime | None = None


def record(conn: Connection, results: Sequence[Result]) -> None:
    now = db.utcnow()
    for r in results:
        if r.status == SENT:
            values = {"status": SENT, "message_id": r.message_id, "sent_at": now,
                      "last_error": None}
        elif r.status == FAILED:
            values = {"status": FAILED, "last_error": (r.error or "")[:1000]}
        else:
            values = {"next_at": r.next_at or now}
            if r.error:
                values["last_error"] = r.error[:1000]
        conn.execute(update(D).where(D.c.id == r.row.id).values(**values))


def unfinished(conn: Connection, limit: int) -> list[Delivery]:
    """Pending and failed rows, oldest first (``notices pending``)."""
    rows = conn.execute(select(D).where(D.c.status.in_((PENDING, FAILED)))
                        .order_by(D.c.status.desc(), D.c.id).limit(limit))
    return [_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int  # pending rows
    oldest: datetime | None  # creation time of the oldest pending row
    failed: int


def stats(conn: Connection) -> OutboxStats:
    pending = conn.execute(select(func.count(), func.min(D.c.created_at))
                           .where(D.c.status == PENDING)).first()
    failed = conn.execute(select(func.count()).select_from(D)
                          .where(and_(D.c.status == FAILED))).scalar()
    depth, oldest = (pending[0], pending[1]) if pending is not None else (0, None)
    return OutboxStats(depth or 0, db.as_utc(oldest), failed or 0)
