"""Commands whose permission is completed by an argument (``svc.{target}``), and a family
that is a command and has subcommands (``svc TARGET``, ``svc list``), for the gate tests."""

from __future__ import annotations

from bot.commands import Arg, Context, Plan, command
from bot.reply import Reply

RAN: list[str] = []


async def _plan(ctx: Context) -> Plan:
    return Plan(f"restarts {ctx.args['target']}", frozenset({ctx.args["target"]}))


@command("svc", summary="Restart a named service", permission="svc.{target}",
         args=[Arg("target", pattern=r"[a-z][a-z0-9-]*")], destructive=True, plan=_plan)
async def restart(ctx: Context) -> Reply:
    RAN.append(ctx.args["target"])
    return Reply(f"restarted {ctx.args['target']}")


@command("svc list", summary="The services", permission="svc.list")
async def listing(ctx: Context) -> Reply:
    return Reply("alpha beta")
