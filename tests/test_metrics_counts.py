"""``/metrics`` counts each event once and shows the moment of the scrape (issue #16).

Regressions found in review: a job asking again for a claim it holds itself within its own
instant (the Sentry poll ticks every 30 s, its instant lasts the poll interval) was counted as
a conflict, so a single replica looked like a database shared by mistake; a lost inbound
claim was counted again at every renewal pass; the platforms' socket gauge showed the state
of the previous scrape.
"""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bot import db
from bot.clock import ManualClock, use_clock
from bot.messaging.claims import Claims, claim_in
from bot.messaging.inbound import InboundClaims
from bot.metrics import Metrics, _watch_platforms


class Counted:
    """A claims observer that counts what it is told."""

    def __init__(self) -> None:
        self.seen: collections.Counter[str] = collections.Counter()

    def inbound_claim(self, platform: str, result: str) -> None:
        self.seen[f"inbound:{result}"] += 1

    def claim_conflict(self, kind: str) -> None:
        self.seen[f"conflict:{kind}"] += 1


@pytest.fixture
def now() -> Any:
    manual = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    with use_clock(manual):
        yield manual


@pytest.fixture
def database(tmp_path: Any) -> Any:
    database = db.Database(f"sqlite:///{tmp_path / 'counts.db'}")
    database.migrate()
    yield database
    database.close()


async def test_asking_again_for_a_claim_held_here_is_no_conflict(database: Any, now: Any) -> None:
    counted = Counted()
    mine = Claims(database, owner="replica-1", observer=counted)
    other = Claims(database, owner="replica-2", observer=counted)
    key, lease = "alerts:poll:gwcelery:2026-03-01T12:00", timedelta(minutes=5)
    assert database.call(lambda c: claim_in(c, key, mine.owner, lease))
    for _ in range(9):  # the poll job's later ticks within the same instant
        now.advance(30)
        assert not database.call(lambda c: claim_in(c, key, mine.owner, lease))
    assert counted.seen == {}
    assert not database.call(lambda c: claim_in(c, key, other.owner, lease))
    assert counted.seen == {"conflict:alerts": 1}  # another process's: one conflict


async def test_a_lost_inbound_claim_is_counted_once(database: Any, now: Any) -> None:
    counted = Counted()
    inbound = InboundClaims(Claims(database, owner="replica-1", observer=counted),
                            "mattermost", timedelta(minutes=10), lease=timedelta(seconds=30),
                            poll=0.005, sweep=0.005)
    release = asyncio.Event()

    async def deliver() -> None:
        assert await inbound.first("post1")
        await release.wait()

    task = asyncio.create_task(deliver())
    while inbound.holding == 0:
        await asyncio.sleep(0.005)
    # Another replica has it now (this one's lease ran out while its database was slow).
    database.call(lambda c: c.execute(update(db.claims).values(owner="replica-2")))
    for _ in range(5):  # five renewal passes (every lease / 3)
        now.advance(11)
        inbound._wake.set()
        await asyncio.sleep(0.05)
    release.set()
    await task
    await asyncio.sleep(0.05)
    assert counted.seen == {"inbound:claimed": 1, "conflict:inbound": 1}
    assert inbound.holding == 0


async def test_a_scrape_shows_the_sockets_as_they_are_now() -> None:
    metrics = Metrics()

    class Readiness:
        up = False

        def platforms(self) -> list[str]:
            return ["mattermost"]

        async def platform_verdicts(self) -> None:
            metrics.set_connected({"mattermost": self.up})

    readiness = Readiness()
    _watch_platforms(metrics, readiness)  # type: ignore[arg-type]

    async def connected() -> str:
        text = (await metrics.scrape()).decode()
        return next(line.split()[-1] for line in text.splitlines()
                    if line.startswith("shiftbot_platform_connected{"))

    assert await connected() == "0.0"
    readiness.up = True
    assert await connected() == "1.0"  # this scrape, not the next
    readiness.up = False
    assert await connected() == "0.0"
