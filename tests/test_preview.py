"""Preview before confirmation: plans, errors before any request, re-checks at run time,
withdrawing a pending request, and one pending request per command line and person."""

from __future__ import annotations

import pytest
import sample_handlers
from conftest import console

from bot.commands import Arg, Context, command
from bot.core import OutcomeStatus
from bot.markup import plain
from bot.registry import Registry, RegistryError
from bot.reply import Choice


@pytest.fixture(autouse=True)
def _clear() -> None:
    sample_handlers.RUNS.clear()
    sample_handlers.WIPE_TARGETS.clear()


def runs(key: str) -> list[tuple[str, str, dict[str, object]]]:
    return [r for r in sample_handlers.RUNS if r[0] == key]


async def pending(bot) -> list:  # type: ignore[no-untyped-def]
    return await bot.requests.list_pending()


async def test_the_card_shows_what_will_happen(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    sample_handlers.WIPE_TARGETS["disk"] = ["disk-a", "disk-b"]
    asked = await bot.handle(console("alice", "sample wipe disk"))
    assert asked.status == OutcomeStatus.PENDING
    assert "wipes 2 item(s): disk-a, disk-b" in plain(asked.reply.text)
    fields = [(name, plain(value)) for name, value in asked.reply.fields]
    assert ("Effect", "wipes 2 item(s): disk-a, disk-b") in fields
    assert "changes things" not in plain(asked.reply.text)
    confirm = asked.reply.actions[0]
    assert confirm.confirm_text and "wipes 2 item(s)" in plain(confirm.confirm_text)


async def test_a_plan_that_cannot_run_is_an_error_before_any_request(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    refused = await bot.handle(console("alice", "sample wipe missing"))
    assert refused.status == OutcomeStatus.ERROR and refused.request_id is None
    assert refused.reply.title and "cannot run" in refused.reply.title
    assert "there is no target 'missing'" in plain(refused.reply.text)
    assert "Usage: sample wipe TARGET" in plain(refused.reply.text)
    assert await pending(bot) == []
    assert runs("sample.wipe") == []


async def test_plan_errors_come_before_approval_too(make_bot) -> None:  # type: ignore[no-untyped-def]
    # A shifter's wipe needs an expert's approval: nobody is woken for a plan that cannot run.
    bot = await make_bot({"roles": {"shifter": {"approval": {"sample.restart": "expert",
                                                             "sample.wipe": "expert"}}}})
    refused = await bot.handle(console("alice", "sample wipe missing"))
    assert refused.status == OutcomeStatus.ERROR and await pending(bot) == []


async def test_more_affected_at_run_time_asks_again(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    sample_handlers.WIPE_TARGETS["disk"] = ["disk-a"]
    asked = await bot.handle(console("alice", "sample wipe disk"))
    sample_handlers.WIPE_TARGETS["disk"] = ["disk-a", "disk-b"]  # the world changed meanwhile
    again = await bot.decide(console("alice", ""), asked.request_id or "", Choice.CONFIRM)
    assert runs("sample.wipe") == []
    assert again.status == OutcomeStatus.PENDING and again.request_id != asked.request_id
    assert "changed" in plain(again.reply.text) and "wipes 2 item(s)" in plain(again.reply.text)
    old = await bot.requests.get(asked.request_id or "")
    assert old is not None and old.outcome == "changed"
    # Deciding the superseded request again must not say it ran.
    late = await bot.decide(console("alice", ""), asked.request_id or "", Choice.CONFIRM)
    assert "not run" in plain(late.reply.text) and "ran (" not in plain(late.reply.text)
    done = await bot.decide(console("alice", ""), again.request_id or "", Choice.CONFIRM)
    assert done.status == OutcomeStatus.OK and len(runs("sample.wipe")) == 1


async def test_fewer_affected_at_run_time_runs(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    sample_handlers.WIPE_TARGETS["disk"] = ["disk-a", "disk-b"]
    asked = await bot.handle(console("alice", "sample wipe disk"))
    sample_handlers.WIPE_TARGETS["disk"] = ["disk-a"]
    done = await bot.decide(console("alice", ""), asked.request_id or "", Choice.CONFIRM)
    assert done.status == OutcomeStatus.OK and len(runs("sample.wipe")) == 1


async def test_plan_failing_at_run_time_runs_nothing(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample wipe disk"))
    sample_handlers.WIPE_TARGETS["disk"] = []  # fine: a subset
    done = await bot.decide(console("alice", ""), asked.request_id or "", Choice.CONFIRM)
    assert done.status == OutcomeStatus.OK
    asked = await bot.handle(console("alice", "sample wipe other"))

    async def broken(ctx: Context) -> object:
        raise RuntimeError("boom")

    spec = bot.registry.find_words("sample wipe")
    assert spec is not None
    original, spec.plan = spec.plan, broken  # type: ignore[assignment]
    try:
        failed = await bot.decide(console("alice", ""), asked.request_id or "", Choice.CONFIRM)
    finally:
        spec.plan = original
    assert failed.status == OutcomeStatus.ERROR and "not run" in (failed.reply.title or "")
    assert [r[2]["target"] for r in runs("sample.wipe")] == ["disk"]


async def test_requester_withdraws_a_request_waiting_for_approval(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    other = await bot.handle(console("bob", f"cancel {asked.request_id}"))
    assert other.status == OutcomeStatus.DENIED
    withdrawn = await bot.handle(console("alice", f"cancel {asked.request_id}"))
    assert withdrawn.status == OutcomeStatus.OK
    assert "Cancelled by alice" in plain(withdrawn.reply.text)
    late = await bot.handle(console("carol", f"approve {asked.request_id}"))
    assert late.status == OutcomeStatus.ERROR and "nothing is run now" in plain(late.reply.text)
    assert "run twice" not in plain(late.reply.text)
    assert runs("sample.restart") == []


async def test_the_same_request_twice_is_refused(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    first = await bot.handle(console("alice", "sample restart gwcelery"))
    second = await bot.handle(console("alice", "sample restart gwcelery"))
    assert second.status == OutcomeStatus.ERROR and first.request_id in plain(second.reply.text)
    assert len(await pending(bot)) == 1
    # Another person, or another command line, is a new request.
    assert (await bot.handle(console("bob", "sample restart gwcelery"))).request_id
    assert (await bot.handle(console("alice", "sample restart other"))).request_id
    # Confirmations too; once decided, asking again is a new request.
    wipe = await bot.handle(console("alice", "sample wipe disk"))
    dup = await bot.handle(console("alice", "sample wipe disk"))
    assert dup.status == OutcomeStatus.ERROR and wipe.request_id in plain(dup.reply.text)
    await bot.decide(console("alice", ""), wipe.request_id or "", Choice.CANCEL)
    assert (await bot.handle(console("alice", "sample wipe disk"))).status == \
        OutcomeStatus.PENDING


async def test_denied_request_decided_again_says_nothing_ran(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    await bot.handle(console("carol", f"deny {asked.request_id} not now"))
    again = await bot.handle(console("erin", f"approve {asked.request_id}"))
    assert again.status == OutcomeStatus.ERROR
    assert "run twice" not in plain(again.reply.text) and "was not run" in plain(again.reply.text)
    assert again.reply.title


def test_destructive_command_without_a_plan_is_refused_at_load() -> None:
    @command("bad wipe", summary="no plan", destructive=True, args=[Arg("x")])
    async def wipe(ctx: Context) -> object:
        raise AssertionError

    registry = Registry()
    from bot.commands import specs_of

    with pytest.raises(RegistryError, match="declares no plan"):
        for spec in specs_of(wipe):
            registry.add(spec)


def test_job_ranges_and_state_summary() -> None:
    from bot.condor import preview
    from bot.condor.models import Matched

    assert preview.job_ranges(["1.2", "1.0", "1.1", "1.10", "1.9", "2.0", "1.5"]) == \
        ["1.0-1.2", "1.5", "1.9-1.10", "2.0"]
    matched = Matched(states={"1.0": "R", "1.1": "R", "1.2": "H", "3.0": "I"},
                      owners={"1.0": "emfollow", "1.1": "emfollow", "1.2": "emfollow",
                              "3.0": "cbc"})
    jobs = list(matched.states)
    assert preview.summary("remove", matched, jobs, "on pool p") == \
        "removes 4 jobs of emfollow, cbc on pool p: 1.0-1.1 running, 3.0 idle, 1.2 held"
    assert preview.skipped("release", matched) == ["1.0", "1.1", "3.0"]
