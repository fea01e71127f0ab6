"""Meeting-report threads (bot/meetings/reports.py): the reminder, the thread opened at the
meeting's end, markers (including #undo) and plain replies recorded, `report close` in the
thread rendering the report exactly, `report show`, `report done`, auto-close, and the open
action items carried into the next reminder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_meetings_rig import (
    END,
    START,
    at,
    clock,
    meetings_bot,
    root_of,
    run,
    run_meeting,
    say,
    thread_texts,
    workspace,
)

from bot.meetings import markers, store

__all__ = ["clock", "workspace"]  # fixtures

MINUTES = [
    ("alice", "#topic Disks"),
    ("bob", "#info T1 disk at 95%"),
    ("alice", "is FNAL full too?"),
    ("carol", "#decision buy more disks"),
    ("alice", "#action <@U0BOB0001> order disks"),
    ("bob", "#action alice chase the vendor"),
    ("bob", "#info a line said by mistake"),
    ("bob", "#undo"),
    ("alice", "#topic Transfers"),
    ("alice", "#agreed pause transfers on Friday"),
    ("erin", "#action check the FTS logs"),
]

REPORT = """Meeting report: WMCore weekly
WMCore weekly, 2026-03-30 16:00 CEST, closed by alice.

Topics
* Disks
  - INFO: T1 disk at 95% (bob)
  - DECISION: buy more disks (carol)
  - ACTION #5 bob: order disks (alice)
  - ACTION #6 alice: chase the vendor (bob)
* Transfers
  - DECISION: pause transfers on Friday (alice)
  - ACTION #10 unassigned: check the FTS logs (erin)

Decisions
- buy more disks
- pause transfers on Friday

Action items
alice
  - #6 chase the vendor
bob
  - #5 order disks
unassigned
  - #10 check the FTS logs

1 discussion reply."""


async def test_reminder_says_when_where_and_mentions(make_bot, clock, workspace) -> None:
    bot = await meetings_bot(make_bot, workspace)
    assert await at(bot, clock, START - timedelta(minutes=10)) == {
        "reminder:wmcore/2026-03-30T14:00:00Z-10m": "fired"}
    [reminder] = workspace.messages
    assert reminder.reply.title == "WMCore weekly in 10 minutes"
    assert reminder.reply.mentions == ["<@U0ALICE01>", "<@U0BOB0001>"]  # the shifters group
    text = reminder.text
    assert "2026-03-30 16:00 CEST, 60 minutes." in text
    assert "16:00 CEST (Europe/Zurich) · 09:00 CDT (America/Chicago)" in text
    assert "Warning" not in text and "Disks, transfers" in text
    assert [a.url for a in reminder.reply.actions] == ["https://indico.cern.ch/category/1234/"]


async def test_markers_become_the_report_exactly(make_bot, clock, workspace) -> None:
    bot = await meetings_bot(make_bot, workspace)
    root = await run_meeting(bot, clock, workspace)
    opening = next(m for m in workspace.messages if m.ref.message_id == root)
    assert opening.reply.mentions == ["<@U0ALICE01>", "<@U0BOB0001>"]
    assert "#action @person TEXT" in opening.text
    for person, line in MINUTES:
        await say(bot, person, line, root)
    answers = thread_texts(workspace, root)
    assert answers == ["Action item #5 for bob: order disks",
                       "Action item #6 for alice: chase the vendor",
                       "Removed info #7: a line said by mistake",
                       "Action item #10 for nobody yet: check the FTS logs"]
    await say(bot, "alice", "report close", root)
    assert thread_texts(workspace, root)[-1] == REPORT
    # The opening post now says it is closed; `report show` renders the same report.
    assert "Closed by alice" in workspace.updates[-1][1]
    assert await run(bot, "alice", "report show wmcore 2026-03-30") == REPORT
    assert await run(bot, "alice", "report show wmcore") == REPORT
    report = (await bot.database.run(lambda c: store.reports_of(c, "wmcore")))[0]
    assert report.rendered == REPORT.partition("\n")[2]


async def test_close_twice_and_by_someone_not_allowed(make_bot, clock, workspace) -> None:
    bot = await meetings_bot(make_bot, workspace)
    root = await run_meeting(bot, clock, workspace)
    await say(bot, "dave", "#topic one", root)  # anyone in the channel may write
    await say(bot, "dave", "#endmeeting", root)  # ... but closing needs report.close
    assert "Not allowed" in thread_texts(workspace, root)[-1]
    await say(bot, "bob", "#endmeeting", root)
    assert thread_texts(workspace, root)[-1].startswith("Meeting report: WMCore weekly\n"
                                                        "WMCore weekly, 2026-03-30 16:00 CEST, "
                                                        "closed by bob.")
    await say(bot, "alice", "report close", root)
    assert thread_texts(workspace, root)[-1] == "This report was closed already by bob."
    assert "closed already by bob" in await run(bot, "alice", "report close wmcore")


async def test_plain_replies_are_discussion_and_bad_markers_are_said(make_bot, clock,
                                                                     workspace) -> None:
    bot = await meetings_bot(make_bot, workspace)
    root = await run_meeting(bot, clock, workspace)
    for line in ("hello all", "#hashtag is not a marker", "report closed tomorrow?", "#topic"):
        await say(bot, "alice", line, root)
    assert thread_texts(workspace, root) == ["[ERROR] Marker not recorded\n#topic needs a "
                                             "text: #topic TEXT"]
    await say(bot, "alice", "#undo", root)
    assert thread_texts(workspace, root)[-1] == "Nothing of alice to undo in this report."
    await say(bot, "alice", "report close", root)
    assert thread_texts(workspace, root)[-1].endswith(
        "Nothing was recorded (no #topic, #info, #decision or #action replies).\n\n"
        "3 discussion replies.")


async def test_auto_close_after_n_hours(make_bot, clock, workspace) -> None:
    bot = await meetings_bot(make_bot, workspace)
    root = await run_meeting(bot, clock, workspace)
    await say(bot, "alice", "#info nobody closed this", root)
    assert await at(bot, clock, END + timedelta(hours=4, seconds=1)) == {
        "report-close:wmcore/2026-03-30T14:00:00Z": "fired"}
    assert "closed by auto-close." in thread_texts(workspace, root)[-1]


async def test_open_items_carried_into_the_next_reminder(make_bot, clock, workspace) -> None:
    bot = await meetings_bot(make_bot, workspace)
    root = await run_meeting(bot, clock, workspace)
    for person, line in MINUTES:
        await say(bot, person, line, root)
    await say(bot, "alice", "report close", root)
    assert "Action item #6 is done" in await run(bot, "alice", "report done 6")
    await say(bot, "bob", "#done 10", root)
    assert "no action item #4" in await run(bot, "alice", "report done 4")  # a decision
    next_start = START + timedelta(weeks=1)
    await at(bot, clock, next_start - timedelta(minutes=10, seconds=-1))
    reminder = root_of(workspace, "WMCore weekly in 10 minutes")
    text = next(m.text for m in workspace.messages if m.ref.message_id == reminder)
    assert "Open action items:\n- #5 bob: order disks" in text
    assert "#6" not in text and "#10" not in text


@pytest.mark.parametrize(("line", "kind", "text", "owner"), [
    ("#topic Disks at T1", "topic", "Disks at T1", None),
    ("#TOPIC  spaced   out ", "topic", "spaced out", None),
    ("#info: colon after", "info", "colon after", None),
    ("#agreed yes", "decision", "yes", None),
    ("#decision no", "decision", "no", None),
    ("#action @bob fix it", "action", "fix it", "@bob"),
    ("#action <@U0BOB0001|bob>: fix it", "action", "fix it", "<@U0BOB0001|bob>"),
    ("#action bob fix it", "action", "fix it", "bob"),
    ("#action somebody fix it", "action", "somebody fix it", None),
    ("#action @bob", "error", "#action needs a text: #action @person TEXT", None),
    ("#undo", "undo", "", None),
    ("#endmeeting", "close", "", None),
    ("Report Close", "close", "", None),
    ("#topicality is a word", "discussion", "#topicality is a word", None),
    ("plain words", "discussion", "plain words", None),
])
def test_marker_parsing(line: str, kind: str, text: str, owner: str | None) -> None:
    parsed = markers.parse(line, frozenset({"alice", "bob"}))
    assert (parsed.kind, parsed.text, parsed.owner) == (kind, text, owner)


def test_done_marker_takes_a_number() -> None:
    assert markers.parse("#done 12").item_id == 12
    assert markers.parse("#done #7 finally").item_id == 7
    assert markers.parse("#done soon").kind == "error"
