"""`restart TARGET` for gitlab_pipeline targets against the fake GitLab: the pipeline started
with the target's variables, its link posted, followed to success, failure or cancellation in
the notice and its thread, the outcome audited; GitLab's 401/404/429/500 and hangs; the total
time bounded; one restart per target across two bots (SQLite and PostgreSQL) and a run adopted
by another bot when its follower's process stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import console
from fakes.gitlab import FakeGitLab, GitLabState
from test_restart_support import (
    TRIGGER_TOKEN,
    confirm,
    finished_run,
    follow_ups,
    restart_config,
    runs,
    text,
    until,
    with_platform,
)

from bot.clock import ManualClock, use_clock
from bot.core import Bot, OutcomeStatus
from bot.restart import follow
from bot.restart.lock import LEASE, Lease
from handlers.restart import service_of

TOKEN = "glpat-shiftbot-test-token"


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    state = GitLabState(tokens=(TOKEN,))
    state.add_project("emfollow/gwcelery", trigger_tokens=[TRIGGER_TOKEN])
    async with FakeGitLab(state) as fake:
        yield fake


def pipeline_config(gitlab: FakeGitLab, *, token: str = TOKEN, timeout: float = 0.5,
                    cooldown: float = 0, **target: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "gitlab_pipeline", "description": "redeploy GWCelery", "ref": "main",
        "trigger_token": TRIGGER_TOKEN, "timeout_seconds": 30,
        "variables": {"COMPONENT": "{component}", "DEPLOY": "production"},
        "params": {"component": {"choices": ["worker", "beat"], "default": "worker"}},
    }
    spec.update(target)
    return restart_config({"gwcelery": spec}, cooldown_seconds=cooldown, gitlab={
        "url": gitlab.url, "token": token, "project": "emfollow/gwcelery",
        "timeout_seconds": timeout})


def script(gitlab: FakeGitLab, *statuses: str) -> None:
    gitlab.state.projects[1].scripts.append(list(statuses))


async def test_followed_to_success(make_bot: Any, gitlab: FakeGitLab) -> None:
    bot: Bot = await make_bot(pipeline_config(gitlab))
    platform = await with_platform(bot)
    done = await confirm(bot, "carol", "restart gwcelery component=beat")
    assert done.status == OutcomeStatus.OK, text(done)
    [pipeline] = gitlab.state.pipelines.values()
    assert pipeline.variables == {"COMPONENT": "beat", "DEPLOY": "production"}
    assert pipeline.source == "trigger"
    assert f"/emfollow/gwcelery/-/pipelines/{pipeline.id}" in text(done)
    run = await finished_run(bot, "gwcelery")
    assert (run.status, run.pipeline_id, run.pipeline_status) == ("success", pipeline.id,
                                                                  "success")
    await until(lambda: any(m.ref.thread_id for m in platform.messages))
    notice, reply = platform.messages[0], platform.messages[-1]
    assert f"pipeline #{pipeline.id}" in notice.text and "carol" in notice.text
    assert reply.ref.thread_id == notice.ref.message_id
    assert f"Pipeline #{pipeline.id} succeeded (requested by carol" in reply.text
    assert any("success" in t for _, t in platform.updates)
    [audited] = await follow_ups(bot)
    assert audited.outcome == "ok" and f"pipeline #{pipeline.id} success" in audited.detail
    again = await confirm(bot, "carol", "restart gwcelery")  # the lease was given back
    assert again.status == OutcomeStatus.OK, text(again)


@pytest.mark.parametrize(("statuses", "outcome", "says"), [
    (("pending", "running", "failed"), "failed", "failed"),
    (("running", "canceled"), "canceled", "was canceled"),
    (("skipped",), "skipped", "was skipped"),
])
async def test_followed_to_failure_or_cancellation(make_bot: Any, gitlab: FakeGitLab,
                                                   statuses: tuple[str, ...], outcome: str,
                                                   says: str) -> None:
    bot: Bot = await make_bot(pipeline_config(gitlab))
    platform = await with_platform(bot)
    script(gitlab, "created", *statuses)
    assert (await confirm(bot, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    run = await finished_run(bot, "gwcelery")
    assert run.status == outcome
    await until(lambda: any(m.ref.thread_id for m in platform.messages))
    assert says in platform.messages[-1].text
    assert [e.outcome for e in await follow_ups(bot)] == ["error"]


async def test_cancelled_by_someone_while_followed(make_bot: Any, gitlab: FakeGitLab) -> None:
    bot: Bot = await make_bot(pipeline_config(gitlab))
    script(gitlab, "created", "running")  # then it stays running
    assert (await confirm(bot, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    [pipeline] = gitlab.state.pipelines.values()
    await until(lambda: pipeline.status == "running")
    gitlab.state.set_status(pipeline.id, "canceled")
    assert (await finished_run(bot, "gwcelery")).status == "canceled"


async def test_started_with_the_access_token_without_a_trigger_token(
        make_bot: Any, gitlab: FakeGitLab) -> None:
    bot: Bot = await make_bot(pipeline_config(gitlab, trigger_token=None))
    assert (await confirm(bot, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    [pipeline] = gitlab.state.pipelines.values()
    assert pipeline.source == "api"
    assert (await finished_run(bot, "gwcelery")).status == "success"


@pytest.mark.parametrize(("setup", "says", "cooldown_started"), [
    ({"token": "glpat-wrong", "trigger_token": None}, "401", False),
    ({"trigger_token": "glptt-wrong-token-000000"}, "404", False),
    ({"project": "emfollow/nope"}, "404 Project Not Found", False),
    ({"ref": "nope"}, "Reference not found", False),
    ({"fail": (500, 1)}, "may have started anyway", True),
    ({"fail": (429, 3)}, "rate-limiting", False),
])
async def test_gitlab_refusing_the_start(make_bot: Any, gitlab: FakeGitLab,
                                         setup: dict[str, Any], says: str,
                                         cooldown_started: bool) -> None:
    setup = dict(setup)
    fail = setup.pop("fail", None)
    token = setup.pop("token", TOKEN)
    if fail:
        gitlab.state.fail(r"/trigger/pipeline$", fail[0], times=fail[1], retry_after="0")
    bot: Bot = await make_bot(pipeline_config(gitlab, token=token, cooldown=600, **setup))
    done = await confirm(bot, "carol", "restart gwcelery")
    assert done.status == OutcomeStatus.ERROR and says in text(done), text(done)
    assert TRIGGER_TOKEN not in text(done) and "glpat" not in text(done)
    [run] = await runs(bot, "gwcelery")
    assert (run.status, run.effect) == ("error", cooldown_started)
    again = await bot.handle(console("carol", "restart gwcelery", "ops"))
    # A refusal changed nothing: fix the config and try again at once. A 5xx may have
    # started it: the cooldown holds.
    assert (again.status == OutcomeStatus.PENDING) != cooldown_started, text(again)


async def test_a_rate_limited_start_is_retried(make_bot: Any, gitlab: FakeGitLab) -> None:
    gitlab.state.fail(r"/trigger/pipeline$", 429, times=2, retry_after="0")
    bot: Bot = await make_bot(pipeline_config(gitlab))
    assert (await confirm(bot, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    assert len(gitlab.state.pipelines) == 1
    assert (await finished_run(bot, "gwcelery")).status == "success"


async def test_transient_failures_while_following(make_bot: Any, gitlab: FakeGitLab) -> None:
    gitlab.state.fail(r"/pipelines/[0-9]+$", 429, retry_after="0")
    gitlab.state.fail(r"/pipelines/[0-9]+$", 500, times=2)
    gitlab.state.fail(r"/pipelines/[0-9]+$", 0, hang=True)  # the client's timeout: 0.5 s
    bot: Bot = await make_bot(pipeline_config(gitlab))
    assert (await confirm(bot, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    run = await finished_run(bot, "gwcelery", timeout=20)
    assert run.status == "success"
    statuses = [r.status for r in gitlab.state.requests if r.method == "GET"]
    assert statuses[:4] == [429, 500, 500, 0] and statuses[-1] == 200


@pytest.mark.parametrize(("status", "says"), [(401, "401"), (404, "404")])
async def test_gitlab_refusing_to_show_the_pipeline_ends_following(
        make_bot: Any, gitlab: FakeGitLab, status: int, says: str) -> None:
    gitlab.state.fail(r"/pipelines/[0-9]+$", status, times=100)
    bot: Bot = await make_bot(pipeline_config(gitlab))
    platform = await with_platform(bot)
    assert (await confirm(bot, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    run = await finished_run(bot, "gwcelery")
    assert run.status == "error" and "stopped following" in run.detail and says in run.detail
    await until(lambda: any(m.ref.thread_id for m in platform.messages))
    assert "ended: error" in platform.messages[-1].text


async def test_the_total_time_is_bounded(make_bot: Any, gitlab: FakeGitLab) -> None:
    script(gitlab, "running")
    bot: Bot = await make_bot(pipeline_config(gitlab, timeout_seconds=0.5))
    assert (await confirm(bot, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    run = await finished_run(bot, "gwcelery", timeout=5)
    assert run.status == "timeout" and "still running" in run.detail
    assert [e.outcome for e in await follow_ups(bot)] == ["timeout"]


async def two_bots(make_bot: Any, make_config: Any, raw: dict[str, Any],
                   database: str | None = None) -> tuple[Bot, Bot]:
    if database is not None:
        raw = {**raw, "bot": {**raw["bot"], "database": database}}
    config = make_config(raw)
    first: Bot = await make_bot(config=config)
    second: Bot = await make_bot(config=config)
    return first, second


async def check_one_at_a_time(first: Bot, second: Bot, gitlab: FakeGitLab) -> None:
    script(gitlab, "created", "running")  # it stays running until the test says
    assert (await confirm(first, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    refused = await second.handle(console("erin", "restart gwcelery", "ops"))
    assert refused.status == OutcomeStatus.ERROR and "under way" in text(refused)
    assert await Lease.acquire(second.claims, "gwcelery", LEASE) is None
    [pipeline] = gitlab.state.pipelines.values()
    gitlab.state.set_status(pipeline.id, "success")
    assert (await finished_run(second, "gwcelery")).status == "success"
    await until(lambda: not service_of(first).following)
    done = await confirm(second, "erin", "restart gwcelery")
    assert done.status == OutcomeStatus.OK, text(done)
    assert (await finished_run(first, "gwcelery")).status == "success"


async def test_one_restart_per_target_across_two_bots(make_bot: Any, make_config: Any,
                                                      gitlab: FakeGitLab) -> None:
    first, second = await two_bots(make_bot, make_config, pipeline_config(gitlab))
    await check_one_at_a_time(first, second, gitlab)


@pytest.mark.postgres
async def test_one_restart_per_target_on_postgresql(make_bot: Any, make_config: Any,
                                                    gitlab: FakeGitLab,
                                                    postgres_url: str) -> None:
    first, second = await two_bots(make_bot, make_config, pipeline_config(gitlab),
                                   postgres_url)
    await check_one_at_a_time(first, second, gitlab)


async def test_a_stopped_bots_pipeline_is_adopted(make_bot: Any, make_config: Any,
                                                  gitlab: FakeGitLab) -> None:
    """The bot following a pipeline stops cleanly: the other one follows it to its end, and
    the outcome still reaches the thread and the audit (once)."""
    first, second = await two_bots(make_bot, make_config, pipeline_config(gitlab))
    platform = await with_platform(first)
    second.platforms["fake"] = platform  # one workspace, two bots
    await second.notices.start()
    script(gitlab, "created", "running")
    assert (await confirm(first, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    await until(lambda: bool(service_of(first).following))
    await first.stop_handlers()  # shutdown: it stops following and gives the lease back
    [run] = await runs(second, "gwcelery")
    assert run.status == "running"
    assert await follow.resume(service_of(second)) == [run.id]
    [pipeline] = gitlab.state.pipelines.values()
    gitlab.state.set_status(pipeline.id, "failed")
    assert (await finished_run(second, "gwcelery")).status == "failed"
    [audited] = await follow_ups(second)
    assert audited.person == "carol" and audited.outcome == "error"
    await until(lambda: any(m.ref.thread_id for m in platform.messages))
    assert "failed (requested by carol" in platform.messages[-1].text


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(datetime.now(UTC))
    with use_clock(manual):
        yield manual


async def test_a_crashed_bots_pipeline_is_adopted_once_its_lease_runs_out(
        make_bot: Any, make_config: Any, gitlab: FakeGitLab, clock: ManualClock) -> None:
    first, second = await two_bots(make_bot, make_config,
                                   pipeline_config(gitlab, timeout_seconds=3600))
    script(gitlab, "created", "running")
    assert (await confirm(first, "carol", "restart gwcelery")).status == OutcomeStatus.OK
    await until(lambda: bool(service_of(first).following))
    # A crash: the follower stops without giving anything back.
    [(task, lease)] = service_of(first).following.values()
    await lease.stop_renewing()
    lease.lost = True  # so its cleanup does not release the claim
    task.cancel()
    await until(lambda: task.done())
    assert await follow.resume(service_of(second)) == []  # its lease still holds
    clock.advance((LEASE + timedelta(seconds=1)).total_seconds())
    adopted = await follow.resume(service_of(second))
    assert len(adopted) == 1
    [pipeline] = gitlab.state.pipelines.values()
    gitlab.state.set_status(pipeline.id, "success")
    assert (await finished_run(second, "gwcelery")).status == "success"
    assert [e.outcome for e in await follow_ups(second)] == ["ok"]


async def test_a_lost_command_run_is_recorded_as_lost(make_bot: Any, gitlab: FakeGitLab,
                                                      clock: ManualClock) -> None:
    bot: Bot = await make_bot(pipeline_config(gitlab))
    service = service_of(bot)
    from bot.restart import store

    run_id = await bot.database.run(store.start, {
        "target": "gwcelery", "kind": "command", "person": "carol", "platform": "console",
        "platform_user": "carol", "channel": "ops", "arguments": "{}", "action": "x",
        "project": None})
    assert await follow.resume(service) == [run_id]
    [run] = await runs(bot, "gwcelery")
    assert run.status == "lost" and "unknown" in run.detail
    assert [e.outcome for e in await follow_ups(bot)] == ["error"]
