"""Replica-safe claims: the one way two bot processes on one database avoid doing work twice.

``await claims.claim(key, ttl)`` inserts ``key``, or takes it over once its holder's lease ran
out, in one statement (``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`` on SQLite and
PostgreSQL alike): True for exactly one caller, in whichever process. A claim lasts ``ttl``;
after that the key may be claimed again (a crashed owner's lease ran out, or a Slack retry
arriving hours later is a new delivery). Keys name the work:

- ``inbound:slack:<envelope or event id>``, ``inbound:mattermost:<post id>``: a delivery, claimed
  before the command it carries runs;
- ``job:<name>:<scheduled instant>``: one run of a periodic job;
- ``notices:<platform>:<channel id>``: the lease of the one process sending a channel's notices
  (renewed by its holder while it sends, released when the channel has nothing due).

Inside a transaction of its own (a batch of work claimed together with what it changes),
code calls :func:`claim_in` / :func:`release_in` on that connection instead.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy import Connection, Insert, bindparam, delete, or_
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
        return await self.database.run(claim_in, _key(key), self.owner, ttl)

    def claim_sync(self, key: str, ttl: timedelta) -> bool:
        """:meth:`claim` for code already on a database thread."""
        return self.database.call(claim_in, _key(key), self.owner, ttl)

    async def release(self, key: str) -> None:
        """Give ``key`` back early (only if this process holds it): the work failed before it
        did anything, and another try (here or in another replica) may claim it."""
        await self.database.run(release_in, _key(key), self.owner)

    async def sweep(self) -> int:
        """Forget claims that expired more than a day ago (housekeeping); returns how many."""
        return await self.database.run(_sweep)


def _key(key: str) -> str:
    if not key:
        raise ValueError("a claim needs a key")
    # Keys are built from platform ids; an overlong one is cut but stays unique enough by
    # keeping its end (where the ids are).
    return key if len(key) <= MAX_KEY else key[:100] + "..." + key[-(MAX_KEY - 103):]


def _claim_statement(dialect: object, renew: bool) -> Insert:
    insert = dialect.insert(db.claims).values(  # type: ignore[attr-defined]
        key=bindparam("c_key"), owner=bindparam("c_owner"), claimed_at=bindparam("c_now"),
        expires_at=bindparam("c_until"))
    # In DO UPDATE's WHERE the table's columns are the row already there: taken over when
    # its lease ran out (or, renewing, when it is ours).
    free = db.claims.c.expires_at <= bindparam("c_now")
    # RETURNING, not rowcount: with RETURNING in play (PostgreSQL) rowcount is not reliable;
    # a conflict whose WHERE is false returns no row.
    return insert.on_conflict_do_update(
        index_elements=["key"], set_={"owner": insert.excluded.owner,
                                      "claimed_at": insert.excluded.claimed_at,
                                      "expires_at": insert.excluded.expires_at},
        where=or_(free, db.claims.c.owner == bindparam("c_owner")) if renew else free,
    ).returning(db.claims.c.key)


# Built once: building a statement costs more than running it.
_CLAIM = {(name, renew): _claim_statement(dialect, renew)
          for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
          for renew in (False, True)}
_RELEASE = delete(db.claims).where(db.claims.c.key == bindparam("key"),
                                   db.claims.c.owner == bindparam("owner"))


def claim_in(conn: Connection, key: str, owner: str, ttl: timedelta, *,
             renew: bool = False) -> bool:
    """Take ``key`` for ``ttl`` inside the caller's transaction: True when it was free or its
    lease had run out (and, with ``renew``, when ``owner`` holds it already: the lease is then
    extended). One statement, so the database decides a race: of two processes, one wins."""
    now = db.utcnow()
    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    return conn.execute(_CLAIM[dialect, renew], {
        "c_key": key, "c_owner": owner, "c_now": now, "c_until": now + ttl}).first() is not None


def release_in(conn: Connection, key: str, owner: str) -> None:
    """Give ``key`` back inside the caller's transaction (only if ``owner`` holds it)."""
    conn.execute(_RELEASE, {"key": key, "owner": owner})


def _sweep(conn: Connection) -> int:
    cutoff = db.utcnow() - timedelta(days=1)
    return conn.execute(delete(db.claims).where(db.claims.c.expires_at < cutoff)).rowcount
