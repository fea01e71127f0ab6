"""Thread listening: a person's reply in a thread the bot opened goes to the feature owning it.

A notice posted with ``owner="meetings"`` owns the threads of its messages (one per platform
and channel: ``notice_deliveries.message_id``). Adapters hand every human reply in a thread to
``Bot.thread_reply(inbound)`` (Slack ``thread_ts``, Mattermost ``root_id``, console
``/reply N text``); this module finds the owner and calls its ``@on_thread_reply`` hook with a
:class:`~bot.hooks.ThreadContext`. A reply the hook returns is posted in that same thread on
that platform (an answer to the person who wrote, not a notice: it is not repeated on other
platforms). Replies in threads nobody owns are ignored (False).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, NamedTuple

from bot.hooks import ThreadContext
from bot.identity import Inbound
from bot.reply import Reply

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from bot.core import Bot

log = logging.getLogger(__name__)

HOOK_DEADLINE_SECONDS = 60.0


class ThreadOwner(NamedTuple):
    owner: str
    notice_key: str


def owner_of(conn: Connection, platform: str, channel_id: str,
             message_id: str) -> ThreadOwner | None:
    """The feature that owns the thread rooted at ``message_id`` (a notice's message)."""
    from sqlalchemy import select

    from bot import db

    deliveries, notices = db.notice_deliveries, db.notices
    row = conn.execute(
        select(notices.c.owner, notices.c.key)
        .join(deliveries, deliveries.c.notice_key == notices.c.key)
        .where(deliveries.c.platform == platform, deliveries.c.channel_id == channel_id,
               deliveries.c.message_id == message_id, notices.c.owner.is_not(None))
        .limit(1)).first()
    return ThreadOwner(row.owner, row.key) if row is not None else None


async def route(bot: Bot, inbound: Inbound) -> bool:
    """Give a thread reply to its owner's hook; False when nobody owns the thread."""
    if not inbound.thread_id or not inbound.channel_id:
        return False
    found = await bot.database.run(owner_of, inbound.platform, inbound.channel_id,
                                   inbound.thread_id)
    if found is None:
        return False
    hook = bot.registry.thread_hooks.get(found.owner)
    if hook is None:
        log.warning("a reply in the thread of notice %s: its owner %r has no @on_thread_reply "
                    "hook loaded; ignored", found.notice_key, found.owner)
        return False
    ctx = ThreadContext(bot, bot.directory.caller(inbound), inbound.text, found.owner,
                        found.notice_key, inbound.platform, inbound.channel_id,
                        inbound.thread_id)
    try:
        async with asyncio.timeout(HOOK_DEADLINE_SECONDS):
            reply = await hook(ctx)
    except Exception:
        log.exception("the %s thread hook failed on a reply in %s", found.owner,
                      found.notice_key)
        return True
    if reply is not None:
        await _answer(bot, ctx, reply)
    return True


async def _answer(bot: Bot, ctx: ThreadContext, reply: Reply) -> None:
    platform = bot.platforms.get(ctx.platform)
    if platform is None:
        log.error("cannot answer in a %s thread: that platform is not running", ctx.platform)
        return
    try:
        rendered = await bot.actions.store(await bot.renderer.render(reply))
        await platform.post(ctx.channel_id, rendered, thread_id=ctx.thread_id)
    except Exception:
        log.exception("answering in the %s thread %s failed", ctx.platform, ctx.thread_id)
