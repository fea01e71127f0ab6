"""Replica-safe claims: the one way two bot processes on one database avoid doing work twice.

``await claims.claim(key, ttl)`` inserts ``key``, or takes it over once its holder's lease ran
out, in one statement (``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`` on SQLite and
PostgreSQL alike): True for exactly one caller, in whichever process. A claim lasts ``ttl``;
after that the key may be claimed again (a crashed owner's lease ran out, or a Slack retry
arriving hours later is a new delivery). Keys name the work:

- ``inbound:slack:<envelope or event id>``, ``inbound:mattermost:<post id>``: a delivery, claimed
  before the command it carries runs, for a short lease its holder renews while the command
  runs (:meth:`Claims.renew`); when it finishes, the row is marked done (:meth:`Claims.finish`:
  owner ``done:<owner>``) and then stays for the dedupe window. A replica that stood back takes
  over a lapsed lease that is not done (:meth:`Claims.take_over`; bot/messaging/inbound.py);
- ``job:<name>:<scheduled instant>``: one run of a periodic job;
- ``notices:<platform>:<channel id>``: the lease of the one process sending a channel's notices
  (renewed by its holder while it sends, released when the channel has nothing due).

Inside a transaction of its own (a batch of work claimed together with what it changes),
code calls :func:`claim_in` / :func:`release_in` on that connection instead.

What happens to claims is told to an optional :class:`ClaimObserver` (``Claims.observer``;
the bot's Metrics once ``/metrics`` is served): each inbound delivery's result, and each
*conflict*, a claim found held by another process or a held one lost to another, by its kind
(the key's first part: ``job``, ``notices``, ``alerts``, ``restart``, ``inbound``...).
:func:`claim_in` is called with an owner only (by the outbox and the alerts service, on a
database thread), so observers are found by owner. An inbound delivery found taken is no
conflict but a ``duplicate`` result (with several replicas most are).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import weakref
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from sqlalchemy import Connection, Insert, bindparam, case, delete, not_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot import db

MAX_KEY = 300
DONE = "done:"  # the owner of a finished inbound claim is ``done:<who finished it>``
# An inbound delivery's claim result (ClaimObserver.inbound_claim): run here; another replica
# or a retry has it; run here after its holder stopped; not run, the database not answering.
CLAIMED, DUPLICATE, TAKEN_OVER, FAILED = "claimed", "duplicate", "takeover", "error"
INBOUND_RESULTS = (CLAIMED, DUPLICATE, TAKEN_OVER, FAILED)
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,30}")  # keys are built by code: "<kind>:<...>"


class ClaimObserver(Protocol):
    """Told what happens to claims (the bot's Metrics); called on the event loop and on
    database threads alike, so it only counts."""

    def inbound_claim(self, platform: str, result: str) -> None: ...

    def claim_conflict(self, kind: str) -> None: ...


def claim_kind(key: str) -> str:
    """A key's kind, for counting: its first part (a bounded set, named by the code)."""
    head = key.split(":", 1)[0]
    return head if ":" in key and _KIND.fullmatch(head) else "other"


# owner -> its Claims, for claim_in's callers that pass only the owner (weak: bots come and go)
_BY_OWNER: weakref.WeakValueDictionary[str, Claims] = weakref.WeakValueDictionary()


def _conflict(owner: str, keys: Iterable[str]) -> None:
    claims = _BY_OWNER.get(owner)
    observer = claims.observer if claims is not None else None
    if observer is not None:
        for key in keys:
            observer.claim_conflict(claim_kind(key))


class Won(NamedTuple):
    """A delivery's claim won (:meth:`Claims.claim_delivery`)."""

    since: datetime  # when the delivery was first claimed
    taken_over: bool  # from a holder whose lease ran out before it finished


class ClaimState(NamedTuple):
    """A claim's row as read (:meth:`Claims.states`)."""

    owner: str
    claimed_at: datetime
    expires_at: datetime

    @property
    def done(self) -> bool:
        """Its work finished (the holder marked it): never to be taken over."""
        return self.owner.startswith(DONE)


def process_owner() -> str:
    """Who holds a claim: ``host:pid:random`` (the random part survives pid reuse)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


class Claims:
    def __init__(self, database: db.Database, owner: str | None = None,
                 observer: ClaimObserver | None = None) -> None:
        self.database = database
        self.owner = owner or process_owner()
        self.observer = observer

    @property
    def observer(self) -> ClaimObserver | None:
        return self._observer

    @observer.setter
    def observer(self, observer: ClaimObserver | None) -> None:
        self._observer = observer
        if observer is not None:
            _BY_OWNER[self.owner] = self
        elif _BY_OWNER.get(self.owner) is self:
            del _BY_OWNER[self.owner]

    async def claim(self, key: str, ttl: timedelta) -> bool:
        """Take ``key`` for ``ttl``; False when someone holds it (or held it and it has not
        expired yet). Never raises for a taken key."""
        return await self.database.run(claim_in, _key(key), self.owner, ttl)

    async def claim_delivery(self, key: str, ttl: timedelta) -> Won | ClaimState | None:
        """:meth:`claim` for an inbound delivery: won (and whether it was taken over from a
        holder that neither finished nor renewed it; a done claim whose window passed is a new
        delivery, not a takeover), or lost: then the row as it is now (done, or held), None if
        it cannot be seen yet. One statement when won, a read after it when lost."""
        return await self.database.run(_claim_delivery_in, _key(key), self.owner, ttl)

    def claim_sync(self, key: str, ttl: timedelta) -> bool:
        """:meth:`claim` for code already on a database thread."""
        return self.database.call(claim_in, _key(key), self.owner, ttl)

    async def release(self, key: str) -> None:
        """Give ``key`` back early (only if this process holds it): the work failed before it
        did anything, and another try (here or in another replica) may claim it."""
        await self.database.run(release_in, _key(key), self.owner)

    async def renew(self, keys: list[str], ttl: timedelta) -> set[str]:
        """Extend the leases this process holds on ``keys`` to now + ``ttl`` (one statement);
        the keys that were still ours."""
        return await self._batch(_renew_in, keys, ttl)

    async def finish(self, keys: list[str], ttl: timedelta) -> set[str]:
        """Mark the claims this process holds on ``keys`` done, kept for ``ttl`` more (a replay
        within it is recognised); the keys that were still ours."""
        return await self._batch(_finish_in, keys, ttl)

    async def states(self, keys: list[str]) -> dict[str, ClaimState]:
        """The rows of ``keys`` that exist (one query)."""
        names = {_key(k): k for k in keys}
        found = await self.database.run(_states_in, list(names))
        return {names[k]: state for k, state in found.items()}

    async def take_over(self, keys: list[str], ttl: timedelta) -> dict[str, datetime]:
        """Take each of ``keys`` whose lease ran out and that is not done (or that is gone)
        for ``ttl``; per key won, when it was first claimed (the takeover keeps that time).
        One conditional statement per key, all in one transaction: of several processes trying
        at once, one wins each key."""
        names = {_key(k): k for k in keys}
        won = await self.database.run(_take_over_in, list(names), self.owner, ttl)
        return {names[k]: since for k, since in won.items()}

    async def _batch(self, func: object, keys: list[str], ttl: timedelta) -> set[str]:
        if not keys:
            return set()
        names = {_key(k): k for k in keys}
        done = await self.database.run(func, list(names), self.owner, ttl)  # type: ignore[arg-type]
        _conflict(self.owner, set(names) - set(done))  # no longer ours: taken over
        return {names[k] for k in done}

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
    won = conn.execute(_CLAIM[dialect, renew], {
        "c_key": key, "c_owner": owner, "c_now": now, "c_until": now + ttl}).first() is not None
    if not won and conn.execute(select(db.claims.c.owner).where(
            db.claims.c.key == key)).scalar() != owner:
        # Held by another process: a conflict. Held by this one already (a job asking again
        # within its own instant) is not one.
        _conflict(owner, (key,))
    return won


_C = db.claims.c
_RENEW = update(db.claims).where(
    _C.key.in_(bindparam("c_keys", expanding=True)), _C.owner == bindparam("c_owner"),
).values(expires_at=bindparam("c_until")).returning(_C.key)
_FINISH = update(db.claims).where(
    _C.key.in_(bindparam("c_keys", expanding=True)), _C.owner == bindparam("c_owner"),
).values(owner=bindparam("c_done"), expires_at=bindparam("c_until")).returning(_C.key)
_STATES = select(_C.key, _C.owner, _C.claimed_at, _C.expires_at).where(
    _C.key.in_(bindparam("c_keys", expanding=True)))


def _take_over_statement(dialect: object) -> Insert:
    insert = dialect.insert(db.claims).values(  # type: ignore[attr-defined]
        key=bindparam("c_key"), owner=bindparam("c_owner"), claimed_at=bindparam("c_now"),
        expires_at=bindparam("c_until"))
    # claimed_at stays: it says when the delivery was first taken (the audit is read from it).
    return insert.on_conflict_do_update(
        index_elements=["key"], set_={"owner": insert.excluded.owner,
                                      "expires_at": insert.excluded.expires_at},
        where=(_C.expires_at <= bindparam("c_now")) & not_(_C.owner.startswith(DONE)),
    ).returning(_C.claimed_at)


def _delivery_statement(dialect: object) -> Insert:
    insert = dialect.insert(db.claims).values(  # type: ignore[attr-defined]
        key=bindparam("c_key"), owner=bindparam("c_owner"), claimed_at=bindparam("c_now"),
        expires_at=bindparam("c_until"))
    done = _C.owner.startswith(DONE)
    return insert.on_conflict_do_update(
        index_elements=["key"], set_={
            "owner": insert.excluded.owner, "expires_at": insert.excluded.expires_at,
            # a lapsed lease keeps when its delivery was first claimed: a takeover
            "claimed_at": case((done, insert.excluded.claimed_at), else_=_C.claimed_at)},
        where=_C.expires_at <= bindparam("c_now"),
    ).returning(_C.claimed_at)


_DELIVERY = {"postgresql": _delivery_statement(postgresql),
             "sqlite": _delivery_statement(sqlite)}
_TAKE_OVER = {"postgresql": _take_over_statement(postgresql),
              "sqlite": _take_over_statement(sqlite)}


def _claim_delivery_in(conn: Connection, key: str, owner: str,
                       ttl: timedelta) -> Won | ClaimState | None:
    now = db.utcnow()
    statement = _DELIVERY["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    row = conn.execute(statement, {"c_key": key, "c_owner": owner, "c_now": now,
                                   "c_until": now + ttl}).first()
    if row is None:  # lost: a replay of a finished delivery needs no keeping (most are)
        return _states_in(conn, [key]).get(key)
    since = db.as_utc(row.claimed_at) or now
    return Won(since, since != now)


def _renew_in(conn: Connection, keys: list[str], owner: str, ttl: timedelta) -> set[str]:
    rows = conn.execute(_RENEW, {"c_keys": keys, "c_owner": owner,
                                 "c_until": db.utcnow() + ttl})
    return {r.key for r in rows}


def _finish_in(conn: Connection, keys: list[str], owner: str, ttl: timedelta) -> set[str]:
    rows = conn.execute(_FINISH, {"c_keys": keys, "c_owner": owner,
                                  "c_done": (DONE + owner)[:100], "c_until": db.utcnow() + ttl})
    return {r.key for r in rows}


def _states_in(conn: Connection, keys: list[str]) -> dict[str, ClaimState]:
    if not keys:
        return {}
    return {r.key: ClaimState(r.owner, db.as_utc(r.claimed_at), db.as_utc(r.expires_at))
            for r in conn.execute(_STATES, {"c_keys": keys})}


def _take_over_in(conn: Connection, keys: list[str], owner: str,
                  ttl: timedelta) -> dict[str, datetime]:
    now = db.utcnow()
    statement = _TAKE_OVER["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    won = {}
    for key in keys:
        row = conn.execute(statement, {"c_key": key, "c_owner": owner, "c_now": now,
                                       "c_until": now + ttl}).first()
        if row is not None:
            won[key] = db.as_utc(row.claimed_at)
    return won


def release_in(conn: Connection, key: str, owner: str) -> None:
    """Give ``key`` back inside the caller's transaction (only if ``owner`` holds it)."""
    conn.execute(_RELEASE, {"key": key, "owner": owner})


def _sweep(conn: Connection) -> int:
    cutoff = db.utcnow() - timedelta(days=1)
    return conn.execute(delete(db.claims).where(db.claims.c.expires_at < cutoff)).rowcount
