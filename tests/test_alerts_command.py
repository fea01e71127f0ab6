"""The ``alerts`` commands on the console: list, show (by id or short id), pending, ticket,
resolve/ignore through the Sentry API (and without one), the buttons of a notice, the gate,
and ``alerts simulate`` driving the whole pipeline like the demo does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from alerts_rig import T0, Rig, alerts_rig, clock, event_payload, issue_payload, next_id
from fakes.sentry import TOKEN, FakeSentry
from sqlalchemy import select

from bot.alerts import issues, tables, tasks
from bot.alerts.sentry_api import SentryApi
from bot.clock import ManualClock
from bot.timefmt import format_clock

__all__ = ["clock"]  # fixtures

BUTTON = re.compile(r"\[(?P<label>[^:\]]+): click (?P<id>a[0-9a-f]{20})\]")


def buttons(text: str) -> dict[str, str]:
    return {m["label"]: m["id"] for m in BUTTON.finditer(text)}


async def _posted(rig: Rig, **changes: Any) -> str:
    issue_id = next_id()
    await rig.deliver("issue", issue_payload(issue_id, short_id=f"GWCELERY-{issue_id[-3:]}",
                                             **changes))
    return issue_id


async def test_list_and_show_by_id_or_short_id(make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    first = await _posted(rig, title="KeyError: 'superevent_id'")
    clock.advance(60)
    second = await _posted(rig, title="TimeoutError: GraceDB")
    listed = await rig.run("alerts list")
    assert listed.index(second) < listed.index(first)  # latest change first
    for ref in (first, f"GWCELERY-{first[-3:]}", f"gwcelery-{first[-3:]}"):
        shown = await rig.run(f"alerts show {ref}")
        assert "KeyError" in shown and "1 delivery" in shown, ref
    assert "no alert 'GWCELERY-NOPE'" in await rig.run("alerts show GWCELERY-NOPE")
    await rig.deliver("issue", issue_payload(first, action="resolved", status="resolved"))
    open_only = await rig.run("alerts list --open")
    assert second in open_only and first not in open_only


async def test_pending_shows_waiting_rows_and_tasks(make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    assert "Nothing pending" in await rig.run("alerts pending")
    await rig.send("issue", issue_payload(next_id()))  # stored, not processed yet
    await rig.bot.database.run(lambda conn: tasks.enqueue(
        conn, "sentry:1", "comment", {}, now=T0, due=T0 + timedelta(hours=1)))
    shown = await _pending_without_draining(rig)
    assert "inbox #1 issue.created" in shown and "task #1 comment" in shown
    assert format_clock(T0 + timedelta(hours=1), rig.bot.config.bot.timezone, now=T0) in shown


async def _pending_without_draining(rig: Rig) -> str:
    start = len(rig.out.getvalue())
    await rig.console.run_once("alerts pending")
    return rig.out.getvalue()[start:]


async def test_ticket_command(make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = await _posted(rig)
    rig.tickets.problem = "gitlab.token is not set"
    assert "cannot open a GitLab issue: gitlab.token is not set" in await rig.run(
        f"alerts ticket {issue_id}")
    assert rig.tickets.calls == []
    rig.tickets.problem = None
    assert "is being opened" in await rig.run(f"alerts ticket {issue_id}")
    assert "was already asked for" in await rig.run(f"alerts ticket {issue_id}", person="bob")
    assert rig.tickets.reasons == ["asked by alice", "asked by bob"]
    rig.tickets.mapped[f"sentry:{issue_id}"] = Mapped("https://gitlab.example.org/x/-/issues/7")
    assert "https://gitlab.example.org/x/-/issues/7" in await rig.run(
        f"alerts ticket {issue_id}")


@dataclass
class Mapped:
    web_url: str
    state: str = "opened"


async def test_resolve_without_the_sentry_api_says_what_is_missing(
        make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = await _posted(rig)
    said = await rig.run(f"alerts resolve {issue_id}")
    assert "sentry.token" in said and "sentry.org" in said
    row = await rig.bot.database.run(issues.get, f"sentry:{issue_id}")
    assert row is not None and row.status == "unresolved"


async def test_resolve_and_ignore_through_sentry_then_the_webhook_confirms(
        make_bot: Any, clock: ManualClock) -> None:
    async with FakeSentry() as sentry:
        api = SentryApi(sentry.api_url, TOKEN, sentry.state.org, timeout=5)
        rig = await alerts_rig(make_bot, api=api)
        first, second = sentry.state.add_issue()["id"], sentry.state.add_issue()["id"]
        for issue_id in (first, second):
            await rig.deliver("issue", issue_payload(issue_id))
        said = await rig.run(f"alerts resolve {first}")
        assert "resolved in Sentry by alice" in said
        assert "resolved" in rig.updates()[-1]["text"]
        await rig.run(f"alerts ignore {second}", person="bob")
        assert [(c.issue_id, c.status) for c in sentry.state.status_changes] == [
            (first, "resolved"), (second, "ignored")]
        statuses = await rig.bot.database.run(
            lambda conn: {r.issue_id: r.status for r in issues.listing(conn)[0]})
        assert statuses == {first: "resolved", second: "ignored"}
        # Sentry's own webhook about the same change: nothing new to say.
        updates = len(rig.updates())
        await rig.deliver("issue", issue_payload(first, action="resolved", status="resolved"))
        assert len(rig.updates()) == updates
        assert rig.tickets.of(f"sentry:{first}") == ["note_resolved"]


async def test_resolve_refused_by_sentry_changes_nothing_here(make_bot: Any,
                                                             clock: ManualClock) -> None:
    async with FakeSentry() as sentry:
        api = SentryApi(sentry.api_url, TOKEN, sentry.state.org, timeout=5)
        rig = await alerts_rig(make_bot, api=api)
        issue_id = sentry.state.add_issue()["id"]
        await rig.deliver("issue", issue_payload(issue_id))
        sentry.state.fail("issues/", 500, method="PUT")
        said = await rig.run(f"alerts resolve {issue_id}")
        assert "Sentry did not resolve" in said
        row = await rig.bot.database.run(issues.get, f"sentry:{issue_id}")
        assert row is not None and row.status == "unresolved"
        assert TOKEN not in rig.out.getvalue()


async def test_the_notice_buttons_run_their_commands_through_the_gate(
        make_bot: Any, clock: ManualClock) -> None:
    async with FakeSentry() as sentry:
        api = SentryApi(sentry.api_url, TOKEN, sentry.state.org, timeout=5)
        rig = await alerts_rig(make_bot, api=api)
        tags = {"htcondor.cluster_id": "1234.0"}
        issue_id = sentry.state.add_issue(tags=tags)["id"]
        await rig.deliver("event_alert", event_payload(issue_id, tags=tags))
        offered = buttons(rig.out.getvalue())
        assert set(offered) >= {"Open GitLab issue", "Resolve", "Ignore", "Analyze job"}
        denied = await rig.run(f"click {offered['Resolve']}", person="dave")
        assert "not allowed" in denied.lower() or "denied" in denied.lower()
        assert sentry.state.status_changes == []
        await rig.run(f"click {offered['Resolve']}", person="bob")
        assert [c.status for c in sentry.state.status_changes] == ["resolved"]


async def test_simulate_drives_the_pipeline_like_sentry(make_bot: Any,
                                                        clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot, {"alerts": {"routes": [{"channels": ["ops"]}]}})
    said = await rig.run("alerts simulate")
    assert "stored in the inbox" in said and "signed with sentry.client_secret" in said
    assert len(rig.posts("ops")) == 1
    await rig.run("alerts simulate event --level fatal --project gracedb")
    assert "FATAL" in rig.posts("ops")[1]
    assert "Analyze job" in rig.out.getvalue()
    await rig.run("alerts simulate repeat")
    await rig.run("alerts simulate resolve")
    assert "resolved" in rig.updates()[-1]["text"]
    clock.advance(60)
    await rig.run("alerts simulate regress")
    assert "Regression" in rig.threads()[-1]["text"]
    await rig.run("alerts simulate metric")
    assert "Metric alert" in rig.posts("ops")[-1]
    assert len(rig.posts("ops")) == 3
    rows = await rig.bot.database.run(lambda c: c.execute(select(tables.inbox.c.state)).all())
    assert [r.state for r in rows] == ["done"] * 6


async def test_simulate_follow_up_needs_an_issue(make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    assert "makes one first" in await rig.run("alerts simulate regress")
    assert "no Sentry issue 'GWCELERY-X'" in await rig.run(
        "alerts simulate regress --id GWCELERY-X")


async def test_check_config_names_what_is_wrong(make_bot: Any, clock: ManualClock) -> None:
    from handlers.alerts import check_config

    rig = await alerts_rig(make_bot, {
        "alerts": {"routes": [{"channels": ["nowhere"], "mention": ["nobody"]}],
                   "auto_ticket": {"enabled": True}},
        "sentry": {"poll": {"projects": ["gwcelery"]}}})
    problems = {p.path: p for p in check_config(rig.bot.config)}
    assert "unknown channel alias 'nowhere'" in problems["alerts.routes[0].channels[0]"].message
    assert problems["alerts.routes[0].mention[0]"].severity == "warning"
    assert problems["alerts.auto_ticket.enabled"].severity == "warning"
    assert "sentry.token" in problems["sentry.poll.projects"].hint
    good = await alerts_rig(make_bot)
    assert check_config(good.bot.config) == []
