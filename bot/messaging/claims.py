"""Replica-safe claims: the one way two bot processes on one database avoid doing work twice.

``await claims.claim(key, ttl)`` inserts ``key`` (``INSERT ... ON CONFLICT DO NOTHING`` on
SQLite and PostgreSQL alike): True for exactly one caller, in whichever process. A claim lasts
``ttl``; after that the key may be claimed again (a crashed owner's lease ran out, or a Slack
retry arriving hours later is a new delivery). Keys name the work:

- ``inbound:slack:<envelope or event id>``, ``inbound:mattermost:<post id>``: a delivery, claimed
  before the command it carries runs;
- ``job:<name>:<scheduled instant>``: one run of a periodic job;
- ``notice:<delivery id>:<attempt>``: one attempt to send a notice delivery.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy import Connection, delete, update
from sqlalchemy.dialects import postgresql, sqlite

from bot import db

MAX_KEY = 300


def process_owner() -> str:
    """Who holds a claim: ``host:pid:random`` (the random part survives pid reuse)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


class Claims:
    def __init__(self, database: db.Database, owner: str | None = None) -> None:
        self.database = database
        self.owner = owner or process_owner()

    async def claim(self, key: str, ttl: timedelta) -> bool:
        """Take ``key`` for ``ttl``; False when someone holds it (or held it and it has not
        expired yet). Never raises for a taken key."""
        return await self.database.run(_claim, _key(key), self.owner, ttl)

    def claim_sync(self, key: str, ttl: timedelta) -> bool:
        """:meth:`claim` for code already on a database thread."""
        return self.database.call(_claim, _key(key), self.owner, ttl)

    async def release(self, key: str) -> None:
        """Give ``key`` back early (only if this process holds it): the work failed before it
        did anything, and another try (here or in another replica) may claim it."""
        await self.database.run(_release, _key(key), self.owner)

    async def sweep(self) -> int:
        """Forget claims that expired more than a day ago (housekeeping); returns how many."""
        return await self.database.run(_sweep)


def _key(key: str) -> str:
    if not key:
        raise ValueError("a claim needs a key")
    # Keys are built from platform ids; an overlong one is cut but stays unique enough by
    # keeping its end (where the ids are).
    return key if len(key) <= MAX_KEY else key[:100] + "..." + key[-(MAX_KEY - 103):]


def _claim(conn: Connection, key: str, owner: str, ttl: timedelta) -> bool:
    now = db.utcnow()
    values = {"key": key, "owner": owner, "claimed_at": now, "expires_at": now + ttl}
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # RETURNING, not rowcount: with RETURNING in play (PostgreSQL) rowcount is not reliable.
    inserted = conn.execute(dialect.insert(db.claims).values(**values)
                            .on_conflict_do_nothing(index_elements=["key"])
                            .returning(db.claims.c.key)).first()
    if inserted is not None:
        return True
    # Taken: ours only if the holder's lease ran out (one conditional UPDATE decides the race).
    taken_over = conn.execute(update(db.claims).where(db.claims.c.key == key,
                                                      db.claims.c.expires_at <= now)
                              .values(**values))
    return taken_over.rowcount == 1


def _release(conn: Connection, key: str, owner: str) -> None:
    conn.execute(delete(db.claims).where(db.claims.c.key == key, db.claims.c.owner == owner))


def _sweep(conn: Connection) -> int:
    cutoff = db.utcnow() - timedelta(days=1)
    return conn.execute(delete(db.claims).where(db.claims.c.expires_at < cutoff)).rowcount
