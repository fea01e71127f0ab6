"""Templates and text: the part of rendering every adapter shares.

:class:`Renderer` fills ``Reply.text`` from a Jinja2 template (override directory first, then
the config's ``templates/``, then the templates shipped in ``config/templates/``) and truncates
tables. :func:`render_text` turns a reply into text in a platform's markup dialect; adapters add
their buttons and colours around it.

User text is marked in templates (``{{ reason|user }}``, ``{{ text|code }}``) and in Python
(``bot.markup.user``/``code``) and escaped here, per dialect (see ``bot/markup.py``). What the
parts of a reply are: ``title`` and ``text`` are the bot's own words with marked spans; each
``fields`` value is user text unless marked otherwise (names are the bot's); table cells are
shown literally in a code block nothing inside can close.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from bot.markup import Dialect, code, code_block, resolve, user, visible
from bot.reply import Level, Reply, Table

if TYPE_CHECKING:
    from jinja2 import Environment

    from bot.config import Config


def _shipped_templates() -> Path:
    """config/templates/ of a source checkout, else the copy an install put under share/."""
    source = Path(__file__).resolve().parent.parent / "config" / "templates"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "shiftbot" / "templates"


SHIPPED_TEMPLATES = _shipped_templates()


def template_dirs(config: Config) -> list[Path]:
    """Where templates are looked up, first match wins: ``bot.templates_dir``, the config's
    ``templates/``, the shipped ones."""
    dirs = []
    if config.bot.templates_dir:
        override = Path(config.bot.templates_dir)
        dirs.append(override if override.is_absolute() else config.source_dir / override)
    return [*dirs, config.source_dir / "templates", SHIPPED_TEMPLATES]

# Rendering a template with this many table rows or more goes to a thread (never block the loop).
OFF_LOOP_ROWS = 500

LEVEL_MARK = {
    Level.INFO: "",
    Level.OK: "OK",
    Level.WARNING: "WARNING",
    Level.ERROR: "ERROR",
    Level.DENIED: "DENIED",
}


class Renderer:
    def __init__(self, directories: list[Path], max_table_rows: int = 40) -> None:
        self.directories = [d for d in directories if d.is_dir()]
        self.max_table_rows = max_table_rows

    @cached_property
    def env(self) -> Environment:
        """Jinja2, loaded at the first template: replies without one (help) never need it."""
        from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

        env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(d)) for d in self.directories]),
            autoescape=False,  # chat text, not HTML
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters["duration"] = format_duration
        env.filters["user"] = user  # inline user text, escaped per dialect by render_text
        env.filters["code"] = code  # user text as a code span nothing inside can close
        return env

    def render_sync(self, reply: Reply) -> Reply:
        table = reply.table.truncated(self.max_table_rows) if reply.table else None
        if not reply.template and table is reply.table:
            return reply.masked()  # nothing to render (most replies): no copy
        text = reply.text
        if reply.template:
            from jinja2 import TemplateNotFound

            try:
                template = self.env.get_template(reply.template)
            except TemplateNotFound:
                raise LookupError(
                    f"template {reply.template} not found in "
                    + ", ".join(str(d) for d in self.directories)
                ) from None
            text = template.render(reply.data, reply=reply).strip()
        # Every reply the bot posts is rendered here (notices, thread replies, cards) or ends
        # in an Outcome: both mask registered secrets (Reply.masked).
        return replace(reply, text=text, table=table, template=None).masked()

    async def render(self, reply: Reply) -> Reply:
        rows = len(reply.table.rows) if reply.table else 0
        if reply.template and rows >= OFF_LOOP_ROWS:
            return await asyncio.to_thread(self.render_sync, reply)
        return self.render_sync(reply)


def format_duration(seconds: float | int | None) -> str:
    """``93784`` -> ``1d 2h``: how long a job has been held, compactly."""
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def format_table(table: Table) -> list[str]:
    """Aligned monospace rows, with a last line counting what was left out.

    Cells are shown as they are, on one line each, with nothing hidden (:func:`visible`):
    a newline in a hold reason must not shift the columns or forge a row."""
    width = len(table.columns)
    cells = [list(map(_cell, table.columns))]
    for row in table.rows:
        if len(row) >= width:
            cells.append(list(map(_cell, row[:width])))
        else:
            cells.append([*map(_cell, row), *[""] * (width - len(row))])
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    # One format string for every row (the last column is not padded): help renders a table
    # on every call, and this is a third faster than padding cell by cell.
    row_format = "  ".join([*(f"{{:<{w}}}" for w in widths[:-1]), "{}"])
    lines = [row_format.format(*row).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if table.omitted:
        lines.append(f"... {table.omitted} more not shown")
    return lines


def _cell(value: object) -> str:
    return visible(str(value))


def bold(text: str, dialect: Dialect) -> str:
    if dialect == "slack":
        return f"*{text}*"
    if dialect == "mattermost":
        return f"**{text}**"
    return text


def render_text(reply: Reply, dialect: Dialect = "console", *, with_table: bool = True) -> str:
    """The whole reply as text in ``dialect`` (buttons are the adapter's job), every marked
    span escaped for it; for Slack the result is final mrkdwn (``&<>`` already escaped)."""
    parts: list[str] = []
    mark = LEVEL_MARK.get(reply.level, "")
    if reply.title:
        title = bold(resolve(reply.title, dialect), dialect)
        parts.append(f"[{mark}] {title}" if mark and dialect == "console" else title)
    elif mark and dialect == "console" and reply.level != Level.OK:
        parts.append(f"[{mark}]")
    text = resolve(reply.text, dialect) if reply.text else ""
    if reply.mentions:  # the platform's own syntax (``Platform.mention``): never escaped
        text = " ".join([*reply.mentions, text] if text else reply.mentions)
    if text:
        parts.append(text)
    if reply.fields:
        fields = [(resolve(name, dialect), resolve(value, dialect, unmarked="user"))
                  for name, value in reply.fields]
        width = max(len(name) for name, _ in fields)
        if dialect == "console":
            parts.append("\n".join(f"{name.ljust(width)}  {value}" for name, value in fields))
        else:
            parts.append("\n".join(f"{bold(name, dialect)}: {value}" for name, value in fields))
    if with_table and reply.table is not None:
        parts.append(code_block(format_table(reply.table), dialect))
    return "\n".join(p for p in parts if p)
