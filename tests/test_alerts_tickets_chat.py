"""What a ticket says in chat goes through the chat lane (``notice.*`` tasks): the link is
queued in the transaction that records the mapping, so it is said exactly once even when the
process dies right after, and it never overtakes the alert's post, however late that post is
(chat down when the ticket was opened; the alert in a storm summary, whose lane is the
storm's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes.gitlab import FakeGitLab, GitLabState
from notice_platform import FakePlatform, TransientError
from test_alerts_tickets_support import (
    PROJECT,
    START,
    TOKEN,
    add_issue,
    alert,
    all_tasks,
    drain,
    enqueue_ticket,
    manual_clock,
    mapping,
    of_kind,
    runner,
    the_ticket_task,
    thread_texts,
    ticket_bot,
    until,
    with_notice,
)

from bot.alerts import decide, tickets
from bot.alerts.config import AlertsConfig, AutoTicket, Route, StormConfig
from bot.alerts.tasks import Retry
from bot.clock import ManualClock
from bot.core import Bot

__all__ = ["manual_clock"]


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    state = GitLabState(tokens=(TOKEN,))
    state.add_project(PROJECT)
    async with FakeGitLab(state) as fake:
        yield fake


async def settle() -> None:
    """Let the notices deliverer send what it has (and anything it should not have)."""
    await asyncio.sleep(0.2)


@pytest.mark.parametrize("deaths", [1, 2])
async def test_the_link_is_said_once_when_the_process_dies_after_recording(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock, deaths: int) -> None:
    """The ticket handler runs to its end, and the process dies before the task is marked
    done (once, or again after the restart); a fresh runner then finds it due: one issue,
    one link."""
    bot = await ticket_bot(make_bot, gitlab)
    item = alert("6100")
    await add_issue(bot, item)
    platform, _ = await with_notice(bot, item)
    await enqueue_ticket(bot, item.subject)
    for _ in range(deaths):
        await tickets.open_ticket(bot, await the_ticket_task(bot))  # ... and no mark_done
    assert (await the_ticket_task(bot)).state == "pending"
    assert await drain(runner(bot)) == 3  # after the restart: the ticket, the link, update
    assert await drain(runner(bot)) == 0
    await until(lambda: thread_texts(platform))
    await settle()
    row = await mapping(bot, item.subject)
    assert row is not None and len(gitlab.state.issues) == 1
    assert thread_texts(platform) == [f"GitLab issue {row.ref} opened: {row.web_url}"]
    assert len(of_kind(await all_tasks(bot), "notice.thread")) == 1


async def test_not_opened_yet_is_said_once_when_the_process_dies_after_saying_it(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock) -> None:
    """The "not yet" message and the task's note that it was said are one transaction: a
    retry after a crash (the Retry never recorded) does not say it again."""
    bot = await ticket_bot(make_bot, gitlab)
    item = alert("6101")
    await add_issue(bot, item)
    platform, _ = await with_notice(bot, item)
    await enqueue_ticket(bot, item.subject)
    gitlab.state.fail(r"/issues$", 502, method="POST", times=3)
    with pytest.raises(Retry):  # the handler said it; then the process died
        await tickets.open_ticket(bot, await the_ticket_task(bot))
    assert (await the_ticket_task(bot)).said_in_thread
    assert await runner(bot).run_due() == 1  # after the restart: "not yet"; ticket: 502
    manual_clock.advance(15)
    assert await runner(bot).run_due() == 0  # 502 again: nothing more said
    manual_clock.advance(30)
    assert await drain(runner(bot)) == 3  # opened; the link; the notice's update
    await until(lambda: len(thread_texts(platform)) == 2)
    await settle()
    said = thread_texts(platform)
    assert said[0].startswith("GitLab issue not opened yet: ") and len(said) == 2
    assert said[1].startswith(f"GitLab issue {PROJECT}#1 opened: ")
    assert len(gitlab.state.issues) == 1


def _chat(bot: Bot, *, up: list[bool]) -> FakePlatform:
    """A platform that cannot resolve channels (its API is down) while ``up`` is [False]."""
    platform = FakePlatform("fake", {"ops": "C-OPS", "alerts": "C-ALERTS"})
    resolve = platform.channel_for

    async def channel_for(alias: str) -> str | None:
        if not up[0]:
            raise TransientError("chat API down")
        return await resolve(alias)

    platform.channel_for = channel_for  # type: ignore[method-assign]
    bot.platforms["fake"] = platform
    return platform


SETTINGS = AlertsConfig(routes=[Route(channels=["alerts"])],
                        auto_ticket=AutoTicket(enabled=True),
                        storm=StormConfig(threshold=1, window=300))


@pytest.mark.parametrize("in_storm", [False, True])
async def test_a_ticket_opened_before_the_alerts_post_is_linked_after_it(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock, in_storm: bool) -> None:
    """The pipeline decides a new alert: its post and its ticket are queued together. Chat
    is down, GitLab is not: the issue is opened first; its link waits in the notice's lane
    and follows the post (in the post's thread), and the post is updated after it."""
    bot = await ticket_bot(make_bot, gitlab, alerts=SETTINGS.model_dump())
    up = [False]
    platform = _chat(bot, up=up)
    await bot.notices.start()
    if in_storm:  # one alert posted a moment ago: the next one opens a storm summary
        await add_issue(bot, alert("6200"), notice_key="alert:sentry:6200")
    item = alert("6201")
    made = await bot.database.run(decide.decide, item, SETTINGS, START, tickets)
    assert made.ticket and made.outcome == ("storm" if in_storm else "new")
    key = made.notice_key
    assert key is not None and key.startswith("storm:" if in_storm else "alert:")
    assert await runner(bot).run_due() == 1  # the post: chat down; the ticket: opened
    row = await mapping(bot, item.subject)
    assert row is not None and len(gitlab.state.issues) == 1
    assert await runner(bot).run_due() == 0  # the link and the update wait for the post
    await settle()
    assert platform.messages == [] and platform.updates == []
    pending = of_kind(await all_tasks(bot), "notice.post", "notice.thread", "notice.update")
    assert [(t.kind, t.state) for t in pending] == [
        ("notice.post", "pending"), ("notice.thread", "pending"), ("notice.update", "pending")]
    assert len({t.subject for t in pending}) == 1  # one lane: the notice's

    up[0] = True
    manual_clock.advance(15)
    assert await drain(runner(bot)) == 3
    await until(lambda: len(platform.messages) == 2 and platform.updates)
    await settle()
    post, link = platform.messages
    assert post.ref.thread_id is None
    assert link.ref.thread_id == post.ref.message_id
    assert link.text == f"GitLab issue {row.ref} opened: {row.web_url}"
    [(updated, shown)] = platform.updates
    assert updated.message_id == post.ref.message_id
    if not in_storm:  # the alert's own post shows its ticket (rendered when it is sent)
        assert row.web_url in shown and row.web_url in post.text
