"""Pending confirmations and approvals, kept in the database so they survive a restart.

A decision *claims* a request with one conditional UPDATE (``WHERE status = 'pending' AND
expires_at > now``): of two clicks, two replicas or a click and a typed ``approve``, exactly one
wins, so a command is never run twice.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot import db
from bot.commands import Plan
from bot.identity import Caller
from bot.messaging.port import MessageRef

_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: ids are read aloud and typed


class Kind(StrEnum):
    CONFIRM = "confirm"
    APPROVAL = "approval"


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # claimed: confirmed or approved, the command is running
    DONE = "done"  # ran; ``outcome`` says how (ok, error, timeout)
    # Decided but never run: the run-time check stopped it; ``outcome`` says which (one of
    # NotRun). Kept apart from DONE so deciding it again never claims it ran.
    NOT_RUN = "not_run"
    CANCELLED = "cancelled"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(slots=True)
class PendingRequest:
    id: str
    kind: Kind
    status: Status
    command: str
    text: str
    platform: str
    platform_user: str
    person: str
    channel_id: str | None
    channel_alias: str | None
    thread_id: str | None
    approval_role: str | None
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    outcome: str | None
    plan: Plan | None = None  # what the requester was shown (commands declared with plan=)
    fingerprint: str | None = None  # what is asked, however spelt (fingerprint()); migration 6

    @property
    def expired(self) -> bool:
        return self.status == Status.PENDING and self.expires_at <= db.utcnow()


def fingerprint(canonical: str) -> str:
    """The stored key of a request: one pending request per person and fingerprint."""
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(6))


def _load(row: object) -> PendingRequest:
    values = row._asdict()  # type: ignore[attr-defined]
    for key in ("created_at", "expires_at", "decided_at"):
        values[key] = db.as_utc(values[key])
    values["kind"], values["status"] = Kind(values["kind"]), Status(values["status"])
    plan = values.pop("plan", None)
    return PendingRequest(**values, plan=Plan.from_json(json.loads(plan)) if plan else None)


class NotRun(StrEnum):
    """Why a confirmed or approved request was not run (``requests.outcome``)."""

    INVALID = "invalid"  # no longer a valid command line
    DENIED = "denied"  # the requester lost the permission meanwhile
    REFUSED = "refused"  # the plan step refused (the jobs are gone, ...)
    CHANGED = "changed"  # it would affect more than was confirmed: asked again


class DuplicateRequest(Exception):
    """The same person already has the same request waiting (``existing``). It may be overdue
    but not yet swept (``existing.expired``): sweep, then ask again."""

    def __init__(self, existing: PendingRequest) -> None:
        super().__init__(existing.id)
        self.existing = existing


class RequestStore:
    def __init__(self, database: db.Database) -> None:
        self.database = database

    async def create(self, kind: Kind, *, command: str, text: str, caller: Caller,
                     ttl: timedelta, thread_id: str | None = None,
                     approval_role: str | None = None, plan: Plan | None = None,
                     canonical: str | None = None) -> PendingRequest:
        """A new pending request; :class:`DuplicateRequest` when the caller already has one
        for the same ``canonical`` request (``Parsed.canonical``; the text when not given).
        A unique index on (person, fingerprint) of pending rows makes it atomic."""
        assert caller.person is not None, "only configured people have pending requests"
        now = db.utcnow()
        values = {
            "kind": str(kind), "status": str(Status.PENDING), "command": command, "text": text,
            "platform": caller.platform, "platform_user": caller.user_id,
            "person": caller.person.key, "channel_id": caller.channel_id,
            "channel_alias": caller.channel_alias, "thread_id": thread_id,
            "approval_role": approval_role, "created_at": now, "expires_at": now + ttl,
            "plan": json.dumps(plan.to_json()) if plan is not None else None,
            "fingerprint": fingerprint(canonical if canonical is not None else f"text:{text}"),
        }
        return await self.database.run(_create, values)

    async def get(self, request_id: str) -> PendingRequest | None:
        return await self.database.run(_get, request_id)

    async def claim(self, request_id: str, *, kind: Kind, to: Status, by: str,
                    reason: str | None = None) -> PendingRequest | None:
        """Atomically move a live pending request of ``kind`` to ``to``; None if it was not."""
        return await self.database.run(_claim, request_id, kind, to, by, reason)

    async def reopen_for_approval(self, request_id: str, approval_role: str,
                                  ttl: timedelta) -> PendingRequest | None:
        """A confirmed destructive command that also needs approval waits again."""
        return await self.database.run(_reopen, request_id, approval_role, ttl)

    async def finish(self, request_id: str, outcome: str) -> None:
        """It ran; ``outcome`` is how (ok, error, timeout)."""
        await self.database.run(_finish, request_id, Status.DONE, outcome)

    async def not_run(self, request_id: str, why: NotRun) -> None:
        """It was decided, but the run-time checks stopped it: nothing ran."""
        await self.database.run(_finish, request_id, Status.NOT_RUN, str(why))

    async def expire_due(self) -> list[PendingRequest]:
        return await self.database.run(_expire_due)

    async def list_pending(self) -> list[PendingRequest]:
        return await self.database.run(_list_pending)

    async def remember_message(self, request_id: str, message: MessageRef) -> None:
        """An adapter posted ``message`` showing the request: update it when it is decided."""
        await self.database.run(_remember_message, request_id, message)

    async def messages_of(self, request_id: str) -> list[MessageRef]:
        return await self.database.run(_messages_of, request_id)


def _create(conn: Connection, values: dict[str, object]) -> PendingRequest:
    # The SELECT gives the usual case its answer; the unique index decides a race.
    _refuse_duplicate(conn, values)
    for _ in range(10):
        try:
            with conn.begin_nested():
                request_id = new_id()
                conn.execute(db.requests.insert().values(id=request_id, **values))
            return _get(conn, request_id)  # type: ignore[return-value]
        except IntegrityError:
            # Another thread or replica made the same request a moment ago (the unique index),
            # or the id was drawn twice: the first raises, the second draws again.
            _refuse_duplicate(conn, values)
    raise RuntimeError("could not allocate a request id")


def _refuse_duplicate(conn: Connection, values: dict[str, object]) -> None:
    """Raise :class:`DuplicateRequest` for a pending row of the same person and request,
    overdue or not (an overdue one still holds the unique index until it is swept)."""
    same = or_(db.requests.c.fingerprint == values["fingerprint"],
               # requests made before migration 6 have no fingerprint
               and_(db.requests.c.fingerprint.is_(None), db.requests.c.text == values["text"]))
    row = conn.execute(select(db.requests).where(
        db.requests.c.person == values["person"], same,
        db.requests.c.status == str(Status.PENDING)).limit(1)).first()
    if row is not None:
        raise DuplicateRequest(_load(row))


def _get(conn: Connection, request_id: str) -> PendingRequest | None:
    row = conn.execute(select(db.requests).where(db.requests.c.id == request_id)).first()
    return _load(row) if row else None


def _claim(conn: Connection, request_id: str, kind: Kind, to: Status, by: str,
           reason: str | None) -> PendingRequest | None:
    now = db.utcnow()
    result = conn.execute(
        update(db.requests)
        .where(db.requests.c.id == request_id, db.requests.c.kind == str(kind),
               db.requests.c.status == str(Status.PENDING), db.requests.c.expires_at > now)
        .values(status=str(to), decided_by=by, decided_at=now, reason=reason)
    )
    return _get(conn, request_id) if result.rowcount == 1 else None


def _reopen(conn: Connection, request_id: str, approval_role: str,
            ttl: timedelta) -> PendingRequest | None:
    now = db.utcnow()
    conn.execute(
        update(db.requests).where(db.requests.c.id == request_id).values(
            kind=str(Kind.APPROVAL), status=str(Status.PENDING), approval_role=approval_role,
            expires_at=now + ttl, decided_by=None, decided_at=None)
    )
    return _get(conn, request_id)


def _finish(conn: Connection, request_id: str, status: Status, outcome: str) -> None:
    conn.execute(update(db.requests).where(db.requests.c.id == request_id)
                 .values(status=str(status), outcome=outcome))


def _expire_due(conn: Connection) -> list[PendingRequest]:
    now = db.utcnow()
    rows = conn.execute(select(db.requests).where(
        db.requests.c.status == str(Status.PENDING), db.requests.c.expires_at <= now)).all()
    expired = []
    for row in rows:
        result = conn.execute(update(db.requests).where(
            db.requests.c.id == row.id, db.requests.c.status == str(Status.PENDING)
        ).values(status=str(Status.EXPIRED)))
        if result.rowcount == 1:  # another replica may have expired it first
            expired.append(_load(row))
    return expired


def _list_pending(conn: Connection) -> list[PendingRequest]:
    rows = conn.execute(select(db.requests).where(
        db.requests.c.status == str(Status.PENDING)).order_by(db.requests.c.created_at))
    return [_load(r) for r in rows]


def _remember_message(conn: Connection, request_id: str, message: MessageRef) -> None:
    conn.execute(db.request_messages.insert().values(
        request_id=request_id, platform=message.platform, channel_id=message.channel_id,
        message_id=message.message_id, created_at=db.utcnow()))


def _messages_of(conn: Connection, request_id: str) -> list[MessageRef]:
    rows = conn.execute(select(db.request_messages).where(
        db.request_messages.c.request_id == request_id).order_by(db.request_messages.c.id))
    return [MessageRef(r.platform, r.channel_id, r.message_id) for r in rows]
