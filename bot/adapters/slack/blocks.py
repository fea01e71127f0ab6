"""Reply -> Slack message (mrkdwn text + Block Kit), and button ids back to decisions.

Pure functions: no I/O. The text comes from :func:`bot.render.render_text` (the table in a code
block), already mrkdwn with ``&<>`` escaped and user text made inert (``bot/markup.py``); it is
split into section blocks under Slack's 3,000-character limit (code blocks are closed and
reopened across a split) and capped so a message stays far below Slack's 50 blocks / 40,000
characters. Text objects are ``verbatim``: Slack does not turn bare URLs, channel names or
``@here`` into links and mentions.
"""

from __future__ import annotations

from typing import Any

from bot.markup import plain, resolve, slack_escape
from bot.render import render_text
from bot.reply import Action, Choice, Level, Reply

SECTION_LIMIT = 3000  # Slack's limit for a section block's text
SECTION_BUDGET = 2900  # what we fill, leaving room for a reopened/closed code fence
MAX_SECTIONS = 12
FALLBACK_LIMIT = 400  # the top-level ``text``: notifications only, the blocks hold it all
ACTION_PREFIX = "shiftbot."
# A command button (``Action.run``): ``shiftbot.run.<stored id>``, value the same id. The id is
# in the action_id too because Slack wants action_ids unique within a block.
RUN_PREFIX = "shiftbot.run."
# A link button (``Action.link``): a Block Kit button with ``url``. Slack opens the page and
# still sends a block_actions payload, which is only acknowledged (see ``is_link``).
LINK_PREFIX = "shiftbot.link."
FENCE = "```"

LEVEL_EMOJI = {Level.WARNING: ":warning:", Level.ERROR: ":x:", Level.DENIED: ":no_entry:"}


def escape(text: str) -> str:
    """Escape the three characters mrkdwn treats as control characters."""
    return slack_escape(text)


def mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object Slack shows as written (no automatic links or mentions)."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def reply_text(reply: Reply) -> str:
    """The whole reply as escaped mrkdwn (level emoji, title, text, fields, table)."""
    text = render_text(reply, "slack")
    emoji = LEVEL_EMOJI.get(reply.level)
    return f"{emoji} {text}" if emoji and text else text


def split_sections(text: str, budget: int = SECTION_BUDGET,
                   max_sections: int = MAX_SECTIONS) -> list[str]:
    """Cut ``text`` at line boundaries into chunks of at most ``budget`` characters.

    A chunk that ends inside a code block is closed with a fence and the next one reopens it.
    Beyond ``max_sections`` the rest is dropped and the last chunk says how much was left out.
    """
    if len(text) <= budget:
        return [text or " "]
    pieces: list[str] = []
    for line in text.split("\n"):
        while len(line) > budget - 8:  # a single monster line: hard cut
            pieces.append(line[: budget - 8])
            line = line[budget - 8:]
        pieces.append(line)
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    in_code = False
    for line in pieces:
        if current and size + len(line) + 1 > budget - len(FENCE) - 1:
            if in_code:
                current.append(FENCE)
            chunks.append("\n".join(current))
            current, size = ([FENCE], len(FENCE) + 1) if in_code else ([], 0)
        current.append(line)
        size += len(line) + 1
        if line.count(FENCE) % 2 == 1:
            in_code = not in_code
    if current and any(part.strip() for part in current):
        chunks.append("\n".join(current))
    if len(chunks) > max_sections:
        dropped = sum(c.count("\n") + 1 for c in chunks[max_sections - 1:])
        chunks = chunks[: max_sections - 1]
        chunks.append(f"_... {dropped} more lines not shown (too long for one Slack message)_")
    return chunks or [" "]


def button(action: Action, index: int = 0) -> dict[str, Any]:
    """One Block Kit button; destructive confirmations get Slack's native confirm dialog.
    ``index``: the button's place in its block (a link button's action_id, unique in it)."""
    if action.url is not None:
        return link_button(action, index)
    if action.command is not None:
        if not action.action_id:
            raise ValueError(f"command button {action.label!r} was not stored (bot.actions)")
        action_id, value = RUN_PREFIX + action.action_id, action.action_id
    elif action.choice is None:
        raise ValueError(f"button {action.label!r} neither decides a request nor runs a command")
    else:
        action_id, value = ACTION_PREFIX + action.choice.value, str(action.request_id)
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "value": value,
        "text": {"type": "plain_text", "text": plain(action.label)[:75], "emoji": True},
    }
    if action.style in ("primary", "danger"):
        element["style"] = action.style
    if action.confirm_text:
        element["confirm"] = {
            "title": {"type": "plain_text", "text": "Are you sure?"},
            "text": mrkdwn(_cut(resolve(action.confirm_text, "slack"), 300)),
            "confirm": {"type": "plain_text", "text": plain(action.label)[:30]},
            "deny": {"type": "plain_text", "text": "Back"},
            "style": "danger" if action.style == "danger" else "primary",
        }
    return element


def link_button(action: Action, index: int) -> dict[str, Any]:
    """A button that opens ``action.url`` (Slack allows 3,000 characters, as ``Action.link``
    does); it carries no value: a click on it decides and runs nothing."""
    element: dict[str, Any] = {
        "type": "button",
        "action_id": f"{LINK_PREFIX}{index}",
        "url": action.url,
        "text": {"type": "plain_text", "text": plain(action.label)[:75], "emoji": True},
    }
    if action.style in ("primary", "danger"):
        element["style"] = action.style
    return element


def message(reply: Reply, *, with_actions: bool = True) -> dict[str, Any]:
    """``{"text", "blocks"}`` for chat.postMessage, response_url or an ack."""
    text = reply_text(reply)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": mrkdwn(chunk)} for chunk in split_sections(text)
    ]
    if with_actions and reply.actions:
        first = reply.actions[0]
        block = first.request_id or first.action_id or "actions"
        blocks.append({"type": "actions", "block_id": f"{ACTION_PREFIX}{block}"[:255],
                       "elements": [button(a, i) for i, a in enumerate(reply.actions)]})
    return {"text": fallback(text), "blocks": blocks}


def _cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, never ending inside an entity or a code span."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 4]
    amp = cut.rfind("&")
    if amp > cut.rfind(";"):
        cut = cut[:amp]
    if cut.count("`") % 2:
        cut = cut[: cut.rfind("`")]
    return cut.rstrip() + " ..."


def fallback(text: str, limit: int = FALLBACK_LIMIT) -> str:
    """The notification text: the message itself when short, else its start (whole lines)."""
    if len(text) <= limit:
        return text or " "
    cut = text.rfind("\n", 0, limit - 4)
    head = text[: cut if cut > limit // 2 else limit - 4].rstrip()
    if head.count(FENCE) % 2:
        head = head[: head.rfind(FENCE)].rstrip()
    return head + " ..."


def is_link(action: dict[str, Any]) -> bool:
    """Whether a clicked button is one of our link buttons (Slack opened its page; nothing
    is left for the bot to do but acknowledge the click)."""
    return str(action.get("action_id") or "").startswith(LINK_PREFIX)


def parse_action(action: dict[str, Any]) -> tuple[Choice, str] | None:
    """``(choice, request_id)`` from a clicked button of ours, else None."""
    action_id = str(action.get("action_id") or "")
    if not action_id.startswith(ACTION_PREFIX) or action_id.startswith(RUN_PREFIX):
        return None
    try:
        choice = Choice(action_id[len(ACTION_PREFIX):])
    except ValueError:
        return None
    request_id = str(action.get("value") or "").strip()
    return (choice, request_id) if request_id else None


def parse_run(action: dict[str, Any]) -> str | None:
    """The stored id of a clicked command button of ours, else None (never a command line:
    the id is looked up server-side)."""
    action_id = str(action.get("action_id") or "")
    if not action_id.startswith(RUN_PREFIX):
        return None
    value = str(action.get("value") or "").strip()
    return value if value and action_id == RUN_PREFIX + value else None
