"""Replica-safe claims on real SQLite and PostgreSQL: one winner per key, leases that expire."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import db
from bot.clock import ManualClock, use_clock
from bot.messaging.claims import Claims

LEASE = timedelta(minutes=10)


def databases(url: str, count: int) -> list[db.Database]:
    out = [db.Database(url) for _ in range(count)]
    out[0].migrate()
    return out


async def race(url: str, keys: int = 50, replicas: int = 3) -> dict[str, list[str]]:
    """Every replica claims every key at once; who won each key."""
    dbs = databases(url, replicas)
    try:
        claims = [Claims(d, owner=f"replica-{i}") for i, d in enumerate(dbs)]
        attempts = [(c, f"inbound:test:{k}") for k in range(keys) for c in claims]
        won = await asyncio.gather(*(c.claim(key, LEASE) for c, key in attempts))
        winners: dict[str, list[str]] = {}
        for (c, key), ok in zip(attempts, won, strict=True):
            if ok:
                winners.setdefault(key, []).append(c.owner)
        return winners
    finally:
        for d in dbs:
            d.close()


async def test_one_winner_per_key_on_sqlite(tmp_path: Path) -> None:
    winners = await race(f"sqlite:///{tmp_path / 'c.db'}")
    assert len(winners) == 50 and all(len(w) == 1 for w in winners.values())


@pytest.mark.postgres
async def test_one_winner_per_key_on_postgresql(postgres_url: str) -> None:
    winners = await race(postgres_url, keys=100, replicas=4)
    assert len(winners) == 100 and all(len(w) == 1 for w in winners.values())


async def test_an_expired_lease_can_be_taken_over_once(tmp_path: Path) -> None:
    first, second, third = databases(f"sqlite:///{tmp_path / 'c.db'}", 3)
    clock = ManualClock(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    a, b, c = Claims(first, "a"), Claims(second, "b"), Claims(third, "c")
    try:
        with use_clock(clock):
            assert await a.claim("job:x:1", LEASE)
            assert not await b.claim("job:x:1", LEASE)
            clock.advance(LEASE.total_seconds() - 1)
            assert not await b.claim("job:x:1", LEASE)
            clock.advance(2)  # a died holding it: the lease ran out
            results = await asyncio.gather(b.claim("job:x:1", LEASE), c.claim("job:x:1", LEASE))
            assert sorted(results) == [False, True]
    finally:
        for d in (first, second, third):
            d.close()


async def test_release_lets_another_try_and_only_the_owner_releases(tmp_path: Path) -> None:
    first, second = databases(f"sqlite:///{tmp_path / 'c.db'}", 2)
    a, b = Claims(first, "a"), Claims(second, "b")
    try:
        assert await a.claim("notice:1:1", LEASE)
        await b.release("notice:1:1")  # not b's: nothing happens
        assert not await b.claim("notice:1:1", LEASE)
        await a.release("notice:1:1")
        assert await b.claim("notice:1:1", LEASE)
    finally:
        first.close()
        second.close()


async def test_sweep_forgets_only_long_expired_claims(tmp_path: Path) -> None:
    [database] = databases(f"sqlite:///{tmp_path / 'c.db'}", 1)
    clock = ManualClock(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    claims = Claims(database, "a")
    try:
        with use_clock(clock):
            await claims.claim("old", timedelta(seconds=1))
            clock.advance(2 * 86400)
            await claims.claim("new", LEASE)
            assert await claims.sweep() == 1
            assert not await Claims(database, "b").claim("new", LEASE)
    finally:
        database.close()


def test_long_keys_stay_distinct() -> None:
    from bot.messaging.claims import _key

    one, two = _key("x" * 400 + "1"), _key("x" * 400 + "2")
    assert one != two and len(one) <= 300 and len(two) <= 300
    with pytest.raises(ValueError):
        _key("")


async def test_inbound_claims_fail_closed_and_recover(tmp_path: Path) -> None:
    from bot.messaging.inbound import InboundClaims

    [database] = databases(f"sqlite:///{tmp_path / 'c.db'}", 1)
    claims = Claims(database, "a")
    inbound = InboundClaims(claims, "mattermost", LEASE)
    real = claims.claim_delivery

    async def broken(*args: object, **kwargs: object) -> object:
        raise ConnectionError("database unreachable")

    try:
        claims.claim_delivery = broken  # type: ignore[method-assign]
        assert not await inbound.first("post1")  # not run: nobody can know it runs once
        claims.claim_delivery = real  # type: ignore[method-assign]
        assert await inbound.first("post1")  # the redelivery, once the database is back
        assert not await inbound.first("post1")
        other = InboundClaims(Claims(database, "b"), "mattermost", LEASE)
        assert not await other.first("post1")  # another replica
        assert await inbound.first(None)  # nothing to recognise a repeat by
    finally:
        database.close()
