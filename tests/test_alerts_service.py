"""The alerts pipeline's decisions, end to end on the console: what each kind of delivery does
to the chat (one post per Sentry issue, then updates and thread replies), to the issue's row
and to the tickets; and the processor's failure handling (junk rows, passing failures, the
lease two processes share)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from alerts_rig import (
    SECRET,
    T0,
    alerts_rig,
    clock,
    event_payload,
    issue_payload,
    next_id,
)
from fakes.sentry_sender import sample, variant
from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError

from bot.alerts import issues, tables
from bot.alerts.service import LEASE_TTL, AlertsService
from bot.clock import ManualClock

__all__ = ["clock"]  # fixtures


async def _row(rig: Any, issue_id: str) -> issues.IssueRow:
    row = await rig.bot.database.run(issues.get, f"sentry:{issue_id}")
    assert row is not None
    return row


async def test_new_issue_is_posted_once_with_mention_and_buttons(make_bot: Any,
                                                                  clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    await rig.deliver("issue", issue_payload(issue_id, title="KeyError: 'superevent_id'"))
    posts = rig.posts("ops")
    assert len(posts) == 1 and "KeyError" in posts[0]
    text = rig.out.getvalue()
    assert "@alice" in text and "@bob" in text  # route mention: shifters
    for command in (f"alerts ticket {issue_id}", f"alerts resolve {issue_id}",
                    f"alerts ignore {issue_id}"):
        assert command in _button_commands(rig)
    row = await _row(rig, issue_id)
    assert (row.status, row.deliveries, row.notice_key) == ("unresolved", 1,
                                                           f"alert:sentry:{issue_id}")
    assert rig.tickets.calls == []  # auto_ticket is off


def _button_commands(rig: Any) -> list[str]:
    """The command lines of the buttons stored for the bot's messages so far."""
    from bot import db

    return rig.bot.database.call(
        lambda conn: [row.command for row in conn.execute(select(db.actions.c.command))])


async def test_repeats_update_the_one_post(make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    await rig.deliver("issue", issue_payload(issue_id))
    first = rig.posts("ops")
    for _ in range(3):
        clock.advance(60)
        await rig.deliver("event_alert", event_payload(issue_id))
    assert rig.posts("ops") == first  # never a second top-level post
    assert len(rig.updates()) >= 1
    assert rig.tickets.of(f"sentry:{issue_id}") == ["note_repeat"] * 3
    assert (await _row(rig, issue_id)).deliveries == 4


async def test_a_duplicate_delivery_changes_nothing(make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    payload = issue_payload(issue_id)
    assert await rig.send("issue", payload) is True
    assert await rig.send("issue", payload) is False
    await rig.drain()
    event = event_payload(issue_id)
    await rig.deliver("event_alert", event)
    await rig.deliver("event_alert", event)
    assert len(rig.posts()) == 1
    assert (await _row(rig, issue_id)).deliveries == 2


async def test_resolve_then_regression_replies_in_the_thread_and_mentions(
        make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    subject = f"sentry:{issue_id}"
    await rig.deliver("issue", issue_payload(issue_id, last_seen="2026-12-03T11:00:00Z"))
    await rig.deliver("issue", issue_payload(issue_id, action="resolved", status="resolved",
                                             last_seen="2026-12-03T11:00:00Z"))
    assert (await _row(rig, issue_id)).status == "resolved"
    assert "resolved" in rig.updates()[-1]["text"]
    clock.advance(600)
    await rig.deliver("issue", issue_payload(issue_id, action="unresolved",
                                             status="unresolved",
                                             last_seen="2026-12-03T12:10:00Z"))
    row = await _row(rig, issue_id)
    assert (row.status, row.regressions) == ("unresolved", 1)
    threads = rig.threads()
    assert len(threads) == 1 and "Regression" in threads[0]["text"]
    assert "@alice @bob" in threads[0]["text"]  # the route's group, mentioned again
    assert len(rig.posts()) == 1
    assert rig.tickets.of(subject) == ["note_resolved", "note_regression"]


async def test_ignored_then_a_new_event_is_a_regression(make_bot: Any,
                                                        clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    await rig.deliver("issue", issue_payload(issue_id))
    await rig.deliver("issue", issue_payload(issue_id, action="ignored", status="ignored"))
    assert (await _row(rig, issue_id)).status == "ignored"
    assert rig.tickets.of(f"sentry:{issue_id}") == []  # ignoring is not resolving
    await rig.deliver("event_alert", event_payload(issue_id))
    assert (await _row(rig, issue_id)).regressions == 1
    assert "was ignored" in rig.threads()[-1]["text"]


async def test_assignment_answers_in_the_thread(make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    await rig.deliver("issue", issue_payload(issue_id))
    payload = issue_payload(issue_id, action="assigned")
    payload["data"]["issue"]["assignedTo"] = {"type": "user", "name": "Carol <b>"}
    await rig.deliver("issue", payload)
    (reply,) = rig.threads()
    assert "assigned to Carol" in reply["text"]
    assert len(rig.posts()) == 1


async def test_metric_alert_has_its_own_notice_updated_when_resolved(
        make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    critical = variant(sample("metric_alert_resolved_docs"), action="critical",
                       metric_id="77", project="gwcelery")
    await rig.deliver("metric_alert", critical)
    posts = rig.posts("ops")
    assert len(posts) == 1 and "Metric alert" in posts[0]
    resolved = variant(critical, action="resolved")
    await rig.deliver("metric_alert", resolved)
    assert len(rig.posts()) == 1
    assert "resolved" in rig.updates()[-1]["text"]
    row = await rig.bot.database.run(issues.get, "metric:77")
    assert row is not None and row.status == "resolved"
    shown = await rig.run("alerts show metric:77")
    assert "resolved" in shown and "alerts ticket" not in shown


async def test_unrouted_alert_is_stored_listed_and_logged_once(
        make_bot: Any, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    caplog.set_level(logging.INFO, "bot.alerts")
    await rig.deliver("issue", issue_payload(issue_id, project="nobody-routes-this"))
    assert rig.posts() == []
    lines = [r for r in caplog.records if "matches no route" in r.getMessage()]
    assert len(lines) == 1
    listed = await rig.run("alerts list")
    assert issue_id in listed and "not posted" in listed


@pytest.mark.parametrize(("level", "environment", "expected"), [
    ("error", "production", True), ("fatal", "production", True),
    ("warning", "production", False), ("error", "staging", False)])
async def test_auto_ticket_rule_on_new_and_regressed(make_bot: Any, clock: ManualClock,
                                                     level: str, environment: str,
                                                     expected: bool) -> None:
    rig = await alerts_rig(make_bot, {"alerts": {"auto_ticket": {
        "enabled": True, "min_level": "error", "environments": ["production"]}}})
    issue_id = next_id()
    subject = f"sentry:{issue_id}"
    await rig.deliver("event_alert", event_payload(issue_id, level=level,
                                                   environment=environment))
    assert ("want_ticket" in rig.tickets.of(subject)) == expected
    await rig.deliver("issue", issue_payload(issue_id, action="resolved", status="resolved",
                                             level=level))
    clock.advance(60)
    await rig.deliver("event_alert", event_payload(issue_id, level=level,
                                                   environment=environment))
    assert rig.tickets.of(subject).count("want_ticket") == (2 if expected else 0)
    if expected:
        assert rig.tickets.reasons == ["new", "regressed"]


async def test_a_row_that_cannot_parse_is_failed_and_the_rest_go_on(
        make_bot: Any, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    rig = await alerts_rig(make_bot)
    await rig.bot.database.run(_insert_raw, "issue", "{not json")
    issue_id = next_id()
    await rig.send("issue", issue_payload(issue_id))
    with caplog.at_level(logging.ERROR, "bot.alerts"):
        await rig.drain()
    assert len(rig.posts()) == 1
    states = await rig.bot.database.run(_states)
    assert sorted(states) == ["done", "failed"]
    assert sum("cannot be parsed" in r.getMessage() for r in caplog.records) == 1
    pending = await rig.run("alerts pending")
    assert "inbox #1 issue.created" in pending and "failed" in pending


def _insert_raw(conn: Any, resource: str, body: str) -> None:
    conn.execute(insert(tables.inbox).values(
        dedupe_key=f"raw:{body}", resource=resource, action="created", subject="sentry:0",
        body=body, received_at=T0, state="pending", attempts=0, next_at=T0))


def _states(conn: Any) -> list[str]:
    return [row.state for row in conn.execute(select(tables.inbox))]


class FlakyTickets:
    """The tickets hooks failing like a database would, ``times`` times."""

    def __init__(self, inner: Any, times: int) -> None:
        self.inner, self.times = inner, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def want_ticket(self, *args: Any, **kwargs: Any) -> bool:
        if self.times:
            self.times -= 1
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return self.inner.want_ticket(*args, **kwargs)


async def test_a_passing_failure_is_retried_with_backoff_and_decided_once(
        make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot, {"alerts": {"auto_ticket": {"enabled": True}}})
    rig.service._tickets = FlakyTickets(rig.tickets, times=2)
    issue_id = next_id()
    await rig.deliver("event_alert", event_payload(issue_id))
    assert rig.posts() == []  # the transaction rolled back: nothing half-made
    row = (await rig.bot.database.run(lambda c: c.execute(select(tables.inbox)).all()))[0]
    assert (row.state, row.attempts) == ("pending", 1) and "locked" in row.error
    start = len(rig.out.getvalue())
    await rig.console.run_once("alerts pending")  # without draining
    assert "database is locked" in rig.out.getvalue()[start:]
    await rig.drain()  # not due yet: the backoff holds it
    assert rig.posts() == []
    for _ in range(2):
        clock.advance(120)
        await rig.drain()
    assert len(rig.posts()) == 1
    assert rig.tickets.of(f"sentry:{issue_id}") == ["want_ticket"]
    assert await rig.bot.database.run(_states) == ["done"]


async def test_two_processes_never_share_the_processor_lease(make_bot: Any,
                                                             clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    other = await make_bot(config=rig.bot.config, start_handlers=False)
    second = AlertsService(other, tickets=rig.tickets, background=False)
    await rig.drain()  # the first takes the lease
    await rig.send("issue", issue_payload(next_id()))
    assert await second.drain() == 0  # held by the first
    clock.advance(LEASE_TTL.total_seconds() + 1)
    assert await second.drain() == 1  # the first stopped renewing: taken over
    assert await rig.service.drain() == 0
    await second.close()


async def test_event_alert_is_enriched_from_the_sentry_api(make_bot: Any,
                                                          clock: ManualClock) -> None:
    from fakes.sentry import TOKEN, FakeSentry

    from bot.alerts.sentry_api import SentryApi

    async with FakeSentry() as sentry:
        issue = sentry.state.add_issue(count=42, user_count=7)
        api = SentryApi(sentry.api_url, TOKEN, sentry.state.org, timeout=5)
        rig = await alerts_rig(make_bot, api=api)
        await rig.deliver("event_alert", event_payload(issue["id"]))
        text = rig.out.getvalue()
        assert "42 events" in text and "7 users" in text
        sentry.state.fail(r"issues/", 500, times=10)
        other = sentry.state.add_issue()
        await rig.deliver("event_alert", event_payload(other["id"]))
        assert len(rig.posts()) == 2  # posted anyway, without the counts


async def test_a_hanging_sentry_api_does_not_hold_the_alert(make_bot: Any, clock: ManualClock,
                                                           monkeypatch: Any) -> None:
    from fakes.sentry import TOKEN, FakeSentry

    from bot.alerts import service as service_module
    from bot.alerts.sentry_api import SentryApi

    monkeypatch.setattr(service_module, "ENRICH_SECONDS", 0.3)
    async with FakeSentry() as sentry:
        issue = sentry.state.add_issue()
        sentry.state.fail(r"issues/", 500, times=5, hang=True)
        rig = await alerts_rig(make_bot, api=SentryApi(sentry.api_url, TOKEN,
                                                       sentry.state.org, timeout=30))
        await rig.deliver("event_alert", event_payload(issue["id"]))
        assert len(rig.posts()) == 1


async def test_body_is_stored_as_received(make_bot: Any, clock: ManualClock) -> None:
    """The webhook's signature covers the raw bytes; the inbox keeps exactly those."""
    rig = await alerts_rig(make_bot)
    body = json.dumps(issue_payload(next_id()), indent=3)
    from bot.alerts.webhooks import accept_body

    assert await accept_body(rig.bot, "issue", body.encode(), "req-1")
    stored = (await rig.bot.database.run(lambda c: c.execute(select(tables.inbox)).all()))[0]
    assert stored.body == body
    assert SECRET not in stored.body


async def test_the_same_event_by_two_paths_is_not_a_repeat(make_bot: Any,
                                                           clock: ManualClock) -> None:
    """issue.created and the event alert of its first event (Sentry sends both), or an event
    delivered after a later one: the post may be refreshed, but nothing counts as a repeat;
    once resolved here, any new event is a regression."""
    rig = await alerts_rig(make_bot)
    issue_id = next_id()
    first_event = event_payload(issue_id)
    seen = first_event["data"]["event"]["datetime"]
    await rig.deliver("issue", issue_payload(issue_id, last_seen=seen))
    await rig.deliver("event_alert", first_event)
    assert rig.tickets.of(f"sentry:{issue_id}") == []
    clock.advance(60)
    later = event_payload(issue_id)
    await rig.deliver("event_alert", later)
    late = variant(first_event, event_id=f"{next_id()}{'1' * 22}")  # happened before
    await rig.deliver("event_alert", late)
    assert rig.tickets.of(f"sentry:{issue_id}") == ["note_repeat"]
    await rig.deliver("issue", issue_payload(issue_id, action="resolved", status="resolved",
                                             last_seen=later["data"]["event"]["datetime"]))
    await rig.deliver("event_alert", variant(first_event, event_id=f"{next_id()}{'2' * 22}"))
    row = await _row(rig, issue_id)
    assert (row.status, row.regressions) == ("unresolved", 1)
    assert len(rig.posts()) == 1 and len(rig.threads()) == 1


async def test_a_process_that_outlived_its_lease_never_decides_a_row_again(
        make_bot: Any, clock: ManualClock) -> None:
    """A (paused past its lease) fetched the due rows; B took over and decided them all; when A
    wakes up and goes on with its stale batch, nothing is decided, posted or queued twice."""
    from bot.alerts import inbox

    rig = await alerts_rig(make_bot)
    ids = [next_id() for _ in range(3)]
    for issue_id in ids:
        await rig.send("issue", issue_payload(issue_id))
    stale = await rig.bot.database.run(inbox.due, clock(), 50)  # A's batch, fetched
    assert len(stale) == 3
    await rig.drain()  # B decides every row
    posts, calls = len(rig.posts()), list(rig.tickets.calls)
    assert posts == 3
    for row in stale:  # A goes on with what it fetched
        assert await rig.service.process(row) is None
    await rig.drain()
    assert len(rig.posts()) == posts and rig.tickets.calls == calls
    assert await rig.bot.database.run(inbox.depth) == 0
