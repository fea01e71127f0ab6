"""announce, notices pending: speaking first, and what is still waiting to be said.

``announce CHANNEL TEXT...`` posts a durable notice (``bot.notices``) to a channel alias: one
message on every platform the alias is mapped on, delivered in the background and retried
across restarts. ``notices pending`` lists the notice messages not delivered yet or given up
on, per platform and channel, with their age, attempts and last error.
"""

from __future__ import annotations

import uuid

from bot.clock import utcnow
from bot.commands import Arg, CommandError, Context, Family, Opt, command
from bot.markup import user
from bot.messaging.port import TransientError
from bot.render import format_duration
from bot.reply import Level, Reply, Table, Visibility

FAMILY = Family("notices", "Notices the bot posts by itself", order=70)

ERROR_WIDTH = 80  # the last error, cut: the table must fit a chat message


@command(
    "announce",
    summary="Post a notice to a channel, on every platform it is mapped on",
    permission="announce",
    args=[Arg("channel", help="a channel alias from the config ('channels:')"),
          Arg("text", kind="text", many=True, help="what to say")],
    examples=['announce ops "condor maintenance at 14:00, expect held jobs"'],
)
async def announce(ctx: Context) -> Reply:
    alias = ctx.args["channel"]
    channels = ctx.bot.config.channels
    if alias not in channels:
        known = ", ".join(sorted(channels)) or "none configured"
        raise CommandError(f"no channel alias '{user(alias)}' (known: {known})")
    key = f"announce:{uuid.uuid4().hex}"
    try:
        routes = await ctx.bot.notices.routes([alias], strict=True)
        await ctx.bot.notices.post(alias, Reply(text=user(" ".join(ctx.args["text"]))), key=key)
    except TransientError as exc:
        raise CommandError(f"Nothing was posted: {exc}. Try again in a minute.") from None
    return Reply(template="notices_announce.j2", level=Level.OK if routes else Level.WARNING,
                 data={"channel": alias, "key": key,
                       "routes": [f"{platform} ({channel})" for platform, channel in routes]})


@command(
    "notices pending",
    summary="Notice messages not delivered yet, or given up on",
    options=[Opt("limit", kind="int", default=40, min_value=1, max_value=500,
                 help="at most this many rows")],
    examples=["notices pending"],
)
async def pending(ctx: Context) -> Reply:
    rows = await ctx.bot.notices.unfinished(ctx.args["limit"] + 1)
    now = utcnow()
    shown = rows[:ctx.args["limit"]]
    table = Table(["notice", "step", "where", "status", "age", "tries", "next", "last error"], [
        [r.key, f"{r.step} {r.kind}", f"{r.platform} {r.channel_id}", r.status,
         format_duration((now - r.created_at).total_seconds()), str(r.attempts),
         "-" if r.status != "pending" else
         ("now" if r.next_at <= now else "in " + format_duration((r.next_at - now)
                                                                   .total_seconds())),
         (r.last_error or "-")[:ERROR_WIDTH]] for r in shown],
        omitted=len(rows) - len(shown))
    failed = sum(1 for r in shown if r.status == "failed")
    return Reply(template="notices_pending.j2", table=table if shown else None,
                 level=Level.WARNING if failed else Level.INFO, visibility=Visibility.EPHEMERAL,
                 data={"count": len(shown), "failed": failed, "more": table.omitted})
