"""condor hold/release/rm/submit/resubmit: the commands that change the queue.

Each has a plan step (``bot.commands.Plan``): before anyone confirms or approves, it checks the
arguments against the queue and says exactly which jobs would change ("removes 23 jobs of
emfollow on pool gwcelery: 1.0-1.19 running, 1.20-1.22 held"). A job id that is not in the
queue, or a batch with nothing to change, is an error before any request exists. When the
command runs it acts on the confirmed jobs only; the core re-runs the plan first and asks
again if more jobs would be affected than were confirmed.
"""

from __future__ import annotations

from bot.commands import Arg, CommandError, Context, Opt, Plan, command
from bot.condor import preview
from bot.condor.models import ActionResult
from bot.markup import user
from bot.render import format_duration
from bot.reply import Level, Reply, Visibility
from handlers.condor import _POOL_OPT, _Failures, service_of

_JOBS = Arg("jobs", kind="jobid", many=True, required=False, help="job ids: 1234.0 or 1234")
_BATCH = Opt("batch", kind="text", max_length=200, help="every job of this JobBatchName")
_REASON = Opt("reason", kind="text", max_length=200, help="recorded in the job (HoldReason, ...)")


async def _plan_act(ctx: Context, action: str) -> Plan:
    service = service_of(ctx)
    jobs: list[str] = ctx.args["jobs"] or []
    batch: str | None = ctx.args["batch"]
    if bool(jobs) == bool(batch):
        raise CommandError("Name job ids or --batch NAME (one of the two)")
    async with _Failures():
        spec = service.pool(ctx.args["pool"])
        matched = await service.match(spec.name, jobs=jobs or None, batch=batch)
    where = f"on pool {spec.name}" + (" (within its scope)" if spec.scope else "")
    if matched.not_found:
        raise CommandError(f"Not in the queue of {spec.label} {where}: "
                           f"{', '.join(matched.not_found[:20])}; check the ids with "
                           "'condor q'")
    targets = [job for job in matched.states if job not in preview.skipped(action, matched)]
    if not targets:
        what = f"batch {batch}" if batch else "the named jobs"
        if not matched.states:
            raise CommandError(f"No job of {what} in the queue of {spec.label} {where}")
        raise CommandError(f"None of the jobs of {what} can be {_DONE[action].lower()}: "
                           f"{preview.by_state(matched, list(matched.states))}")
    details = []
    left = preview.skipped(action, matched)
    if left:
        details.append(f"left alone ({_NOT_APPLICABLE[action]}): "
                       f"{preview.by_state(matched, left)}")
    return Plan(preview.summary(action, matched, targets, where), frozenset(targets),
                tuple(details), resolved=(("pool", spec.name),))


async def _act(ctx: Context, action: str) -> Reply:
    service = service_of(ctx)
    jobs: list[str] = ctx.args["jobs"] or []
    batch: str | None = ctx.args["batch"]
    if bool(jobs) == bool(batch):
        raise CommandError("Name job ids or --batch NAME (one of the two).")
    if ctx.plan is not None:  # confirmed: act on the jobs that were shown, never on more
        jobs = sorted(ctx.plan.targets, key=preview.job_key)
    async with _Failures():
        spec = service.pool(ctx.args["pool"])
        result = await service.act(spec.name, action,  # type: ignore[arg-type]
                                   jobs=jobs or None, batch=None if jobs else batch,
                                   reason=ctx.args["reason"], caller=ctx.caller.label)
    return action_reply(spec.name, spec.label, action, result, batch, spec.scope is not None)


_DONE = {"hold": "Held", "release": "Released", "remove": "Removed"}
_WORD = {"hold": "hold", "release": "release", "remove": "rm"}
_NOT_APPLICABLE = {"hold": "already held, completed or removed",
                   "release": "not held", "remove": "already removed"}


def action_reply(pool: str, schedd: str, action: str, result: ActionResult, batch: str | None,
                 scoped: bool) -> Reply:
    where = " within this pool's scope" if scoped else ""
    if not result.targets:
        what = f"batch {user(batch)}" if batch else ", ".join(result.not_found)  # as typed
        return Reply.error(f"No job of {what} in the queue of {schedd}{where}: nothing was "
                           f"{_DONE[action].lower()}.", title=f"condor {_WORD[action]} failed")
    skipped = result.bad_status + result.already_done
    unchanged = []
    if skipped:
        wanted = preview.APPLICABLE[action]
        unchanged = [f"{job} ({letter})" for job, letter in result.states.items()
                     if letter not in wanted]
    data = {
        "pool": pool, "schedd": schedd, "done": _DONE[action], "count": result.success,
        "targets": result.targets[:20], "more": max(0, len(result.targets) - 20),
        "batch": batch, "not_found": result.not_found, "where": where,
        "unchanged": unchanged[:20], "skipped": skipped,
        "not_applicable": _NOT_APPLICABLE[action], "denied": result.permission_denied,
        "errors": result.error, "removing": action == "remove",
    }
    ok = result.success > 0 and not (result.not_found or skipped or result.permission_denied
                                     or result.error)
    level = Level.OK if ok else (Level.WARNING if result.success else Level.ERROR)
    return Reply(title=f"condor {_WORD[action]} on {pool}",
                 template="condor_action.j2", data=data, level=level,
                 visibility=Visibility.CHANNEL)


async def _plan_resubmit(ctx: Context) -> Plan:
    service = service_of(ctx)
    async with _Failures():
        spec = service.pool(ctx.args["pool"])
        source = await service.load_submit(spec, ctx.args["name"])
        if not source.batch:
            raise CommandError(f"submit description {source.name} has no batch_name: "
                               "resubmit needs it to know which jobs to remove")
        matched = await service.match(spec.name, batch=source.batch)
    wait = format_duration(service.config.resubmit_wait_seconds)
    targets = [job for job in matched.states if job not in preview.skipped("remove", matched)]
    where = f"on pool {spec.name}"
    removal = (preview.summary("remove", matched, targets, where) if targets
               else f"finds no job of batch {source.batch} {where} to remove")
    return Plan(f"{removal}, waits up to {wait} for them to leave the queue, then submits "
                f"{source.name} again", frozenset(targets), resolved=(("pool", spec.name),))


@command(
    "condor hold", summary="Hold jobs (GWCelery's 'stop'): by id or a whole batch",
    args=[_JOBS], options=[_BATCH, _REASON, _POOL_OPT],
    help="The reason is stored in the job's HoldReason with your name.",
    examples=["condor hold 1.20 1.21 --reason 'node2296 is being drained'",
              "condor hold --batch gwcelery --reason 'Kafka maintenance'"],
    slow=True, public=True, plan=lambda ctx: _plan_act(ctx, "hold"),
)
async def hold(ctx: Context) -> Reply:
    return await _act(ctx, "hold")


@command(
    "condor release", summary="Release held jobs (GWCelery's 'restart'): by id or a batch",
    args=[_JOBS], options=[_BATCH, _REASON, _POOL_OPT],
    examples=["condor release 2.9", "condor release --batch gwcelery"],
    slow=True, public=True, plan=lambda ctx: _plan_act(ctx, "release"),
)
async def release(ctx: Context) -> Reply:
    return await _act(ctx, "release")


@command(
    "condor rm", summary="Remove jobs by id or a whole batch (asks for confirmation)",
    args=[_JOBS], options=[_BATCH, _REASON, _POOL_OPT],
    help="Destructive: asks you to confirm. The example configuration gives it to the expert "
         "role only (or to shifters with an expert's approval).",
    examples=["condor rm 100.17", "condor rm --batch gwcelery"],
    destructive=True, slow=True, public=True, plan=lambda ctx: _plan_act(ctx, "remove"),
)
async def rm(ctx: Context) -> Reply:
    return await _act(ctx, "remove")


@command(
    "condor submit", summary="Submit a submit description defined in the config",
    args=[Arg("name", help="a submit description of the pool (condor.pools.P.submit)")],
    options=[_POOL_OPT],
    help="Only descriptions from the configuration can be submitted, never text from chat. "
         "Refused when the description's batch already has jobs: use resubmit.",
    examples=["condor submit gwcelery"],
    slow=True, public=True,
)
async def submit(ctx: Context) -> Reply:
    service = service_of(ctx)
    async with _Failures():
        spec = service.pool(ctx.args["pool"])
        outcome = await service.submit(spec.name, ctx.args["name"])
    # The name is a configured description by now, but it is still what was typed.
    return Reply(title=f"condor submit {user(ctx.args['name'])}", template="condor_submit.j2",
                 data={"pool": spec.name, "name": ctx.args["name"], "outcome": outcome,
                       "clusters": ", ".join(map(str, outcome.clusters)), "removed": None},
                 level=Level.OK, visibility=Visibility.CHANNEL)


@command(
    "condor resubmit", summary="Remove a batch, wait until it is gone, submit it again",
    args=[Arg("name", help="a submit description with a batch_name")],
    options=[_POOL_OPT],
    help="GWCelery's 'gwcelery condor resubmit': removes every job of the description's batch "
         "(within the scope), waits until they have left the queue (condor.resubmit_wait_seconds, "
         "120 s by default, progress shown), then submits. Destructive: asks for confirmation.",
    examples=["condor resubmit gwcelery"],
    destructive=True, slow=True, public=True, timeout=900, plan=_plan_resubmit,
)
async def resubmit(ctx: Context) -> Reply:
    service = service_of(ctx)
    async with _Failures():
        spec = service.pool(ctx.args["pool"])
        outcome = await service.resubmit(spec.name, ctx.args["name"], progress=ctx.progress)
    removed = outcome.removed
    return Reply(title=f"condor resubmit {user(ctx.args['name'])}",
                 template="condor_submit.j2",
                 data={"pool": spec.name, "name": ctx.args["name"],
                       "outcome": outcome.submitted,
                       "clusters": ", ".join(map(str, outcome.submitted.clusters)),
                       "removed": removed.success if removed else 0, "batch": outcome.batch,
                       "waited": format_duration(outcome.waited_seconds)},
                 level=Level.OK, visibility=Visibility.CHANNEL)



