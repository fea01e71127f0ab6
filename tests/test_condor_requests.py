"""condor's queue-changing commands as requests: one pending request per person however the
command is spelt, job ids read as the numbers they are, and a request that never ran never
says it ran."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import console
from fakes.condor import GWCELERY_SCOPE, condor_config, demo_pool

from bot.condor.service import CondorService
from bot.core import Bot, OutcomeStatus
from bot.parser import parse
from bot.render import render_text
from bot.reply import Choice

POOLS = {"gwcelery": demo_pool(scope=GWCELERY_SCOPE), "all": demo_pool()}


@pytest.fixture
async def bot(make_bot: Any) -> Bot:
    built: Bot = await make_bot(condor_config(POOLS, default_pool="gwcelery"))
    return built


@pytest.mark.parametrize("second", [
    "condor rm 1.21 1.20",                      # the same jobs in another order
    "condor rm 1.20 1.21 --pool gwcelery",      # the default pool, named
    "condor rm 1.20 1.21 --pool=gwcelery",
    "condor rm 1.20 1.21 pool=gwcelery",
])
async def test_the_same_request_spelt_differently_is_refused_as_a_duplicate(
        bot: Bot, second: str) -> None:
    first = await bot.handle(console("carol", "condor rm 1.20 1.21"))
    assert first.status == OutcomeStatus.PENDING
    again = await bot.handle(console("carol", second))
    assert again.status == OutcomeStatus.ERROR and first.request_id in again.reply.text, \
        f"a second pending request {again.request_id} for the same removal"


async def test_option_order_does_not_make_a_new_request(bot: Bot) -> None:
    first = await bot.handle(console("carol", "condor rm --batch gwcelery --pool all"))
    assert first.status == OutcomeStatus.PENDING
    again = await bot.handle(console("carol", "condor rm --pool all --batch gwcelery"))
    assert again.status == OutcomeStatus.ERROR, "two pending removals of the same batch"


@pytest.mark.parametrize("typed", ["01.21", "1.021", "\u0661.\u0662\u0661", "\uff11.\uff12\uff11"])
async def test_job_ids_are_read_as_the_numbers_they_are(bot: Bot, typed: str) -> None:
    """1.21 exists: '01.21' (or Arabic-Indic / full-width digits, which the parser accepts as
    \\d) must either mean 1.21 everywhere or be refused. Today the plan step says 'Not in the
    queue' and a hold acts on 1.21 while reporting '01.21' as not found."""
    held = await bot.handle(console("carol", f"condor hold {typed}"))
    text = render_text(held.reply)
    if held.status == OutcomeStatus.USAGE:
        return  # refused at parse time: consistent
    assert "Not in the queue" not in text, text


async def test_a_request_that_never_ran_does_not_say_it_ran(bot: Bot) -> None:
    """The job left the queue before the confirmation: nothing ran. Confirming again must not
    answer 'ran (error); nothing was run twice'."""
    asked = await bot.handle(console("carol", "condor rm 1.20"))
    assert asked.request_id is not None
    await bot.services.require(CondorService).act("gwcelery", "remove", jobs=["1.20"])
    await asyncio.sleep(1.0)  # the demo's removed jobs linger 0.5 s
    first = await bot.decide(console("carol", ""), asked.request_id, Choice.CONFIRM)
    assert "was not run" in render_text(first.reply)
    again = await bot.decide(console("carol", ""), asked.request_id, Choice.CONFIRM)
    text = render_text(again.reply)
    assert "ran (" not in text and "nothing was run twice" not in text, text


async def test_different_requests_stay_different(bot: Bot) -> None:
    """The canonical form keeps what matters: other jobs, another pool, another reason."""
    first = await bot.handle(console("carol", "condor rm 1.20 1.21"))
    assert first.status == OutcomeStatus.PENDING
    for other in ("condor rm 1.20", "condor rm 1.20 1.21 --pool all",
                  "condor rm 1.20 1.21 --reason 'drained'"):
        again = await bot.handle(console("carol", other))
        assert again.status == OutcomeStatus.PENDING, (other, render_text(again.reply))


def test_canonical_form(bot: Bot) -> None:
    def canonical(line: str) -> str:
        return parse(bot.registry, line).canonical()
    assert canonical("condor rm 1.21 01.020 1.21") == canonical("condor rm 1.20 1.21")
    assert canonical("condor rm --batch b --pool all") == canonical("condor rm pool=all --batch=b")
    # free text keeps its order and case
    assert canonical("condor hold 1.2 --reason 'a b'") != \
        canonical("condor hold 1.2 --reason 'b a'")
    assert canonical("condor hold 1.2 --public") == canonical("condor hold 1.2")
