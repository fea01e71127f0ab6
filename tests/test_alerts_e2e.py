"""Sentry alerts end to end (#14): a bot started by the real lifecycle (HTTP server, Slack
adapter, the alerts feature) gets webhooks signed by the fake Sentry sender through the real
``/webhooks/sentry`` route, posts to the fake Slack and opens issues on the fake GitLab
(loopback). Checked: what the fakes hold (what people see, what GitLab has) and the tables.
Time is a ManualClock: backoff and Retry-After come due when the test moves it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alerts_stack import (
    CLIENT_SECRET,
    LEGACY_SECRET,
    PROJECT,
    STORM_THRESHOLD,
    T0,
    Rig,
    creates,
    event,
    issue,
    issues_by_marker,
    mention_of,
    own_post,
    replies,
    start_rig,
    top_posts,
)
from fakes.sentry_sender import sign

from bot.clock import ManualClock, use_clock

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")



@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(T0)
    with use_clock(manual):
        yield manual


@pytest.fixture
async def rig(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Rig]:
    async for made in start_rig(tmp_path, clock):
        yield made


# ------------------------------------------------------------------------ signatures


async def test_only_correctly_signed_deliveries_are_stored(rig: Rig) -> None:
    payload = issue(rig.send_to, "1001")
    body = rig.send_to.body(payload)
    refused = [{"signature": None}, {"signature": "bad"}, {"signature": "0" * 64},
               {"signature": "not-hex"}, {"signature": ""},
               # signed, but not the body that is sent: one byte changed
               {"signature": sign(CLIENT_SECRET, body + b" ")}]
    for options in refused:
        assert await rig.send("issue", payload, **options) == 401, options
    assert (await rig.tables()).inbox == []
    assert await rig.send("issue", payload) == 200
    await rig.settle()
    tables = await rig.tables()
    assert [(r.subject, r.state) for r in tables.inbox] == [("sentry:1001", "done")]
    assert [p.key for p in top_posts(rig.chat)] == ["alert:sentry:1001"]


async def test_ignored_resources_and_junk_store_nothing(rig: Rig) -> None:
    assert await rig.send("installation", {"action": "created", "data": {}}) == 200
    assert await rig.send("comment", {"action": "created", "data": {"comment": "hi"}}) == 200
    assert await rig.send("issue", raw=b"{not json") == 400
    assert await rig.send("issue", {"action": "created", "data": {}}) == 400
    await rig.settle()
    assert (await rig.tables()).inbox == [] and top_posts(rig.chat) == []


# ------------------------------------------------------------------------ every resource


async def test_every_resource_and_action_reaches_chat(rig: Rig) -> None:
    s = rig.send_to
    rig.known("2003")
    assert await rig.send("issue", issue(s, "2001")) == 200
    await rig.settle()
    assigned = issue(s, "2001", "assigned", 0)
    assigned["data"]["issue"]["assignedTo"] = {"type": "user", "name": "Carol Expert"}
    for resource, payload in [
            ("issue", assigned),
            ("issue", issue(s, "2001", "resolved", 1)),
            ("issue", issue(s, "2001", "unresolved", 2)),
            ("issue", issue(s, "2002")),
            ("issue", issue(s, "2002", "ignored", 3)),
            ("event_alert", event(s, "2003", "e" * 32))]:
        assert await rig.send(resource, payload) == 200, payload.get("action")
        await rig.settle()
    metric = s.sample("metric_alert_resolved_docs")
    for action in ("critical", "warning", "open", "resolved"):
        assert await rig.send("metric_alert", s.variant(metric, action=action,
                                                        metric_id="77")) == 200
        await rig.settle()

    tables = await rig.tables()
    assert len(tables.inbox) == 11 and {r.state for r in tables.inbox} == {"done"}
    status = {r.subject: r.status for r in tables.issues}
    assert status == {"sentry:2001": "unresolved", "sentry:2002": "ignored",
                      "sentry:2003": "unresolved", "metric:77": "resolved"}
    assert [r.regressions for r in tables.issues if r.subject == "sentry:2001"] == [1]
    # one top-level post per Sentry issue and metric alert, never a second one
    assert sorted(p.key or "" for p in top_posts(rig.chat)) == [
        "alert:metric:77", "alert:sentry:2001", "alert:sentry:2002", "alert:sentry:2003"]
    thread = replies(rig.chat, rig.post_of("2001"))
    assert any("Carol Expert" in text for text in thread), thread
    assert any("is back" in text for text in thread), thread  # the regression
    assert "ignored" in rig.post_of("2002").text.lower()
    metric_post = own_post(rig.chat, "metric:77")
    assert metric_post is not None and "resolved" in metric_post.text.lower()


async def test_legacy_payload_needs_the_url_secret(rig: Rig) -> None:
    s = rig.send_to
    rig.known("3001")
    legacy = s.variant(s.sample("legacy_webhooks_plugin_python"), issue_id="3001",
                       event_id="a" * 32, project=PROJECT)
    assert (await s.send_legacy(legacy, "not-the-secret"))[0] == 401
    assert (await s.send_legacy(legacy, LEGACY_SECRET[:-1]))[0] == 401
    assert (await s.send_legacy(legacy, ""))[0] in (404, 405)
    assert (await rig.tables()).inbox == []
    assert (await s.send_legacy(legacy, LEGACY_SECRET))[0] == 200
    # the same event through the signed integration is the same delivery
    assert await rig.send("event_alert", event(s, "3001", "a" * 32)) == 200
    await rig.settle()
    tables = await rig.tables()
    assert [(r.resource, r.subject, r.state) for r in tables.inbox] == [
        ("legacy", "sentry:3001", "done")]
    assert rig.post_of("3001") and issues_by_marker(rig.gitlab)["3001"] == 1


# ------------------------------------------------------------------------ exactly once


async def test_duplicate_deliveries_make_one_issue_and_one_post(rig: Rig) -> None:
    s = rig.send_to
    rig.known("4001")
    first, again = issue(s, "4001"), event(s, "4001", "b" * 32)
    statuses = [await rig.send("issue", first) for _ in range(3)]
    statuses += await asyncio.gather(*(rig.send("issue", first) for _ in range(5)),
                                     *(rig.send("event_alert", again) for _ in range(5)))
    assert statuses == [200] * 13
    await rig.settle()
    tables = await rig.tables()
    assert sorted(r.resource for r in tables.inbox) == ["event_alert", "issue"]
    assert issues_by_marker(rig.gitlab)["4001"] == 1 and creates(rig.gitlab) == 1
    assert [p.key for p in top_posts(rig.chat)] == ["alert:sentry:4001"]
    assert [r.deliveries for r in tables.issues] == [2]


async def regress(rig: Rig, comeback: str) -> tuple[Any, list[str]]:
    """Issue 5001: created (a ticket), resolved, its ticket closed in GitLab, then back by a
    new event or an ``unresolved``. The ticket and the thread replies since the resolve."""
    s = rig.send_to
    rig.known("5001")
    assert await rig.send("issue", issue(s, "5001")) == 200
    await rig.settle()
    (ticket,) = rig.gitlab.issues
    assert await rig.send("issue", issue(s, "5001", "resolved", 5)) == 200
    await rig.settle()
    assert "resolved" in rig.post_of("5001").text.lower()
    ticket.state = "closed"  # closed by hand in GitLab once fixed
    before = len(replies(rig.chat, rig.post_of("5001")))
    rig.clock.advance(600)
    back = (event(s, "5001", "c" * 32) if comeback == "event" else
            issue(s, "5001", "unresolved", 15))
    assert await rig.send("event_alert" if comeback == "event" else "issue", back) == 200
    await rig.settle()
    return ticket, replies(rig.chat, rig.post_of("5001"))[before:]


@pytest.mark.parametrize("comeback", ["event", "unresolved"])
async def test_regression_reopens_the_ticket_and_replies_in_the_thread(
        rig: Rig, comeback: str) -> None:
    ticket, new = await regress(rig, comeback)
    assert len(rig.gitlab.issues) == 1 and ticket.state == "opened"
    assert any("Regressed" in note["body"] for note in ticket.notes), ticket.notes
    assert any("is back" in text for text in new), new
    assert any("reopened" in text for text in new), new
    assert [p.key for p in top_posts(rig.chat)] == ["alert:sentry:5001"]  # no new post
    (row,) = (await rig.tables()).issues
    assert (row.status, row.regressions) == ("unresolved", 1)


@pytest.mark.parametrize("comeback", ["event", "unresolved"])
async def test_a_regression_mentions_the_shifters_again(rig: Rig, comeback: str) -> None:
    _ticket, new = await regress(rig, comeback)
    (again,) = [text for text in new if "is back" in text]
    assert mention_of(rig.chat) in again and "<@U0BOB0001>" in again, again


async def test_gitlab_failing_then_recovering_opens_exactly_one_issue(rig: Rig) -> None:
    s = rig.send_to
    rig.gitlab.fail(r"/issues$", 500, method="POST", times=2)
    rig.gitlab.fail(r"/issues$", 429, method="POST", times=1, retry_after="30")
    assert await rig.send("issue", issue(s, "6001")) == 200
    later = await rig.settle()
    assert later >= 1 and rig.gitlab.issues == []
    root = rig.post_of("6001")
    said = replies(rig.chat, root)
    assert len([t for t in said if "not opened yet" in t]) == 1, said  # said once, not per try
    pending = await rig.command("alerts pending")
    assert "6001" in pending, pending
    await until_no_tasks(rig)
    assert issues_by_marker(rig.gitlab)["6001"] == 1 and creates(rig.gitlab) == 1
    tried = [r.status for r in rig.gitlab.requests
             if r.method == "POST" and r.path.endswith("/issues")]
    assert tried == [500, 500, 429, 201]
    (made,) = rig.gitlab.issues
    web_url = f"{rig.gitlab.web_url}/{made.project.path}/-/issues/{made.iid}"
    assert any(web_url in t for t in replies(rig.chat, root))


async def test_an_issue_created_whose_answer_was_lost_is_found_not_made_again(
        rig: Rig) -> None:
    rig.gitlab.fail(r"/issues$", 502, method="POST", times=1, after=True)
    assert await rig.send("issue", issue(rig.send_to, "6101")) == 200
    await rig.settle()
    assert len(rig.gitlab.issues) == 1  # GitLab made it; the bot heard a 502
    await until_no_tasks(rig)
    assert issues_by_marker(rig.gitlab)["6101"] == 1
    tried = [r.status for r in rig.gitlab.requests
             if r.method == "POST" and r.path.endswith("/issues")]
    assert tried == [502]  # found by its marker on the retry, not created again
    (ticket,) = (await rig.tables()).tickets
    assert ticket.iid == rig.gitlab.issues[0].iid


async def until_no_tasks(rig: Rig, step: float = 60, most: int = 15) -> None:
    """Move the clock in steps until no task waits for a retry (backoff, Retry-After)."""
    for _ in range(most):
        if not await rig.advance(step):
            return
    raise AssertionError(f"tasks still pending: {(await rig.tables()).pending_tasks}")


# ------------------------------------------------------------------------ storm


async def test_storm_of_500_alerts_across_20_issues_loses_nothing(rig: Rig) -> None:
    s = rig.send_to
    ids = [str(7001 + n) for n in range(20)]
    rig.known(*ids)
    payloads = [("issue", issue(s, i)) for i in ids]
    payloads += [("event_alert", event(s, ids[n % 20], f"{n:032x}")) for n in range(480)]
    for start in range(0, len(payloads), 50):  # 50 at a time, as Sentry's workers send
        statuses = await asyncio.gather(*(rig.send(r, p) for r, p in payloads[start:start + 50]))
        assert set(statuses) == {200}
    await rig.settle(60)

    tables = await rig.tables()
    assert len(tables.inbox) == 500 and {r.state for r in tables.inbox} == {"done"}
    assert sorted(r.subject for r in tables.issues) == sorted(f"sentry:{i}" for i in ids)
    markers = issues_by_marker(rig.gitlab)
    assert {i: markers[i] for i in ids} == dict.fromkeys(ids, 1) and len(rig.gitlab.issues) == 20
    posts = top_posts(rig.chat)
    summaries = [p for p in posts if p.key and p.key.startswith("storm:")]
    alone = [p for p in posts if p.key and p.key.startswith("alert:")]
    assert len(alone) == STORM_THRESHOLD and len(summaries) == 1, [p.key for p in posts]
    (storm,) = tables.storms
    in_storm = set(json.loads(storm.subjects))
    own = {p.key.removeprefix("alert:") for p in alone if p.key}
    assert own | in_storm == {f"sentry:{i}" for i in ids} and not own & in_storm
    for subject in in_storm:  # each one shows in the summary
        assert f"GWCELERY-{subject.removeprefix('sentry:')}" in summaries[0].text
    listing = await rig.command("alerts list")
    assert all(f"GWCELERY-{i}" in listing or i in listing for i in ids), listing


# ------------------------------------------------------------------------ polling


async def test_polling_finds_the_same_issues_without_duplicates(tmp_path: Path,
                                                                clock: ManualClock) -> None:
    ids = ("8001", "8002", "8003")
    async for rig in start_rig(tmp_path, clock,
                               sentry={"poll": {"interval": 60, "projects": [PROJECT]}}):
        seen = clock.now - timedelta(minutes=5)
        for issue_id in ids:
            rig.sentry.add_issue(issue_id, project=PROJECT, first_seen=seen, last_seen=seen,
                                 short_id=f"GWCELERY-{issue_id}")
        rig.sentry.add_issue("8009", project="other", first_seen=seen, last_seen=seen)
        for issue_id in ids[:2]:  # these two also came by webhook
            known = rig.sentry.issues[issue_id]
            assert await rig.send("issue", issue(rig.send_to, issue_id,
                                                 last_seen=known["lastSeen"],
                                                 first_seen=known["firstSeen"])) == 200
        await rig.settle()
        assert await poll(rig) == 3
        assert await poll(rig) == 0  # nothing changed: nothing stored
        markers = issues_by_marker(rig.gitlab)
        assert {i: markers[i] for i in ids} == dict.fromkeys(ids, 1)
        assert len(rig.gitlab.issues) == 3
        assert sorted(p.key or "" for p in top_posts(rig.chat)) == [f"alert:sentry:{i}"
                                                                     for i in ids]
        polled = [r.subject for r in (await rig.tables()).inbox if r.resource == "poll"]
        assert sorted(polled) == [f"sentry:{i}" for i in ids]
        rig.sentry.touch("8003", times=4)  # seen again: an update, still no new post
        assert await poll(rig) == 1
        assert len(rig.gitlab.issues) == 3 and len(top_posts(rig.chat)) == 3
        assert "5 events" in rig.post_of("8003").text


async def poll(rig: Rig) -> int:
    """One poll of the configured projects at the next interval, as the feature's job does it;
    the deliveries it stored."""
    from bot.alerts.poll import poll_due
    from bot.alerts.service import AlertsService

    service = rig.bot.services.require(AlertsService)
    rig.clock.advance(60)  # sentry.poll.interval: a new instant to claim
    stored = await poll_due(rig.bot, service.sentry, service.api, rig.clock.now)
    await rig.settle()
    return stored
