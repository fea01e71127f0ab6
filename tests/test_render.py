"""Replies and templates: overrides, truncation, placement, text dialects."""

from __future__ import annotations

from pathlib import Path

from conftest import console

from bot.render import OFF_LOOP_ROWS, format_duration, render_text
from bot.reply import Level, Reply, Table, Visibility


async def test_template_override_directory(make_bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    override = tmp_path / "my-templates"
    override.mkdir()
    (override / "core_denied.j2").write_text("Nope, {{ caller }}: {{ command }} is not for you.")
    bot = await make_bot({"bot": {"templates_dir": str(override)}})
    denied = await bot.handle(console("dave", "sample wipe x"))
    assert denied.reply.text == "Nope, dave: sample wipe is not for you."
    # Templates not overridden still come from config/templates/.
    table = await bot.handle(console("alice", "sample table --rows 3"))
    assert table.reply.text == "3 rows."


async def test_long_tables_are_truncated_with_a_count(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"bot": {"max_table_rows": 10}})
    big = await bot.handle(console("alice", f"sample table --rows {OFF_LOOP_ROWS + 5}"))
    assert big.reply.table is not None and len(big.reply.table.rows) == 10
    assert big.reply.table.omitted == OFF_LOOP_ROWS - 5
    assert f"... {OFF_LOOP_ROWS - 5} more not shown" in render_text(big.reply)


async def test_visibility(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    assert (await bot.handle(console("alice", "sample echo x"))).reply.visibility == \
        Visibility.EPHEMERAL
    assert (await bot.handle(console("alice", "sample echo x --public"))).reply.visibility == \
        Visibility.CHANNEL
    assert (await bot.handle(console("alice", "sample table --private"))).reply.visibility == \
        Visibility.EPHEMERAL
    error = await bot.handle(console("alice", "sample fail expected --public"))
    assert error.reply.visibility == Visibility.EPHEMERAL  # errors stay private


def test_dialects() -> None:
    reply = Reply("body", title="Title", level=Level.ERROR, fields=[("Pool", "gw")],
                  table=Table(["a", "bb"], [["1", "2"]]))
    assert render_text(reply, "slack").startswith("*Title*\nbody\n*Pool*: gw\n```\na  bb")
    assert render_text(reply, "mattermost").startswith("**Title**")
    console_text = render_text(reply, "console")
    assert console_text.startswith("[ERROR] Title") and "Pool  gw" in console_text


def test_durations() -> None:
    assert [format_duration(s) for s in (5, 65, 3700, 93784, None)] == \
        ["5s", "1m 5s", "1h 1m", "1d 2h", "-"]
