"""A platform-neutral :class:`~bot.reply.Reply` as a Mattermost message: text and attachments.

Buttons are attachments whose ``integration.context`` is signed (:mod:`.actions`): decision
buttons carry the request id, command buttons only their stored action id. Without a public URL
(``bot.http.public_url``) Mattermost cannot reach the bot when someone clicks, so the message
says what to type instead. Link buttons (``Action.link``) are Markdown links: Mattermost's
message buttons only POST to an integration, they cannot open a page. They go in the text of the
buttons' attachment, or at the end of the message when there is no attachment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.adapters.mattermost.actions import ActionSigner, ButtonFactory
from bot.adapters.mattermost.outbound import Outgoing, Where, fit
from bot.markup import plain, resolve, user
from bot.render import render_text
from bot.reply import Action, Reply, Visibility

if TYPE_CHECKING:
    from bot.config import Config, MattermostConfig

ACTION_PATH = "/mattermost/action"


class Composer:
    def __init__(self, config: Config, section: MattermostConfig, signer: ActionSigner,
                 run_ttl_seconds: float) -> None:
        self.config = config
        self.section = section
        self.signer = signer
        self.run_ttl_seconds = run_ttl_seconds

    def buttons(self) -> ButtonFactory | None:
        """The button factory, or None while Mattermost cannot reach the bot."""
        public = self.config.bot.http.public_url
        if not public:
            return None
        ttl = self.section.action_ttl_minutes
        if ttl is None:
            bot = self.config.bot
            ttl = max(bot.approval_timeout_minutes, bot.confirmation_timeout_minutes) + 5
        return ButtonFactory(self.signer, public.rstrip("/") + ACTION_PATH, ttl * 60,
                             self.run_ttl_seconds)

    @staticmethod
    def text(reply: Reply) -> str:
        return fit(render_text(reply, "mattermost"))

    def compose(self, reply: Reply, *, root_id: str,
                requester: str) -> tuple[str, dict[str, Any] | None]:
        """Message text and, when the reply has buttons, the props carrying them."""
        message = self.text(reply)
        links = link_line(reply.actions)
        clickable = [a for a in reply.actions if a.url is None]
        if not clickable:
            return (fit(f"{message}\n{links}") if links else message), None
        buttons = self.buttons()
        if buttons is None:
            typed = " or ".join(self._typed(a) for a in clickable)
            return fit("\n".join(filter(None, [message, links, f"Reply {typed}."]))), None
        attachment = buttons.attachment(clickable, reply.level, root_id=root_id,
                                        requester=requester)
        if links:
            attachment["text"] = links
        return message, {"attachments": [attachment]}

    def outgoing(self, reply: Reply, where: Where, requester: str) -> Outgoing:
        """A command's answer where it came from: ephemeral unless visible or with buttons."""
        message, props = self.compose(reply, root_id=where.root_id, requester=requester)
        # Buttons need a stored post (an ephemeral one cannot be updated by the answer).
        kind = "ephemeral" if reply.visibility == Visibility.EPHEMERAL and props is None \
            else "post"
        return Outgoing(kind, where, message, props=props)

    def _typed(self, action: Action) -> str:
        if action.command is not None:
            return f"`{self.section.command_prefix}{action.command}`"
        return f"`{action.choice.value if action.choice else ''} {action.request_id}`"


def link_line(actions: list[Action]) -> str:
    """The link buttons of ``actions`` as Markdown links on one line ("" when none): the label
    escaped as user text, parentheses in the URL percent-encoded so none ends the link early
    (``Action.link`` already refused spaces, quotes and angle brackets)."""
    return "  ".join(
        f"[{resolve(user(plain(a.label)), 'mattermost')}]"
        f"({a.url.replace('(', '%28').replace(')', '%29')})"
        for a in actions if a.url is not None)
