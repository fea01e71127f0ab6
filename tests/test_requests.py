"""Confirmation and approval: who may decide, expiry, restarts, and nothing run twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sample_handlers
from conftest import console

from bot.core import Bot, OutcomeStatus
from bot.markup import plain
from bot.reply import Choice


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    sample_handlers.RUNS.clear()


def runs(key: str) -> list[tuple[str, str, dict[str, object]]]:
    return [r for r in sample_handlers.RUNS if r[0] == key]


async def test_destructive_waits_for_the_same_person(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample wipe disk"))
    assert asked.status == OutcomeStatus.PENDING and asked.request_id
    assert [a.choice for a in asked.reply.actions] == [Choice.CONFIRM, Choice.CANCEL]
    assert runs("sample.wipe") == []
    other = await bot.decide(console("bob", ""), asked.request_id, Choice.CONFIRM)
    assert other.status == OutcomeStatus.DENIED
    assert "Only alice, who asked" in plain(other.reply.text)
    assert runs("sample.wipe") == []
    done = await bot.decide(console("alice", ""), asked.request_id, Choice.CONFIRM)
    assert done.status == OutcomeStatus.OK and plain(done.reply.text) == "wiped disk"
    assert done.update is not None and "Confirmed by alice" in plain(done.update.text)
    again = await bot.decide(console("alice", ""), asked.request_id, Choice.CONFIRM)
    assert again.status == OutcomeStatus.ERROR and "already decided" in plain(again.reply.text)
    assert len(runs("sample.wipe")) == 1


async def test_cancel(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample wipe disk"))
    cancelled = await bot.handle(console("alice", f"cancel {asked.request_id}"))
    assert "Cancelled by alice" in plain(cancelled.reply.text)
    assert runs("sample.wipe") == []


async def test_approval_by_a_different_expert(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    request = asked.request_id
    assert asked.status == OutcomeStatus.PENDING and asked.reply.visibility == "channel"
    assert [a.choice for a in asked.reply.actions] == [Choice.APPROVE, Choice.DENY]
    # The requester cannot approve, nor can another shifter without the expert role.
    self_approval = await bot.handle(console("alice", f"approve {request}"))
    assert self_approval.status == OutcomeStatus.DENIED
    assert "cannot decide your own request" in plain(self_approval.reply.text)
    wrong_role = await bot.handle(console("bob", f"approve {request}"))
    assert wrong_role.status == OutcomeStatus.DENIED
    assert "needs role expert" in plain(wrong_role.reply.text)
    assert runs("sample.restart") == []
    listed = await bot.handle(console("carol", "approvals"))
    assert listed.reply.table is not None and listed.reply.table.rows[0][0] == request
    assert (await bot.handle(console("bob", "approvals"))).reply.table is None
    approved = await bot.handle(console("carol", f"approve {request}"))
    assert approved.status == OutcomeStatus.OK
    assert plain(approved.reply.text) == "restarted gwcelery"
    # It ran as alice, with carol recorded as approver.
    assert runs("sample.restart") == [("sample.restart", "alice", {"service": "gwcelery"})]
    entries = await bot.audit.query(command_glob="sample.restart")
    decisions = {(e.decision, e.person, e.approver, e.outcome) for e in entries}
    assert ("approved", "alice", "carol", "ok") in decisions
    assert ("approval requested", "alice", None, None) in decisions


async def test_deny_with_reason(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    denied = await bot.handle(console("erin", f"deny {asked.request_id} not during O4 run"))
    assert "Denied by erin: not during O4 run" in plain(denied.reply.text)
    assert runs("sample.restart") == []
    late = await bot.handle(console("carol", f"approve {asked.request_id}"))
    assert "already denied by erin" in plain(late.reply.text)
    entries = await bot.audit.query(command_glob="sample.restart")
    assert any(e.decision == "denied by approver" and e.approver == "erin" for e in entries)


async def test_concurrent_approvals_run_once(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    results = await asyncio.gather(
        *(bot.decide(console(who, ""), asked.request_id, Choice.APPROVE)
          for who in ("carol", "erin", "carol", "erin")))
    assert sorted(r.status for r in results).count(OutcomeStatus.OK) == 1
    assert len(runs("sample.restart")) == 1


async def test_requests_expire(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"bot": {"approval_timeout_minutes": 0.001}})
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    await asyncio.sleep(0.1)
    late = await bot.handle(console("carol", f"approve {asked.request_id}"))
    assert late.status == OutcomeStatus.ERROR and "expired" in plain(late.reply.text)
    assert runs("sample.restart") == []
    entries = await bot.audit.query(command_glob="sample.restart")
    assert [e.decision for e in entries].count("expired") == 1
    assert await bot.expire_requests() == []  # already recorded once, never twice


async def test_sweeper_expires_and_audits(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"bot": {"confirmation_timeout_minutes": 0.001}})
    asked = await bot.handle(console("alice", "sample wipe disk"))
    await asyncio.sleep(0.1)
    expired = await bot.expire_requests()
    assert [r.id for r in expired] == [asked.request_id]


async def test_an_overdue_request_not_yet_swept_does_not_block_asking_again(make_bot) -> None:  # type: ignore[no-untyped-def]
    """It still holds the unique index on (person, fingerprint) until swept: asking again
    sweeps it (audited as expired) and makes the new request."""
    bot = await make_bot({"bot": {"confirmation_timeout_minutes": 0.001}})
    first = await bot.handle(console("alice", "sample wipe disk"))
    await asyncio.sleep(0.1)
    second = await bot.handle(console("alice", "sample wipe disk"))
    assert second.status == OutcomeStatus.PENDING and second.request_id != first.request_id
    entries = await bot.audit.query(command_glob="sample.wipe")
    assert [e.decision for e in entries].count("expired") == 1


async def test_pending_requests_survive_a_restart(make_config) -> None:  # type: ignore[no-untyped-def]
    config = make_config()
    first = await Bot.create(config)
    asked = await first.handle(console("alice", "sample restart gwcelery"))
    await first.close()
    second = await Bot.create(config)
    try:
        approved = await second.handle(console("carol", f"approve {asked.request_id}"))
        assert approved.status == OutcomeStatus.OK
        assert runs("sample.restart") == [("sample.restart", "alice", {"service": "gwcelery"})]
    finally:
        await second.close()


async def test_destructive_plus_approval_confirms_then_asks(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"roles": {"shifter": {"approval": {"sample.wipe": "expert"}}}})
    asked = await bot.handle(console("alice", "sample wipe disk"))
    confirmed = await bot.decide(console("alice", ""), asked.request_id, Choice.CONFIRM)
    assert confirmed.status == OutcomeStatus.PENDING
    assert [a.choice for a in confirmed.reply.actions] == [Choice.APPROVE, Choice.DENY]
    assert runs("sample.wipe") == []
    done = await bot.decide(console("carol", ""), asked.request_id, Choice.APPROVE)
    assert done.status == OutcomeStatus.OK and len(runs("sample.wipe")) == 1


async def test_permission_rechecked_when_the_request_runs(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    bot.config.grants = [g for g in bot.config.grants if g.role != "shifter"]
    result = await bot.handle(console("carol", f"approve {asked.request_id}"))
    assert result.status == OutcomeStatus.DENIED and runs("sample.restart") == []
    again = await bot.handle(console("erin", f"approve {asked.request_id}"))
    assert "was not run" in again.reply.text and "ran (" not in again.reply.text


async def test_ttl_defaults(make_config) -> None:  # type: ignore[no-untyped-def]
    config = make_config()
    assert config.bot.approval_timeout_minutes == 15
    bot = await Bot.create(config)
    try:
        asked = await bot.handle(console("alice", "sample restart gw"))
        request = await bot.requests.get(asked.request_id)
        assert request is not None
        ttl = request.expires_at - request.created_at
        assert timedelta(minutes=14, seconds=59) < ttl <= timedelta(minutes=15)
    finally:
        await bot.close()


async def test_handle_and_decide_never_raise(make_bot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A failure inside the bot (here: the database is gone) is a one-line error, not a crash
    of the adapter that called."""
    from sqlalchemy.exc import OperationalError

    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample restart gw"))

    async def database_gone(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(bot.database, "run", database_gone)
    broken = await bot.handle(console("alice", "sample wipe x"))
    assert broken.status == OutcomeStatus.ERROR and "internal error" in plain(broken.reply.text)
    decided = await bot.decide(console("carol", ""), asked.request_id or "", Choice.APPROVE)
    assert decided.status == OutcomeStatus.ERROR and "internal error" in plain(decided.reply.text)
    monkeypatch.undo()
    assert runs("sample.restart") == [] and runs("sample.wipe") == []


async def test_decisions_anywhere_update_the_request_messages(make_bot) -> None:  # type: ignore[no-untyped-def]
    """A typed approve (or expiry) reaches the adapters that posted the request's buttons."""
    from bot.core import DecisionNotice
    from bot.pending import MessageRef

    bot = await make_bot({"bot": {"confirmation_timeout_minutes": 0.001}})
    notices: list[DecisionNotice] = []
    arrived = asyncio.Event()

    async def listener(notice: DecisionNotice) -> None:
        notices.append(notice)
        arrived.set()

    bot.add_decision_listener(listener)
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    ref = MessageRef("slack", "C0OPS", "1700000000.000100")
    await bot.requests.remember_message(asked.request_id or "", ref)
    await bot.handle(console("carol", f"approve {asked.request_id}"))
    await asyncio.wait_for(arrived.wait(), 5)
    assert notices[0].messages == (ref,) and notices[0].request_id == asked.request_id
    assert "Approved by carol" in notices[0].update.text and notices[0].update.actions == []
    # Expiry announces too; a request nobody posted a message for announces nothing.
    arrived.clear()
    wipe = await bot.handle(console("alice", "sample wipe disk"))
    await bot.requests.remember_message(wipe.request_id or "", ref)
    await asyncio.sleep(0.1)
    await bot.expire_requests()
    await asyncio.wait_for(arrived.wait(), 5)
    assert "expired" in notices[1].update.text
    await bot.handle(console("alice", "sample restart other"))
    assert len(notices) == 2


async def test_messages_are_remembered_by_their_deciding_button(make_bot) -> None:  # type: ignore[no-untyped-def]
    from bot.reply import Action, Reply

    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    request = asked.request_id or ""
    mixed = Reply("card", actions=[Action.run("Analyze", "sample echo hi"),
                                   Action("Approve", Choice.APPROVE, request)])
    await bot.remember_request_message(mixed, "slack", "C0OPS", "1.1")
    await bot.remember_request_message(Reply("no buttons"), "slack", "C0OPS", "1.2")
    assert [m.message_id for m in await bot.requests.messages_of(request)] == ["1.1"]
