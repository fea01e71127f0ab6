"""One restart per target at a time, across bot processes: a claim with a renewed lease.

``await Lease.acquire(bot.claims, "gwcelery", ttl)`` claims ``restart:gwcelery`` in the
database (``bot.claims``: one winner, whichever process asks). While the restart runs -- a
command, or a pipeline followed for an hour -- a background task renews the lease every third
of its length; when the run ends the claim is released. If the process dies the lease runs out
and another process may take the target (and adopt the unfinished run, see
``bot.restart.follow.resume``). A lease that could not be renewed (the database was away for
longer than the lease) is ``lost``: whoever holds it now decides, and the holder stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import Connection, update

from bot import db
from bot.messaging.claims import Claims

log = logging.getLogger(__name__)


LEASE = timedelta(seconds=60)  # renewed every 20 s while a restart runs


def lock_key(target: str) -> str:
    return f"restart:{target}"


class Lease:
    def __init__(self, claims: Claims, target: str, ttl: timedelta) -> None:
        self.claims = claims
        self.target = target
        self.key = lock_key(target)
        self.ttl = ttl
        self.lost = False
        self._renewer: asyncio.Task[None] | None = None

    @classmethod
    async def acquire(cls, claims: Claims, target: str, ttl: timedelta) -> Lease | None:
        """The target's lease, or None when someone (here or elsewhere) holds it."""
        lease = cls(claims, target, ttl)
        if not await claims.claim(lease.key, ttl):
            return None
        lease._renewer = asyncio.create_task(lease._keep(), name=f"lease:{lease.key}")
        return lease

    async def renew(self) -> bool:
        """Extend the lease by ``ttl`` from now; False if it is no longer ours."""
        renewed = await self.claims.database.run(_renew, self.key, self.claims.owner, self.ttl)
        if not renewed and not self.lost:
            self.lost = True
            log.warning("restart of %s: lost the lease (another process may run it now)",
                        self.target)
        return renewed

    async def release(self) -> None:
        """Stop renewing and give the target back (only if the claim is still ours)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if not self.lost:
            await self.claims.release(self.key)

    async def stop_renewing(self) -> None:
        """Shutdown: keep the claim until it runs out (another process adopts the run then)
        but stop renewing it."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def _keep(self) -> None:
        period = max(0.05, self.ttl.total_seconds() / 3)
        while not self.lost:
            await asyncio.sleep(period)
            try:
                await self.renew()
            except Exception:  # the database is away: try again next period
                log.exception("renewing the lease of restart %s failed", self.target)


def _renew(conn: Connection, key: str, owner: str, ttl: timedelta) -> bool:
    """Extend a claim this owner still holds (a conditional UPDATE: an expired claim another
    process has taken over is not ours any more)."""
    now = db.utcnow()
    result = conn.execute(update(db.claims)
                          .where(db.claims.c.key == key, db.claims.c.owner == owner,
                                 db.claims.c.expires_at > now)
                          .values(expires_at=now + ttl))
    return result.rowcount == 1
