"""Two bots on one database (SQLite file and PostgreSQL): every delivery row sent once, in
order per channel, updates and thread replies on the right message; and the channel lease
decides races between processes (one winner)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE, CORE_HANDLERS, deep_merge
from notice_platform import FakePlatform

from bot import db
from bot.config import parse_config
from bot.core import Bot
from bot.messaging import outbox
from bot.reply import Reply

NOTICES = {"retry_min_seconds": 1, "retry_max_seconds": 2, "poll_seconds": 0.05,
           "send_timeout_seconds": 2, "flush_timeout_seconds": 2}


def database_urls(tmp_path: Path, request: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'r.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(tmp_path: Path, request: Any) -> Iterator[str]:
    value = database_urls(tmp_path, request)
    if value.startswith("postgresql"):  # a fresh schema each test
        from sqlalchemy import create_engine, text
        engine = create_engine(value)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    yield value


async def bots(url: str, tmp_path: Path, fakes: list[FakePlatform], count: int) -> list[Bot]:
    made = []
    for _ in range(count):
        raw = deep_merge(BASE, {"bot": {"database": url, "handlers": CORE_HANDLERS},
                                "notices": NOTICES})
        bot = await Bot.create(parse_config(raw, tmp_path))
        for fake in fakes:
            bot.platforms[fake.name] = fake
        await bot.notices.start()
        made.append(bot)
    return made


async def test_two_bots_send_each_row_once_in_order(url: str, tmp_path: Path) -> None:
    slack = FakePlatform("slack", {"ops": "C1", "alerts": "C2"}, latency=0.002)
    mm = FakePlatform("mattermost", {"ops": "m1", "alerts": "m2"}, latency=0.001)
    one, two = await bots(url, tmp_path, [slack, mm], 2)
    try:
        for i in range(120):
            bot = (one, two)[i % 2]
            await bot.notices.post("ops" if i % 3 else "alerts", Reply(text=str(i)), key=f"k{i}")
            if i % 10 == 0:
                await bot.notices.update(f"k{i}", Reply(text=f"{i} edited"))
                await bot.notices.thread(f"k{i}", Reply(text=f"{i} reply"))
        for _ in range(200):
            await asyncio.gather(one.notices.idle(5), two.notices.idle(5))
            if not await one.notices.unfinished():
                break
            await asyncio.sleep(0.05)
        assert await one.notices.unfinished() == []
        for fake in (slack, mm):
            tags = [m.tag for m in fake.messages]
            assert len(tags) == len(set(tags)) == 120 + 12  # posts and thread replies, once
            for channel, in_it in ((fake.channels["ops"], lambda i: i % 3),
                                   (fake.channels["alerts"], lambda i: not i % 3)):
                tops = [t for t in fake.texts(channel) if "reply" not in t]
                assert tops == [str(i) for i in range(120) if in_it(i)]
            edited = {ref.message_id: text for ref, text in fake.updates}
            assert len(fake.updates) == 12
            for m in fake.messages:
                if m.tag and m.tag.endswith("#0") and int(m.tag[1:-2]) % 10 == 0:
                    assert edited[m.ref.message_id] == f"{m.tag[1:-2]} edited"
            replies = [m for m in fake.messages if m.ref.thread_id]
            roots = {m.ref.message_id: m for m in fake.messages}
            assert all(roots[r.ref.thread_id].tag == r.tag.replace("#2", "#0") for r in replies)
    finally:
        for bot in (one, two):
            await bot.close()


def test_one_lease_holder_per_channel(url: str, tmp_path: Path) -> None:
    """Many processes (threads with their own engine) claim one channel at once."""
    databases = [db.Database(url) for _ in range(6)]
    databases[0].migrate()
    for i in range(30):
        databases[0].call(outbox.insert_notice, f"n{i}", ["ops"], [], None, '{"text": "x"}',
                          [("slack", "C1")])
    got: list[Any] = [None] * len(databases)
    start = threading.Barrier(len(databases))

    def claim(n: int) -> None:
        start.wait()
        got[n] = databases[n].call(outbox.begin, "slack", "C1", f"owner-{n}",
                                   timedelta(seconds=60), 20)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(databases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [g for g in got if g is not None and g.attempts]
    assert len(winners) == 1 and [a.row.notice_key for a in winners[0].attempts] == [
        f"n{i}" for i in range(20)]
    assert all(g is None for g in got if g is not winners[0])
    # The winner goes on: records and claims the rest under its lease; nobody else can.
    win = got.index(winners[0])
    results = [outbox.Result(a.row, outbox.SENT, message_id=str(a.row.id))
               for a in winners[0].attempts]
    more = databases[win].call(outbox.finish, results, "slack", "C1", f"owner-{win}",
                               timedelta(seconds=60), winners[0].until, 20,
                               winners[0].attempts[-1].row.id, True)
    assert more is not None and [a.row.notice_key for a in more.attempts] == [
        f"n{i}" for i in range(20, 30)]
    other = (win + 1) % len(databases)
    assert databases[other].call(outbox.begin, "slack", "C1", f"owner-{other}",
                                 timedelta(seconds=60), 20) is None
    for d in databases:
        d.close()
