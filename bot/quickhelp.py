"""``help`` answered before the database is opened: the console's one-shot ``help`` (#16).

``shiftbot console -c help`` used to start the whole bot (SQLAlchemy, the migrations check,
every feature's ``startup``) to print a table that depends only on the config, the loaded
handler modules and the gate. Here the same ``help`` handler runs against the same gate and
renderer with only those three, so the answer is printed at about Errbot's start-up time
(docs/performance.md); the console then starts the bot as usual and audits the invocation
(:meth:`bot.core.Bot.record_answered`) like every other.

The answer is given here only when it cannot differ from the full path's:

- the line parses as ``help [TOPIC]`` (no global flags) and the caller may run it;
- role providers (the rota's ``on-shift``) need the database and the handlers' ``startup``,
  so the answer must be the same for every combination of the roles they may grant
  (``PROVIDES_ROLES`` of the handler modules, collected by the registry).

Otherwise :func:`answer_help` returns None and the line runs the usual way.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.commands import Context
from bot.config import Config, ConfigError
from bot.configchecks import check_references
from bot.features import bind_sections
from bot.identity import Caller, Directory, Inbound
from bot.outcome import OutcomeStatus, status_of
from bot.parser import Parsed, ParseError, parse
from bot.permissions import Gate
from bot.registry import Registry, RegistryError
from bot.render import Renderer, render_text, template_dirs
from bot.reply import Reply
from bot.services import Services

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

QUICK_COMMAND = "help"
# More roles than this (2**n combinations to compare): answer the usual way.
MAX_PROVIDED_ROLES = 4


@dataclass(slots=True)
class QuickAnswer:
    reply: Reply  # rendered (tables truncated as the full path does)
    status: OutcomeStatus
    seconds: float = 0.0  # how long answering took (audited as the command's duration)


@dataclass(slots=True)
class _Offline:
    """The part of a Bot the ``help`` handler reads."""

    config: Config
    registry: Registry
    directory: Directory
    gate: Gate
    services: Services = field(default_factory=Services)


async def console_help(config: Config, inbound: Inbound) -> QuickAnswer | None:
    """The console's one-shot line answered with the handler modules loaded and the config
    validated, but nothing started; None when it is not such a ``help`` or anything is wrong
    with the config (the usual path then reports the problems as it always does)."""
    try:
        registry = Registry().load(config.bot.handlers)
    except (ConfigError, RegistryError):
        return None
    if bind_sections(config, registry.sections) or any(
            problem.severity == "error" for problem in check_references(config, registry)):
        return None
    started = time.perf_counter()
    answer = await answer_help(config, registry, inbound)
    if answer is not None:
        answer.seconds = time.perf_counter() - started
    return answer


async def answer_help(config: Config, registry: Registry, inbound: Inbound) -> QuickAnswer | None:
    """The reply to ``inbound`` when it is a ``help`` whose answer needs no database; the
    config and the registry must already be validated (``bind_sections``)."""
    try:
        parsed = parse(registry, inbound.text)
    except ParseError:
        return None  # usage errors are audited as invalid by the usual path
    if parsed.spec.key != QUICK_COMMAND or parsed.flags:
        return None
    provided = sorted(registry.provided_roles)
    if len(provided) > MAX_PROVIDED_ROLES:
        return None
    directory = Directory.from_config(config.people)
    caller = directory.caller(inbound)
    answers = set()
    reply = None
    for roles in _subsets(provided):
        reply = await _run(config, registry, directory, caller, parsed, roles)
        if reply is None:
            return None  # not allowed with some of the roles: the usual path decides
        answers.add(render_text(reply, "console"))
        if len(answers) > 1:
            return None  # the answer depends on a dynamic role
    assert reply is not None
    rendered = Renderer(template_dirs(config), config.bot.max_table_rows).render_sync(reply)
    return QuickAnswer(rendered, status_of(rendered))


async def check_answer(bot: Bot, inbound: Inbound, answered: QuickAnswer) -> bool:
    """Once the bot has started: does it answer as the printed answer said? A role provider
    whose handler module declares no ``PROVIDES_ROLES`` would make them differ; that is logged
    for the module's author (the answer was already given). False when they differ."""
    parsed = parse(bot.registry, inbound.text)
    context = Context(bot, bot.directory.caller(inbound), parsed.spec, parsed.args, "check")
    reply = bot.renderer.render_sync(await parsed.spec.handler(context))
    if render_text(reply, "console") == render_text(answered.reply, "console"):
        return True
    log.warning("'%s' was answered before start-up, and the started bot answers otherwise: a "
                "handler module adds a role provider (%s) without declaring the roles it may "
                "grant in PROVIDES_ROLES (bot/quickhelp.py)", inbound.text[:60],
                ", ".join(sorted(bot.gate.providers)) or "none")
    return False


def _subsets(roles: list[str]) -> Iterator[tuple[str, ...]]:
    for size in range(len(roles) + 1):
        yield from itertools.combinations(roles, size)


async def _run(config: Config, registry: Registry, directory: Directory, caller: Caller,
               parsed: Parsed, roles: tuple[str, ...]) -> Reply | None:
    """The handler's reply as a caller who also holds ``roles``; None when not allowed."""
    gate = Gate(config, directory)
    if roles:
        gate.add_role_provider("quickhelp", lambda who: list(roles) if who.person else [])
    spec = parsed.spec
    if not gate.check(caller, spec.permission_for(parsed.args)).allowed:
        return None
    offline = _Offline(config, registry, directory, gate)
    context = Context(offline, caller, spec, parsed.args, "quick")  # type: ignore[arg-type]
    return await spec.handler(context)
