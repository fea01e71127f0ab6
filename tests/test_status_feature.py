"""The status feature through the real core on the console platform: `status` (every level,
worst first, a hanging check), `status NAME`, periodic results with flap suppression on the one
clock, notices with buttons, recovery in the alert's thread, ack, silence and their expiry,
history, and pruning."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta

import pytest
from test_status_feature_rig import (
    BOOM,
    HANG,
    RUNS,
    SCRIPT,
    T0,
    Rig,
    _fresh_script,
    clock,
    scripted,
    status_rig,
)

from bot.clock import ManualClock
from bot.status import store
from bot.status.model import Level

__all__ = ["_fresh_script", "clock"]  # fixtures

NOT_OK = [Level.WARNING, Level.CRITICAL, Level.UNKNOWN]


async def step(rig: Rig, clock: ManualClock, level: Level | str, seconds: float = 60) -> str:
    """The clock moves ``seconds``, the check now answers ``level``, one tick runs; returns
    what the console printed meanwhile (notices)."""
    SCRIPT["disk"] = level
    clock.advance(seconds)
    rig.take()
    await rig.tick()
    return rig.take()


def buttons(text: str) -> dict[str, str]:
    return dict(re.findall(r"\[(\w+): click (a[0-9a-f]{20})\]", text))


# ------------------------------------------------------------------------ status


@pytest.mark.parametrize("level", [Level.OK, *NOT_OK])
async def test_status_overall_level_is_the_worst_and_leads(make_bot, clock, level) -> None:
    rig = await status_rig(make_bot, [scripted("alpha"), scripted("beta")])
    SCRIPT["beta"] = level
    out = await rig.run("status")
    lines = out.splitlines()
    mark = {Level.OK: "OK", Level.CRITICAL: "ERROR"}.get(level, "WARNING")
    assert lines[0] == f"[{mark}] status: {level.name}"
    if level == Level.OK:
        assert lines[1].startswith("OK: all 2 checks OK")
    else:
        assert lines[1].startswith(f"{level.name}: 1 of 2 checks not OK")
        assert lines[2].startswith(f"[{'CRIT' if level == Level.CRITICAL else level.name[:4]}]"
                                   " beta: BETA " + level.name)
    assert sorted(name for name, _ in RUNS) == ["alpha", "beta"]


async def test_status_lists_the_worst_first(make_bot, clock) -> None:
    names = ["ok1", "warn", "crit", "unkn", "boom"]
    rig = await status_rig(make_bot, [scripted(n) for n in names])
    SCRIPT.update(warn=Level.WARNING, crit=Level.CRITICAL, unkn=Level.UNKNOWN, boom=BOOM)
    out = await rig.run("status")
    shown = re.findall(r"^\[(?:ok|WARN|CRIT|UNKN)\] ([a-z0-9]+):", out, re.M)
    assert shown == ["crit", "boom", "unkn", "warn", "ok1"]  # UNKNOWN ranks above WARNING
    assert "CRITICAL: 4 of 5 checks not OK" in out
    assert "check failed: RuntimeError: the plugin exploded" in out


async def test_a_hanging_check_is_unknown_and_status_answers_in_time(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("fine"), scripted("stuck", timeout_seconds=1)])
    SCRIPT["stuck"] = HANG
    started = time.monotonic()
    # The loop stays free meanwhile: another command answers at once.
    status_task = asyncio.create_task(rig.run("status"))
    await asyncio.sleep(0.2)
    quick_started = time.monotonic()
    who = await rig.bot.handle(rig.console.inbound("whoami"))
    assert time.monotonic() - quick_started < 0.5 and who.reply.title == "You are alice"
    out = await status_task
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.0 + 0.5 + 1.0  # timeout + margin (+ scheduling slack)
    assert "[UNKN] stuck: timed out after 1 s" in out
    assert "UNKNOWN: 1 of 2 checks not OK" in out


async def test_status_name_shows_details_perfdata_and_history(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk", runbook="https://wiki.example/disk",
                                               description="Free space on /")],
                           notify_after=1)
    for level in (Level.OK, Level.CRITICAL):
        await step(rig, clock, level)
    out = await rig.run("status disk")
    assert out.startswith("[ERROR] status disk: CRITICAL\nCRITICAL: DISK CRITICAL - scripted")
    assert "first detail\nsecond detail" in out and "Free space on /" in out
    assert "Runbook: https://wiki.example/disk" in out
    assert re.search(r"used\s+91\.5%\s+80\s+90\s+0\s+100", out)  # the perfdata table
    assert "Counted level: CRITICAL since" in out
    assert "OK -> CRITICAL" in out and "new -> OK" in out  # the changes
    # the last results, newest first; the on-demand run is marked as such
    results = re.findall(r"^- \d\d:\d\d UTC (\w+): .*$", out, re.M)
    assert results == ["CRITICAL", "CRITICAL", "OK"]
    assert "(on demand)" in out.splitlines()[out.splitlines().index("Last results:") + 1]


async def test_unknown_check_names_list_the_known_ones(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk"), scripted("queue")])
    for line in ("status nosuch", "status history nosuch", "status ack nosuch",
                 "status silence nosuch 1h"):
        out = await rig.run(line)
        assert "no status check 'nosuch' (known: disk, queue)" in out, line
    assert RUNS == []


# ------------------------------------------------------------------------ periodic results


async def test_changes_count_after_k_results_and_are_posted_once(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk", runbook="https://wiki.example/disk")],
                           notify_after=2)
    assert await step(rig, clock, Level.OK) == ""
    assert await step(rig, clock, Level.CRITICAL) == ""  # 1 of 2
    assert await step(rig, clock, Level.OK) == ""  # a blip: forgotten
    assert await step(rig, clock, Level.CRITICAL) == ""
    alert = await step(rig, clock, Level.CRITICAL)  # 2 of 2: the change counts
    assert alert.startswith("[#ops 1] [ERROR] disk CRITICAL\n@alice @bob DISK CRITICAL - scripted")
    assert "CRITICAL since" in alert and "Runbook: https://wiki.example/disk" in alert
    assert set(buttons(alert)) == {"Details", "Ack"}
    for _ in range(3):  # posted once, not again while it stays CRITICAL
        assert await step(rig, clock, Level.CRITICAL) == ""
    # a tick inside the same interval runs nothing
    runs = len(RUNS)
    clock.advance(5)
    await rig.tick()
    assert len(RUNS) == runs
    # the recovery: after two OK results, in the alert's thread, and the alert updated
    assert await step(rig, clock, Level.OK) == ""
    recovery = await step(rig, clock, Level.OK)
    thread, updated = recovery.split("\n[#ops")
    assert re.match(r"\[#ops > 1\] \[OK\] disk OK\nOK again after 5m \d+s of CRITICAL", thread)
    assert updated.startswith(" 1 updated] [OK] disk recovered (was CRITICAL)\n"
                              "@alice @bob Recovered: CRITICAL from 12:05 UTC to 12:10 UTC")
    assert "Ack" not in buttons(updated)


async def test_details_button_runs_status_name_as_the_clicker(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk")], notify_after=1)
    await step(rig, clock, Level.OK)
    alert = await step(rig, clock, Level.WARNING)
    out = await rig.run(f"click {buttons(alert)['Details']}")
    assert out.startswith("[WARNING] status disk: WARNING\nWARNING: DISK WARNING - scripted")
    denied = await rig.run(f"click {buttons(alert)['Ack']}", person="dave")  # a viewer
    assert "Not allowed" in denied
    acked = await rig.run(f"click {buttons(alert)['Ack']}", person="bob")
    assert "bob acknowledged disk (WARNING)" in acked
    assert "[#ops 1 updated]" in acked and "Acknowledged by bob." in acked


async def test_ack_stops_reminders_until_the_level_changes(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk", interval_seconds=600,
                                               renotify_minutes=30)], notify_after=1)
    await step(rig, clock, Level.OK, 600)
    alert = await step(rig, clock, Level.CRITICAL, 600)
    assert "stops the reminders" in alert
    assert await step(rig, clock, Level.CRITICAL, 600) == ""  # 10 min
    assert await step(rig, clock, Level.CRITICAL, 600) == ""  # 20 min
    reminder = await step(rig, clock, Level.CRITICAL, 600)  # 30 min: repeated
    assert "[#ops 1 updated]" in reminder and "see the newer message" in reminder
    assert "[#ops 2] [ERROR] disk CRITICAL\n@alice @bob DISK CRITICAL" in reminder
    assert "reminder 1" in reminder
    acked = await rig.run("status ack disk cleaning up /var", person="bob")
    assert "bob acknowledged disk (CRITICAL): cleaning up /var" in acked
    assert "[#ops 2 updated]" in acked and "Acknowledged by bob: cleaning up /var" in acked
    for _ in range(12):  # two hours: quiet
        assert await step(rig, clock, Level.CRITICAL, 600) == ""
    # the level changes: the acknowledgement ends, the new level is posted and repeated
    warning = await step(rig, clock, Level.WARNING, 600)
    assert "[#ops 3] [WARNING] disk WARNING\n@alice @bob DISK WARNING" in warning
    await step(rig, clock, Level.WARNING, 600)
    await step(rig, clock, Level.WARNING, 600)
    assert "reminder 1" in await step(rig, clock, Level.WARNING, 600)
    # nothing to acknowledge once it is OK again
    await step(rig, clock, Level.OK, 600)
    assert "disk has no alert to acknowledge (its level: OK)" in await rig.run("status ack disk")


async def test_silence_mutes_notices_shows_in_status_and_expires(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk")], notify_after=1)
    await step(rig, clock, Level.OK)
    out = await rig.run("status silence disk 1h condor maintenance", person="bob")
    assert "bob silenced disk until 13:01 UTC: condor maintenance" in out
    assert "silenced until 13:01 UTC by bob: condor maintenance" in await rig.run("status")
    assert await step(rig, clock, Level.CRITICAL) == ""  # recorded, not posted
    for _ in range(58):  # 12:03 .. 13:00
        assert await step(rig, clock, Level.CRITICAL) == ""
    alert = await step(rig, clock, Level.CRITICAL)  # 13:01: the silence is over
    assert alert.startswith("[#ops 1] [ERROR] disk CRITICAL\n@alice @bob DISK CRITICAL")
    assert "silenced" not in await rig.run("status")


async def test_unsilence_posts_what_was_muted_at_once(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk")], notify_after=1)
    await step(rig, clock, Level.OK)
    await rig.run("status silence disk 2h")
    assert await step(rig, clock, Level.WARNING) == ""
    out = await rig.run("status unsilence disk")
    assert "alice lifted the silence of disk" in out
    assert "[#ops 1] [WARNING] disk WARNING\n@alice @bob DISK WARNING" in out
    assert "disk is not silenced" in await rig.run("status unsilence disk")


@pytest.mark.parametrize("line, error", [
    ("status silence disk 8d", "duration: must be at most 1w"),
    ("status silence disk soon", "expected a duration like 30m"),
    ("status silence disk", "missing DURATION"),
    ("status ack", "missing NAME"),
])
async def test_silence_and_ack_refuse_bad_input(make_bot, clock, line, error) -> None:
    rig = await status_rig(make_bot, [scripted("disk")])
    assert error in await rig.run(line)


async def test_ack_and_silence_need_the_shifter_role_and_are_audited(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk")], notify_after=1)
    await step(rig, clock, Level.OK)
    await step(rig, clock, Level.CRITICAL)
    rig.console.session.channel = "ops"  # dave may view there, nothing more
    assert "CRITICAL" in await rig.run("status", person="dave")
    assert "Not allowed" in await rig.run("status silence disk 1h", person="dave")
    assert "Not allowed" in await rig.run("status ack disk", person="dave")
    await rig.run("status ack disk on it", person="alice")
    await rig.run("status silence disk 30m deploy", person="alice")
    rows = await rig.bot.audit.query(who="console:alice")
    decisions = {(row.command, row.decision) for row in rows}
    assert {("status.ack", "allowed"), ("status.silence", "allowed")} <= decisions


async def test_history_lists_changes_acks_and_silences(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk")], notify_after=1)
    for level in (Level.OK, Level.WARNING):
        await step(rig, clock, level)
    await rig.run("status ack disk looking", person="bob")
    await rig.run("status silence disk 1h deploy", person="alice")
    await rig.run("status unsilence disk", person="alice")
    await step(rig, clock, Level.OK)
    out = await rig.run("status history disk")
    whats = re.findall(r"^2026-12-03 \d\d:\d\d UTC  (.+?)(?:\s{2,}|$)", out, re.M)
    assert whats == ["WARNING -> OK", "silence lifted by alice",
                     "silenced by alice until 2026-12-03 13:02 UTC", "acknowledged by bob",
                     "OK -> WARNING", "new -> OK"]
    assert "looking" in out and "deploy" in out
    assert "the last 6 changes" in out
    limited = await rig.run("status history disk --limit 2")
    assert "the last 2 changes" in limited and "4 more not shown" in limited


async def test_results_are_pruned_after_keep_days_and_per_check(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk"), scripted("queue")], keep_days=2,
                           history_limit=10)
    for _ in range(3 * 24):  # three days, hourly
        await step(rig, clock, Level.OK, 3600)
    SCRIPT["queue"] = Level.OK
    counts = await rig.bot.database.run(lambda c: {
        name: len(store.recent_results(c, name, 1000)) for name in ("disk", "queue")})
    assert counts == {"disk": 72, "queue": 72}
    await rig.service.prune()
    kept = await rig.bot.database.run(store.recent_results, "disk", 1000)
    assert len(kept) == 10  # the per-check limit is tighter than two days here
    assert kept[0].result.checked_at == clock.now  # the newest stay
    await rig.bot.database.run(store.prune, clock.now - timedelta(days=2), 1000)
    assert len(await rig.bot.database.run(store.recent_results, "disk", 1000)) == 10
    # long gone: only the newest result of each check is kept, whatever its age
    await rig.bot.database.run(store.prune, clock.now + timedelta(days=30), 1000)
    assert len(await rig.bot.database.run(store.recent_results, "queue", 1000)) == 1


async def test_previous_state_is_carried_from_periodic_runs(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk")])
    for _ in range(3):
        await step(rig, clock, Level.OK)
    await rig.run("status disk")  # on demand: sees the periodic state, is not carried on
    await step(rig, clock, Level.OK)
    (last,) = await rig.bot.database.run(store.recent_results, "disk", 1)
    assert last.result.state == {"runs": 4} and last.source == "periodic"
    assert last.result.checked_at > T0


async def test_digest_sees_changes_and_silences_and_shutdown_stops_ticks(make_bot, clock) -> None:
    rig = await status_rig(make_bot, [scripted("disk"), scripted("queue")], notify_after=1)
    await step(rig, clock, Level.OK)
    await step(rig, clock, Level.WARNING)
    await rig.run("status silence queue 1h deploy")
    changes = await rig.service.changes_since(T0)
    assert [(c.check, c.kind, c.new) for c in changes] == [
        ("queue", "silence", None), ("disk", "level", Level.WARNING), ("queue", "level", Level.OK),
        ("disk", "level", Level.OK)]
    assert [s.check for s in await rig.service.silences()] == ["queue"]
    assert await rig.service.changes_since(clock.now + timedelta(seconds=1)) == []
    await rig.bot.stop_handlers()
    clock.advance(60)
    assert await rig.service.tick() is None
