"""From Mattermost messages and forms to command lines: what is a command, and seen-before ids."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DM_NAME = re.compile(r"^[a-z0-9]{26}__[a-z0-9]{26}$")
_MATTERMOST_ID = re.compile(r"^[a-z0-9]{26}$")


def is_mattermost_id(value: str) -> bool:
    return bool(_MATTERMOST_ID.match(value))


def is_direct_channel(channel_type: str | None, channel_name: str | None) -> bool:
    """A DM (``D``); slash-command forms carry no type, only the ``<id>__<id>`` name."""
    if channel_type:
        return channel_type == "D"
    return bool(channel_name and _DM_NAME.match(channel_name))


@dataclass(frozen=True, slots=True)
class CommandText:
    """How a message addresses the bot: ``prefix``, ``mention`` or ``direct``."""

    text: str
    how: str


def command_in(message: str, *, prefix: str, bot_username: str,
               direct: bool) -> CommandText | None:
    """The command line a message carries, or None when it is not for the bot.

    Commands are messages that start with the prefix (``!condor q``) or with a mention of the bot
    (``@shiftbot condor q``), and every message in a direct channel with the bot. A mention
    elsewhere in a sentence (or ``@channel``) is talk about the bot, not a command.
    """
    text = message.strip()
    if not text:
        return None
    if text.startswith(prefix):
        return CommandText(_or_help(text[len(prefix):]), "prefix")
    if bot_username:
        mention = re.match(rf"@{re.escape(bot_username)}(?![A-Za-z0-9._-]*[A-Za-z0-9])[.:,;!?]*",
                           text, flags=re.IGNORECASE)
        if mention:
            return CommandText(_or_help(text[mention.end():]), "mention")
    if direct:
        return CommandText(text, "direct")
    return None


def slash_text(trigger: str, text: str, families: dict[str, str | None]) -> str:
    """``/condor q`` with ``commands: {condor: condor}`` -> ``condor q``; empty -> ``help``."""
    family = families.get(trigger.strip().lstrip("/").lower())
    line = text.strip()
    if family:
        line = f"{family} {line}".strip()
    return _or_help(line)


def _or_help(text: str) -> str:
    return text.strip() or "help"


