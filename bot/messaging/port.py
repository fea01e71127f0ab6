"""The platform port: what every chat adapter offers the rest of the bot for speaking first.

Handlers and features never call an adapter; they call ``bot.notices`` (durable notices) or
return a ``Reply``. The notice deliverer calls the adapters through this protocol only, so a
third platform is one new adapter package that implements it, plus its config section.

Errors: an adapter raises :class:`~bot.sender.RateLimited` (429, with Retry-After) or
:class:`~bot.sender.TransientError` (5xx, timeout, dropped connection) for what is worth
retrying, and :class:`DeliveryError` for what is not (unknown channel, message too long,
invalid auth). Anything else is treated as transient and logged with its traceback once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.reply import Reply
from bot.sender import RateLimited, TransientError

# Slack message metadata event type / Mattermost post prop that marks a notice's message, so
# that after a crash between "sent" and "recorded" the deliverer finds it instead of posting
# it again. The value is the delivery's tag (``<notice key>#<step>``).
NOTICE_TAG = "shiftbot_notice"


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message on a platform: enough to update it or reply in its thread."""

    platform: str
    channel_id: str
    message_id: str  # Slack ts, Mattermost post id, console sequence number
    thread_id: str | None = None  # the thread's root message id, when it is a reply


class DeliveryError(Exception):
    """The platform refused for good (unknown channel, message too long, no permission)."""


@runtime_checkable
class Platform(Protocol):
    """Implemented by every chat adapter (``bot/adapters/*``), the console included."""

    name: str  # "slack", "mattermost", "console"

    async def channel_for(self, alias: str) -> str | None:
        """The channel id of a configured alias on this platform, or None when the alias is
        not mapped here (a team on one platform only). Raises TransientError while a lookup
        cannot be made."""

    async def post(self, channel_id: str, reply: Reply, *, thread_id: str | None = None,
                   tag: str | None = None) -> MessageRef:
        """Post ``reply`` (rendered: text, fields, table, buttons) to a channel, or as a reply
        in ``thread_id``'s thread. ``tag`` is stored on the message (Slack metadata,
        Mattermost props) for :meth:`find_tagged`."""

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        """Replace a message the bot posted (buttons included)."""

    async def ephemeral(self, channel_id: str, user_id: str, reply: Reply) -> None:
        """Show ``reply`` to one person in a channel."""

    async def find_tagged(self, channel_id: str, tag: str, *,
                          thread_id: str | None = None) -> MessageRef | None:
        """The bot's recent message in the channel (or thread) carrying ``tag``, if any."""

    def mention(self, user_id: str) -> str:
        """How a message names a person so that they are notified (``<@U123>``, ``@alice``)."""


__all__ = ["NOTICE_TAG", "DeliveryError", "MessageRef", "Platform", "RateLimited",
           "TransientError"]
