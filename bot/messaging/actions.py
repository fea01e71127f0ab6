"""Buttons that run commands: the command line is stored here, the button carries only an id.

A handler or a notice puts ``Action.run("Analyze", "condor analyze 1.22")`` on a reply; before
the reply is shown, :meth:`ActionStore.store` gives each such button an opaque id and keeps the
command line in the database, so a click (from any replica, after a restart) can be traced back
to exactly what was offered and nothing else: the button's payload is never parsed as a
command. :meth:`bot.core.Bot.click` then runs the line as the clicker through ``Bot.handle``.
Link buttons (``Action.link``) and decision buttons are not stored: they run nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Connection, select

from bot import db
from bot.reply import Action, Reply

ID_PATTERN = r"a[0-9a-f]{20}"  # what a command button's id looks like (checked before lookup)
DEFAULT_TTL = timedelta(days=30)  # a notice's buttons keep working for this long


class ActionStore:
    def __init__(self, database: db.Database, ttl: timedelta = DEFAULT_TTL) -> None:
        self.database = database
        self.ttl = ttl

    async def store(self, reply: Reply) -> Reply:
        """``reply`` with an id on every command button that has none (stored first)."""
        if not any(a.command and not a.action_id for a in reply.actions):
            return reply
        stored = [replace(a, action_id=new_id()) if a.command and not a.action_id else a
                  for a in reply.actions]
        rows = [{"id": a.action_id, "command": a.command, "label": a.label[:100]}
                for a, old in zip(stored, reply.actions, strict=True) if a is not old]
        await self.database.run(_insert, rows, self.ttl)
        return replace(reply, actions=stored)

    async def get(self, action_id: str) -> Action | None:
        """The stored button (label and command), or None if unknown or expired."""
        return await self.database.run(_get, action_id)


def new_id() -> str:
    return "a" + secrets.token_hex(10)


def _insert(conn: Connection, rows: list[dict[str, str | None]], ttl: timedelta) -> None:
    now = db.utcnow()
    for row in rows:
        conn.execute(db.actions.insert().values(**row, created_at=now, expires_at=now + ttl))


def _get(conn: Connection, action_id: str) -> Action | None:
    row = conn.execute(select(db.actions).where(db.actions.c.id == action_id)).first()
    if row is None:
        return None
    expires = db.as_utc(row.expires_at)
    if expires is not None and expires <= db.utcnow():
        return None
    return Action(row.label, command=row.command, action_id=row.id)
