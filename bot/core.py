"""The dispatcher: adapter -> parser -> gate -> (confirmation | approval | handler) -> renderer.

Every entry point (chat message, slash command, button, console, scheduler) calls
:meth:`Bot.handle` or :meth:`Bot.decide`; nothing else runs commands, so the permission gate
and the audit trail cannot be bypassed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from bot.audit import AuditDecision, AuditLog, AuditOutcome, redact_arguments
from bot.commands import CommandError, CommandSpec, Context
from bot.config import Config
from bot.db import Database
from bot.health import Health
from bot.helptext import usage_reply
from bot.identity import Caller, Directory, Inbound
from bot.metrics import Metrics
from bot.parser import Parsed, ParseError, parse
from bot.pending import Kind, MessageRef, PendingRequest, RequestStore, Status
from bot.permissions import Gate
from bot.registry import Registry
from bot.render import SHIPPED_TEMPLATES, Renderer
from bot.reply import Action, Choice, Level, Reply, Visibility
from bot.tasks import BackgroundTasks, with_deadline

log = logging.getLogger(__name__)

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


INTERNAL_ERROR = Reply.error("That could not be handled (internal error; it has been logged).")


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
    if reply.actions:
        return OutcomeStatus.PENDING
    return OutcomeStatus.OK


class Bot:
    def __init__(self, config: Config, database: Database, registry: Registry) -> None:
        self.config = config
        self.database = database
        self.registry = registry
        self.directory = Directory.from_config(config.people)
        self.gate = Gate(config, self.directory)
        self.audit = AuditLog(database)
        self.requests = RequestStore(database)
        self.metrics = Metrics()
        self.health = Health()
        self.renderer = Renderer(self._template_dirs(), config.bot.max_table_rows)
        self.services: dict[str, Any] = {}  # handler modules keep their clients here
        self.adapters: dict[str, Any] = {}
        self.http: Any = None  # bot.http.HttpServer, attached by the runtime when serving
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
        database = database or Database(config.bot.database, config.source_dir)
        await asyncio.get_running_loop().run_in_executor(None, database.migrate)
        bot = cls(config, database, registry or Registry().load(config.bot.handlers))
        if start_handlers:
            await bot.start_handlers()
        return bot

    async def start_handlers(self) -> None:
        for module in self.registry.modules:
            startup = getattr(module, "startup", None)
            if startup is not None:
                await startup(self)
            self._started_modules.append(module)

    async def close(self) -> None:
        for module in reversed(self._started_modules):
            shutdown = getattr(module, "shutdown", None)
            if shutdown is not None:
                try:
                    await shutdown(self)
                except Exception:
                    log.exception("shutdown of %s failed", module.__name__)
        self._started_modules.clear()
        await self.settle()
        await self.audit.flush()
        await asyncio.get_running_loop().run_in_executor(None, self.database.close)

    def _template_dirs(self) -> list[Path]:
        dirs = []
        if self.config.bot.templates_dir:
            override = Path(self.config.bot.templates_dir)
            dirs.append(override if override.is_absolute() else self.config.source_dir / override)
        dirs += [self.config.source_dir / "templates", SHIPPED_TEMPLATES]
        return dirs

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
        decision = self.gate.check(caller, spec.permission)
        arguments = redact_arguments(spec, parsed.args, parsed.text)
        if not decision.allowed:
            self.audit.record_soon(caller, spec.key, arguments, AuditDecision.DENIED,
                                   detail=decision.reason)
            self._count(spec, AuditDecision.DENIED, started)
            return Outcome(self._denial(spec, caller, decision.reason), OutcomeStatus.DENIED, spec)
        if spec.destructive or decision.approval_role:
            if caller.person is None:
                reason = "confirmation and approval need a configured person"
                await self.audit.record(caller, spec.key, arguments, AuditDecision.DENIED,
                                        detail=reason)
                self._count(spec, AuditDecision.DENIED, started)
                return Outcome(self._denial(spec, caller, reason), OutcomeStatus.DENIED, spec)
            if spec.destructive:
                return await self._ask_confirmation(caller, parsed, inbound, arguments, started)
            assert decision.approval_role is not None
            return await self._ask_approval(caller, parsed, inbound.thread_id,
                                            decision.approval_role, arguments, started)
        return await self._execute(caller, parsed, AuditDecision.ALLOWED, started,
                                   progress=progress, arguments=arguments)

    async def _decide(self, who: Inbound | Caller, request_id: str, choice: Choice,
                      reason: str | None, progress: Progress | None) -> Outcome:
        started = time.perf_counter()
        caller = self.directory.caller(who) if isinstance(who, Inbound) else who
        request_id = request_id.strip().lower()
        request = await self.requests.get(request_id)
        if caller.person is None:
            return await self._refuse(caller, request, "only configured people can decide "
                                      "requests", started)
        if request is None:
            return Outcome(Reply.error(f"There is no request '{request_id}'. "
                                       "'approvals' lists the pending ones."),
                           OutcomeStatus.ERROR)
        wanted = Kind.CONFIRM if choice in (Choice.CONFIRM, Choice.CANCEL) else Kind.APPROVAL
        if request.kind != wanted:
            verb = "approve or deny" if request.kind == Kind.APPROVAL else "confirm or cancel"
            return Outcome(Reply.error(f"Request {request.id} is waiting for someone to {verb} "
                                       "it, not for this."), OutcomeStatus.ERROR)
        me = caller.person.key
        if wanted == Kind.CONFIRM and me != request.person:
            return await self._refuse(caller, request, f"only {request.person}, who asked, can "
                                      f"{choice} request {request.id}", started)
        if wanted == Kind.APPROVAL:
            if me == request.person:
                return await self._refuse(caller, request, "you cannot decide your own request; "
                                          f"someone else with role {request.approval_role} must",
                                          started)
            if self.gate.holds_role(caller, request.approval_role or "") is None:
                return await self._refuse(caller, request, f"deciding request {request.id} needs "
                                          f"role {request.approval_role}", started)
        target = {Choice.CONFIRM: Status.RUNNING, Choice.APPROVE: Status.RUNNING,
                  Choice.CANCEL: Status.CANCELLED, Choice.DENY: Status.DENIED}[choice]
        claimed = await self.requests.claim(request.id, kind=wanted, to=target, by=me,
                                            reason=reason)
        if claimed is None:
            return await self._not_claimable(caller, request.id, started)
        requester = self._requester(claimed)
        parsed = self._reparse(claimed)
        arguments = redact_arguments(parsed.spec if parsed else None,
                                     parsed.args if parsed else None, claimed.text)
        if choice in (Choice.CANCEL, Choice.DENY):
            label = (AuditDecision.CANCELLED if choice == Choice.CANCEL
                     else AuditDecision.DENIED_BY_APPROVER)
            await self.audit.record(requester, claimed.command, arguments, label,
                                    approver=me if choice == Choice.DENY else None,
                                    request_id=claimed.id, detail=reason)
            verb = "Cancelled" if choice == Choice.CANCEL else "Denied"
            note = Reply(title=f"Request {claimed.id} {verb.lower()}", level=Level.WARNING,
                         template="core_decided.j2",
                         data={"verb": verb, "by": me, "reason": reason, "text": claimed.text},
                         visibility=Visibility.CHANNEL if choice == Choice.DENY
                         else Visibility.EPHEMERAL)
            note = await self.renderer.render(note)
            self._announce(claimed.id, note)
            return Outcome(note, OutcomeStatus.OK, parsed.spec if parsed else None,
                           claimed.id, update=note)
        if parsed is None:
            await self.requests.finish(claimed.id, "error")
            return Outcome(Reply.error(f"Request {claimed.id} can no longer run: "
                                       f"'{claimed.text}' is not a valid command any more."),
                           OutcomeStatus.ERROR)
        # Permissions are checked again at run time: a grant may have been removed meanwhile.
        decision = self.gate.check(requester, parsed.spec.permission)
        if not decision.allowed:
            await self.requests.finish(claimed.id, "denied")
            await self.audit.record(requester, claimed.command, arguments, AuditDecision.DENIED,
                                    request_id=claimed.id, detail=decision.reason)
            return Outcome(self._denial(parsed.spec, requester, decision.reason),
                           OutcomeStatus.DENIED, parsed.spec, claimed.id)
        if choice == Choice.CONFIRM and decision.approval_role:
            await self.audit.record(requester, claimed.command, arguments,
                                    AuditDecision.CONFIRMED, request_id=claimed.id)
            reopened = await self.requests.reopen_for_approval(
                claimed.id, decision.approval_role, self._approval_ttl())
            assert reopened is not None
            self._announce(claimed.id, Reply(
                f"Confirmed by {me}; now waiting for approval by role {decision.approval_role}.",
                title=f"Request {claimed.id}", level=Level.INFO, visibility=Visibility.CHANNEL))
            return await self._announce_approval(requester, parsed, reopened, arguments, started)
        approver = me if choice == Choice.APPROVE else None
        label = AuditDecision.APPROVED if approver else AuditDecision.CONFIRMED
        outcome = await self._execute(requester, parsed, label, started, progress=progress,
                                      arguments=arguments, approver=approver,
                                      request_id=claimed.id)
        await self.requests.finish(claimed.id, outcome.status.value)
        outcome.update = await self.renderer.render(Reply(
            title=f"Request {claimed.id}", template="core_decided.j2",
            data={"verb": "Approved" if approver else "Confirmed", "by": me,
                  "text": claimed.text, "outcome": outcome.status.value},
            level=Level.OK if outcome.status == OutcomeStatus.OK else Level.ERROR,
            visibility=Visibility.CHANNEL))
        outcome.request_id = claimed.id
        self._announce(claimed.id, outcome.update)
        return outcome

    def add_decision_listener(self, listener: DecisionListener) -> None:
        """Adapters register here to update the messages they posted for a request (remembered
        with ``bot.requests.remember_message``) however it was decided: a button, a typed
        ``approve ID``, another platform, or expiry."""
        self._decision_listeners.append(listener)

    async def remember_request_message(self, reply: Reply, platform: str, channel_id: str,
                                       message_id: str) -> None:
        """An adapter posted ``reply``; if it shows a request's buttons, remember the message so
        the listeners can update it when the request ends. Never raises (it is a nicety: the
        buttons still work, and a late click is told the request was already decided)."""
        if not reply.actions:
            return
        request_id = reply.actions[0].request_id
        try:
            await self.requests.remember_message(
                request_id, MessageRef(platform, channel_id, message_id))
        except Exception:
            log.exception("could not remember the %s message of request %s", platform,
                          request_id)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait for the background notifications of decisions already taken (shutdown, tests)."""
        await self._background.wait(timeout)

    def _announce(self, request_id: str, update: Reply) -> None:
        if self._decision_listeners:
            self._background.spawn(self._notify_listeners(request_id, update),
                                   name=f"decided:{request_id}")

    async def _notify_listeners(self, request_id: str, update: Reply) -> None:
        messages = tuple(await self.requests.messages_of(request_id))
        if not messages:
            return
        notice = DecisionNotice(request_id, replace(update, actions=[]), messages)
        for listener in self._decision_listeners:
            try:
                await listener(notice)
            except Exception:
                log.exception("updating the messages of request %s failed", request_id)

    async def expire_requests(self) -> list[PendingRequest]:
        """Mark overdue requests expired (the scheduler calls this every 30 s)."""
        expired = await self.requests.expire_due()
        for request in expired:
            requester = self._requester(request)
            await self.audit.record(requester, request.command, request.text,
                                    AuditDecision.EXPIRED, request_id=request.id)
            self._announce(request.id, Reply(
                f"Request {request.id} expired; `{request.text}` was not run.",
                title=f"Request {request.id} expired", level=Level.WARNING,
                visibility=Visibility.CHANNEL))
            self.metrics.count_command(request.command.split(".")[0],
                                       AuditDecision.EXPIRED.value)
        return expired

    # ------------------------------------------------------------------ steps

    async def _execute(self, caller: Caller, parsed: Parsed, label: AuditDecision,
                       started: float, *, arguments: str, progress: Progress | None = None,
                       approver: str | None = None, request_id: str | None = None) -> Outcome:
        spec = parsed.spec
        entry_id = None
        if spec.slow or spec.destructive or request_id:
            # Long or consequential runs are on record before they start.
            entry_id = await self.audit.record(caller, spec.key, arguments, label,
                                               outcome=AuditOutcome.RUNNING, approver=approver,
                                               request_id=request_id)
        ctx = Context(self, caller, spec, parsed.args, self._invocation_id(), progress)
        outcome = AuditOutcome.OK
        detail = None
        try:
            # In this task, not a new one: Sentry's asyncio integration would report a handled
            # CommandError raised in a child task as an unhandled crash.
            reply = await with_deadline(spec.handler(ctx), spec.timeout)
            if not isinstance(reply, Reply):
                raise TypeError(f"handler returned {type(reply).__name__}, not Reply")
            reply = await self.renderer.render(reply)
        except CommandError as exc:
            outcome, detail = AuditOutcome.ERROR, str(exc)
            reply = Reply.error(str(exc), title=f"{spec.words} failed")
        except TimeoutError:
            outcome, detail = AuditOutcome.TIMEOUT, f"no answer within {spec.timeout:g} s"
            reply = Reply.error(f"'{spec.words}' did not finish within {spec.timeout:g} s.")
        except Exception as exc:
            log.exception("command %s failed (invocation %s)", spec.key, ctx.invocation_id)
            outcome, detail = AuditOutcome.ERROR, f"{type(exc).__name__}: {exc}"
            reply = Reply.error(f"'{spec.words}' failed with an internal error "
                                f"(reference {ctx.invocation_id}); it has been logged.")
        if reply.level == Level.ERROR and outcome == AuditOutcome.OK:
            outcome = AuditOutcome.ERROR
        reply = self._place(reply, parsed)
        duration_ms = (time.perf_counter() - started) * 1000
        if entry_id is not None:
            await self.audit.finish(entry_id, outcome, duration_ms, detail)
        else:
            self.audit.record_soon(caller, spec.key, arguments, label, outcome=outcome,
                                   duration_ms=duration_ms, approver=approver, detail=detail)
        self._count(spec, label, started)
        return Outcome(reply, status_of(reply), spec, request_id)

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

    async def _ask_confirmation(self, caller: Caller, parsed: Parsed, inbound: Inbound,
                                arguments: str, started: float) -> Outcome:
        spec = parsed.spec
        ttl = timedelta(minutes=self.config.bot.confirmation_timeout_minutes)
        request = await self.requests.create(Kind.CONFIRM, command=spec.key, text=parsed.text,
                                             caller=caller, ttl=ttl, thread_id=inbound.thread_id)
        await self.audit.record(caller, spec.key, arguments,
                                AuditDecision.CONFIRMATION_REQUESTED, request_id=request.id)
        self._count(spec, AuditDecision.CONFIRMATION_REQUESTED, started)
        minutes = self.config.bot.confirmation_timeout_minutes
        reply = Reply(
            title="Confirm?", level=Level.WARNING, template="core_confirm.j2",
            data={"text": parsed.text, "minutes": f"{minutes:g}", "request_id": request.id},
            fields=[("Command", parsed.text), ("Request", request.id)],
            actions=[
                Action("Confirm", Choice.CONFIRM, request.id, style="danger",
                       confirm_text=f"Run `{parsed.text}` now?"),
                Action("Cancel", Choice.CANCEL, request.id),
            ],
            visibility=Visibility.EPHEMERAL,
        )
        return Outcome(await self.renderer.render(reply), OutcomeStatus.PENDING, spec, request.id)

    async def _ask_approval(self, caller: Caller, parsed: Parsed, thread_id: str | None,
                            role: str, arguments: str, started: float) -> Outcome:
        request = await self.requests.create(
            Kind.APPROVAL, command=parsed.spec.key, text=parsed.text, caller=caller,
            ttl=self._approval_ttl(), thread_id=thread_id, approval_role=role)
        return await self._announce_approval(caller, parsed, request, arguments, started)

    async def _announce_approval(self, caller: Caller, parsed: Parsed, request: PendingRequest,
                                 arguments: str, started: float) -> Outcome:
        await self.audit.record(caller, parsed.spec.key, arguments,
                                AuditDecision.APPROVAL_REQUESTED, request_id=request.id)
        self._count(parsed.spec, AuditDecision.APPROVAL_REQUESTED, started)
        minutes = self.config.bot.approval_timeout_minutes
        reply = Reply(
            title=f"Approval needed (request {request.id})", level=Level.WARNING,
            template="core_approval.j2",
            data={"requester": caller.label, "text": parsed.text,
                  "role": request.approval_role, "minutes": f"{minutes:g}"},
            fields=[("Requested by", caller.label), ("Command", parsed.text),
                    ("Approver role", request.approval_role or ""), ("Request", request.id)],
            actions=[Action("Approve", Choice.APPROVE, request.id, style="primary"),
                     Action("Deny", Choice.DENY, request.id, style="danger")],
            visibility=Visibility.CHANNEL,
        )
        return Outcome(await self.renderer.render(reply), OutcomeStatus.PENDING, parsed.spec,
                       request.id)

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

    async def _refuse(self, caller: Caller, request: PendingRequest | None, reason: str,
                      started: float) -> Outcome:
        await self.audit.record(caller, request.command if request else None,
                                request.text if request else "", AuditDecision.DENIED,
                                request_id=request.id if request else None, detail=reason)
        self.metrics.count_command("decision", "denied")
        return Outcome(Reply.denied(reason[0].upper() + reason[1:] + "."), OutcomeStatus.DENIED)

    async def _not_claimable(self, caller: Caller, request_id: str, started: float) -> Outcome:
        current = await self.requests.get(request_id)
        if current is not None and current.expired:
            await self.expire_requests()
            return Outcome(Reply.error(f"Request {request_id} expired at "
                                       f"{current.expires_at:%H:%M} UTC; run the command again."),
                           OutcomeStatus.ERROR)
        state = current.status.value if current else "gone"
        by = f" by {current.decided_by}" if current and current.decided_by else ""
        return Outcome(Reply.error(f"Request {request_id} was already decided{by} ({state}); "
                                   "nothing was run twice."), OutcomeStatus.ERROR)

    def _denial(self, spec: CommandSpec, caller: Caller, reason: str) -> Reply:
        return self.renderer.render_sync(Reply(
            title="Not allowed", level=Level.DENIED, template="core_denied.j2",
            data={"command": spec.words, "reason": reason, "caller": caller.label}))

    def _requester(self, request: PendingRequest) -> Caller:
        return Caller(
            platform=request.platform, user_id=request.platform_user,
            person=self.directory.people.get(request.person),
            channel_id=request.channel_id, channel_alias=request.channel_alias,
        )

    def _reparse(self, request: PendingRequest) -> Parsed | None:
        try:
            return parse(self.registry, request.text)
        except ParseError:
            return None

    def _approval_ttl(self) -> timedelta:
        return timedelta(minutes=self.config.bot.approval_timeout_minutes)

    def _invocation_id(self) -> str:
        return f"{self._invocation_prefix}-{next(self._invocations):x}"

    def _count(self, spec: CommandSpec, decision: AuditDecision, started: float) -> None:
        self.metrics.count_command(spec.family, decision.value, time.perf_counter() - started)

