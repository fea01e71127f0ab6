"""What alerts look like and how their chat tasks fail: everything Sentry sends is inert text
on every platform (no mentions, links or markup get through, no odd link or id reaches a
button), and the notice tasks retry a platform's passing failure and give up on what can
never work."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alerts_rig import Rig, alerts_rig, clock, event_payload, issue_payload, next_id
from sqlalchemy import select

from bot import db
from bot.alerts import issues, tables
from bot.alerts.decide import UPDATE, enqueue_notice
from bot.clock import ManualClock
from bot.messaging.port import TransientError
from bot.render import render_text

__all__ = ["clock"]  # fixtures

HOSTILE = [
    "<!here> <!channel> <@U0ALICE01>",
    "@channel @all please look",
    "[click me](https://evil.example/x) <https://evil.example|ok>",
    "`code` ```block``` *bold* _it_ ~strike~ # heading",
    "line one\nline two\u202e reversed \u200b hidden",
]
ODD_URLS = ["javascript:alert(1)", "https://ok.example/a b", "https://ok.example/<x>",
            "file:///etc/passwd", "https://ok.example/`x`"]


async def _rendered(rig: Rig, subject: str) -> list[str]:
    """The issue's notice, rendered for each platform's dialect."""
    from bot.alerts.noticetasks import render

    row = await rig.bot.database.run(issues.get, subject)
    assert row is not None
    reply = await rig.bot.renderer.render(await render(rig.bot, {
        "view": "alert", "subject": subject, "key": row.notice_key}))
    return [render_text(reply, dialect) for dialect in ("slack", "mattermost", "console")] + [
        reply]


@pytest.mark.parametrize("text", HOSTILE)
async def test_sentry_text_is_inert_on_every_platform(make_bot: Any, clock: ManualClock,
                                                      text: str) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    payload = event_payload(issue_id, title=text, release=text, tags={"server_name": text})
    payload["data"]["event"]["culprit"] = text
    payload["data"]["triggered_rule"] = text
    await rig.deliver("event_alert", payload)
    slack, mattermost, _console, reply = await _rendered(rig, f"sentry:{issue_id}")
    for forbidden in ("<!here>", "<!channel>", "<@U0ALICE01>", "<https://evil"):
        assert forbidden not in slack
    assert "@channel" not in mattermost and "@all" not in mattermost  # ZWJ after the @
    assert "](https://evil" not in mattermost
    assert "\u202e" not in slack + mattermost and "\u200b" not in slack + mattermost
    title = reply.title or ""
    assert "\n" not in render_text(reply.__class__(title=title), "slack").strip()


@pytest.mark.parametrize("url", ODD_URLS)
async def test_odd_links_and_job_ids_never_reach_text_or_buttons(make_bot: Any,
                                                                 clock: ManualClock,
                                                                 url: str) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    payload = event_payload(issue_id, tags={"htcondor.cluster_id": "1.0; condor_rm -all"})
    payload["data"]["event"]["web_url"] = url
    await rig.deliver("event_alert", payload)
    *texts, reply = await _rendered(rig, f"sentry:{issue_id}")
    assert all(url not in text for text in texts)
    assert all(action.url is None or action.url.startswith("https://") for action in
               reply.actions)
    commands = rig.bot.database.call(
        lambda conn: [row.command for row in conn.execute(select(db.actions.c.command))])
    assert commands and all("condor_rm" not in c and ";" not in c for c in commands)
    assert not any(c.startswith("condor analyze") for c in commands)


async def test_a_passing_platform_failure_is_retried_and_posted_once(
        make_bot: Any, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = await alerts_rig(make_bot)
    post = rig.bot.notices.post
    failures = [TransientError("the platform cannot resolve #ops now")]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await post(*args, **kwargs)

    monkeypatch.setattr(rig.bot.notices, "post", flaky)
    issue_id = next_id()
    await rig.deliver("issue", issue_payload(issue_id))
    assert rig.posts() == []
    shown = await rig.run("alerts pending")
    assert "notice.post" in shown and "cannot resolve #ops" in shown
    await rig.deliver("event_alert", event_payload(issue_id))  # its update waits behind
    assert rig.posts() == [] and rig.updates() == []
    clock.advance(60)
    await rig.drain()
    assert len(rig.posts()) == 1 and len(rig.updates()) == 1
    assert "Nothing pending" in await rig.run("alerts pending")


async def test_an_update_of_an_unknown_notice_gives_up(make_bot: Any,
                                                      clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    await rig.deliver("issue", issue_payload(issue_id, project="nobody-routes-this"))
    await rig.bot.database.run(lambda conn: enqueue_notice(
        conn, UPDATE, f"alert:sentry:{issue_id}", "alert", clock(), subject=f"sentry:{issue_id}"))
    await rig.drain()
    rows = await rig.bot.database.run(lambda conn: conn.execute(select(tables.tasks)).all())
    (task,) = rows
    assert task.state == "failed" and task.attempts == 1
    assert "failed" in await rig.run("alerts pending")


async def test_updates_are_coalesced_while_one_waits(make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    await rig.deliver("issue", issue_payload(issue_id))
    for _ in range(10):
        await rig.send("event_alert", event_payload(issue_id))
    await rig.drain()
    rows = await rig.bot.database.run(lambda conn: conn.execute(
        select(tables.tasks.c.kind, tables.tasks.c.payload)).all())
    assert [r.kind for r in rows].count("notice.update") == 1
    assert json.loads(rows[-1].payload)["view"] == "alert"
    assert len(rig.updates()) == 1
