"""Outbound: every post, ephemeral post, update and ``response_url`` call goes through one
per-channel :class:`~bot.sender.ChannelSender` (order kept, 429/5xx retried, nothing dropped).

A slash command's ``response_url`` (5 uses, 30 minutes) is preferred while it lasts: it works in
channels the bot is not a member of. When it is used up, expired or refused, the same message
goes through the posts API instead.

A message marked ``once`` (the platform port's, :mod:`bot.adapters.mattermost.platform`) keeps
its place in the channel's queue but is tried once: 429 and transient failures are handed back
to its caller (the notice deliverer), which retries from the database on its own clock.

Messages arrive rendered (``render_text(reply, "mattermost")``: user text escaped); a message
that still holds marked user text (a progress note, a plain string) is resolved here, last.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.adapters.mattermost.rest import HookRefused, MattermostRest
from bot.markup import is_marked, resolve
from bot.sender import ChannelSender, RateLimited, TransientError

log = logging.getLogger(__name__)

HOOK_MAX_USES = 5
HOOK_LIFETIME = 30 * 60.0
HOOK_MARGIN = 60.0  # stop using a response_url this long before it expires
MESSAGE_LIMIT = 16_000  # Mattermost's limit is 16,383 runes
TRUNCATED = "\n… (cut: the message was longer than Mattermost allows)"


def fit(message: str) -> str:
    """A message Mattermost accepts (long ones are cut with a note)."""
    if len(message) <= MESSAGE_LIMIT:
        return message
    cut = message[: MESSAGE_LIMIT - len(TRUNCATED)]
    fence = open_fence(cut)
    if fence:  # do not leave a code block open: the note would be shown as code
        cut += "\n" + fence
    return cut + TRUNCATED


# CommonMark fences: up to three spaces, then three or more backticks; an opening fence's info
# string has no backtick (so an inline code span starting a line is not one), a closing fence
# is at least as long as the opening one, with nothing after it.
_FENCE = re.compile(r" {0,3}(`{3,})([^`]*)")


def open_fence(text: str) -> str | None:
    """The fence of the code block left open at the end of ``text``, or None. Tables are fenced
    longer than any backtick run in them, so counting "```" would be wrong."""
    fence: str | None = None
    for line in text.split("\n"):
        match = _FENCE.fullmatch(line)
        if match is None:
            continue
        run, rest = match.groups()
        if fence is None:
            fence = run
        elif len(run) >= len(fence) and not rest.strip():
            fence = None
    return fence


def confirm_question(request_id: str, question: str) -> str:
    """The message shown after a first click on "Confirm…": the question (a button's signed
    ``confirm_text``, which may hold marked user text) resolved for Mattermost."""
    asked = resolve(question, "mattermost") if question else f"Run request {request_id} now?"
    return f"**Confirm request {request_id}?**\n{asked}"


@dataclass
class Responder:
    """A slash command's ``response_url`` and how much of it is left."""

    url: str
    created: float = field(default_factory=time.monotonic)
    uses: int = 0
    refused: bool = False
    clock: Callable[[], float] = time.monotonic

    def usable(self, reserve: int = 0) -> bool:
        """Whether one more use leaves ``reserve`` uses for later messages."""
        fresh = self.clock() - self.created < HOOK_LIFETIME - HOOK_MARGIN
        return not self.refused and fresh and self.uses + 1 + reserve <= HOOK_MAX_USES


@dataclass(slots=True)
class Where:
    """Where a command came from, hence where its answers go."""

    channel_id: str
    user_id: str
    root_id: str = ""  # the thread answers go to ("": top level)
    is_direct: bool = False
    responder: Responder | None = None

    @property
    def queue(self) -> str:
        return self.channel_id or f"user:{self.user_id}"


@dataclass(slots=True)
class Outgoing:
    """One message to deliver.

    ``kind``: ``post`` (a stored post; ``props`` may hold buttons), ``ephemeral`` (to
    ``where.user_id`` only), ``patch`` (change ``post_id``'s message, and props if given) or
    ``put`` (replace ``post_id``'s message and props). ``hook_reserve``: uses of the
    ``response_url`` to leave for later messages (progress notes leave two).
    """

    kind: str
    where: Where
    message: str
    props: dict[str, Any] | None = None
    post_id: str = ""
    hook_reserve: int = 0
    pending_post_id: str = ""  # set on first attempt: retries are idempotent server-side
    once: bool = False  # hand RateLimited / TransientError back instead of retrying
    file_ids: list[str] | None = None  # uploaded files the post carries (a digest's chart)


@dataclass(frozen=True, slots=True)
class Unsent:
    """A ``once`` message that failed in a retryable way (returned through the sender, so the
    sender neither retries it nor logs it as given up)."""

    error: RateLimited | TransientError


class Outbox:
    """Delivers :class:`Outgoing` messages through a per-channel sender."""

    def __init__(self, rest: MattermostRest, *, base_delay: float = 0.5,
                 max_delay: float = 30.0, max_attempts: int = 8) -> None:
        self.rest = rest
        self.sender: ChannelSender[dict[str, Any] | None] = ChannelSender(
            self._perform, base_delay=base_delay, max_delay=max_delay,
            max_attempts=max_attempts)
        self._outstanding: set[asyncio.Future[dict[str, Any] | None]] = set()

    def send_nowait(self, item: Outgoing) -> asyncio.Future[dict[str, Any] | None]:
        """Queue ``item`` behind everything already queued for its channel."""
        future = self.sender.send_nowait(item.where.queue, item)
        self._outstanding.add(future)
        future.add_done_callback(self._outstanding.discard)
        return future

    async def send(self, item: Outgoing) -> dict[str, Any] | None:
        """Deliver and return the created post (None for ephemeral and hook deliveries)."""
        return await self.send_nowait(item)

    async def send_once(self, item: Outgoing) -> dict[str, Any] | None:
        """One attempt, in the channel's order: raises RateLimited / TransientError for the
        caller to retry, the REST error when Mattermost refused."""
        item.once = True
        answer = await self.send(item)
        if isinstance(answer, Unsent):
            raise answer.error
        return answer

    def send_soon(self, item: Outgoing) -> None:
        """Queue without waiting; a failure is logged."""
        self.send_nowait(item).add_done_callback(_log_failure)

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the workers."""
        # Not ChannelSender.flush(): it also waits for idle workers, which linger 60 s.
        if self._outstanding:
            _done, pending = await asyncio.wait(set(self._outstanding), timeout=timeout)
            if pending:
                log.warning("%d Mattermost message(s) not delivered at shutdown", len(pending))
        await self.sender.close()

    async def _perform(self, _queue: str, item: Outgoing) -> Any:
        try:
            return await self._perform_once(item)
        except (RateLimited, TransientError) as exc:
            if item.once:
                return Unsent(exc)
            raise

    async def _perform_once(self, item: Outgoing) -> dict[str, Any] | None:
        if is_marked(item.message):  # marked user text that did not go through render_text
            item.message = fit(resolve(item.message, "mattermost"))
        where = item.where
        responder = where.responder
        via_hook = item.kind not in ("patch", "put") and responder is not None
        if via_hook and responder is not None and responder.usable(item.hook_reserve):
            payload: dict[str, Any] = {
                "response_type": "ephemeral" if item.kind == "ephemeral" else "in_channel",
                "text": item.message}
            props = dict(item.props or {})
            if "attachments" in props:  # CommandResponse.attachments, as the server documents
                payload["attachments"] = props.pop("attachments")
            if props:
                payload["props"] = props
            responder.uses += 1
            try:
                await self.rest.post_to_hook(responder.url, payload)
                return None
            except HookRefused as exc:
                log.info("response_url no longer usable (%s); using the posts API", exc)
                responder.refused = True
        if item.kind == "put":
            return await self.rest.update_post(item.post_id, message=item.message,
                                               props=item.props or {})
        if item.kind == "patch":
            return await self.rest.patch_post(item.post_id, message=item.message,
                                              props=item.props)
        if item.kind == "ephemeral" and not where.is_direct:
            await self.rest.create_ephemeral(where.user_id, where.channel_id, item.message,
                                             root_id=where.root_id, props=item.props)
            return None
        if not item.pending_post_id:
            item.pending_post_id = self.rest.pending_id()
        return await self.rest.create_post(where.channel_id, item.message, root_id=where.root_id,
                                           props=item.props,
                                           pending_post_id=item.pending_post_id,
                                           file_ids=item.file_ids)


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a Mattermost message was not delivered: %s", future.exception())
