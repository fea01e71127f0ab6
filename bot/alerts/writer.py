"""Group commit for the inbox: deliveries arriving together are stored in one transaction.

Each webhook must be in the database before its 200, and one transaction per delivery costs a
commit each (most of the ack's time under a burst: an alert rule re-firing, a storm). So a
delivery joins the batch being collected while the previous one commits; one flushing task
stores the whole batch in one transaction and answers every waiting request after the commit.
Durability is unchanged (nobody is answered before their row is committed); a failed
transaction fails every delivery of its batch (each answered 503, nothing half-stored).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from bot import clock
from bot.alerts import inbox
from bot.alerts.model import SentryAlert
from bot.db import Database

MAX_BATCH = 500  # rows per transaction (a storm's burst is cut into several)


@dataclass(frozen=True, slots=True)
class Delivery:
    alert: SentryAlert
    body: str
    request_id: str | None


class InboxWriter:
    """One per bot (``bot.services``); :meth:`store` is safe to call from many requests."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._waiting: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def store(self, delivery: Delivery) -> bool:
        """True once stored, False for a duplicate; the database's error when it failed."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery, future))
        if self._flushing is None or self._flushing.done():
            # Its own task: a request cancelled while waiting never stops the others' commit.
            self._flushing = asyncio.create_task(self._flush(), name="alerts-inbox-writer")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                stored = await self.database.run(_accept_all, [d for d, _ in batch],
                                                 clock.utcnow())
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, stored, strict=True):
                if not future.done():
                    future.set_result(result)


def _accept_all(conn: Connection, deliveries: list[Delivery], now: datetime) -> list[bool]:
    return inbox.accept_many(conn, [(d.alert, d.body, d.request_id) for d in deliveries], now)
