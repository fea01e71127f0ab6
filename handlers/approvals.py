"""approvals, approve, deny, confirm, cancel: deciding pending requests from any entry point.

The decision rules (the requester confirms; another holder of the approval role approves) live
in the gate, ``Gate.may_decide``: ``Bot.decide`` (buttons and these commands) and the list of
what a person may decide both ask it.
"""

from __future__ import annotations

from bot.clock import utcnow
from bot.commands import Arg, Context, Family, command
from bot.lazy import lazy_module
from bot.render import format_duration
from bot.reply import Choice, Reply, Table
from bot.timefmt import format_clock

# Loaded at first use: listing the commands (help) must not load SQLAlchemy (bot/lazy.py).
pending = lazy_module("bot.pending")

FAMILY = Family("approvals", "Confirmations and approvals", order=90)

_ID = Arg("id", help="the request id shown with the request", pattern=r"[a-z0-9]{4,12}")


async def _decide(ctx: Context, choice: Choice, reason: str | None = None) -> Reply:
    outcome = await ctx.bot.decide(ctx.caller, ctx.args["id"], choice, reason,
                                   progress=ctx.progress_callback)
    return outcome.reply


@command("approvals", summary="Pending requests you may decide")
async def approvals(ctx: Context) -> Reply:
    person = ctx.caller.person
    if person is None:
        return Reply("You are not a configured person, so there is nothing for you to decide.")
    rows = []
    for request in await ctx.bot.requests.list_pending():
        if request.expired:
            continue
        choice = Choice.CONFIRM if request.kind == pending.Kind.CONFIRM else Choice.APPROVE
        if not ctx.bot.gate.may_decide(ctx.caller, request, choice).allowed:
            continue
        what = ("confirm (yours)" if choice == Choice.CONFIRM
                else f"approve as {request.approval_role}")
        left = (request.expires_at - utcnow()).total_seconds()
        until = format_clock(request.expires_at, ctx.bot.config.bot.timezone)
        rows.append([request.id, request.person, request.text, what,
                     f"in {format_duration(left)} ({until})"])
    if not rows:
        return Reply("Nothing is waiting for you.")
    return Reply("'approve ID' / 'deny ID [REASON]' decide; 'confirm ID' / 'cancel ID' for yours.",
                 title=f"{len(rows)} pending",
                 table=Table(["id", "from", "command", "you may", "expires"], rows))


@command("approve", summary="Approve someone else's request", args=[_ID], slow=True,
         timeout=24 * 3600, examples=["approve k3x9qa"])
async def approve(ctx: Context) -> Reply:
    return await _decide(ctx, Choice.APPROVE)


@command("deny", summary="Deny someone else's request",
         args=[_ID, Arg("reason", kind="text", many=True, required=False, max_length=300)],
         examples=["deny k3x9qa not during the observing run"])
async def deny(ctx: Context) -> Reply:
    reason = " ".join(ctx.args["reason"]) or None
    return await _decide(ctx, Choice.DENY, reason)


@command("confirm", summary="Confirm your own destructive command", args=[_ID], slow=True,
         timeout=24 * 3600, examples=["confirm k3x9qa"])
async def confirm(ctx: Context) -> Reply:
    return await _decide(ctx, Choice.CONFIRM)


@command("cancel", summary="Cancel your own pending command", args=[_ID])
async def cancel(ctx: Context) -> Reply:
    return await _decide(ctx, Choice.CANCEL)
