"""Storm control: more than ``threshold`` new issues of one project and environment within
``window`` -> the first ``threshold`` posted alone, the rest in ONE summary updated in place;
repeats update it, regressions answer in its thread; nothing is lost from the list."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from alerts_rig import Rig, alerts_rig, clock, event_payload, issue_payload, next_id

from bot.alerts import issues, storm
from bot.clock import ManualClock

__all__ = ["clock"]  # fixtures

THRESHOLD, WINDOW = 3, 300


async def _new_issues(rig: Rig, count: int, *, environment: str = "production",
                      project: str = "gwcelery", gap: float = 1, clock: ManualClock) -> list[str]:
    ids = []
    for _ in range(count):
        issue_id = next_id()
        ids.append(issue_id)
        await rig.send("event_alert", event_payload(issue_id, environment=environment,
                                                    project=project))
        clock.advance(gap)
    await rig.drain()
    return ids


def _storm_posts(rig: Rig) -> list[str]:
    return [p for p in rig.posts() if re.search(r"\d+ new issues? in ", p.splitlines()[0])]


async def test_a_burst_becomes_one_summary_and_nothing_is_lost(make_bot: Any,
                                                              clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    ids = await _new_issues(rig, 12, clock=clock)
    posts = rig.posts("ops")
    assert len(posts) == THRESHOLD + 1  # three alone, one summary
    (summary,) = _storm_posts(rig)
    assert "gwcelery/production" in summary
    final = rig.updates()[-1]["text"]
    assert final.startswith("[ERROR] 9 new issues in gwcelery/production")
    for issue_id in ids[THRESHOLD:]:
        assert f"alerts show {issue_id}" in final
    listed = await rig.run("alerts list --limit 50")
    assert all(issue_id in listed for issue_id in ids)
    assert listed.count("storm summary") == 12 - THRESHOLD


async def test_separate_environments_and_projects_storm_separately(make_bot: Any,
                                                                   clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot, {"alerts": {"routes": [{"channels": ["ops"]}]}})
    await _new_issues(rig, 5, environment="production", clock=clock)
    await _new_issues(rig, 5, environment="playground", clock=clock)
    await _new_issues(rig, 2, project="other", clock=clock)
    assert len(_storm_posts(rig)) == 2
    assert len(rig.posts()) == 2 * (THRESHOLD + 1) + 2


async def test_after_a_quiet_window_new_issues_are_posted_alone_again(
        make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    await _new_issues(rig, 6, clock=clock)
    assert len(rig.posts()) == THRESHOLD + 1
    clock.advance(WINDOW + 1)
    await _new_issues(rig, 2, clock=clock, gap=WINDOW + 1)  # slow trickle: each alone
    assert len(rig.posts()) == THRESHOLD + 1 + 2
    assert len(_storm_posts(rig)) == 1


async def test_repeats_update_the_summary_and_regressions_reply_in_its_thread(
        make_bot: Any, clock: ManualClock) -> None:
    rig = await alerts_rig(make_bot)
    ids = await _new_issues(rig, 6, clock=clock)
    posts_before = len(rig.posts())
    member = ids[-1]
    row = await rig.bot.database.run(issues.get, f"sentry:{member}")
    assert row is not None and row.storm_key and row.notice_key == row.storm_key
    updates_before = len(rig.updates())
    clock.advance(60)
    await rig.deliver("event_alert", event_payload(member))
    assert len(rig.posts()) == posts_before
    assert len(rig.updates()) == updates_before + 1
    await rig.deliver("issue", issue_payload(member, action="resolved", status="resolved"))
    assert "[resolved]" in rig.updates()[-1]["text"]
    clock.advance(60)
    await rig.deliver("event_alert", event_payload(member))
    (reply,) = rig.threads()
    summary_id = rig.updates()[-1]["id"]
    assert reply["id"] == summary_id  # in the summary's thread
    assert "Regression" in reply["text"]
    assert len(rig.posts()) == posts_before


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_top_level_posts_stay_bounded_for_any_arrival_order(
        make_bot: Any, clock: ManualClock, seed: int) -> None:
    """500 deliveries across 20 issues in random order: each issue once in chat at the top
    level at most, and the storm rule caps the posts; every issue is listed."""
    rig = await alerts_rig(make_bot)
    chance = random.Random(seed)
    ids = [next_id() for _ in range(20)]
    sent: set[str] = set()
    for _ in range(500):
        issue_id = chance.choice(ids)
        sent.add(issue_id)
        await rig.send("event_alert", event_payload(issue_id))
        clock.advance(chance.random() * 0.5)
    await rig.drain()
    assert len(rig.posts()) == min(len(sent), THRESHOLD) + (len(sent) > THRESHOLD)
    listed = await rig.run("alerts list --limit 50")
    assert all(issue_id in listed for issue_id in sent)
    deliveries = await rig.bot.database.run(
        lambda conn: sum(row.deliveries for row in issues.listing(conn, limit=50)[0]))
    assert deliveries == 500


async def test_admit_counts_more_than_threshold(make_bot: Any, clock: ManualClock) -> None:
    """The boundary: exactly ``threshold`` new issues stay alone; the next one storms."""
    rig = await alerts_rig(make_bot)
    await _new_issues(rig, THRESHOLD, clock=clock)
    assert _storm_posts(rig) == []
    await _new_issues(rig, 1, clock=clock)
    (summary,) = _storm_posts(rig)
    assert summary.startswith("[ERROR] 1 new issue in gwcelery/production")
    found = await rig.bot.database.run(lambda conn: storm.load(
        conn, issues.listing(conn, limit=1)[0][0].storm_key))
    assert found is not None and len(found.subjects) == 1
