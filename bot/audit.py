"""The audit trail: every invocation and every decision, with secrets redacted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, select, update

from bot import db
from bot.commands import CommandSpec
from bot.identity import Caller
from bot.secrets import MASK, masker


class AuditDecision(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    INVALID = "invalid"  # the line could not be parsed
    CONFIRMATION_REQUESTED = "confirmation requested"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    APPROVAL_REQUESTED = "approval requested"
    APPROVED = "approved"
    DENIED_BY_APPROVER = "denied by approver"
    EXPIRED = "expired"


class AuditOutcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    RUNNING = "running"


def redact_arguments(spec: CommandSpec | None, args: dict[str, Any] | None, text: str) -> str:
    """Arguments as JSON with secret slots replaced; registered secrets masked anywhere."""
    if spec is None or args is None:
        return masker.mask(text)
    secret = {s.name.replace("-", "_") for s in (*spec.args, *spec.options) if s.secret}
    shown = {k: (MASK if k in secret and v not in (None, False) else v) for k, v in args.items()}
    return masker.mask(json.dumps(shown, default=str, sort_keys=True))


@dataclass(slots=True)
class AuditEntry:
    id: int
    ts: datetime
    person: str | None
    platform: str
    platform_user: str
    channel: str | None
    command: str | None
    arguments: str
    decision: str
    outcome: str | None
    duration_ms: float | None
    approver: str | None
    request_id: str | None
    detail: str | None


class AuditLog:
    def __init__(self, database: db.Database) -> None:
        self.database = database

    @staticmethod
    def _row(
        caller: Caller,
        command: str | None,
        arguments: str,
        decision: AuditDecision,
        outcome: AuditOutcome | None = None,
        duration_ms: float | None = None,
        approver: str | None = None,
        request_id: str | None = None,
        detail: str | None = None,
        person: str | None = None,
    ) -> dict[str, Any]:
        return {
            "ts": db.utcnow(),
            "person": person or (caller.person.key if caller.person else None),
            "platform": caller.platform,
            "platform_user": caller.user_id,
            "channel": caller.channel_alias or caller.channel_id,
            "command": command,
            "arguments": masker.mask(arguments),
            "decision": str(decision),
            "outcome": str(outcome) if outcome else None,
            "duration_ms": duration_ms,
            "approver": approver,
            "request_id": request_id,
            "detail": masker.mask(detail) if detail else None,
        }

    async def record(self, caller: Caller, command: str | None, arguments: str,
                     decision: AuditDecision, **extra: Any) -> int:
        row = self._row(caller, command, arguments, decision, **extra)
        return await self.database.run(_insert, row)

    async def finish(self, entry_id: int, outcome: AuditOutcome, duration_ms: float,
                     detail: str | None = None) -> None:
        values = {"outcome": str(outcome), "duration_ms": duration_ms,
                  "detail": masker.mask(detail) if detail else None}
        await self.database.run(_update, entry_id, values)

    async def query(
        self,
        *,
        since: timedelta | None = None,
        who: str | None = None,
        command_glob: str | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        return await self.database.run(_query, since, who, command_glob, limit)


def _insert(conn: Connection, row: dict[str, Any]) -> int:
    return int(conn.execute(db.audit.insert().values(**row)).inserted_primary_key[0])


def _update(conn: Connection, entry_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(db.audit).where(db.audit.c.id == entry_id).values(**values))


def _query(conn: Connection, since: timedelta | None, who: str | None,
           command_glob: str | None, limit: int) -> list[AuditEntry]:
    stmt = select(db.audit).order_by(db.audit.c.id.desc())
    if since is not None:
        stmt = stmt.where(db.audit.c.ts >= db.utcnow() - since)
    if who:
        stmt = stmt.where((db.audit.c.person == who) | (db.audit.c.platform_user == who)
                          | (db.audit.c.approver == who))
    entries = []
    # Globs are matched here rather than in SQL so the semantics equal the permission globs.
    for row in conn.execute(stmt.limit(limit if not command_glob else limit * 50)):
        if command_glob and not fnmatchcase(row.command or "", command_glob):
            continue
        values = row._asdict()
        values["ts"] = db.as_utc(values["ts"])
        entries.append(AuditEntry(**values))
        if len(entries) >= limit:
            break
    return entries
