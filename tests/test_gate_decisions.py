"""Who may decide a pending request is the gate's rule (``Gate.may_decide``), and every path
asks it: ``Bot.decide`` (buttons, typed commands), the ``approvals`` list, adapters' buttons."""

from __future__ import annotations

import pytest
from conftest import console

from bot.core import Bot
from bot.identity import Caller, Inbound
from bot.markup import plain
from bot.pending import PendingRequest
from bot.reply import Choice


async def _requests(bot: Bot) -> tuple[PendingRequest, PendingRequest]:
    confirm = await bot.handle(console("alice", "sample wipe disk"))
    approval = await bot.handle(console("alice", "sample restart gwcelery"))
    return (await bot.requests.get(confirm.request_id),
            await bot.requests.get(approval.request_id))


def _caller(bot: Bot, who: str | None, channel: str | None = None) -> Caller:
    return bot.directory.caller(Inbound("console", who or "nobody", "", channel, channel))


@pytest.mark.parametrize(("who", "choice", "allowed", "why"), [
    ("alice", Choice.CONFIRM, True, "alice asked"),
    ("alice", Choice.CANCEL, True, "alice asked"),
    ("bob", Choice.CONFIRM, False, "only alice, who asked, can confirm"),
    ("carol", Choice.CANCEL, False, "only alice, who asked, can cancel"),
    (None, Choice.CONFIRM, False, "only configured people can decide requests"),
])
async def test_the_requester_confirms_or_withdraws(make_bot, who, choice, allowed, why) -> None:
    bot = await make_bot()
    confirm, _ = await _requests(bot)
    decision = bot.gate.may_decide(_caller(bot, who), confirm, choice)
    assert decision.allowed is allowed and why in decision.reason


@pytest.mark.parametrize(("who", "choice", "allowed", "why"), [
    ("carol", Choice.APPROVE, True, "role expert via grant #2"),
    ("erin", Choice.DENY, True, "role expert"),
    ("alice", Choice.APPROVE, False, "you cannot decide your own request"),
    ("bob", Choice.DENY, False, "needs role expert"),
    ("alice", Choice.CANCEL, True, "alice asked"),  # withdrawing one's own request
    ("carol", Choice.CANCEL, False, "only alice, who asked"),
])
async def test_someone_else_with_the_role_approves(make_bot, who, choice, allowed, why) -> None:
    bot = await make_bot()
    _, approval = await _requests(bot)
    decision = bot.gate.may_decide(_caller(bot, who), approval, choice)
    assert decision.allowed is allowed and why in decision.reason


async def test_a_role_from_a_provider_counts(make_bot) -> None:
    bot = await make_bot()
    _, approval = await _requests(bot)
    bob = _caller(bot, "bob")
    assert not bot.gate.may_decide(bob, approval, Choice.APPROVE).allowed
    bot.gate.add_role_provider("rota", lambda caller: ["expert"] if caller.person and
                               caller.person.key == "bob" else [])
    decision = bot.gate.may_decide(bob, approval, Choice.APPROVE)
    assert decision.allowed and "provider rota" in decision.reason


async def test_decide_and_the_approvals_list_follow_the_gate(make_bot, monkeypatch) -> None:
    """Change the rule in the gate alone: the dispatcher and the list follow it."""
    bot = await make_bot()
    _, approval = await _requests(bot)
    original = bot.gate.may_decide

    def nobody_on_fridays(caller, request, choice):  # type: ignore[no-untyped-def]
        decision = original(caller, request, choice)
        if decision.allowed and choice == Choice.APPROVE:
            return type(decision)(False, "no approvals on Fridays")
        return decision

    monkeypatch.setattr(bot.gate, "may_decide", nobody_on_fridays)
    listed = await bot.handle(console("carol", "approvals"))
    assert listed.reply.table is None  # nothing carol may decide now
    refused = await bot.decide(console("carol", ""), approval.id, Choice.APPROVE)
    assert "No approvals on Fridays" in plain(refused.reply.text)
    assert (await bot.requests.get(approval.id)).status == "pending"  # nothing claimed


async def test_bot_may_decide_asks_without_deciding(make_bot) -> None:
    bot = await make_bot()
    confirm, _ = await _requests(bot)
    assert (await bot.may_decide(console("alice", ""), confirm.id, Choice.CONFIRM)).allowed
    refused = await bot.may_decide(console("bob", ""), confirm.id.upper(), Choice.CONFIRM)
    assert not refused.allowed and "only alice" in refused.reason
    missing = await bot.may_decide(console("alice", ""), "zzzzzz", Choice.CONFIRM)
    assert not missing.allowed and "no such request" in missing.reason
    assert (await bot.requests.get(confirm.id)).status == "pending"
