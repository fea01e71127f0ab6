"""Digest content from a seeded database: every source in the period, nothing from before it,
and each source left out (without error) when its feature's tables are missing."""

from __future__ import annotations

from typing import Any

import pytest
from test_digest_rig import PREVIOUS, SOURCES, T0, clock, digest_rig, seed

from bot.digests import content, store

__all__ = ["clock"]  # fixture

HEADINGS = {"alerts": "Alerts:", "status": "Status checks:", "meetings": "Meetings:",
            "missed": "Missed schedules:", "condor": "HTCondor queue"}


async def test_preview_shows_every_source_of_the_period(make_bot: Any, clock: Any) -> None:
    rig = await digest_rig(make_bot)
    await seed(rig.bot)
    text = await rig.run("digest preview")
    # The period: since the last digest (recorded at PREVIOUS), in the bot's zone.
    assert "2026-03-30 09:00 CEST → 2026-03-31 09:00 CEST (since the last digest)" in text
    # Alerts: 3 deliveries of 2 issues in the period; the new one has its ticket.
    assert "Alerts: 3 deliveries from Sentry, 2 issues (1 new, 1 with a ticket)" in text
    assert ("GWCELERY-1A [error] KeyError in gracedb upload · 2×, new · unresolved · ticket "  # noqa: RUF001
            "emfollow/gwcelery#42 (opened)") in text
    assert "GWCELERY-2B [warning] Slow skymap · 1× · unresolved · no ticket" in text  # noqa: RUF001
    assert "Old crash only" not in text
    # Status: the change and the acknowledgement in the period, not the older ones.
    assert "gwcelery: OK → CRITICAL (3 workers down)" in text
    assert "gwcelery: acknowledged by carol (restarting)" in text
    assert "disk 85%" not in text and "all fine" not in text
    # Commands: consequential ones and decisions; reads and older rows left out.
    assert "Commands through the bot: 4 (1 approved, 2 denied)" in text
    assert "condor.hold" in text and "condor.release" in text and "denied" in text
    assert "restart" in text and "approved by carol" in text and "request r7" in text
    assert "denied by approver" in text
    assert "condor.q" not in text and "condor.rm" not in text
    # The queue against the previous digest's snapshot.
    assert "gwcelery: 135 jobs (-7): 5 held (+3), 50 idle (+10), 80 running (-20)" in text
    # Meetings held with their open action items only.
    assert "Meetings: 1 held, 1 open action item" in text
    assert "#1 bob: rotate the certs (https://github.com/dmwm/WMCore/issues/8)" in text
    assert "already done" not in text and "closed ticket" not in text
    assert "old business" not in text
    # Missed schedules in the period.
    assert "Missed schedules: 2" in text
    assert "wmcore (reminder): missed · not sent: the bot was down" in text
    assert "report (announcement): failed · DeliveryError: refused" in text
    assert "too old" not in text


@pytest.mark.parametrize("missing", SOURCES)
async def test_a_missing_source_is_left_out(make_bot: Any, clock: Any, missing: str) -> None:
    rig = await digest_rig(make_bot)
    await seed(rig.bot, tuple(s for s in SOURCES if s != missing))
    text = await rig.run("digest preview")
    assert "failed" not in text.splitlines()[0]
    assert HEADINGS[missing] not in text
    for other in SOURCES:
        if other != missing:
            assert HEADINGS[other] in text, other
    assert "Commands through the bot:" in text  # the core's audit is always there


async def test_nothing_installed_gives_a_short_digest(make_bot: Any, clock: Any) -> None:
    rig = await digest_rig(make_bot)
    text = await rig.run("digest preview")
    assert "Commands through the bot: none" in text
    assert not any(heading in text for heading in HEADINGS.values())
    # The first digest covers digests.default_hours (24).
    assert "2026-03-30 09:00 CEST → 2026-03-31 09:00 CEST" in text
    assert "since the last digest" not in text


async def test_empty_sources_say_so(make_bot: Any, clock: Any) -> None:
    rig = await digest_rig(make_bot)
    await seed(rig.bot)
    clock.now = T0 + (T0 - PREVIOUS) * 10  # a later period with nothing in it
    await rig.bot.database.run(store.record_sent, "digest:now/x", "now", T0, clock.now
                               - (T0 - PREVIOUS), T0)
    text = await rig.run("digest preview")
    assert "Alerts: none received" in text
    assert "Status checks: no change" in text
    assert "Meetings: none held" in text
    assert "Missed schedules: none" in text


async def test_sections_are_cut_at_max_items(make_bot: Any, clock: Any) -> None:
    rig = await digest_rig(make_bot, {"digests": {"max_items": 2}})
    await seed(rig.bot)
    text = await rig.run("digest preview")
    assert "… and 2 more (audit)" in text
    sections = await rig.bot.database.run(content.gather, PREVIOUS, T0, 1)
    assert len(sections["alerts"]["issues"]) == 1 and sections["alerts"]["more"] == 1


@pytest.mark.parametrize(("command", "decision", "shown"), [
    ("condor.rm", "allowed", True), ("restart", "confirmed", True),
    ("restart.gwcelery", "allowed", True), ("condor.q", "allowed", False),
    ("help", "denied", False), ("sample.echo", "approved", True),
    ("condor.rm", "confirmation requested", False), (None, "invalid", False),
    ("status.ack", "allowed", True), ("whoami", "denied by approver", True)])
def test_which_audit_rows_are_worth_a_line(command: str | None, decision: str,
                                           shown: bool) -> None:
    assert content.acted(command, decision) is shown


DEMO_POOL: dict[str, Any] = {"condor": {"pools": {
    "demo": {"backend": "demo", "demo_jobs": 40, "demo_seed": 3, "timeout_seconds": 20},
    "other": {"backend": "demo", "demo_jobs": 10, "demo_seed": 5, "timeout_seconds": 20}}}}


async def test_snapshots_through_the_condor_worker(make_bot: Any, clock: Any) -> None:
    """The `digests.snapshot` job counts the demo pool (the real isolated worker) every
    snapshot_minutes; only the configured pools; the digest compares the latest two."""
    from datetime import timedelta

    from handlers import digests

    rig = await digest_rig(make_bot, {**DEMO_POOL, "digests": {"snapshot_minutes": 15,
                                                                "pools": ["demo"]}})
    await digests.snapshot(rig.bot)
    await digests.snapshot(rig.bot)  # not due yet: nothing more
    clock.now = T0 + timedelta(minutes=15)
    await digests.snapshot(rig.bot)
    snaps = await rig.bot.database.run(store.snapshots_between, T0, T0 + timedelta(hours=1))
    assert [(s.pool, s.taken_at) for s in snaps] == [("demo", T0),
                                                      ("demo", T0 + timedelta(minutes=15))]
    assert snaps[0].total == 40 == sum(snaps[0].counts.values())
    assert set(snaps[0].counts) <= {"idle", "running", "held", "completed", "removed",
                                    "suspended", "transferring_output", "transferring_input"}
    text = await rig.run("digest preview")
    assert "HTCondor queue" in text and "- demo: 40 jobs" in text


async def test_no_snapshot_without_pools_or_when_off(make_bot: Any, clock: Any) -> None:
    from handlers import digests

    for overrides in ({"digests": {"snapshot_minutes": 15}},
                      {**DEMO_POOL, "digests": {"snapshot_minutes": 0}}):
        rig = await digest_rig(make_bot, overrides)
        await digests.snapshot(rig.bot)
        assert await rig.bot.database.run(store.last_taken) is None
