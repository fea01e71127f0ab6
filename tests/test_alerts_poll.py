"""Polling mode against the fake Sentry: the unresolved issues of each project go through the
same inbox and dedupe as webhooks (nothing twice, a webhook and a poll of the same state are
one alert), regressions found by polling, one poll per project and interval across replicas,
an unreachable Sentry costs one log line."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from alerts_rig import T0, Rig, alerts_rig, clock, issue_payload
from fakes.sentry import TOKEN, FakeSentry

from bot.alerts import issues, poll
from bot.alerts.sentry_api import SentryApi
from bot.clock import ManualClock

__all__ = ["clock"]  # fixtures

INTERVAL = 300
POLLING = {"sentry": {"token": TOKEN, "org": "ligo",
                      "poll": {"interval": INTERVAL, "projects": ["gwcelery", "gracedb"]}},
           "alerts": {"routes": [{"channels": ["ops"]}]}}


async def _poll(rig: Rig) -> int:
    stored = await poll.poll_due(rig.bot, rig.service.sentry, rig.service.api,
                                 rig_now(rig))
    await rig.drain()
    return stored


def rig_now(rig: Rig) -> Any:
    from bot import clock as bot_clock

    return bot_clock.utcnow()


async def _polling_rig(make_bot: Any, sentry: FakeSentry) -> Rig:
    api = SentryApi(sentry.api_url, TOKEN, sentry.state.org, timeout=5)
    return await alerts_rig(make_bot, POLLING, api=api)


async def test_polling_finds_each_issue_once(make_bot: Any, clock: ManualClock) -> None:
    async with FakeSentry() as sentry:
        rig = await _polling_rig(make_bot, sentry)
        ids = [sentry.state.add_issue(project=p, last_seen=T0)["id"]
               for p in ("gwcelery", "gwcelery", "gracedb")]
        sentry.state.add_issue(project="elsewhere")  # not polled
        sentry.state.add_issue(status="resolved")  # not unresolved: not listed
        assert await _poll(rig) == 3
        assert len(rig.posts()) == 3
        clock.advance(INTERVAL)
        assert await _poll(rig) == 0  # nothing changed: every delivery a duplicate
        listed = await rig.run("alerts list")
        assert all(issue_id in listed for issue_id in ids)


async def test_a_newer_last_seen_is_a_repeat_and_a_webhook_is_not_doubled(
        make_bot: Any, clock: ManualClock) -> None:
    async with FakeSentry() as sentry:
        rig = await _polling_rig(make_bot, sentry)
        issue = sentry.state.add_issue(last_seen=T0)
        # The webhook brought it first; the poll finds the same state: one alert, one post.
        await rig.deliver("issue", issue_payload(issue["id"], last_seen=issue["lastSeen"],
                                                 project="gwcelery"))
        await _poll(rig)
        assert len(rig.posts()) == 1
        row = await rig.bot.database.run(issues.get, f"sentry:{issue['id']}")
        assert row is not None and row.deliveries == 2
        updates = len(rig.updates())
        clock.advance(INTERVAL)
        sentry.state.touch(issue["id"], times=5)
        await _poll(rig)
        assert len(rig.posts()) == 1 and len(rig.updates()) == updates + 1
        assert "6 events" in rig.updates()[-1]["text"]
        assert rig.tickets.of(f"sentry:{issue['id']}").count("note_repeat") == 1


async def test_polling_finds_a_regression(make_bot: Any, clock: ManualClock) -> None:
    async with FakeSentry() as sentry:
        rig = await _polling_rig(make_bot, sentry)
        issue = sentry.state.add_issue(last_seen=T0)
        await _poll(rig)
        await rig.run(f"alerts resolve {issue['id']}")
        clock.advance(INTERVAL)
        await _poll(rig)  # resolved in Sentry: not listed, nothing happens
        assert rig.threads() == []
        clock.advance(INTERVAL)
        sentry.state.touch(issue["id"], status="unresolved")
        await _poll(rig)
        assert "Regression" in rig.threads()[-1]["text"]
        row = await rig.bot.database.run(issues.get, f"sentry:{issue['id']}")
        assert row is not None and (row.status, row.regressions) == ("unresolved", 1)


async def test_replicas_poll_each_project_once_per_interval(make_bot: Any,
                                                            clock: ManualClock) -> None:
    async with FakeSentry() as sentry:
        rig = await _polling_rig(make_bot, sentry)
        other = await make_bot(config=rig.bot.config, start_handlers=False)
        sentry.state.add_issue()
        api = rig.service.api
        for bot in (rig.bot, other, rig.bot):
            await poll.poll_due(bot, rig.service.sentry, api, rig_now(rig))
        listings = [r for r in sentry.state.requests if "/issues/?" in r.path]
        assert len(listings) == 2  # one per project, whoever claimed it
        clock.advance(INTERVAL)
        await poll.poll_due(other, rig.service.sentry, api, rig_now(rig))
        listings = [r for r in sentry.state.requests if "/issues/?" in r.path]
        assert len(listings) == 4


async def test_an_unreachable_sentry_costs_one_line_per_project(
        make_bot: Any, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    async with FakeSentry() as sentry:
        rig = await _polling_rig(make_bot, sentry)
        sentry.state.add_issue()
        sentry.state.fail("issues/", 502, times=10)
        with caplog.at_level(logging.WARNING, "bot.alerts"):
            assert await _poll(rig) == 0
        lines = [r for r in caplog.records if "alerts poll" in r.getMessage()]
        assert len(lines) == 2
        assert TOKEN not in caplog.text
        clock.advance(INTERVAL)
        sentry.state.failures.clear()
        assert await _poll(rig) == 1


async def test_no_api_or_no_projects_polls_nothing(make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    assert await poll.poll_due(rig.bot, rig.service.sentry, None, rig_now(rig)) == 0
