"""The console adapter: a local REPL (demos, tests, operators on the bot's host).

Lines are commands (``condor q``); lines starting with ``/`` steer the console itself:
``/as PERSON``, ``/anonymous``, ``/channel NAME``, ``/quit``. A confirmation is asked at a
prompt; an approval request prints its id for another person (``/as carol``, ``approve ID``).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from bot.core import Bot, Outcome, OutcomeStatus
from bot.identity import Inbound
from bot.render import render_text
from bot.reply import Choice, Reply

PROMPT_HELP = "Console commands: /as PERSON, /anonymous, /channel NAME, /whoami, /quit"
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


def format_reply(reply: Reply) -> str:
    text = render_text(reply, "console")
    if reply.actions:
        request = reply.actions[0].request_id
        choices = " / ".join(f"{a.choice.value} {request}" for a in reply.actions)
        text += f"\n-> {choices}"
    return text


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

    def inbound(self, text: str) -> Inbound:
        return Inbound(platform="console", user_id=self.session.user_id, text=text,
                       channel_id=self.session.channel, channel_alias=self.session.channel,
                       user_name=self.session.person)

    def print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def progress(self, text: str) -> None:
        self.print(f"... {text}")

    async def run_once(self, text: str) -> int:
        """One-shot mode: run a line, print the reply, return the exit code."""
        outcome = await self.bot.handle(self.inbound(text), progress=self.progress)
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
        self.print(f"{self.bot.config.bot.name} console. {PROMPT_HELP}. 'help' lists commands.")
        while True:
            line = await self._ask(f"{self.session.person or 'anonymous'}"
                                   f"{'@' + self.session.channel if self.session.channel else ''}"
                                   "> ")
            if line is None:
                self.print("")
                return 0
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if self._console_command(line) is False:
                    return 0
                continue
            await self._run_line(line)

    async def _run_line(self, line: str) -> None:
        outcome = await self.bot.handle(self.inbound(line), progress=self.progress)
        self.print(format_reply(outcome.reply))
        await self._maybe_confirm(outcome)

    async def _maybe_confirm(self, outcome: Outcome) -> None:
        actions = outcome.reply.actions
        if not actions or actions[0].choice != Choice.CONFIRM or not outcome.request_id:
            return
        request = outcome.request_id
        answer = await self._ask(f"Confirm request {request}? [yes/no, or another command]: ")
        choice = confirm_choice(answer, request)
        if choice is None:
            # Another command: run it, and leave the request waiting (it expires by itself).
            self.print(f"Request {request} is still waiting: 'confirm {request}' runs it, "
                       f"'cancel {request}' withdraws it.")
            assert answer is not None
            if answer.strip().startswith("/"):
                self._console_command(answer.strip())
            else:
                await self._run_line(answer.strip())
            return
        decided = await self.bot.decide(self.inbound(""), request, choice,
                                        progress=self.progress)
        self.print(format_reply(decided.reply))

    def _console_command(self, line: str) -> bool | None:
        word, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if word in ("quit", "exit", "q"):
            return False
        if word == "as":
            if rest not in self.bot.directory.people:
                known = ", ".join(sorted(self.bot.directory.people)) or "nobody"
                self.print(f"No person '{rest}' in the config (known: {known}).")
            else:
                self.session.person = rest
                self.print(f"Now acting as {rest}.")
        elif word == "anonymous":
            self.session.person = None
            self.print("Now acting as an unidentified user.")
        elif word == "channel":
            self.session.channel = rest or None
            self.print(f"Now in channel {rest or '(none)'}.")
        elif word == "whoami":
            self.print(f"person={self.session.person or '-'} channel={self.session.channel or '-'}")
        else:
            self.print(PROMPT_HELP)
        return None
