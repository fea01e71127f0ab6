"""A rendered :class:`~bot.reply.Reply` as JSON, so a notice survives a restart as it was meant.

What is stored is what every platform renders from: text (templates already rendered, user
text still *marked*, so each platform escapes it its own way at send time), title, level,
fields, table and buttons (command buttons already stored, so only their ids are here; link
buttons with their URL, checked again when loaded) and attachments by path (never their
bytes: the file stays on disk until the message is sent).
"""

from __future__ import annotations

import json
from typing import Any

from bot.reply import Action, Choice, FileRef, Level, Reply, Table, Visibility


def dump(reply: Reply, *, mention: list[str] | None = None) -> str:
    """``mention``: names a thread reply mentions (a notice's post mentions the notice's own
    names; a reply in its thread mentions only what it was given, e.g. a regression)."""
    data: dict[str, Any] = {"text": reply.text, "level": reply.level.value}
    if mention:
        data["mention"] = list(mention)
    if reply.title:
        data["title"] = reply.title
    if reply.fields:
        data["fields"] = [list(pair) for pair in reply.fields]
    if reply.table is not None:
        data["table"] = {"columns": reply.table.columns, "rows": reply.table.rows,
                         "omitted": reply.table.omitted}
    if reply.actions:
        data["actions"] = [_action(a) for a in reply.actions]
    if reply.files:
        data["files"] = [{"name": f.name, "path": f.path, "mime": f.mime, "alt": f.alt}
                         for f in reply.files]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def load(text: str) -> Reply:
    data = json.loads(text)
    table = data.get("table")
    return Reply(
        text=data.get("text", ""), title=data.get("title"), level=Level(data.get("level", "info")),
        fields=[(str(k), str(v)) for k, v in data.get("fields", [])],
        table=Table(table["columns"], table["rows"], table.get("omitted", 0)) if table else None,
        actions=[a for a in map(_load_action, data.get("actions", [])) if a is not None],
        visibility=Visibility.CHANNEL,
        files=[FileRef(str(f["name"]), str(f["path"]), str(f.get("mime") or
                       "application/octet-stream"), str(f.get("alt") or ""))
               for f in data.get("files", [])],
    )


def mention_of(text: str) -> list[str]:
    """The names stored with :func:`dump`'s ``mention`` (none: [])."""
    names = json.loads(text).get("mention") or []
    return [str(name) for name in names]


def _action(action: Action) -> dict[str, Any]:
    out = {"label": action.label, "style": action.style}
    for name in ("request_id", "confirm_text", "command", "action_id", "url"):
        value = getattr(action, name)
        if value is not None:
            out[name] = value
    if action.choice is not None:
        out["choice"] = action.choice.value
    return out


def _load_action(data: dict[str, Any]) -> Action | None:
    """The stored button, or None for a link no longer accepted (``bot.reply.link_url``): the
    notice is still updated, without that button."""
    choice = Choice(data["choice"]) if data.get("choice") else None
    try:
        return Action(data["label"], choice=choice,
                      request_id=data.get("request_id"), style=data.get("style", "default"),
                      confirm_text=data.get("confirm_text"), command=data.get("command"),
                      action_id=data.get("action_id"), url=data.get("url"))
    except ValueError:
        return None
