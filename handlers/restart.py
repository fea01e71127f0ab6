"""restart: restart a configured target (docs/restart.md), and ``restart list``.

``restart TARGET [PARAM=VALUE ...]`` runs what the ``restart:`` section says for TARGET: a
command (argv, no shell, minimal environment), an HTTP request (a Nomad allocation restart),
a GitLab pipeline (started, posted as a notice and followed to its end) or the condor
handler's resubmit of a submit description. Parameters only fill slots the target declares,
each checked against its allowed list or regex.

Destructive: the plan step shows exactly what would run (argv, URL, variables; secrets
masked) on the confirmation and approval cards; the permission is ``restart.TARGET``, so roles
decide per target who runs it directly and who needs an approval (``approval: {"restart.*":
expert}``). One restart per target at a time in the whole cluster (a lease in the database)
and a cooldown per target (the last run, in ``restart_runs``). Every run's outcome is audited
when it ends, a pipeline's too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.commands import PERMISSION_VALUE, Arg, Context, Family, Plan, command, every
from bot.config import Config, Problem
from bot.features import ConfigSection, Migrations
from bot.integrations.gitlab import GITLAB
from bot.lazy import lazy_module
from bot.markup import user
from bot.reply import Reply
from bot.restart.config import (
    CommandTarget,
    CondorResubmitTarget,
    GitLabPipelineTarget,
    ParamSpec,
)
from bot.restart.config import RestartConfig as RestartConfig
from bot.timefmt import format_clock

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from bot.restart.service import RestartService
    from bot.restart.store import Run

# The feature's implementation loads at first use: listing commands (help) imports this
# module and must not load SQLAlchemy (bot/lazy.py).
actions = lazy_module("bot.restart.actions")
follow = lazy_module("bot.restart.follow")
replies = lazy_module("bot.restart.replies")
runners = lazy_module("bot.restart.runners")
restart_service = lazy_module("bot.restart.service")
store = lazy_module("bot.restart.store")

FAMILY = Family("restart", "Restart services (configured targets)", order=25)
CONFIG = ConfigSection("restart", RestartConfig)


def _create_tables(conn: Connection) -> None:  # a function: reading store.* loads SQLAlchemy
    store.create_tables(conn)


MIGRATIONS = Migrations("restart", [(1, "restart runs", _create_tables)])

# The backstop deadline: a command target runs at most 600 s, a request 120 s, a resubmit
# condor.resubmit_wait_seconds (at most 600 s) plus the submit; a pipeline is followed in the
# background, not in the command.
COMMAND_TIMEOUT = 900.0


# ------------------------------------------------------------------------ lifecycle


def service_of(bot: Any) -> RestartService:
    service: RestartService | None = bot.services.get(restart_service.RestartService)
    if service is None:  # a bot built without the handlers' startup (one-shot tools)
        settings = CONFIG.of(bot.config) or RestartConfig()
        service = bot.services.add(restart_service.RestartService(bot, settings,
                                                                  GITLAB.of(bot.config)))
    return service


async def startup(bot: Any) -> None:
    service_of(bot)


async def shutdown(bot: Any) -> None:
    service = bot.services.pop(restart_service.RestartService)
    if service is not None:
        await service.close()


@every(30, name="restart.resume", jitter=0.2)
async def resume(bot: Any) -> None:
    """Follow again the pipelines of runs whose process stopped; end lost commands."""
    await follow.resume(service_of(bot))


def check_config(config: Config) -> list[Problem]:
    section = CONFIG.of(config)
    if section is None or not section.targets:
        return []
    problems = []
    if section.channel is not None and section.channel not in config.channels:
        problems.append(Problem("restart.channel", f"unknown channel alias '{section.channel}'",
                                "add it under 'channels:'"))
    for name, target in section.targets.items():
        path = f"restart.targets.{name}"
        if target.channel is not None and target.channel not in config.channels:
            problems.append(Problem(f"{path}.channel", f"unknown channel alias "
                                    f"'{target.channel}'", "add it under 'channels:'"))
        if isinstance(target, CommandTarget):
            problems += _program_problems(path, target, config)
        elif isinstance(target, GitLabPipelineTarget):
            problems += _gitlab_problems(path, target, config, section)
        elif isinstance(target, CondorResubmitTarget):
            problems += _condor_problems(path, target, config)
    return problems + _grant_problems(section, config)


def _grant_problems(section: RestartConfig, config: Config) -> list[Problem]:
    """A role naming restart.X for no target X (a typo leaves a target closed, or a grant
    waiting for a target that was renamed): a warning."""
    problems = []
    for role_name, role in config.roles.items():
        named = [(f"roles.{role_name}.allow[{i}]", glob) for i, glob in enumerate(role.allow)]
        named += [(f"roles.{role_name}.approval.{glob}", glob) for glob in role.approval]
        for path, glob in named:
            target = glob.removeprefix("restart.")
            if glob.startswith("restart.") and not any(c in target for c in "*?[") \
                    and target not in section.targets:
                problems.append(Problem(path, f"no restart target '{target}'",
                                        f"targets: {', '.join(sorted(section.targets))}",
                                        severity="warning"))
    return problems


def _program_problems(path: str, target: CommandTarget, config: Config) -> list[Problem]:
    env = runners.minimal_environment(dict(target.environment))
    if actions.resolve_program(target.argv[0], config.source_dir, env.get("PATH")) is None:
        return [Problem(f"{path}.argv[0]", f"'{target.argv[0]}' is not an executable file",
                        "an absolute path, a path relative to the config file, or a program "
                        "in PATH")]
    return []


def _gitlab_problems(path: str, target: GitLabPipelineTarget, config: Config,
                     section: RestartConfig) -> list[Problem]:
    gitlab = config.feature_sections.get("gitlab")
    if gitlab is None:
        return [Problem(path, "gitlab_pipeline targets need the gitlab: section's module",
                        "load handlers.restart_gitlab (bot.handlers)")]
    settings = GITLAB.of(config)
    problems = []
    if settings is None or not settings.url:
        problems.append(Problem("gitlab.url", f"needed by {path}", "the GitLab instance"))
    if settings is None or settings.token is None:
        problems.append(Problem("gitlab.token", f"needed to follow the pipelines of {path}",
                                "a project access token with read_api (and api without a "
                                "trigger_token)"))
    if not target.project and (settings is None or not settings.project):
        problems.append(Problem(f"{path}.project", "no project (nor gitlab.project)"))
    if section.channel_of(target) is None:
        problems.append(Problem(f"{path}.channel", "no channel: the pipeline's outcome goes "
                                "to the audit log only", "set restart.channel or this "
                                "target's channel", severity="warning"))
    return problems


def _condor_problems(path: str, target: CondorResubmitTarget, config: Config) -> list[Problem]:
    pools = config.condor.pools
    pool = target.pool or config.condor.default_pool or (next(iter(pools)) if len(pools) == 1
                                                         else None)
    if pool is None or pool not in pools:
        return [Problem(f"{path}.pool", f"unknown HTCondor pool '{pool}'",
                        "a pool of condor.pools (or set condor.default_pool)")]
    if target.submit not in pools[pool].submit:
        return [Problem(f"{path}.submit", f"pool {pool} has no submit description "
                        f"'{target.submit}'", f"condor.pools.{pool}.submit")]
    return []


# ------------------------------------------------------------------------ commands


async def plan_restart(ctx: Context) -> Plan:
    """What the restart would do, exactly; refused here (before anyone is asked) when the
    target is unknown, a parameter is not allowed, or it is running or cooling down."""
    service = service_of(ctx.bot)
    name = ctx.args["target"]
    prepared = service.prepare(name, ctx.args["params"] or [])
    await service.check_available(name, prepared.cooldown)
    summary, details = prepared.summary, list(prepared.details)
    targets = {prepared.fingerprint}
    if isinstance(prepared.action, actions.CondorAction):
        condor = restart_service.condor_context(ctx, prepared.action)
        assert condor.spec.plan is not None  # condor_context checks it
        inner = await condor.spec.plan(condor)
        summary = f"restarts {name}: {inner.summary}"
        details = [*inner.details, *details]
        targets |= set(inner.targets)
    resolved = sorted(f"{k}={v}" for k, v in prepared.values.items())
    return Plan(summary, frozenset(targets), tuple(details), resolved=(("params", resolved),))


@command(
    "restart",
    summary="Restart a configured target (asks for confirmation)",
    permission="restart.{target}",
    args=[Arg("target", pattern=PERMISSION_VALUE.pattern,
              help="a target of the restart: section ('restart list')"),
          Arg("params", kind="text", many=True, required=False, max_length=600,
              help="PARAM=VALUE for the target's declared parameters")],
    help="Runs what the configuration says for TARGET (a command, an HTTP request, a GitLab "
         "pipeline followed to its end, or an HTCondor resubmit). Parameters only fill the "
         "slots the target declares, each checked against its allowed values. Destructive: "
         "the card shows exactly what would run; the permission is restart.TARGET (some "
         "roles need an approval). One restart per target at a time, and a cooldown.",
    examples=["restart list", "restart gwcelery", "restart flower component=worker"],
    destructive=True, slow=True, public=True, timeout=COMMAND_TIMEOUT, plan=plan_restart,
)
async def restart(ctx: Context) -> Reply:
    service = service_of(ctx.bot)
    prepared = service.prepare(ctx.args["target"], ctx.args["params"] or [])
    return await service.run(ctx, prepared)


# Permission "restart" (the family's read-only view, as "status" is): never matched by the
# runbook's approval rule "restart.*", which would otherwise make a listing wait for an expert.
@command("restart list", summary="Restart targets, who may run them, their last restart",
         permission="restart", examples=["restart list"])
async def listing(ctx: Context) -> Reply:
    service = service_of(ctx.bot)
    zone = ctx.bot.config.bot.timezone
    entries = []
    for name, target in sorted(service.config.targets.items()):
        last = await ctx.bot.database.run(store.last, name)
        who = ctx.bot.gate.who_can(f"restart.{name}")
        entries.append({
            "name": name, "type": target.type, "description": target.description,
            "params": ", ".join(_param(p, s) for p, s in target.params.items()) or "none",
            "who": "; ".join(who) or "nobody",
            "last": _last(last, zone) if last else None,
            "state": await _state(service, name, service.config.cooldown(target)),
        })
    return replies.list_reply(entries)


def _param(name: str, spec: ParamSpec) -> str:
    allowed = "|".join(spec.choices) if spec.choices else f"/{spec.pattern}/"
    extra = [f"default {spec.default}"] if spec.default else []
    extra += [spec.help] if spec.help else []
    return f"{name}={allowed}" + (f" ({'; '.join(extra)})" if extra else "")


def _last(run: Run, zone: str) -> str:
    who = run.person or run.platform_user
    text = f"{format_clock(run.started_at, zone)} by {who}: {run.status}"
    if run.detail:
        text += f" ({user(run.detail)})"
    return text


async def _state(service: RestartService, name: str, cooldown: float) -> str | None:
    state = await service.availability(name, cooldown)
    if state.running is not None:
        return "running now"
    if state.until is not None:
        return f"cooling down until {service.clock(state.until)}"
    return None
