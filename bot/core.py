"""The dispatcher: adapter -> parser -> gate -> (confirmation | approval | handler) -> renderer.

Every entry point (chat message, slash command, button, console, scheduler) calls
:meth:`Bot.handle` or :meth:`Bot.decide`; nothing else runs commands, so the permission gate
and the audit trail cannot be bypassed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from dataclasses import replace
from typing import Any

from bot import cards, threads
from bot.audit import AuditDecision, AuditLog, AuditOutcome, redact_arguments
from bot.commands import CommandError, CommandSpec, Context, Plan
from bot.config import Config, ConfigError
from bot.db import Database
from bot.features import bind_sections, migrate_features
from bot.health import Health
from bot.helptext import usage_reply
from bot.identity import Caller, Directory, Inbound
from bot.markup import plain, user_unless_marked
from bot.messaging.actions import ID_PATTERN, ActionStore
from bot.messaging.claims import Claims
from bot.messaging.inbound import TAKEOVER, UNDER_CLAIM, took_over_reply
from bot.messaging.notices import Notices
from bot.messaging.port import Platform
from bot.metrics import Metrics
from bot.outcome import (
    INTERNAL_ERROR,
    DecisionListener,
    DecisionNotice,
    Outcome,
    OutcomeStatus,
    PlanFailed,
    Progress,
    status_of,
)
from bot.parser import Parsed, ParseError, parse
from bot.pending import (
    Kind,
    RequestStore,
)
from bot.permissions import DECISION_PERMISSIONS, Decision, Gate
from bot.registry import Registry
from bot.render import Renderer, template_dirs
from bot.reply import Choice, Level, Reply, Visibility
from bot.requestflow import RequestFlow
from bot.services import Services
from bot.tasks import BackgroundTasks, with_deadline

log = logging.getLogger(__name__)

ACTION_ID = re.compile(ID_PATTERN)

__all__ = ["INTERNAL_ERROR", "Bot", "DecisionListener", "DecisionNotice", "Outcome",
           "OutcomeStatus", "PlanFailed", "status_of"]


class Bot(RequestFlow):
    def __init__(self, config: Config, database: Database, registry: Registry) -> None:
        self.config = config
        self.database = database
        self.registry = registry
        self.directory = Directory.from_config(config.people)
        self.gate = Gate(config, self.directory)
        self.audit = AuditLog(database)
        self.requests = RequestStore(database)
        self.actions = ActionStore(database)  # command buttons: id -> command line
        self.metrics = Metrics()
        # Replica-safe claims (inbound deliveries, job runs, sends); conflicts are counted.
        self.claims = Claims(database, observer=self.metrics)
        self.health = Health()
        self.renderer = Renderer(template_dirs(config), config.bot.max_table_rows)
        self.services = Services()  # handler modules keep their clients here, by type
        self.adapters: dict[str, Any] = {}
        # Adapters that can speak first (bot.messaging.port.Platform), by platform name; each
        # adapter adds itself when it starts. The notice deliverer sends through these only.
        self.platforms: dict[str, Platform] = {}
        self.http: Any = None  # bot.http.HttpServer, attached by the runtime when serving
        self.scheduler: Any = None  # bot.jobs.Scheduler, attached by the lifecycle
        # Durable notices (post/update/thread); its deliverer is started once platforms are up.
        self.notices = Notices(self, config.notices)
        self._started_modules: list[Any] = []
        self._decision_listeners: list[DecisionListener] = []
        self._background = BackgroundTasks("decision listeners")
        # Invocation references ("reference 3f2a-1c") join an error message to its log lines.
        self._invocation_prefix = secrets.token_hex(2)
        self._invocations = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def create(cls, config: Config, *, registry: Registry | None = None,
                     database: Database | None = None, start_handlers: bool = True) -> Bot:
        """The first steps of the lifecycle (bot/lifecycle.py): the handler modules are loaded
        and the feature sections of the config validated; the database migrated (the core's
        steps, then each feature's); the handlers' ``startup`` unless ``start_handlers`` is
        False (the lifecycle runs it once the HTTP server and the scheduler exist)."""
        registry = registry or Registry().load(config.bot.handlers)
        problems = bind_sections(config, registry.sections)
        if problems:
            raise ConfigError(problems)
        database = database or Database(config.bot.database, config.source_dir)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, database.migrate)
        await loop.run_in_executor(None, migrate_features, database, registry.migrations)
        bot = cls(config, database, registry)
        if start_handlers:
            await bot.start_handlers()
        return bot

    async def start_handlers(self) -> None:
        for module in self.registry.modules:
            startup = getattr(module, "startup", None)
            if startup is not None:
                await startup(self)
            self._started_modules.append(module)

    async def stop_handlers(self) -> None:
        """The handler modules' ``shutdown``, in reverse order (each at most once)."""
        for module in reversed(self._started_modules):
            shutdown = getattr(module, "shutdown", None)
            if shutdown is not None:
                try:
                    await shutdown(self)
                except Exception:
                    log.exception("shutdown of %s failed", module.__name__)
        self._started_modules.clear()

    async def close(self) -> None:
        await self.stop_handlers()  # a no-op when the lifecycle already ran them
        await self.notices.stop()  # no-op when the runtime already stopped it (flushed)
        await self.settle()
        await self.audit.flush()
        await asyncio.get_running_loop().run_in_executor(None, self.database.close)

    # ------------------------------------------------------------------ entry points

    def lookup(self, text: str) -> CommandSpec | None:
        """The command a line names, without running anything (adapters ask: is it slow?).

        Family and subcommand names are plain words, so the first two words decide; the full
        parse (quotes, arguments) happens once, in :meth:`handle`."""
        words = text.split(None, 2)
        if not words:
            return None
        family = self.registry.families.get(words[0].lower())
        if family is None:
            return None
        if "" in family.commands:
            return family.commands[""]
        return family.commands.get(words[1].lower()) if len(words) > 1 else None

    async def handle(self, inbound: Inbound, progress: Progress | None = None) -> Outcome:
        """Run one command line from any entry point. Never raises: bad input gets usage, a
        failure inside the bot (the database gone, a bug) a one-line error, and is logged."""
        try:
            return await self._handle(inbound, progress)
        except Exception:
            log.exception("command %r from %s:%s failed in the dispatcher", inbound.text[:100],
                          inbound.platform, inbound.user_id)
            return Outcome(INTERNAL_ERROR, OutcomeStatus.ERROR)

    async def click(self, who: Inbound, action_id: str,
                    progress: Progress | None = None) -> Outcome:
        """A click on a command button (``Action.run``): its stored command line runs as the
        clicker, through :meth:`handle` exactly as if typed. The button's own payload is only
        an id; an unknown or expired one runs nothing."""
        if not ACTION_ID.fullmatch(action_id or ""):
            return Outcome(Reply.error("That button is not one of this bot's; nothing was run.",
                                       title="Unknown button"), OutcomeStatus.ERROR)
        try:
            action = await self.actions.get(action_id)
        except Exception:
            log.exception("looking up button %s failed", action_id)
            return Outcome(INTERNAL_ERROR, OutcomeStatus.ERROR)
        if action is None or not action.command:
            return Outcome(Reply.error("That button has expired or is unknown; nothing was run. "
                                       "Type the command instead ('help' lists them).",
                                       title="Button expired"), OutcomeStatus.ERROR)
        return await self.handle(replace(who, text=action.command), progress)

    async def thread_reply(self, inbound: Inbound) -> bool:
        """A person's reply in a thread: to the ``@on_thread_reply`` hook of the feature that
        owns the thread (bot/threads.py). False when nobody owns it (ignored). Never raises."""
        try:
            return await threads.route(self, inbound)
        except Exception:
            log.exception("routing a thread reply in %s:%s failed", inbound.platform,
                          inbound.channel_id)
            return False

    def record_answered(self, inbound: Inbound, seconds: float, *, failed: bool = False) -> None:
        """Audit and count a command answered before this bot was created, in ``seconds``
        (the console's one-shot ``help``, bot/quickhelp.py), as :meth:`handle` would have."""
        parsed = parse(self.registry, inbound.text)
        arguments = redact_arguments(parsed.spec, parsed.args, parsed.text)
        self.audit.record_soon(self.directory.caller(inbound), parsed.spec.key, arguments,
                               AuditDecision.ALLOWED,
                               outcome=AuditOutcome.ERROR if failed else AuditOutcome.OK,
                               duration_ms=seconds * 1000)
        self.metrics.count_command(parsed.spec.family, AuditDecision.ALLOWED.value, seconds)

    async def decide(self, who: Inbound | Caller, request_id: str, choice: Choice,
                     reason: str | None = None, progress: Progress | None = None) -> Outcome:
        """A button click or a typed ``confirm/cancel/approve/deny ID``: the decision gate.
        Never raises (see :meth:`handle`)."""
        try:
            return await self._decide(who, request_id, choice, reason, progress)
        except Exception:
            log.exception("deciding request %r (%s) failed", request_id[:20], choice)
            return Outcome(INTERNAL_ERROR, OutcomeStatus.ERROR)

    async def _handle(self, inbound: Inbound, progress: Progress | None) -> Outcome:
        started = time.perf_counter()
        caller = self.directory.caller(inbound)
        try:
            parsed = parse(self.registry, inbound.text)
        except ParseError as exc:
            if exc.message == "help" and exc.spec is None and exc.family:
                # "condor --help": the family's help, filtered for this caller like "help condor"
                return await self.handle(replace(inbound, text=f"help {exc.family}"), progress)
            return await self._bad_input(caller, inbound.text, exc, started)
        spec = parsed.spec
        decision = self.gate.check(caller, spec.permission_for(parsed.args))
        arguments = redact_arguments(spec, parsed.args, parsed.text)
        if not decision.allowed:
            self.audit.record_soon(caller, spec.key, arguments, AuditDecision.DENIED,
                                   detail=decision.reason)
            self._count(spec, AuditDecision.DENIED, started)
            return Outcome(self._denial(spec, caller, decision.reason), OutcomeStatus.DENIED, spec)
        if TAKEOVER.get() is not None:  # a delivery taken over from a replica that stopped
            ran = await took_over_reply(self.database, caller.platform, caller.user_id,
                                        spec.key, arguments)
            if ran is not None:
                return Outcome(ran, OutcomeStatus.OK, spec)
        if "dry-run" in parsed.flags:
            return await self._dry_run(caller, parsed, arguments, decision, started)
        if spec.destructive or decision.approval_role:
            if caller.person is None:
                reason = "confirmation and approval need a configured person"
                await self.audit.record(caller, spec.key, arguments, AuditDecision.DENIED,
                                        detail=reason)
                self._count(spec, AuditDecision.DENIED, started)
                return Outcome(self._denial(spec, caller, reason), OutcomeStatus.DENIED, spec)
            try:
                plan = await self._plan(caller, parsed)
            except PlanFailed as exc:
                return self._plan_failed(caller, parsed, arguments, exc, started)
            kind = Kind.CONFIRM if spec.destructive else Kind.APPROVAL
            return await self._ask(kind, caller, parsed, inbound.thread_id, arguments, started,
                                   plan=plan, role=decision.approval_role)
        return await self._execute(caller, parsed, AuditDecision.ALLOWED, started,
                                   progress=progress, arguments=arguments)

    async def _execute(self, caller: Caller, parsed: Parsed, label: AuditDecision,
                       started: float, *, arguments: str, progress: Progress | None = None,
                       approver: str | None = None, request_id: str | None = None,
                       plan: Plan | None = None) -> Outcome:
        spec = parsed.spec
        entry_id = None
        if spec.slow or spec.destructive or request_id or self._replicas_may_take_over():
            # Long or consequential runs are on record before they start.
            entry_id = await self.audit.record(caller, spec.key, arguments, label,
                                               outcome=AuditOutcome.RUNNING, approver=approver,
                                               request_id=request_id)
        ctx = Context(self, caller, spec, parsed.args, self._invocation_id(), progress, plan)
        outcome = AuditOutcome.OK
        detail = None
        try:
            # In this task, not a new one: Sentry's asyncio integration would report a handled
            # CommandError raised in a child task as an unhandled crash.
            reply = await with_deadline(spec.handler(ctx), spec.timeout)
            if not isinstance(reply, Reply):
                raise TypeError(f"handler returned {type(reply).__name__}, not Reply")
            reply = await self.actions.store(await self.renderer.render(reply))
        except CommandError as exc:
            # The message may quote what was typed: user text unless its author marked it.
            outcome, detail = AuditOutcome.ERROR, plain(str(exc))
            reply = Reply.error(user_unless_marked(str(exc)), title=f"{spec.words} failed")
        except TimeoutError:
            outcome, detail = AuditOutcome.TIMEOUT, f"no answer within {spec.timeout:g} s"
            reply = Reply.error(f"'{spec.words}' did not finish within {spec.timeout:g} s; "
                                "'audit' shows whether it ran. Try again later.",
                                title=f"{spec.words} timed out")
        except Exception as exc:
            log.exception("command %s failed (invocation %s)", spec.key, ctx.invocation_id)
            outcome, detail = AuditOutcome.ERROR, plain(f"{type(exc).__name__}: {exc}")
            reply = Reply.error(f"'{spec.words}' failed with an internal error "
                                f"(reference {ctx.invocation_id}); it has been logged. Tell "
                                "the bot's operators the reference.",
                                title=f"{spec.words} failed")
        if reply.level == Level.ERROR and outcome == AuditOutcome.OK:
            outcome = AuditOutcome.ERROR
        elif reply.level == Level.DENIED and outcome == AuditOutcome.OK and \
                spec.permission in DECISION_PERMISSIONS:
            outcome = AuditOutcome.REFUSED  # a typed 'approve ID' refused: "ok" would mislead
        reply = self._place(reply, parsed)
        duration_ms = (time.perf_counter() - started) * 1000
        if entry_id is not None:
            await self.audit.finish(entry_id, outcome, duration_ms, detail)
        else:
            self.audit.record_soon(caller, spec.key, arguments, label, outcome=outcome,
                                   duration_ms=duration_ms, approver=approver, detail=detail)
        self._count(spec, label, started)
        return Outcome(reply, status_of(reply), spec, request_id)

    async def _dry_run(self, caller: Caller, parsed: Parsed, arguments: str,
                       decision: Decision, started: float) -> Outcome:
        """``--dry-run``: the plan step's preview, audited; the handler never runs."""
        spec = parsed.spec
        try:
            plan = await self._plan(caller, parsed)
        except PlanFailed as exc:
            return self._plan_failed(caller, parsed, arguments, exc, started)
        assert plan is not None  # the parser refuses --dry-run without a plan step
        self.audit.record_soon(caller, spec.key, arguments, AuditDecision.ALLOWED,
                               outcome=AuditOutcome.OK, detail=plain(f"dry run: {plan.summary}"))
        self._count(spec, AuditDecision.ALLOWED, started)
        reply = cards.dry_run(plan, destructive=spec.destructive,
                              approval_role=decision.approval_role)
        return Outcome(self._place(await self.renderer.render(reply), parsed),
                       OutcomeStatus.OK, spec)

    def _place(self, reply: Reply, parsed: Parsed) -> Reply:
        """Errors and denials stay private; results go where the command or caller asks."""
        if reply.level in (Level.ERROR, Level.DENIED):
            return reply.with_visibility(Visibility.EPHEMERAL)
        if "private" in parsed.flags:
            return reply.with_visibility(Visibility.EPHEMERAL)
        wants_public = "public" in parsed.flags or parsed.spec.public
        if wants_public and reply.visibility == Visibility.EPHEMERAL:
            return reply.with_visibility(Visibility.CHANNEL)
        return reply

    async def _bad_input(self, caller: Caller, text: str, exc: ParseError,
                         started: float) -> Outcome:
        if exc.message == "help":  # --help on a command: its help, not an error
            reply = usage_reply(self.registry, exc, help_only=True)
            return Outcome(await self.renderer.render(reply), OutcomeStatus.OK, exc.spec)
        self.audit.record_soon(caller, exc.spec.key if exc.spec else None, text[:500],
                               AuditDecision.INVALID, detail=exc.message)
        family = exc.spec.family if exc.spec else "invalid"
        if exc.spec is not None:
            self._count(exc.spec, AuditDecision.INVALID, started)
        else:
            self.metrics.count_command(family, "invalid")
        return Outcome(usage_reply(self.registry, exc), OutcomeStatus.USAGE, exc.spec)

    def _denial(self, spec: CommandSpec, caller: Caller, reason: str) -> Reply:
        return self.renderer.render_sync(Reply(
            title="Not allowed", level=Level.DENIED, template="core_denied.j2",
            data={"command": spec.words, "reason": reason, "caller": caller.label}))

    def _replicas_may_take_over(self) -> bool:
        """A delivery claimed on a database replicas share: audited before it runs, so a
        replica taking it over (this one stopped) finds it and never runs it again. SQLite
        has one ``shiftbot run`` per file: nobody takes over, no round trip is added."""
        return UNDER_CLAIM.get() and self.database.dialect == "postgresql"

    def _invocation_id(self) -> str:
        return f"{self._invocation_prefix}-{next(self._invocations):x}"

    def _count(self, spec: CommandSpec, decision: AuditDecision, started: float) -> None:
        self.metrics.count_command(spec.family, decision.value, time.perf_counter() - started)

