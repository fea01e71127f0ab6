"""A command family for core tests: exercises every declaration flag without real services."""

from __future__ import annotations

import asyncio

from bot.commands import Arg, CommandError, Context, Family, Opt, Plan, command
from bot.reply import Reply, Table, Visibility

FAMILY = Family("sample", "Commands for the core's tests", order=200)
RUNS: list[tuple[str, str, dict[str, object]]] = []  # (command, person, args): what really ran


def _ran(ctx: Context) -> None:
    RUNS.append((ctx.spec.key, ctx.caller.label, dict(ctx.args)))


@command("sample echo", summary="Echo text", args=[Arg("words", kind="text", many=True)],
         options=[Opt("times", kind="int", default=1)], examples=["sample echo hello"])
async def echo(ctx: Context) -> Reply:
    _ran(ctx)
    return Reply(" ".join(ctx.args["words"]) * ctx.args["times"])


@command("sample table", summary="A long table", options=[Opt("rows", kind="int", default=100)])
async def table(ctx: Context) -> Reply:
    _ran(ctx)
    rows = [[str(i), f"job-{i}"] for i in range(ctx.args["rows"])]
    return Reply(template="sample_table.j2", data={"count": len(rows)},
                 table=Table(["n", "name"], rows), visibility=Visibility.CHANNEL)


# target -> what "sample wipe TARGET" would affect; tests change it between request and run.
WIPE_TARGETS: dict[str, list[str]] = {}


async def plan_wipe(ctx: Context) -> Plan:
    target = ctx.args["target"]
    if target == "missing":
        raise CommandError(f"there is no target '{target}'")
    affected = WIPE_TARGETS.get(target, [target])
    return Plan(f"wipes {len(affected)} item(s): {', '.join(affected)}", frozenset(affected))


@command("sample wipe", summary="Destructive: needs confirmation", destructive=True,
         args=[Arg("target")], plan=plan_wipe)
async def wipe(ctx: Context) -> Reply:
    _ran(ctx)
    return Reply(f"wiped {ctx.args['target']}")


@command("sample restart", summary="Needs approval by an expert (see config)",
         args=[Arg("service")])
async def restart(ctx: Context) -> Reply:
    _ran(ctx)
    return Reply(f"restarted {ctx.args['service']}")


@command("sample slow", summary="Takes a while", slow=True,
         options=[Opt("seconds", kind="int", default=1)], timeout=5)
async def slow(ctx: Context) -> Reply:
    _ran(ctx)
    await ctx.progress("working")
    await asyncio.sleep(ctx.args["seconds"])
    return Reply("done slowly")


@command("sample fail", summary="Fails like a handler does", args=[Arg("how")])
async def fail(ctx: Context) -> Reply:
    _ran(ctx)
    if ctx.args["how"] == "expected":
        raise CommandError("schedd demo did not answer within 10 s")
    raise RuntimeError("boom with secret-token-value inside")


@command("sample login", summary="Takes a secret", options=[Opt("token", secret=True)])
async def login(ctx: Context) -> Reply:
    _ran(ctx)
    return Reply("logged in")
