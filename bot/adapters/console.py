"""The console adapter: a local REPL (demos, tests, operators on the bot's host).

Lines are commands (``condor q``); lines starting with ``/`` steer the console itself:
``/as PERSON``, ``/anonymous``, ``/channel NAME``, ``/quit``. A confirmation is asked at a
prompt; an approval request prints its id for another person (``/as carol``, ``approve ID``).
"""

from __future__ import annotations

import asyncio
import sys
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
        try:
            return await asyncio.to_thread(self.read_line, prompt)  # input() would block the loop
        except EOFError:
            return None

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
            outcome = await self.bot.handle(self.inbound(line), progress=self.progress)
            self.print(format_reply(outcome.reply))
            await self._maybe_confirm(outcome)

    async def _maybe_confirm(self, outcome: Outcome) -> None:
        actions = outcome.reply.actions
        if not actions or actions[0].choice != Choice.CONFIRM or not outcome.request_id:
            return
        answer = await self._ask("Type 'yes' to confirm, anything else cancels: ")
        choice = Choice.CONFIRM if (answer or "").strip().lower() in ("y", "yes") else Choice.CANCEL
        decided = await self.bot.decide(self.inbound(""), outcome.request_id, choice,
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
