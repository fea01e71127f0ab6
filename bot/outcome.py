"""What the dispatcher hands back to an entry point: an :class:`Outcome` (the rendered reply
and how it ended) and, for adapters that show requests, :class:`DecisionNotice`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.commands import CommandSpec
from bot.messaging.port import MessageRef
from bot.reply import Level, Reply

Progress = Callable[[str], Awaitable[None]]


class OutcomeStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    DENIED = "denied"
    PENDING = "pending"  # waiting for confirmation or approval
    USAGE = "usage"  # the line could not be parsed


@dataclass(slots=True)
class Outcome:
    reply: Reply  # rendered: text filled from its template
    status: OutcomeStatus
    spec: CommandSpec | None = None
    request_id: str | None = None
    # For decisions: what the message that showed the request should now say.
    update: Reply | None = None

    def __post_init__(self) -> None:
        # Every command-path reply ends here, whichever branch built it (a CommandError's
        # text quoting a ${VAR} value never went through the renderer): mask once, here.
        self.reply = self.reply.masked()
        if self.update is not None:
            self.update = self.update.masked()


INTERNAL_ERROR = Reply.error("That could not be handled (internal error; it has been logged). "
                             "Try again; if it persists, tell the bot's operators.",
                             title="Internal error")


class PlanFailed(Exception):
    """A command's plan step refused (no such job, conflicting options): nothing is asked."""


@dataclass(frozen=True, slots=True)
class DecisionNotice:
    """A request was decided (or expired): its messages should now show ``update``."""

    request_id: str
    update: Reply  # no buttons: who decided, and the outcome
    messages: tuple[MessageRef, ...]


DecisionListener = Callable[[DecisionNotice], Awaitable[None]]


def status_of(reply: Reply) -> OutcomeStatus:
    if reply.level == Level.ERROR:
        return OutcomeStatus.ERROR
    if reply.level == Level.DENIED:
        return OutcomeStatus.DENIED
    if any(action.url is None for action in reply.actions):  # a link button waits for nothing
        return OutcomeStatus.PENDING
    return OutcomeStatus.OK
