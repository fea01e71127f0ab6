"""Mattermost's side of the platform port (:class:`bot.messaging.port.Platform`).

The notice deliverer speaks first through this: ``POST posts`` (a notice's tag rides in the
post's ``props[NOTICE_TAG]``; a thread reply's ``root_id`` is the thread's *first* post, as the
server requires), ``PUT posts/{id}`` (message and buttons replaced, other props kept),
``POST posts/ephemeral``, and ``GET channels/{id}/posts`` / ``GET posts/{id}/thread`` to find a
tagged post again after a crash. Posts and updates go through the adapter's per-channel sender
(their order with the adapter's other posts is kept) but are tried once: 429 is raised as
:class:`RateLimited`, 5xx / timeouts / dropped connections as :class:`TransientError`; the
deliverer retries from the database on its own clock. What Mattermost refuses for good (400,
403, 404: unknown channel, bot not a member, bad root) is :class:`DeliveryError`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from bot.adapters.aliases import AliasTable
from bot.adapters.mattermost import files
from bot.adapters.mattermost.compose import Composer
from bot.adapters.mattermost.outbound import Outbox, Outgoing, Where
from bot.adapters.mattermost.rest import MattermostRest, describe, status_of
from bot.messaging.port import NOTICE_TAG, DeliveryError, MessageRef, RateLimited, TransientError
from bot.reply import Reply

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

HISTORY_PAGE = 200  # posts per GET channels/{id}/posts page
HISTORY_PAGES = 3  # a notice is looked for among the channel's last 600 posts
T = TypeVar("T")
Spawn = Callable[[Coroutine[Any, Any, Any], str], Any]


class MattermostPlatform:
    """``bot.platforms["mattermost"]``; built by the adapter, registered when it starts."""

    name = "mattermost"

    def __init__(self, bot: Bot, rest: MattermostRest, outbox: Outbox, composer: Composer,
                 aliases: AliasTable, team: str, spawn: Spawn) -> None:
        self.bot = bot
        self.rest = rest
        self.outbox = outbox
        self.composer = composer
        self.aliases = aliases
        self.team = team
        self.spawn = spawn
        self.usernames: dict[str, str] = {}  # user id -> username (for mention())
        self._looking_up: set[str] = set()

    async def channel_for(self, alias: str) -> str | None:
        if alias not in self.aliases.configured:
            return None  # not mapped on Mattermost: a team on another platform only
        found = self.aliases.ids.get(alias)
        name = self.aliases.names.get(alias)
        if found or name is None:
            return found
        try:  # not found at startup: the channel may exist by now (or the bot joined it)
            channel = await self._call(lambda: self.rest.channel_by_name(self.team, name))
        except DeliveryError as exc:
            raise TransientError(f"mattermost.channels.{alias}: {exc}") from None
        self.aliases.bind(alias, str(channel["id"]))
        return str(channel["id"])

    async def post(self, channel_id: str, reply: Reply, *, thread_id: str | None = None,
                   tag: str | None = None) -> MessageRef:
        reply = await self._prepare(reply)
        message, props = self.composer.compose(reply, root_id=thread_id or "", requester="")
        props = dict(props or {})
        if tag:
            props[NOTICE_TAG] = tag
        item = Outgoing("post", Where(channel_id, self.rest.user_id, root_id=thread_id or ""),
                        message, props=props or None,
                        file_ids=await self._upload(channel_id, reply) or None)
        try:
            created = await self._send(item)
        except DeliveryError:
            root = await self._root_of(thread_id)
            if not root:
                raise
            item.where.root_id = root  # a reply's id was given: Mattermost wants the first post
            created = await self._send(item)
        ref = MessageRef(self.name, str(created.get("channel_id") or channel_id),
                         str(created["id"]), thread_id)
        await self.bot.remember_request_message(reply, self.name, ref.channel_id,
                                                ref.message_id)
        return ref

    async def _upload(self, channel_id: str, reply: Reply) -> list[str]:
        """The reply's files uploaded for the post (bot/adapters/mattermost/files.py); none
        when the upload fails: the text goes alone, logged once."""
        if not reply.files:
            return []
        try:
            return await files.upload(self.rest, channel_id, reply.files)
        except files.UploadFailed as exc:
            log.warning("mattermost: posting %s without its attachment (%s)",
                        reply.title or "a message", exc)
            return []

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        reply = await self._prepare(reply)
        message, props = self.composer.compose(reply, root_id=ref.thread_id or "",
                                               requester="")
        old = await self._call(lambda: self.rest.get_post(ref.message_id))
        # PUT replaces all props: keep ours (the notice tag), replace the buttons.
        kept = {k: v for k, v in (old.get("props") or {}).items() if k != "attachments"}
        await self._send(Outgoing("put", Where(ref.channel_id, self.rest.user_id), message,
                                  props={**kept, **(props or {"attachments": []})},
                                  post_id=ref.message_id))

    async def ephemeral(self, channel_id: str, user_id: str, reply: Reply) -> None:
        reply = await self._prepare(reply)
        message, props = self.composer.compose(reply, root_id="", requester=user_id)
        await self._send(Outgoing("ephemeral", Where(channel_id, user_id), message,
                                  props=props))

    async def find_tagged(self, channel_id: str, tag: str, *,
                          thread_id: str | None = None) -> MessageRef | None:
        pages = 1 if thread_id else HISTORY_PAGES
        for page in range(pages):
            if thread_id:
                answer = await self._call(lambda: self.rest.thread(thread_id), missing={})
            else:
                answer = await self._call(lambda p=page: self.rest.channel_posts(
                    channel_id, page=p, per_page=HISTORY_PAGE))
            posts = answer.get("posts") or {}
            for post_id in answer.get("order") or []:
                post = posts.get(post_id) or {}
                if post.get("user_id") == self.rest.user_id and \
                        (post.get("props") or {}).get(NOTICE_TAG) == tag:
                    return MessageRef(self.name, channel_id, str(post_id),
                                      str(post.get("root_id") or "") or None)
            if len(answer.get("order") or []) < HISTORY_PAGE:
                return None
        return None

    def mention(self, user_id: str) -> str:
        username = self.usernames.get(user_id)
        if username:
            return f"@{username}"
        # Unknown yet (looked up once, in the background, for the next notice): the person's
        # configured name, plainly; an id is no mention on Mattermost.
        self._learn_soon(user_id)
        person = self.bot.directory.lookup(self.name, user_id)
        return person.display_name if person is not None else user_id

    async def learn_usernames(self, user_ids: list[str]) -> None:
        """``POST users/ids`` once for the ids not known yet (startup: everyone configured)."""
        wanted = sorted({u for u in user_ids if u and u not in self.usernames})
        if not wanted:
            return
        try:
            users = await self._call(lambda: self.rest.users_by_ids(wanted))
        except Exception as exc:
            log.warning("could not look up Mattermost usernames of %s (%s); notices name them "
                        "without a mention", wanted, exc)
            return
        for user in users:
            if user.get("id") and user.get("username"):
                self.usernames[str(user["id"])] = str(user["username"])

    # ------------------------------------------------------------------ internals

    def _learn_soon(self, user_id: str) -> None:
        if user_id in self._looking_up:
            return  # asked already (found nothing, or still asking): once is enough
        self._looking_up.add(user_id)
        self.spawn(self.learn_usernames([user_id]), "mattermost:username")

    async def _prepare(self, reply: Reply) -> Reply:
        """Templates rendered and command buttons stored (both no-ops when already done)."""
        return await self.bot.actions.store(await self.bot.renderer.render(reply))

    async def _send(self, item: Outgoing) -> dict[str, Any]:
        try:
            return await self.outbox.send_once(item) or {}
        except (RateLimited, TransientError):
            raise
        except Exception as exc:
            raise _permanent(exc) from None

    async def _call(self, make: Callable[[], Awaitable[T]], *, missing: Any = None) -> T:
        """A REST read; ``missing`` (when given) is the answer to a 404 (a thread gone)."""
        try:
            return await self.rest.call("port", make)
        except (RateLimited, TransientError):
            raise
        except Exception as exc:
            if missing is not None and status_of(exc) == 404:
                return missing
            raise _permanent(exc) from None

    async def _root_of(self, thread_id: str | None) -> str:
        """The first post of ``thread_id``'s thread when ``thread_id`` is a reply, else ""."""
        if not thread_id:
            return ""
        post = await self._call(lambda: self.rest.get_post(thread_id))
        return str(post.get("root_id") or "")


def _permanent(exc: BaseException) -> Exception:
    """A refusal (4xx) is final; anything else unexpected is worth another try."""
    status = status_of(exc)
    if status is not None and 400 <= status < 500:
        return DeliveryError(describe(exc))
    return TransientError(describe(exc))

