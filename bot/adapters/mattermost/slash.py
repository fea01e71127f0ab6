"""Custom slash commands (``POST``/``GET /mattermost/command``, token checked in routes.py).

A command answered within ``ack_budget_seconds`` is answered inline (the HTTP response); a slower
one gets "working on it" now and its answer later, through the ``response_url`` while it lasts,
then the posts API. Mattermost does not resend a slash command, and it reaches one replica only,
so nothing is claimed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.adapters.mattermost.answers import Answers, Progress
from bot.adapters.mattermost.inbound import is_direct_channel, slash_text
from bot.adapters.mattermost.outbound import Responder, Where
from bot.adapters.mattermost.routes import command_form
from bot.identity import Inbound
from bot.messaging.replies import done_or_timeout, working_reply
from bot.reply import Reply, Visibility

if TYPE_CHECKING:
    from bot.adapters.mattermost.adapter import MattermostAdapter


class SlashCommands:
    def __init__(self, adapter: MattermostAdapter, answers: Answers,
                 tokens: list[bytes]) -> None:
        self.adapter = adapter
        self.bot = adapter.bot
        self.answers = answers
        self.tokens = tokens

    async def on_command(self, request: web.Request) -> web.StreamResponse:
        # Verified, then parsed (routes.py); refusals are answered by bot.http's guard.
        form = await command_form(request, self.tokens)
        user_id = str(form.get("user_id") or "")
        channel_id = str(form.get("channel_id") or "")
        if not user_id or not channel_id:
            return web.json_response({"response_type": "ephemeral",
                                      "text": "This request has no user or channel."},
                                     status=400)
        direct = is_direct_channel(None, str(form.get("channel_name") or ""))
        text = slash_text(str(form.get("command") or ""), str(form.get("text") or ""),
                          self.adapter.config.commands)
        root = str(form.get("root_id") or "")
        url = str(form.get("response_url") or "")
        where = Where(channel_id, user_id, root_id=root, is_direct=direct,
                      responder=Responder(url) if url else None)
        inbound = Inbound(
            platform="mattermost", user_id=user_id, text=text, channel_id=channel_id,
            channel_alias=None if direct else self.adapter.alias_for(channel_id),
            user_name=str(form.get("user_name") or "") or None, thread_id=root or None,
            is_direct=direct)
        spec = self.bot.lookup(text)
        progress = Progress(self.answers, where, acked=False)
        task = self.adapter.spawn(self.bot.handle(inbound, progress=progress),
                                  "mattermost:command")
        if spec is None or not spec.slow:
            await done_or_timeout(task, self.adapter.config.ack_budget_seconds)
            if task.done() and not task.cancelled() and task.exception() is None:
                return web.json_response(self._body(task.result().reply, where, user_id))
        progress.acked = True
        progress.sent_now()
        self.adapter.spawn(self.answers.answer_later(task, where, user_id), "mattermost:later")
        return web.json_response({"response_type": "ephemeral",
                                  "text": working_reply(spec).text})

    def _body(self, reply: Reply, where: Where, requester: str) -> dict[str, Any]:
        message, props = self.answers.composer.compose(reply, root_id=where.root_id,
                                                       requester=requester)
        visible = props is not None or reply.visibility != Visibility.EPHEMERAL
        body: dict[str, Any] = {"response_type": "in_channel" if visible else "ephemeral",
                                "text": message}
        if props is not None:
            body["attachments"] = props["attachments"]
        return body
