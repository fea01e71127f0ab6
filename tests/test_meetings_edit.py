"""Editing meeting-report items (issue #15: "items editable"): the ``#edit N`` marker in the
thread and the ``report edit ITEM TEXT`` command, allowed to the item's author and to holders of
``report.close``; the edit is recorded (who, when, the text before), answered, shown by the
rendered report and by the open items of the next reminder; the meetings migration step 2 adds
the columns to a database made before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, create_engine
from test_meetings_rig import (
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

# dave may write items and run `report edit` but does not hold report.close (alice, bob: the
# shifters; carol, erin: experts do).
DAVE_EDITS: dict[str, Any] = {"roles": {"viewer": {"allow": [
    "help", "whoami", "sample.echo", "schedule", "report", "report.edit"]}}}

MINUTES = [
    ("alice", "#topic Disks"),                    # 1
    ("alice", "#info T1 disk at 95%"),            # 2
    ("dave", "#idea ask FNAL for space"),         # 3
    ("alice", "#action @bob order disks"),        # 4
    ("alice", "a plain remark"),                  # 5 (discussion)
    ("dave", "#info said by mistake"),            # 6
    ("dave", "#undo"),                            # removes 6
]


async def _minutes(make_bot: Any, clock: Any, workspace: Any) -> tuple[Any, str]:
    bot = await meetings_bot(make_bot, workspace, DAVE_EDITS)
    root = await run_meeting(bot, clock, workspace)
    for person, line in MINUTES:
        await say(bot, person, line, root)
    return bot, root


async def _item(bot: Any, item_id: int) -> store.Item:
    found = await bot.database.run(store.item, item_id)
    assert found is not None
    return found


async def _previous_text(bot: Any, item_id: int) -> str | None:
    from sqlalchemy import select

    return await bot.database.run(lambda c: c.execute(
        select(store.items.c.previous_text).where(store.items.c.id == item_id)).scalar())


async def test_edits_in_the_thread_are_answered_recorded_and_rendered(make_bot, clock,
                                                                      workspace) -> None:
    bot, root = await _minutes(make_bot, clock, workspace)
    before = len(thread_texts(workspace, root))
    clock.now += timedelta(minutes=3)
    await say(bot, "alice", "#edit 2 T1 disk at 97%", root)           # her own item
    await say(bot, "bob", "#edit 3: ask FNAL and RAL for space", root)  # report.close: anyone's
    await say(bot, "carol", "#edit 4 @carol order 40 disks", root)    # owner and text
    await say(bot, "alice", "#edit #1 Disks and tapes", root)         # a topic
    assert thread_texts(workspace, root)[before:] == [
        "Item #2 (info) is now: T1 disk at 97%",
        "Item #3 (idea) is now: ask FNAL and RAL for space",
        "Action item #4 is now for carol: order 40 disks",
        "Item #1 (topic) is now: Disks and tapes"]
    edited = await _item(bot, 3)
    assert (edited.author, edited.edited_by, edited.edited_at) == ("dave", "bob", clock.now)
    assert await _previous_text(bot, 3) == "ask FNAL for space"
    await say(bot, "alice", "report close", root)
    report = thread_texts(workspace, root)[-1]
    for now_said in ("* Disks and tapes", "INFO: T1 disk at 97% (alice)",
                     "IDEA: ask FNAL and RAL for space (dave)",
                     "ACTION #4 carol: order 40 disks (alice)", "carol\n  - #4 order 40 disks"):
        assert now_said in report
    for old in ("95%", "order disks", "bob\n", "ask FNAL for space"):
        assert old not in report
    assert await run(bot, "alice", "report show wmcore") == report


async def test_who_may_edit_and_what_cannot_be_edited(make_bot, clock, workspace) -> None:
    bot, root = await _minutes(make_bot, clock, workspace)
    before = len(thread_texts(workspace, root))
    await say(bot, "dave", "#edit 2 dave was here", root)      # alice's; dave lacks report.close
    await say(bot, "dave", "#edit 4 @dave mine now", root)
    for missing in (999, 5, 6):  # no such item, plain discussion, undone
        await say(bot, "alice", f"#edit {missing} new words", root)
    await say(bot, "alice", "#edit 2", root)                    # no text
    await say(bot, "alice", "#edit two words", root)            # no number
    answers = thread_texts(workspace, root)[before:]
    assert len(answers) == 7, answers
    for denied in answers[:2]:
        assert "Not allowed" in denied and "alice's" in denied and "report.close" in denied
    for missing, answer in zip((999, 5, 6), answers[2:5], strict=True):
        assert "Not edited" in answer and f"No item #{missing} to edit" in answer
    for answer in answers[5:]:
        assert "#edit needs the item's number and its new text" in answer
    # Nothing changed; dave may still edit his own item.
    assert [(await _item(bot, n)).text for n in (2, 4)] == ["T1 disk at 95%", "order disks"]
    assert (await _item(bot, 4)).owner == "bob"
    await say(bot, "dave", "#edit 3 ask RAL instead", root)
    assert thread_texts(workspace, root)[-1] == "Item #3 (idea) is now: ask RAL instead"


async def test_owner_only_edits_and_mentions_by_kind(make_bot, clock, workspace) -> None:
    bot, root = await _minutes(make_bot, clock, workspace)
    await say(bot, "alice", "#edit 4 <@U0CAROL01>", root)  # a Slack mention alone: owner only
    assert thread_texts(workspace, root)[-1] == "Action item #4 is now for carol: order disks"
    await say(bot, "alice", "#edit 4 erin order disks today", root)  # a bare name is text
    item = await _item(bot, 4)
    assert (item.owner, item.text) == ("carol", "erin order disks today")
    await say(bot, "alice", "#edit 2 @bob says 97%", root)  # not an action: all of it is text
    item = await _item(bot, 2)
    assert (item.owner, item.text) == (None, "@bob says 97%")


async def test_report_edit_command(make_bot, clock, workspace) -> None:
    bot, root = await _minutes(make_bot, clock, workspace)
    await say(bot, "alice", "report close", root)
    answer = await run(bot, "dave", "report edit 3 ask CERN for space")
    assert "Item #3 (idea) is now: ask CERN for space" in answer
    answer = await run(bot, "dave", "report edit 2 overwritten")
    assert "Not allowed" in answer and "alice's" in answer
    assert "no item #77 to edit" in (await run(bot, "dave", "report edit 77 x")).lower()
    answer = await run(bot, "erin", "report edit 4 @dave order disks by Friday")
    assert "Action item #4 is now for dave: order disks by Friday" in answer
    assert (await _item(bot, 2)).text == "T1 disk at 95%"
    shown = await run(bot, "alice", "report show wmcore")
    assert "ask CERN for space" in shown and "#4 order disks by Friday" in shown
    # Without report.edit the command is refused before anything is looked at.
    plain = await meetings_bot(make_bot, workspace)
    assert "report.edit" in await run(plain, "dave", "report edit 3 nope")


async def test_the_next_reminder_lists_the_edited_action(make_bot, clock, workspace) -> None:
    bot, root = await _minutes(make_bot, clock, workspace)
    await say(bot, "alice", "#action @erin check the FTS logs", root)
    [erins] = [i for i in await bot.database.run(lambda c: store.items_of(c, 1))
               if i.owner == "erin"]
    await say(bot, "alice", "report close", root)
    await say(bot, "bob", "#edit 4 @carol order 40 disks", root)
    assert "is now for dave" in await run(bot, "erin", f"report edit {erins.id} @dave "
                                                       "check the FTS logs and the DB")
    next_start = START + timedelta(weeks=1)
    await at(bot, clock, next_start - timedelta(minutes=10, seconds=-1))
    reminder = root_of(workspace, "WMCore weekly in 10 minutes")
    text = next(m.text for m in workspace.messages if m.ref.message_id == reminder)
    assert "- #4 carol: order 40 disks" in text
    assert f"- #{erins.id} dave: check the FTS logs and the DB" in text
    assert "order disks\n" not in text and "erin" not in text


@pytest.mark.parametrize(("line", "kind", "item_id", "text"), [
    ("#edit 4 new text", "edit", 4, "new text"),
    ("#EDIT #12:  spaced   out ", "edit", 12, "spaced out"),
    ("#edit 7, @bob do it", "edit", 7, "@bob do it"),
    ("#edit 7 <@U0BOB0001|bob>", "edit", 7, "<@U0BOB0001|bob>"),
    ("#edit 4", "error", None, None),
    ("#edit", "error", None, None),
    ("#edit four words", "error", None, None),
    ("#editorial note", "discussion", None, "#editorial note"),
])
def test_edit_marker_parsing(line: str, kind: str, item_id: int | None,
                             text: str | None) -> None:
    parsed = markers.parse(line, frozenset({"bob"}))
    assert (parsed.kind, parsed.item_id) == (kind, item_id)
    if text is not None:
        assert parsed.text == text


def test_split_owner_takes_mentions_and_known_names() -> None:
    assert markers.split_owner("@bob: fix it") == ("@bob", "fix it")
    assert markers.split_owner("<@U0BOB0001> fix it") == ("<@U0BOB0001>", "fix it")
    assert markers.split_owner("bob fix it", frozenset({"bob"})) == ("bob", "fix it")
    assert markers.split_owner("bob fix it") == (None, "bob fix it")


def _items_before_step_2(meta: MetaData) -> Table:
    """``meeting_items`` as migration step 1 made it before step 2 existed."""
    return Table("meeting_items", meta,
                 Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("report_id", Integer, nullable=False),
                 Column("kind", String(20), nullable=False),
                 Column("author", String(100), nullable=False),
                 Column("owner", String(100)), Column("text", Text, nullable=False),
                 Column("topic_id", Integer),
                 Column("created_at", DateTime(timezone=True), nullable=False),
                 Column("removed_at", DateTime(timezone=True)),
                 Column("done_at", DateTime(timezone=True)), Column("done_by", String(100)))


def test_migration_step_2_adds_the_edit_columns_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    now = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        old = _items_before_step_2(MetaData())
        old.create(conn)
        conn.execute(old.insert().values(report_id=1, kind="info", author="alice",
                                         text="before", created_at=now))
    for _ in range(2):  # a second run (a fresh database made by step 1) changes nothing
        with engine.begin() as conn:
            store.add_edit_columns(conn)
    with engine.begin() as conn:
        edited = store.edit_item(conn, 1, "bob", now, text="after")
        assert edited is not None and (edited.text, edited.edited_by) == ("after", "bob")
        assert conn.exec_driver_sql("SELECT previous_text FROM meeting_items").scalar() == \
            "before"
    engine.dispose()
