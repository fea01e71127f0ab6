"""``bot.services.get(RestartService)``: targets, previews, the lock and cooldown, and running
a restart of each kind (pipelines are followed by ``bot.restart.follow``).

Order of a run: take the target's lease (one restart per target in the whole cluster), check
the cooldown in the database under it, record the run, act, record the outcome (database and
audit), give the lease back. A pipeline keeps the lease while it is followed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.audit import AuditDecision, AuditOutcome, redact_arguments
from bot.clock import utcnow
from bot.commands import CommandError, Context
from bot.identity import Caller
from bot.integrations.gitlab import GitLabClient, GitLabConfig
from bot.reply import Level, Reply
from bot.restart import params, store
from bot.restart.actions import (
    CommandAction,
    CondorAction,
    HttpAction,
    PipelineAction,
    Prepared,
    prepare,
)
from bot.restart.config import RestartConfig, TargetBase
from bot.restart.follow import start_pipeline
from bot.restart.lock import LEASE, Lease
from bot.restart.replies import command_reply, http_reply
from bot.restart.runners import run_command, run_http
from bot.secrets import masker
from bot.tasks import BackgroundTasks
from bot.timefmt import format_clock

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

# The audit row of a run's outcome, written when it ends (a pipeline: long after the command
# returned): AuditDecision.FOLLOW_UP.
FOLLOW_UP = AuditDecision.FOLLOW_UP


@dataclass(frozen=True, slots=True)
class Availability:
    running: store.Run | None  # a run not finished yet
    last: store.Run | None  # the last run that may have changed something
    until: datetime | None  # cooling down until then


class RestartService:
    def __init__(self, bot: Bot, config: RestartConfig, gitlab: GitLabConfig | None) -> None:
        self.bot = bot
        self.config = config
        self.gitlab_config = gitlab
        self._gitlab: GitLabClient | None = None
        self.tasks = BackgroundTasks("restart")
        self.following: dict[int, tuple[Any, Lease]] = {}  # run id -> (task, lease)

    # ------------------------------------------------------------------ targets, previews

    def target(self, name: str) -> TargetBase:
        target = self.config.targets.get(name)
        if target is None:
            known = ", ".join(sorted(self.config.targets)) or "none configured"
            raise CommandError(f"no restart target '{name}' (targets: {known}; 'restart list' "
                               "shows them)")
        return target  # type: ignore[return-value]

    def prepare(self, name: str, given: list[str]) -> Prepared:
        target = self.target(name)
        values = params.resolve(name, target.params, given)
        project = self.gitlab_config.project if self.gitlab_config else None
        action, summary, details = prepare(name, target, values,
                                           source_dir=self.bot.config.source_dir,
                                           gitlab_project=project)
        cooldown = self.config.cooldown(target)
        wait = f"cooldown: {cooldown:g} s after it ends" if cooldown else "no cooldown"
        details.append(f"{wait}; one restart of {name} at a time")
        # Masked here, not only when shown: the plan is stored with the request.
        return Prepared(name, str(getattr(target, "type", "")), action, values,
                        masker.mask(f"restarts {name}: {summary}"),
                        tuple(masker.mask(line) for line in details), cooldown,
                        self.config.channel_of(target))

    def gitlab(self) -> GitLabClient:
        if self._gitlab is None:
            if self.gitlab_config is None or not self.gitlab_config.url:
                raise CommandError("gitlab_pipeline targets need the gitlab: section "
                                   "(gitlab.url, gitlab.token)")
            self._gitlab = GitLabClient.from_config(self.gitlab_config)
        return self._gitlab

    async def availability(self, name: str, cooldown: float) -> Availability:
        """Whether the target is being restarted or cooling down, from its runs (read only:
        the lease and the check under it decide when a restart really starts)."""
        last = await self.bot.database.run(store.last, name)
        if last is not None and not last.finished:
            return Availability(last, None, None)
        counted = await self.bot.database.run(store.last, name, with_effect=True)
        if counted is None or cooldown <= 0:
            return Availability(None, counted, None)
        until = (counted.finished_at or counted.started_at) + timedelta(seconds=cooldown)
        return Availability(None, counted, until if utcnow() < until else None)

    async def check_available(self, name: str, cooldown: float) -> None:
        """CommandError when the target is being restarted or cooling down."""
        state = await self.availability(name, cooldown)
        if state.running is not None:
            run = state.running
            raise CommandError(f"a restart of {name} is under way (started by "
                               f"{run.person or run.platform_user} at "
                               f"{self.clock(run.started_at)}); wait for it to end")
        if state.until is not None and state.last is not None:
            last = state.last
            raise CommandError(f"{name} was restarted at {self.clock(last.started_at)} by "
                               f"{last.person or last.platform_user} ({last.status}); it "
                               f"cools down until {self.clock(state.until)}")

    def clock(self, moment: Any) -> str:
        return format_clock(moment, self.bot.config.bot.timezone)

    # ------------------------------------------------------------------ running

    async def run(self, ctx: Context, prepared: Prepared) -> Reply:
        name = prepared.target
        lease = await Lease.acquire(self.bot.claims, name, LEASE)
        if lease is None:
            raise CommandError(f"a restart of {name} is under way elsewhere; wait for it to end")
        handed_over = False
        try:
            # Under the lease this check is the one that counts (the plan step's was a
            # preview). A run left "running" by a stopped process is adopted by the resume
            # job, not overtaken.
            await self.check_available(name, prepared.cooldown)
            run_id = await self.bot.database.run(store.start, self._run_row(ctx, prepared))
            action = prepared.action
            if isinstance(action, PipelineAction):
                reply = await start_pipeline(self, run_id, prepared, action, lease)
                handed_over = run_id in self.following
                return reply
            if isinstance(action, CommandAction):
                return await self._command(run_id, prepared, action)
            if isinstance(action, HttpAction):
                return await self._http(run_id, prepared, action)
            assert isinstance(action, CondorAction)
            return await self._condor(ctx, run_id, prepared, action)
        finally:
            if not handed_over:
                await lease.release()

    def _run_row(self, ctx: Context, prepared: Prepared) -> dict[str, Any]:
        caller = ctx.caller
        action = prepared.action
        return {"target": prepared.target, "kind": prepared.kind,
                "person": caller.person.key if caller.person else None,
                "platform": caller.platform, "platform_user": caller.user_id,
                "channel": caller.channel_alias or caller.channel_id,
                "arguments": redact_arguments(ctx.spec, ctx.args, ""),
                "action": prepared.fingerprint,
                "project": action.project if isinstance(action, PipelineAction) else None}

    async def finish(self, run_id: int, status: str, detail: str, *,
                     effect: bool = True) -> bool:
        """End a run: its row, then its audit row. False if it had already ended."""
        if not await self.bot.database.run(store.finish, run_id, status, detail,
                                           effect=effect):
            return False
        run = await self.bot.database.run(store.get, run_id)
        assert run is not None
        outcome = {"success": AuditOutcome.OK, "timeout": AuditOutcome.TIMEOUT}.get(
            status, AuditOutcome.ERROR)
        caller = Caller(run.platform, run.platform_user,
                        self.bot.directory.people.get(run.person or ""),
                        channel_alias=run.channel)
        detail = f"run {run_id} of {run.target}: {status}: {detail}"
        await self.bot.audit.record(caller, "restart", run.arguments,
                                    FOLLOW_UP,
                                    outcome=outcome, detail=detail)
        return True

    async def _command(self, run_id: int, prepared: Prepared, action: CommandAction) -> Reply:
        try:
            result = await run_command(action)
        except BaseException:  # cancelled (shutdown): run_command killed the child
            await self.finish(run_id, "error", "stopped: the bot gave up on it (killed)")
            raise
        if result.error is not None:
            await self.finish(run_id, "error", result.error, effect=False)
            raise CommandError(f"restart {prepared.target}: {result.error}; nothing ran")
        if result.timed_out:
            status, detail = "timeout", f"killed after {action.timeout:g} s"
        elif result.exit_code in action.ok_exit_codes:
            status, detail = "success", f"exit {result.exit_code}"
        else:
            status, detail = "failed", f"exit {result.exit_code}"
        await self.finish(run_id, status, f"{detail} in {result.seconds:.1f} s")
        return command_reply(prepared, result, status, detail)

    async def _http(self, run_id: int, prepared: Prepared, action: HttpAction) -> Reply:
        try:
            result = await run_http(action)
        except BaseException:
            await self.finish(run_id, "lost", "the bot stopped waiting for the answer")
            raise
        if result.status is None:
            await self.finish(run_id, "error", result.error or "no answer",
                              effect=result.reached)
            raise CommandError(f"restart {prepared.target}: {action.method} {action.url}: "
                               f"{result.error}")
        ok = result.status in action.expect_status
        status = "success" if ok else "failed"
        await self.finish(run_id, status, f"HTTP {result.status} in {result.seconds:.1f} s",
                          effect=ok or result.status >= 500)
        return http_reply(prepared, action, result, ok)

    async def _condor(self, ctx: Context, run_id: int, prepared: Prepared,
                      action: CondorAction) -> Reply:
        inner = condor_context(ctx, action)
        try:
            reply = await inner.spec.handler(inner)
        except CommandError as exc:
            await self.finish(run_id, "error", str(exc))
            raise
        except BaseException:
            await self.finish(run_id, "lost", "the bot stopped during the resubmit")
            raise
        ok = reply.level == Level.OK
        await self.finish(run_id, "success" if ok else "failed", reply.title or "resubmitted")
        return _retitled(reply, f"restart {prepared.target}: condor resubmit {action.submit}")

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Shutdown: stop following (the runs stay ``running``; their leases are released so
        another process, or this one when it starts again, adopts them at once)."""
        for task, lease in list(self.following.values()):
            task.cancel()
            await lease.release()
        await self.tasks.close(5)
        self.following.clear()
        if self._gitlab is not None:
            await self._gitlab.close()
            self._gitlab = None


def condor_context(ctx: Context, action: CondorAction) -> Context:
    """The condor handler's own context for ``condor resubmit SUBMIT [--pool POOL]``: its plan
    step and handler run as they would for that command (not duplicated here)."""
    spec = ctx.bot.registry.find("condor", "resubmit")
    if spec is None or spec.plan is None:
        raise CommandError("condor_resubmit targets need the condor handlers "
                           "(handlers.condor_actions) to be loaded")
    return Context(ctx.bot, ctx.caller, spec, {"name": action.submit, "pool": action.pool},
                   ctx.invocation_id, ctx.progress_callback)


def _retitled(reply: Reply, title: str) -> Reply:
    return replace(reply, title=title)
