"""Inbound Slack deliveries -> the core: slash commands, mentions, DMs, thread replies, clicks.

Every delivery is *claimed* first (``bot.claims``, in the database): Slack retries what it
thinks was not acknowledged, and with two bot processes on one database the same event may
reach both (a retry lands on the other socket, or both serve the HTTP endpoint). The claim
makes exactly one of them run it. A small in-memory set in front of it only short-circuits
repeats this process has already seen (it can skip, never run). An event or click whose claim
another replica holds is kept (the spawned task waits) and run here if that replica dies
before it finishes (bot/messaging/inbound.py); a slash command's repeat is acknowledged at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.adapters.slack import blocks
from bot.adapters.slack.answers import Answers
from bot.adapters.slack.channels import ChannelDirectory
from bot.adapters.slack.inbound import clean_text
from bot.adapters.slack.outbound import Responder
from bot.adapters.slack.routing import Progress, Where
from bot.config import SlackConfig
from bot.identity import Inbound
from bot.messaging.inbound import InboundClaims
from bot.messaging.replies import done_or_timeout, working_reply
from bot.outcome import OutcomeStatus
from bot.reply import Level, Reply, Visibility

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

CLAIM_TTL = timedelta(hours=1)  # Slack retries within minutes; a claim outlives them
# Human messages that still are a reply in a thread (posted with "also send to channel",
# with a file); edits, joins and bot posts have other subtypes and are ignored.
REPLY_SUBTYPES = frozenset({"thread_broadcast", "file_share"})

Spawn = Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]


def event_kind(event: dict[str, Any], bot_user_id: str | None) -> str | None:
    """``"command"`` (a mention or a DM), ``"thread"`` (a human reply in a thread that is not
    a command), or None (ignored: edits, bot posts, channel chatter outside threads)."""
    user = event.get("user")
    if event.get("bot_id") or not user or user == bot_user_id:
        return None
    subtype = event.get("subtype")
    channel = str(event.get("channel") or "")
    if event.get("type") == "app_mention" or event.get("channel_type") == "im" \
            or channel.startswith("D"):
        return None if subtype else "command"
    thread, text = event.get("thread_ts"), str(event.get("text") or "")
    if not thread or thread == event.get("ts") or (subtype and subtype not in REPLY_SUBTYPES):
        return None
    if bot_user_id and f"<@{bot_user_id}" in text:
        return None  # a command: it arrives as app_mention too
    return "thread"


class Listeners:
    def __init__(self, bot: Bot, config: SlackConfig, channels: ChannelDirectory,
                 answers: Answers, spawn: Spawn, adopt: Callable[[asyncio.Task[Any]], None]
                 ) -> None:
        self.bot = bot
        self.config = config
        self.channels = channels
        self.answers = answers
        self.spawn = spawn
        self.adopt = adopt
        self.claims = InboundClaims(bot.claims, "slack", CLAIM_TTL)

    # ------------------------------------------------------------------ slash commands

    async def on_command(self, ack: Any, body: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        trigger = body.get("trigger_id")
        key = trigger and f"command:{trigger}"
        # wait=False: the ack is due within 3 s, so a repeat is never kept for a takeover
        # (Slack does not send a slash command again once acknowledged anyway).
        if not await self.claims.first(key, wait=False):
            await ack()  # a repeated delivery: the first one is being answered
            return
        inbound = await self._command_inbound(body)
        url = body.get("response_url")
        where = Where(inbound.channel_id or "", inbound.user_id,
                      responder=Responder(url) if url else None, is_direct=inbound.is_direct)
        progress = Progress(self.answers.post_nowait, where)
        spec = self.bot.lookup(inbound.text)
        if spec is not None and spec.slow:
            progress.acked = True
            await ack(ack_body(working_reply(spec)))
            self._held_by(key, self.spawn(
                self.answers.answer_later(self.bot.handle(inbound, progress), where)))
            return
        task = loop.create_task(self.bot.handle(inbound, progress=progress))
        budget = self.config.ack_budget_seconds - (loop.time() - started)
        await done_or_timeout(task, max(0.01, budget))
        if task.done():
            reply = task.result().reply
            if reply.actions and reply.visibility != Visibility.EPHEMERAL:
                await ack()  # a card with buttons is posted instead, so that it can be updated
                self._held_by(key, self.spawn(self.answers.deliver(reply, where)))
                return
            await ack(ack_body(reply))
            return
        progress.acked = True
        await ack(ack_body(working_reply(spec)))
        self.adopt(task)
        self._held_by(key, self.spawn(self.answers.answer_later(task, where)))

    def _held_by(self, key: str | None, task: asyncio.Task[Any] | None) -> None:
        """The delivery's claim lasts until ``task`` has answered, not the ack."""
        if key and isinstance(task, asyncio.Task):
            self.claims.hold(key, task)

    async def _command_inbound(self, body: dict[str, Any]) -> Inbound:
        family = self.config.commands.get(str(body.get("command") or ""))
        text = clean_text(str(body.get("text") or ""))
        if family:
            text = f"{family} {text}".strip()
        channel_id = str(body.get("channel_id") or "")
        channel_name = body.get("channel_name")
        is_direct = channel_name == "directmessage" or channel_id.startswith("D")
        alias = await self.channels.alias_for(channel_id)  # by id: never the request's name
        return Inbound(platform="slack", user_id=str(body.get("user_id") or ""),
                       text=text or "help", channel_id=channel_id or None, channel_alias=alias,
                       user_name=body.get("user_name"), is_direct=is_direct)

    # ------------------------------------------------------------------ events

    def on_event(self, body: dict[str, Any], event: dict[str, Any],
                 bot_user_id: str | None) -> None:
        kind = event_kind(event, bot_user_id)
        if kind is not None:
            key = body.get("event_id") or event.get("ts")
            self.spawn(self._run_event(key and f"event:{key}", kind, event, bot_user_id))

    async def _run_event(self, key: str | None, kind: str, event: dict[str, Any],
                         bot_user_id: str | None) -> None:
        if not await self.claims.first(key):
            log.info("ignoring a repeated Slack event %s", key)
            return
        if kind == "thread":
            await self._on_thread_reply(event, bot_user_id)
        else:
            await self._on_message(event, bot_user_id)

    async def _on_message(self, event: dict[str, Any], bot_user_id: str | None) -> None:
        channel = str(event.get("channel") or "")
        is_direct = event.get("channel_type") == "im" or channel.startswith("D")
        thread = event.get("thread_ts")
        inbound = Inbound(
            platform="slack", user_id=str(event["user"]),
            text=clean_text(str(event.get("text") or ""), bot_user_id) or "help",
            channel_id=channel or None,
            channel_alias=None if is_direct else await self.channels.alias_for(channel),
            thread_id=thread, is_direct=is_direct)
        where = Where(channel, inbound.user_id, thread_ts=thread, message_ts=event.get("ts"),
                      is_direct=is_direct)
        progress = Progress(self.answers.post_nowait, where, acked=True)
        spec = self.bot.lookup(inbound.text)
        if spec is not None and spec.slow:
            self.answers.post_nowait(working_reply(spec), where)
        await self.answers.answer_later(self.bot.handle(inbound, progress=progress), where)

    async def _on_thread_reply(self, event: dict[str, Any], bot_user_id: str | None) -> None:
        """A person answered in a thread: the feature that owns the thread (if any) gets it
        (``Bot.thread_reply``); in threads nobody owns it stays ignored."""
        route = getattr(self.bot, "thread_reply", None)
        if route is None:
            return
        channel = str(event.get("channel") or "")
        inbound = Inbound(
            platform="slack", user_id=str(event["user"]),
            text=clean_text(str(event.get("text") or ""), bot_user_id),
            channel_id=channel or None, channel_alias=await self.channels.alias_for(channel),
            thread_id=str(event["thread_ts"]))
        try:
            await route(inbound)
        except Exception:
            log.exception("a thread reply in %s (thread %s) failed", channel, inbound.thread_id)

    # ------------------------------------------------------------------ buttons

    async def on_action(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        if blocks.is_link(action):  # Slack opened the page; acknowledged, nothing to run
            log.debug("a link button was clicked (%s)", action.get("action_id"))
            return
        key = body.get("trigger_id") or action.get("action_ts")
        self.spawn(self._run_action(key and f"action:{key}", body))

    async def _run_action(self, key: str | None, body: dict[str, Any]) -> None:
        if not await self.claims.first(key):
            log.info("ignoring a repeated Slack click %s", key)
            return
        action = (body.get("actions") or [{}])[0]
        run = blocks.parse_run(action)
        decision = blocks.parse_action(action)
        if run is not None:
            await self._on_run(body, run)
        elif decision is not None:
            await self._on_decide(body, *decision)
        else:
            log.warning("ignoring an unknown Slack button %r", action.get("action_id"))

    async def _clicker(self, body: dict[str, Any]) -> tuple[Inbound, Where, str | None]:
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        user = body.get("user") or {}
        ephemeral = bool(container.get("is_ephemeral"))
        message_ts = None if ephemeral else container.get("message_ts")
        thread = container.get("thread_ts")
        url = body.get("response_url")
        where = Where(channel, str(user.get("id") or ""), thread_ts=thread,
                      message_ts=message_ts, responder=Responder(url) if url else None,
                      is_direct=channel.startswith("D"))
        inbound = Inbound(platform="slack", user_id=where.user_id, text="",
                          channel_id=channel or None,
                          channel_alias=await self.channels.alias_for(channel),
                          user_name=user.get("username") or user.get("name"), thread_id=thread,
                          is_direct=where.is_direct)
        return inbound, where, message_ts

    async def _on_run(self, body: dict[str, Any], action_id: str) -> None:
        """A command button: its stored command runs as the clicker, answered like a typed
        one (errors and denials to the clicker only; cards where the command puts them)."""
        inbound, where, _message = await self._clicker(body)
        progress = Progress(self.answers.post_nowait, where, acked=True)
        outcome = await self.bot.click(inbound, action_id, progress=progress)
        await self.answers.deliver(outcome.reply, where)

    async def _on_decide(self, body: dict[str, Any], choice: Any, request_id: str) -> None:
        inbound, where, original = await self._clicker(body)
        progress = Progress(self.answers.post_nowait, where, acked=True)
        clicked = self.answers.clicked
        mark = clicked.begin(original) if original else None
        updated = False
        try:
            outcome = await self.bot.decide(inbound, request_id, choice, progress=progress)
            updated = outcome.update is not None or outcome.status == OutcomeStatus.PENDING
        finally:
            if mark is not None and original:
                clicked.end(original, mark, updated)
        if outcome.update is not None:
            await self.answers.replace(outcome.update, where, original)
            if outcome.reply is not outcome.update:
                await self.answers.deliver(outcome.reply, where)
        elif outcome.status == OutcomeStatus.PENDING:  # confirmed; now an approval is needed
            note = Reply(text=f"Confirmed by <@{where.user_id}>; request {outcome.request_id} "
                              "now waits for approval.", level=Level.INFO)
            await self.answers.replace(note, where, original)
            await self.answers.deliver(outcome.reply, where)
        else:  # refused, expired, already decided: only the clicker sees why
            await self.answers.deliver(outcome.reply.with_visibility(Visibility.EPHEMERAL),
                                       where)


def ack_body(reply: Reply) -> dict[str, Any]:
    """A slash command's ack that *is* the answer."""
    response_type = "ephemeral" if reply.visibility == Visibility.EPHEMERAL else "in_channel"
    return {"response_type": response_type, **blocks.message(reply)}
