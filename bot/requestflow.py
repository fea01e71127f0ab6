"""Pending requests: asking for confirmation or approval, and deciding them.

The part of the dispatcher (:class:`bot.core.Bot` mixes it in) that owns requests: the plan
step shown before anyone is asked, one pending request per person and command line, the
decision gate (the requester confirms or withdraws; someone else with the approval role
approves or denies), the atomic claim, the re-check at run time (permission, plan) and the
messages that must change once a request ends. Wording lives in ``bot/cards.py``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot import cards
from bot.audit import AuditDecision, AuditOutcome, redact_arguments
from bot.commands import CommandError, Context, Plan
from bot.identity import Caller, Inbound
from bot.markup import code, plain, user_unless_marked
from bot.outcome import (
    DecisionListener,
    DecisionNotice,
    Outcome,
    OutcomeStatus,
    PlanFailed,
    Progress,
)
from bot.parser import Parsed, ParseError, parse
from bot.pending import DuplicateRequest, Kind, MessageRef, NotRun, PendingRequest, Status
from bot.permissions import Decision
from bot.reply import Choice, Level, Reply, Visibility
from bot.tasks import with_deadline
from bot.timefmt import format_clock

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class RequestFlow:
    """Mixed into :class:`bot.core.Bot`; ``self`` is the bot."""

    async def _decide(self, who: Inbound | Caller, request_id: str, choice: Choice,
                      reason: str | None, progress: Progress | None) -> Outcome:
        started = time.perf_counter()
        caller = self.directory.caller(who) if isinstance(who, Inbound) else who
        request_id = request_id.strip().lower()
        request = await self.requests.get(request_id)
        if caller.person is not None:  # (an unknown person is refused below, whatever else)
            if request is None:
                return Outcome(cards.no_request(request_id), OutcomeStatus.ERROR)
            if (choice == Choice.CONFIRM and request.kind != Kind.CONFIRM) or \
                    (choice in (Choice.APPROVE, Choice.DENY) and request.kind != Kind.APPROVAL):
                return Outcome(cards.wrong_kind(request, choice), OutcomeStatus.ERROR)
        decision = self.gate.may_decide(caller, request, choice)
        if not decision.allowed:
            return await self._refuse(caller, request, choice, decision.reason, started)
        assert caller.person is not None and request is not None  # the gate allowed it
        target = {Choice.CONFIRM: Status.RUNNING, Choice.APPROVE: Status.RUNNING,
                  Choice.CANCEL: Status.CANCELLED, Choice.DENY: Status.DENIED}[choice]
        claimed = await self.requests.claim(request.id, kind=request.kind, to=target,
                                            by=caller.person.key, reason=reason)
        if claimed is None:
            return await self._not_claimable(request.id)
        if choice in (Choice.CANCEL, Choice.DENY):
            return await self._stopped(claimed, choice, caller.person.key, reason)
        return await self._run_decided(claimed, choice, caller.person.key, progress, started)

    async def may_decide(self, who: Inbound | Caller, request_id: str,
                         choice: Choice) -> Decision:
        """Whether ``who`` may take ``choice`` on a request, without taking it (adapters ask
        before showing a second confirmation step). The rules are the gate's."""
        caller = self.directory.caller(who) if isinstance(who, Inbound) else who
        request = await self.requests.get(request_id.strip().lower())
        return self.gate.may_decide(caller, request, choice)

    async def _stopped(self, claimed: PendingRequest, choice: Choice, me: str,
                       reason: str | None) -> Outcome:
        """Cancelled by the requester or denied by an approver: recorded, nothing runs."""
        parsed = self._reparse(claimed)
        arguments = self._redacted(claimed)
        label = (AuditDecision.CANCELLED if choice == Choice.CANCEL
                 else AuditDecision.DENIED_BY_APPROVER)
        await self.audit.record(self._requester(claimed), claimed.command, arguments, label,
                                approver=me if choice == Choice.DENY else None,
                                request_id=claimed.id, detail=reason)
        note = await self.renderer.render(cards.stopped_note(claimed, choice, me, reason))
        self._announce(claimed.id, note)
        return Outcome(note, OutcomeStatus.OK, parsed.spec if parsed else None, claimed.id,
                       update=note)

    async def _run_decided(self, claimed: PendingRequest, choice: Choice, me: str,
                           progress: Progress | None, started: float) -> Outcome:
        """A confirmed or approved request: check again, then run it as the requester."""
        requester = self._requester(claimed)
        parsed = self._reparse(claimed)
        if parsed is None:
            await self.requests.not_run(claimed.id, NotRun.INVALID)
            return Outcome(Reply.error(f"Request {claimed.id} can no longer run: "
                                       f"{code(claimed.text)} is not a valid command any more; "
                                       "nothing was run.", title="Cannot run"),
                           OutcomeStatus.ERROR)
        arguments = redact_arguments(parsed.spec, parsed.args, claimed.text)
        # Permissions are checked again at run time: a grant may have been removed meanwhile.
        decision = self.gate.check(requester, parsed.spec.permission_for(parsed.args))
        if not decision.allowed:
            await self.requests.not_run(claimed.id, NotRun.DENIED)
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
            return await self._announce_approval(requester, reopened, arguments, started)
        approver = me if choice == Choice.APPROVE else None
        label = AuditDecision.APPROVED if approver else AuditDecision.CONFIRMED
        try:
            fresh = await self._plan(requester, parsed)
        except PlanFailed as exc:
            return await self._not_run(claimed, requester, arguments, label, approver, str(exc))
        if fresh is not None and claimed.plan is not None and not claimed.plan.covers(fresh):
            return await self._ask_again(claimed, requester, parsed, fresh, arguments, label,
                                         approver, started)
        outcome = await self._execute(requester, parsed, label, started, progress=progress,
                                      arguments=arguments, approver=approver,
                                      request_id=claimed.id, plan=claimed.plan or fresh)
        await self.requests.finish(claimed.id, outcome.status.value)
        outcome.update = await self.renderer.render(
            cards.ran_note(claimed, me, approver is not None, outcome.status.value))
        outcome.request_id = claimed.id
        self._announce(claimed.id, outcome.update)
        return outcome

    async def _not_run(self, claimed: PendingRequest, requester: Caller, arguments: str,
                       label: AuditDecision, approver: str | None, why: str) -> Outcome:
        """The plan step refused at run time (the jobs are gone, ...): nothing runs."""
        await self.requests.not_run(claimed.id, NotRun.REFUSED)
        await self.audit.record(requester, claimed.command, arguments, label,
                                outcome=AuditOutcome.ERROR, approver=approver,
                                request_id=claimed.id, detail=plain(f"not run: {why}"))
        note = Reply.error(f"Request {claimed.id} was not run: {user_unless_marked(why)}",
                           title=f"Request {claimed.id} not run")
        self._announce(claimed.id, note)
        return Outcome(note, OutcomeStatus.ERROR, None, claimed.id, update=note)

    async def _ask_again(self, claimed: PendingRequest, requester: Caller, parsed: Parsed,
                         fresh: Plan, arguments: str, label: AuditDecision,
                         approver: str | None, started: float) -> Outcome:
        """What the command would affect grew after it was confirmed: ask the requester again
        (a new request showing the new plan) instead of acting on more than was agreed."""
        await self.requests.not_run(claimed.id, NotRun.CHANGED)
        await self.audit.record(requester, claimed.command, arguments, label,
                                outcome=AuditOutcome.ERROR, approver=approver,
                                request_id=claimed.id,
                                detail=plain(f"not run: the effect changed; now it "
                                             f"{fresh.summary}"))
        outcome = await self._ask(Kind.CONFIRM, requester, parsed, claimed.thread_id, arguments,
                                  started, plan=fresh, role=None,
                                  intro=cards.changed_intro(claimed, fresh))
        if outcome.request_id:
            new = await self.requests.get(outcome.request_id)
            if new is not None:
                self._announce(claimed.id, cards.changed_note(claimed, new))
        outcome.reply = outcome.reply.with_visibility(Visibility.CHANNEL)
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
        # The first button that decides a request (a reply may also carry command buttons).
        request_id = next((a.request_id for a in reply.actions if a.decides), None)
        if request_id is None:
            return
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
            await self.audit.record(requester, request.command, self._redacted(request),
                                    AuditDecision.EXPIRED, request_id=request.id)
            self._announce(request.id, Reply(
                f"Request {request.id} expired; {code(request.text)} was not run.",
                title=f"Request {request.id} expired", level=Level.WARNING,
                visibility=Visibility.CHANNEL))
            self.metrics.count_command(request.command.split(".")[0],
                                       AuditDecision.EXPIRED.value)
        return expired

    # ------------------------------------------------------------------ steps

    async def _ask(self, kind: Kind, caller: Caller, parsed: Parsed, thread_id: str | None,
                   arguments: str, started: float, *, plan: Plan | None, role: str | None,
                   intro: str | None = None) -> Outcome:
        """Make a pending request (confirmation by the caller, or approval by ``role``)."""
        spec = parsed.spec
        minutes = (self.config.bot.confirmation_timeout_minutes if kind == Kind.CONFIRM
                   else self.config.bot.approval_timeout_minutes)
        # The same request however it is spelt (job ids in another order, the default pool
        # named or not, options in another order): see Parsed.canonical and Plan.resolved.
        canonical = parsed.canonical(dict(plan.resolved) if plan is not None else None)
        for attempt in range(2):
            try:
                request = await self.requests.create(
                    kind, command=spec.key, text=parsed.text, caller=caller,
                    ttl=timedelta(minutes=minutes), thread_id=thread_id,
                    approval_role=role if kind == Kind.APPROVAL else None, plan=plan,
                    canonical=canonical)
                break
            except DuplicateRequest as exc:
                if exc.existing.expired and attempt == 0:
                    # Overdue but not yet swept: sweep now (audited and announced like any
                    # expiry), which frees the request for this new one.
                    await self.expire_requests()
                    continue
                reply = cards.duplicate(exc.existing, self._local(exc.existing.expires_at))
                return Outcome(await self.renderer.render(reply), OutcomeStatus.ERROR, spec)
        if kind == Kind.APPROVAL:
            return await self._announce_approval(caller, request, arguments, started)
        await self.audit.record(caller, spec.key, arguments,
                                AuditDecision.CONFIRMATION_REQUESTED, request_id=request.id)
        self._count(spec, AuditDecision.CONFIRMATION_REQUESTED, started)
        reply = cards.confirm_card(request, minutes, self._local(request.expires_at), intro=intro,
                                   title="Confirm again?" if intro else "Confirm?")
        return Outcome(await self.renderer.render(reply), OutcomeStatus.PENDING, spec, request.id)

    async def _announce_approval(self, caller: Caller, request: PendingRequest, arguments: str,
                                 started: float) -> Outcome:
        await self.audit.record(caller, request.command, arguments,
                                AuditDecision.APPROVAL_REQUESTED, request_id=request.id)
        self.metrics.count_command(request.command.split(".")[0],
                                   AuditDecision.APPROVAL_REQUESTED.value,
                                   time.perf_counter() - started)
        reply = cards.approval_card(request, caller.label,
                                    self.config.bot.approval_timeout_minutes,
                                    self._local(request.expires_at))
        return Outcome(await self.renderer.render(reply), OutcomeStatus.PENDING,
                       self.registry.find_words(request.command), request.id)

    async def _plan(self, caller: Caller, parsed: Parsed) -> Plan | None:
        """The command's plan step: what it would do, worked out before anyone is asked
        (None for commands without one). Raises :class:`PlanFailed` when it cannot run."""
        spec = parsed.spec
        if spec.plan is None:
            return None
        ctx = Context(self, caller, spec, parsed.args, self._invocation_id())
        try:
            plan = await with_deadline(spec.plan(ctx), spec.timeout)
        except CommandError as exc:
            raise PlanFailed(str(exc)) from None
        except TimeoutError:
            raise PlanFailed(f"working out what it would do took longer than "
                             f"{spec.timeout:g} s; try again") from None
        except Exception:
            log.exception("plan step of %s failed (invocation %s)", spec.key, ctx.invocation_id)
            raise PlanFailed(f"its plan step failed with an internal error (reference "
                             f"{ctx.invocation_id})") from None
        if not isinstance(plan, Plan):
            raise PlanFailed(f"its plan step returned {type(plan).__name__}, not a Plan")
        return plan

    def _plan_failed(self, caller: Caller, parsed: Parsed, arguments: str, exc: PlanFailed,
                     started: float) -> Outcome:
        spec = parsed.spec
        self.audit.record_soon(caller, spec.key, arguments, AuditDecision.INVALID,
                               detail=plain(f"plan: {exc}"))
        self._count(spec, AuditDecision.INVALID, started)
        # The plan step's refusal may quote what was typed ("no target '@channel'").
        reply = Reply.error(f"{user_unless_marked(str(exc))}. Nothing was asked or run.\n"
                            f"Usage: {spec.usage()}",
                            title=f"{spec.words}: cannot run")
        return Outcome(reply, OutcomeStatus.ERROR, spec)

    async def _refuse(self, caller: Caller, request: PendingRequest | None, choice: Choice,
                      reason: str, started: float) -> Outcome:
        await self.audit.record(caller, request.command if request else None,
                                self._redacted(request) if request else "",
                                AuditDecision.refused(choice),
                                request_id=request.id if request else None, detail=reason)
        self.metrics.count_command("decision", "denied")
        return Outcome(Reply.denied(reason[0].upper() + reason[1:] + "."), OutcomeStatus.DENIED)

    async def _not_claimable(self, request_id: str) -> Outcome:
        current = await self.requests.get(request_id)
        if current is not None and current.expired:
            await self.expire_requests()
            return Outcome(cards.expired(request_id, self._local(current.expires_at)),
                           OutcomeStatus.ERROR)
        return Outcome(cards.already_decided(current, request_id), OutcomeStatus.ERROR)

    def _local(self, moment: datetime) -> str:
        """A time as people read it: in ``bot.timezone``, with the zone named."""
        return format_clock(moment, self.config.bot.timezone)

    def _requester(self, request: PendingRequest) -> Caller:
        return Caller(
            platform=request.platform, user_id=request.platform_user,
            person=self.directory.people.get(request.person),
            channel_id=request.channel_id, channel_alias=request.channel_alias,
        )

    def _redacted(self, request: PendingRequest) -> str:
        """A request's arguments as the audit stores them (secret slots masked)."""
        parsed = self._reparse(request)
        return redact_arguments(parsed.spec if parsed else None,
                                parsed.args if parsed else None, request.text)

    def _reparse(self, request: PendingRequest) -> Parsed | None:
        try:
            return parse(self.registry, request.text)
        except ParseError:
            return None

    def _approval_ttl(self) -> timedelta:
        return timedelta(minutes=self.config.bot.approval_timeout_minutes)
