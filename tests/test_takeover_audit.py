"""A claimed delivery on a database replicas share is audited before it runs (#16 "Replicas").

The gap this closes: a replica killed after running a quick command but before its batched
audit row reached the database left nothing for the replica taking the delivery over to find,
so it ran the command a second time. On PostgreSQL a command run under an inbound claim is now
on the trail ("running") before its handler starts; a takeover that finds it answers, and does
not run it again. SQLite (one ``shiftbot run`` per file: nobody takes over) adds no round trip.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot import clock, db
from bot.audit import AuditDecision, AuditOutcome, redact_arguments
from bot.identity import Inbound
from bot.messaging.inbound import TAKEOVER, UNDER_CLAIM, Takeover
from bot.parser import parse


def _rows(bot: Any, words: str) -> list[Any]:
    return bot.database.call(lambda conn: list(conn.execute(select(db.audit).where(
        db.audit.c.command == "sample.echo", db.audit.c.arguments.contains(words)))))


async def _in(context: contextvars.Context, work: Awaitable[Any]) -> Any:
    return await asyncio.get_running_loop().create_task(work, context=context)  # type: ignore[arg-type]


def _context(*, claimed: bool, taken_since: Any = None) -> contextvars.Context:
    context = contextvars.copy_context()
    context.run(UNDER_CLAIM.set, claimed)
    if taken_since is not None:
        context.run(TAKEOVER.set, Takeover("inbound:mattermost:k1", taken_since))
    return context


@pytest.mark.parametrize("claimed", [True, False])
async def test_what_the_trail_holds_while_a_claimed_command_runs(
        make_bot: Callable[..., Awaitable[Any]], database_url: str, claimed: bool) -> None:
    bot = await make_bot({"bot": {"database": database_url}})
    words = f"probe-{database_url[:6]}-{claimed}-{id(bot)}"
    spec = bot.registry.find("sample", "echo")
    seen_while_running: list[list[Any]] = []
    real = spec.handler

    async def watching(ctx: Any) -> Any:
        seen_while_running.append(_rows(bot, words))
        return await real(ctx)

    spec.handler = watching
    try:
        inbound = Inbound("mattermost", "a" * 26, f"sample echo {words}", channel_id="c1")
        outcome = await _in(_context(claimed=claimed), bot.handle(inbound))
    finally:
        spec.handler = real
    assert words in outcome.reply.text
    before = seen_while_running[0]
    if claimed and bot.database.dialect == "postgresql":
        assert [(r.decision, r.outcome) for r in before] == [("allowed", "running")]
    else:
        assert before == []  # written after the answer, batched: no round trip added
    await bot.audit.flush()
    after = _rows(bot, words)
    assert [(r.decision, r.outcome) for r in after] == [("allowed", "ok")]  # one row, ended


async def test_a_takeover_finding_the_command_running_does_not_run_it_again(
        make_bot: Callable[..., Awaitable[Any]], database_url: str) -> None:
    bot = await make_bot({"bot": {"database": database_url}})
    words = f"started-{id(bot)}"
    alice = Inbound("mattermost", "a" * 26, f"sample echo {words}", channel_id="c1")
    claimed_at = clock.utcnow() - timedelta(seconds=30)
    # The replica that stopped had put it on the trail and started it: what `handle` writes
    # first under a claim on PostgreSQL (the test above), here written directly.
    parsed = parse(bot.registry, alice.text)
    await bot.audit.record(bot.directory.caller(alice), "sample.echo",
                           redact_arguments(parsed.spec, parsed.args, parsed.text),
                           AuditDecision.ALLOWED, outcome=AuditOutcome.RUNNING)
    taken = await _in(_context(claimed=True, taken_since=claimed_at), bot.handle(alice))
    assert "stopped while the command was running" in taken.reply.text
    assert words not in taken.reply.text  # the handler did not run
    await bot.audit.flush()
    assert [r.outcome for r in _rows(bot, words)] == ["running"]
