"""The console adapter: a local REPL (demos, tests, operators on the bot's host).

Lines are commands (``condor q``); lines starting with ``/`` steer the console itself:
``/as PERSON``, ``/anonymous``, ``/channel NAME``, ``/quit``. A confirmation is asked at a
prompt; an approval request prints its id for another person (``/as carol``, ``approve ID``).

The console is also a platform (:class:`ConsolePlatform`): notices to a configured channel
print as they are delivered (``[#ops 1] hello``). A button that runs a command shows as
``[Label: click a1b2...]``; typing ``click a1b2...`` (or ``/click ...``) presses it, as the
console's current person, exactly as a click in Slack or Mattermost would. A link button shows
as ``[Runbook: https://...]``. ``/reply 12 text``
answers in the thread of message 12 (a simulated thread: ``Bot.thread_reply``).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TextIO

from bot.identity import Inbound
from bot.markup import plain, resolve, visible
from bot.messaging.port import MessageRef
from bot.outcome import Outcome, OutcomeStatus
from bot.render import render_text
from bot.reply import Choice, Reply

if TYPE_CHECKING:
    from bot.core import Bot
    from bot.quickhelp import QuickAnswer

PROMPT_HELP = ("Console commands: /as PERSON, /anonymous, /channel NAME, /whoami, /quit; "
               "click ID presses a button; /reply N TEXT answers in message N's thread")
ANONYMOUS_ID = "anonymous"

EXIT_CODES = {
    OutcomeStatus.OK: 0,
    OutcomeStatus.ERROR: 1,
    OutcomeStatus.USAGE: 1,
    OutcomeStatus.DENIED: 2,
    OutcomeStatus.PENDING: 3,
}


@dataclass
class ConsoleSession:
    person: str | None  # None: an unidentified platform user
    channel: str | None = None

    @property
    def user_id(self) -> str:
        return self.person or ANONYMOUS_ID

    def inbound(self, text: str) -> Inbound:
        """A line typed in this session, as the dispatcher receives it."""
        return Inbound(platform="console", user_id=self.user_id, text=text,
                       channel_id=self.channel, channel_alias=self.channel,
                       user_name=self.person)


def format_reply(reply: Reply) -> str:
    text = render_text(reply, "console")
    deciding = [a for a in reply.actions if a.choice is not None]
    if deciding:
        request = deciding[0].request_id
        choices = " / ".join(f"{a.choice.value} {request}" for a in deciding if a.choice)
        text += f"\n-> {choices}"
    # Buttons that run a command (typed as `click ID`), then links (opened by hand).
    shown = [f"[{a.label}: click {a.action_id}]" for a in reply.actions
             if a.command and a.action_id]
    shown += [f"[{visible(plain(a.label))}: {a.url}]" for a in reply.actions if a.url]
    if shown:
        text += "\n-> " + "  ".join(shown)
    # Attachments stay on disk: the console says where (open the PNG from there).
    for attached in reply.files:
        text += f"\n-> {attached.name}: {attached.path}"
    return text


def click_id(line: str) -> str | None:
    """The button id in ``click ID`` / ``/click ID`` (the console's way to press a button)."""
    words = line.split()
    if len(words) == 2 and words[0].lower() in ("click", "/click"):
        return words[1]
    return None


class ConsolePlatform:
    """The console as a platform (``bot.messaging.port.Platform``): notices are printed as
    they are delivered, ``[#ops 12] text``; thread replies ``[#ops > 12] text`` (12: the
    message they answer), updates ``[#ops 12 updated] text``. Channels are the aliases of
    ``channels:``; people are named ``@key``."""

    name = "console"

    def __init__(self, channels: Iterable[str], write: Callable[[str], None]) -> None:
        self.channels = frozenset(channels)
        self.write = write
        self._numbers = itertools.count(1)
        # Only this process's messages: after a restart nothing is found (a console is local).
        self._tagged: dict[tuple[str, str | None, str], MessageRef] = {}
        self.channel_of: dict[str, str] = {}  # message number -> channel (for /reply N)

    async def channel_for(self, alias: str) -> str | None:
        return alias if alias in self.channels else None

    async def post(self, channel_id: str, reply: Reply, *, thread_id: str | None = None,
                   tag: str | None = None) -> MessageRef:
        ref = MessageRef(self.name, channel_id, str(next(self._numbers)), thread_id)
        if thread_id is None:
            self.channel_of[ref.message_id] = channel_id
        # The number is what `/reply N` and the `[#ops N updated]` lines refer to.
        where = (f"#{channel_id} > {thread_id}" if thread_id
                 else f"#{channel_id} {ref.message_id}")
        self.write(f"[{where}] {format_reply(reply)}")
        if tag:
            self._tagged[(channel_id, thread_id, tag)] = ref
        return ref

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        self.write(f"[#{ref.channel_id} {ref.message_id} updated] {format_reply(reply)}")

    async def ephemeral(self, channel_id: str, user_id: str, reply: Reply) -> None:
        self.write(f"[#{channel_id}, only to {user_id}] {format_reply(reply)}")

    async def find_tagged(self, channel_id: str, tag: str, *,
                          thread_id: str | None = None) -> MessageRef | None:
        return self._tagged.get((channel_id, thread_id, tag))

    def mention(self, user_id: str) -> str:
        return f"@{user_id}"


def reply_target(line: str) -> tuple[str, str] | None:
    """(message number, text) of ``/reply N text``, else None."""
    words = line.split(None, 2)
    # isascii(): str.isdigit() is true of "١٢" and "²" too.
    if len(words) == 3 and words[0].lower() == "/reply" and words[1].isascii() \
            and words[1].isdigit():
        return words[1], words[2]
    return None


_YES = frozenset({"y", "yes", "confirm"})
_NO = frozenset({"", "n", "no", "cancel"})


def confirm_choice(answer: str | None, request_id: str) -> Choice | None:
    """The operator's answer at the confirmation prompt: yes/no, ``confirm ID``/``cancel ID``
    for this request, or None for anything else (another command, run as typed). End of
    input cancels."""
    if answer is None:
        return Choice.CANCEL
    words = answer.strip().lower().split()
    if len(words) == 2 and words[1] == request_id.lower():
        words = words[:1]
    if len(words) <= 1:
        word = words[0] if words else ""
        if word in _YES:
            return Choice.CONFIRM
        if word in _NO:
            return Choice.CANCEL
    return None


def _settle(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)


class ConsoleAdapter:
    name = "console"

    def __init__(self, bot: Bot, session: ConsoleSession, out: TextIO | None = None,
                 read_line: Callable[[str], str] | None = None) -> None:
        self.bot = bot
        self.session = session
        self.out = out or sys.stdout
        self.read_line = read_line or input
        self.platform = ConsolePlatform(bot.config.channels, self.print)

    async def start(self) -> None:
        """Be a platform (notices to configured channels print here) and deliver notices."""
        self.bot.platforms[self.platform.name] = self.platform
        await self.bot.notices.start()

    async def dispatch(self, line: str) -> Outcome:
        """A typed line: ``click ID`` presses a notice's button, anything else is a command."""
        action_id = click_id(line)
        if action_id is not None:
            return await self.bot.click(self.inbound(line), action_id, progress=self.progress)
        return await self.bot.handle(self.inbound(line), progress=self.progress)

    def inbound(self, text: str) -> Inbound:
        return self.session.inbound(text)

    def print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def progress(self, text: str) -> None:
        # A note is written like a reply's text (the bot's words, user text marked): resolved
        # for the terminal, so no sentinel reaches it and marked spans show what they hide.
        self.print("... " + resolve(text, "console"))

    async def run_once(self, text: str, answered: QuickAnswer | None = None) -> int:
        """One-shot mode: run a line, print the reply, return the exit code. ``answered``: the
        line was answered before the bot started (bot/quickhelp.py): only audit it."""
        await self.start()
        if answered is not None:
            self.bot.record_answered(self.inbound(text), answered.seconds,
                                     failed=answered.status == OutcomeStatus.ERROR)
            from bot.quickhelp import check_answer

            await check_answer(self.bot, self.inbound(text), answered)
            return EXIT_CODES[answered.status]
        outcome = await self.dispatch(text)
        self.print(format_reply(outcome.reply))
        if outcome.status == OutcomeStatus.PENDING and outcome.request_id:
            self.print(f"request id: {outcome.request_id}")
        return EXIT_CODES[outcome.status]

    async def _ask(self, prompt: str) -> str | None:
        """One line from the operator, read off the loop (input() blocks). The reader is a
        daemon thread, not the loop's executor: on Ctrl-C the process exits at once instead of
        waiting at shutdown for a thread stuck in input()."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str | None] = loop.create_future()

        def read() -> None:
            try:
                line: str | None = self.read_line(prompt)
            except (EOFError, KeyboardInterrupt, OSError):
                line = None
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, answer, line)

        threading.Thread(target=read, name="console-input", daemon=True).start()
        return await answer

    async def repl(self) -> int:
        await self.start()
        self.print(f"{self.bot.config.bot.name} console. {PROMPT_HELP}. 'help' lists commands.")
        while True:
            line = await self._ask(f"{self.session.person or 'anonymous'}"
                                   f"{'@' + self.session.channel if self.session.channel else ''}"
                                   "> ")
            if line is None:
                self.print("")
                return 0
            line = line.strip()
            if line and not await self._handle_line(line):
                return 0

    async def _handle_line(self, line: str) -> bool:
        """One typed line, at the prompt or at a confirmation prompt (the same handling, so no
        console command is lost there); False when it asks to quit."""
        if reply_target(line) is not None:
            await self.thread_line(line)
            return True
        if line.startswith("/") and click_id(line) is None:
            return self._console_command(line) is not False
        outcome = await self.dispatch(line)
        self.print(format_reply(outcome.reply))
        return await self._maybe_confirm(outcome)

    async def _maybe_confirm(self, outcome: Outcome) -> bool:
        """Ask about a request that needs confirming; False when the answer was ``/quit``."""
        actions = outcome.reply.actions
        if not actions or actions[0].choice != Choice.CONFIRM or not outcome.request_id:
            return True
        request = outcome.request_id
        answer = await self._ask(f"Confirm request {request}? [yes/no, or another command]: ")
        choice = confirm_choice(answer, request)
        if choice is None:
            # Another command: run it, and leave the request waiting (it expires by itself).
            self.print(f"Request {request} is still waiting: 'confirm {request}' runs it, "
                       f"'cancel {request}' withdraws it.")
            assert answer is not None
            return await self._handle_line(answer.strip())
        decided = await self.bot.decide(self.inbound(""), request, choice,
                                        progress=self.progress)
        self.print(format_reply(decided.reply))
        return True

    async def thread_line(self, line: str) -> bool:
        """``/reply N text``: a reply in the thread of message N (a simulated thread), routed
        like a Slack or Mattermost thread reply to the feature owning it, if any."""
        target = reply_target(line)
        assert target is not None
        number, text = target
        channel = self.platform.channel_of.get(number)
        if channel is None:
            self.print(f"No message {visible(number)} in this console session.")
            return False
        inbound = replace(self.inbound(text), channel_id=channel, channel_alias=channel,
                          thread_id=number)
        routed = await self.bot.thread_reply(inbound)
        if not routed:
            self.print(f"Nobody listens in the thread of message {number}; not sent.")
        return routed

    def _console_command(self, line: str) -> bool | None:
        word, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if word in ("quit", "exit", "q"):
            return False
        if word == "as":
            if rest not in self.bot.directory.people:
                known = ", ".join(sorted(self.bot.directory.people)) or "nobody"
                self.print(f"No person '{visible(rest)}' in the config (known: {known}).")
            else:
                self.session.person = rest
                self.print(f"Now acting as {rest}.")
        elif word == "anonymous":
            self.session.person = None
            self.print("Now acting as an unidentified user.")
        elif word == "channel":
            self.session.channel = rest or None
            self.print(f"Now in channel {visible(rest) if rest else '(none)'}.")
        elif word == "whoami":
            channel = visible(self.session.channel) if self.session.channel else "-"
            self.print(f"person={self.session.person or '-'} channel={channel}")
        else:
            self.print(PROMPT_HELP)
        return None
