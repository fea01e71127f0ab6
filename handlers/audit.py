"""audit: who ran what, what the gate decided, how it ended."""

from __future__ import annotations

from datetime import timedelta

from bot.commands import Context, Family, Opt, command
from bot.reply import Reply, Table

FAMILY = Family("audit", "The audit trail", order=80)


@command(
    "audit",
    summary="Recent invocations and decisions",
    options=[
        Opt("since", kind="duration", help="how far back, e.g. 30m, 24h, 7d", default=86400),
        Opt("who", help="a person (or platform:id of an unknown user)"),
        Opt("command", help="a permission glob, e.g. 'condor.*'", pattern=r"[a-z0-9_.*?-]+"),
        Opt("limit", kind="int", help="at most this many entries (1-500)", default=25),
    ],
    examples=["audit", "audit --since 7d --command 'condor.*'", "audit --who alice --limit 5"],
)
async def audit(ctx: Context) -> Reply:
    limit = max(1, min(500, ctx.args["limit"]))
    entries = await ctx.bot.audit.query(
        since=timedelta(seconds=ctx.args["since"]), who=ctx.args["who"],
        command_glob=ctx.args["command"], limit=limit,
    )
    if not entries:
        return Reply("No audit entries match.")
    rows = []
    for e in entries:
        duration = f"{e.duration_ms:.0f} ms" if e.duration_ms is not None else ""
        rows.append([
            f"{e.ts:%Y-%m-%d %H:%M:%S}", e.person or f"{e.platform}:{e.platform_user}",
            e.command or "?", e.decision, e.outcome or "", duration, e.approver or "",
            e.request_id or "",
        ])
    return Reply(f"Newest first, times in UTC; {len(entries)} shown.", title="Audit",
                 table=Table(["time", "who", "command", "decision", "outcome", "took",
                              "approver", "request"], rows))
