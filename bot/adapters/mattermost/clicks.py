"""Button clicks (``POST /mattermost/action``): decisions on requests and command buttons.

A click is acted upon only when its signed context verifies (:mod:`.actions`); then it is claimed
(``bot.claims``: a click Mattermost sends again, or one that reaches two replicas, runs once).

- A decision button calls :meth:`Bot.decide` (the decision gate says who may decide); the answer
  updates the clicked post. "Confirm…" first shows a second step (Mattermost has no native
  confirmation dialog).
- A command button calls :meth:`Bot.click` with the stored action id: the command line runs as
  the clicker through the gate, confirmation, approval and audit, and is answered like a typed
  command (errors and denials to the clicker only). The post itself stays: a notice's buttons
  are for everybody.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.adapters.mattermost.actions import ASK, RUN, ExpiredContext, ForgedContext, SignedAction
from bot.adapters.mattermost.answers import Answers, Progress
from bot.adapters.mattermost.inbound import is_direct_channel
from bot.adapters.mattermost.outbound import Outgoing, Where, confirm_question
from bot.adapters.mattermost.rest import describe
from bot.adapters.mattermost.routes import click_body
from bot.http import Refused, clip
from bot.identity import Inbound
from bot.messaging.inbound import InboundClaims
from bot.messaging.replies import working_reply
from bot.outcome import Outcome, OutcomeStatus
from bot.reply import Choice, Visibility

if TYPE_CHECKING:
    from bot.adapters.mattermost.adapter import MattermostAdapter

log = logging.getLogger(__name__)

ALREADY = {"ephemeral_text": "That click was already handled."}


class Clicks:
    def __init__(self, adapter: MattermostAdapter, answers: Answers,
                 claims: InboundClaims) -> None:
        self.adapter = adapter
        self.bot = adapter.bot
        self.answers = answers
        self.claims = claims

    async def on_action(self, request: web.Request) -> web.StreamResponse:
        body = await click_body(request)  # bounded JSON; refusals answered by bot.http
        try:
            signed = self.adapter.signer.verify(body.get("context"))
        except ExpiredContext:
            return web.json_response({"ephemeral_text": "These buttons have expired; run the "
                                                        "command again."})
        except ForgedContext as exc:
            raise Refused(401, "Mattermost button click with a forged context",
                          f"{exc}; as user {clip(body.get('user_id'), 40)}",
                          json_body={"ephemeral_text": "This button is not valid."},
                          auth_source="mattermost") from None
        user_id = str(body.get("user_id") or "")
        if not user_id:
            return web.json_response({"ephemeral_text": "No user in the request."}, status=400)
        if signed.action == ASK:
            return web.json_response(await self._second_step(signed, body))
        if not await self.claims.first(_click_key(body, signed)):
            log.info("Mattermost click %s already handled", _click_key(body, signed))
            return web.json_response(ALREADY)
        inbound, where = self._clicker(body, signed)
        if signed.action == RUN:
            return await self._run(inbound, where, signed.request_id)
        return await self._decide(inbound, where, signed, str(body.get("post_id") or ""))

    def _clicker(self, body: dict[str, Any], signed: SignedAction) -> tuple[Inbound, Where]:
        user_id = str(body.get("user_id") or "")
        channel_id = str(body.get("channel_id") or "")
        direct = is_direct_channel(None, str(body.get("channel_name") or ""))
        root = signed.root_id or str(body.get("post_id") or "")
        where = Where(channel_id, user_id, root_id=root, is_direct=direct)
        inbound = Inbound(
            platform="mattermost", user_id=user_id, text="", channel_id=channel_id,
            channel_alias=None if direct else self.adapter.alias_for(channel_id),
            user_name=str(body.get("user_name") or "") or None, thread_id=root or None,
            is_direct=direct)
        return inbound, where

    # ------------------------------------------------------------------ command buttons

    async def _run(self, inbound: Inbound, where: Where, action_id: str) -> web.StreamResponse:
        progress = Progress(self.answers, where, acked=False)
        task = self.adapter.spawn(self.bot.click(inbound, action_id, progress=progress),
                                  "mattermost:click")
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task),
                                             self.adapter.config.ack_budget_seconds)
        except TimeoutError:
            progress.acked = True
            progress.sent_now()
            self.adapter.spawn(self.answers.answer_later(task, where, inbound.user_id),
                               "mattermost:click-later")
            spec = self.bot.lookup((await self._command_of(action_id)) or "")
            return web.json_response({"ephemeral_text": working_reply(spec).text})
        reply = outcome.reply
        if reply.visibility == Visibility.EPHEMERAL and not reply.actions:
            return web.json_response({"ephemeral_text": self.answers.composer.text(reply)})
        self.answers.deliver_soon(reply, where, inbound.user_id)
        return web.json_response({})

    async def _command_of(self, action_id: str) -> str | None:
        try:
            action = await self.bot.actions.get(action_id)
        except Exception:
            return None
        return action.command if action is not None else None

    # ------------------------------------------------------------------ decisions

    async def _decide(self, inbound: Inbound, where: Where, signed: SignedAction,
                      post_id: str) -> web.StreamResponse:
        choice = Choice(signed.action)
        progress = Progress(self.answers, where, acked=True)
        task = self.adapter.spawn(self.bot.decide(inbound, signed.request_id, choice,
                                                  progress=progress), "mattermost:decide")
        clicked = self.answers.clicked
        if post_id:
            mark = clicked.begin(post_id)
            task.add_done_callback(functools.partial(_click_decided, clicked, post_id, mark))
        who = inbound.user_name or inbound.user_id
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task),
                                             self.adapter.config.ack_budget_seconds)
        except TimeoutError:
            self.adapter.spawn(self._finish_later(task, where, post_id, who),
                               "mattermost:decide-later")
            return web.json_response({"update": {
                "message": f"@{who} chose **{choice.value}** for request "
                           f"{signed.request_id}; working on it…", "props": {}}})
        return web.json_response(self._answer(outcome, where, who))

    async def _second_step(self, signed: SignedAction, body: dict[str, Any]) -> dict[str, Any]:
        # Who may go on to the second step is the gate's rule, as for the decision itself.
        decision = await self.bot.may_decide(self._clicker(body, signed)[0], signed.request_id,
                                             Choice.CONFIRM)
        if not decision.allowed:
            return {"ephemeral_text": decision.reason[0].upper() + decision.reason[1:] + "."}
        buttons = self.answers.composer.buttons()
        if buttons is None:
            return {"ephemeral_text": f"Type `confirm {signed.request_id}` to confirm."}
        return {"update": {
            "message": confirm_question(signed.request_id, signed.question),
            "props": {"attachments": [buttons.second_step(signed)]}}}

    def _answer(self, outcome: Outcome, where: Where, who: str) -> dict[str, Any]:
        """The answer to a decision click: update the post, show results."""
        text = self.answers.composer.text
        if outcome.update is not None:
            answer: dict[str, Any] = {"update": {"message": text(outcome.update), "props": {}}}
            reply = outcome.reply
            if reply is not outcome.update:
                if reply.visibility == Visibility.EPHEMERAL and not reply.actions:
                    answer["ephemeral_text"] = text(reply)
                else:
                    self.answers.deliver_soon(reply, where, where.user_id)
            return answer
        if outcome.status == OutcomeStatus.PENDING:  # confirmed; now an approval is needed
            self.answers.deliver_soon(outcome.reply, where, where.user_id)
            return {"update": {"message": f"Confirmed by @{who}; request {outcome.request_id} "
                                          "now waits for approval.", "props": {}}}
        return {"ephemeral_text": text(outcome.reply)}

    async def _finish_later(self, task: asyncio.Task[Outcome], where: Where, post_id: str,
                            who: str) -> None:
        """A decision that outran the ack budget: update the post and answer afterwards."""
        outcome = await task
        answer = self._answer(outcome, where, who)
        update = answer.get("update")
        if update is not None:
            try:
                await self.answers.outbox.send(Outgoing("patch", where, update["message"],
                                                        props=update["props"],
                                                        post_id=post_id))
            except Exception as exc:  # e.g. a slash command's post is not the bot's to edit
                log.info("could not update post %s (%s); answering in the thread", post_id,
                         describe(exc))
                await self.answers.send(Outgoing("post", where, update["message"]))
        text = answer.get("ephemeral_text")
        if text:
            await self.answers.send(Outgoing("ephemeral", where, text))


def _click_key(body: dict[str, Any], signed: SignedAction) -> str:
    """What identifies one click: Mattermost's trigger id (new per click, the same when the
    request is sent again), else the post, button and person."""
    trigger = str(body.get("trigger_id") or "")[:200]
    if trigger:
        return f"click:{trigger}"
    return f"click:{body.get('post_id')}:{signed.action}:{signed.request_id}:{body.get('user_id')}"


def _click_decided(clicked: Any, post_id: str, mark: asyncio.Future[bool],
                   task: asyncio.Task[Outcome]) -> None:
    """The click's own answer updates its post when the decision produced an update."""
    outcome = None if task.cancelled() or task.exception() else task.result()
    updated = outcome is not None and (outcome.update is not None
                                       or outcome.status == OutcomeStatus.PENDING)
    clicked.end(post_id, mark, updated)

