"""audit: who ran what, what the gate decided, how it ended.

One row per entry, newest first, sized for a chat code block: time (``bot.timezone``, the zone
named) | who | what (the command and its arguments as stored, so redacted; cut at
:data:`ARGUMENTS_WIDTH`) | request (links a request to its decisions) | decision (with the
approver and the outcome) | detail (why it was denied, refused or failed). A refused decision
on someone's request reads as one: bob refused approving alice's request is ``approve k3x9qa
(condor rm 1.21)``, refused; not bob's own ``condor.rm``, denied.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.commands import Context, Family, Opt, command
from bot.lazy import lazy_module
from bot.markup import code, user
from bot.reply import Reply, Table
from bot.timefmt import format_local, zone_name

if TYPE_CHECKING:
    from bot.audit import AuditEntry, AuditPage

# Loaded at first use: listing the commands (help) must not load SQLAlchemy (bot/lazy.py).
audit_log = lazy_module("bot.audit")

FAMILY = Family("audit", "The audit trail", order=80)

DEFAULT_SINCE = 86400
DEFAULT_LIMIT = 25
MAX_LIMIT = 500  # one query's worth, whatever max_table_rows says
ARGUMENTS_WIDTH = 60  # the command line part of "what": enough for job ids and a pool
DETAIL_WIDTH = 100  # denial reasons fit; an exception's long message does not flood the chat
DECISION_COMMANDS = frozenset({"approve", "deny", "confirm", "cancel"})  # handlers/approvals.py


@command(
    "audit",
    summary="Recent invocations and decisions",
    options=[
        Opt("since", kind="duration", help="how far back, e.g. 30m, 24h, 7d",
            default=DEFAULT_SINCE),
        Opt("who", help="a person (or platform:id of an unknown user)"),
        Opt("command", help="a permission glob, e.g. 'condor.*'", pattern=r"[a-z0-9_.*?-]+"),
        Opt("limit", kind="int", help="at most this many entries (at most one table's rows)",
            default=DEFAULT_LIMIT, min_value=1, max_value=MAX_LIMIT),
        Opt("before", kind="int", help="only entries older than this entry number (the reply "
            "names the next page)", min_value=1),
    ],
    examples=["audit", "audit --since 7d --command 'condor.*'", "audit --who alice --limit 5"],
)
async def audit(ctx: Context) -> Reply:
    asked = ctx.args["limit"]  # 1..MAX_LIMIT: the parser refuses the rest with usage
    # Never fetch more than one table shows: the renderer would cut the rest, and the reply
    # would count entries nobody can see.
    limit = min(asked, ctx.bot.config.bot.max_table_rows, MAX_LIMIT)
    page = await ctx.bot.audit.page(
        since=timedelta(seconds=ctx.args["since"]), who=ctx.args["who"],
        command_glob=ctx.args["command"], limit=limit, before=ctx.args["before"],
    )
    zone = ctx.bot.config.bot.timezone
    scope = _scope(ctx.args)
    if not page.entries:
        return Reply(f"No audit entries {scope}.")
    rows = [_row(entry, zone) for entry in page.entries]
    return Reply(_summary(page, scope, asked, limit, ctx.args, zone_name(zone)), title="Audit",
                 table=Table(["time", "who", "what", "request", "decision", "detail"], rows))


def _summary(page: AuditPage, scope: str, asked: int, limit: int, args: dict[str, Any],
             zone: str) -> str:
    """What the table holds, counted honestly, and how to see what it does not."""
    shown = len(page.entries)
    if not page.more:
        if shown == 1:
            return f"The only entry {scope}. Times in {zone}."
        return f"All {shown} entries {scope}, newest first. Times in {zone}."
    newest = "The newest entry" if shown == 1 else f"The newest {shown} entries"
    text = f"{newest} {scope}, newest first; older ones match too. Times in {zone}."
    if asked > limit:
        text += f" --limit {asked} was lowered to {limit}: one table shows at most {limit} rows."
    return text + f" Older: {code(_next_command(args, limit, page.entries[-1].id))}"


def _scope(args: dict[str, Any]) -> str:
    parts = [f"of the last {_duration(args['since'])}"]
    if args["who"]:  # as typed: '--who @channel' must not notify anyone
        parts.append(f"involving {user(args['who'])}")
    if args["command"]:  # a glob: its * and _ are not emphasis
        parts.append(f"for {user(args['command'])}")
    if args["before"] is not None:
        parts.append(f"before entry {args['before']}")
    return " ".join(parts)


def _next_command(args: dict[str, Any], limit: int, oldest: int) -> str:
    words = ["audit"]
    if args["since"] != DEFAULT_SINCE:
        words.append(f"--since {_duration(args['since'])}")
    if args["who"]:
        words.append(f"--who {args['who']}")
    if args["command"]:
        glob = args["command"]
        words.append(f"--command '{glob}'" if any(c in glob for c in "*?") else
                     f"--command {glob}")
    if limit != DEFAULT_LIMIT:
        words.append(f"--limit {limit}")
    words.append(f"--before {oldest}")
    return " ".join(words)


def _duration(seconds: int) -> str:
    """Seconds back as the option is typed (86400 -> 1d), so the next-page command parses."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _row(entry: AuditEntry, zone: str) -> list[str]:
    who = entry.person or f"{entry.platform}:{entry.platform_user}"
    typed = _typed_decision(entry)
    what = " ".join(typed) if typed else _what(entry)
    request = entry.request_id or (typed[1] if typed else "")
    return [format_local(entry.ts, zone, seconds=True), who, what, request, _decision(entry),
            _clip(entry.detail or "", DETAIL_WIDTH)]


def _typed_decision(entry: AuditEntry) -> list[str] | None:
    """``approve k3x9qa``: a typed decision command as typed, so its request id lines up with
    the request's rows (the command's own row stores the id only among its arguments)."""
    command = entry.command
    if command is None or command not in DECISION_COMMANDS or not entry.arguments.startswith("{"):
        return None
    try:
        values = json.loads(entry.arguments)
    except ValueError:
        return None
    if not isinstance(values, dict) or not isinstance(values.get("id"), str):
        return None
    reason = values.get("reason") or ""
    reason = reason if isinstance(reason, str) else " ".join(map(str, reason))
    return [command, values["id"], *([_clip(reason, ARGUMENTS_WIDTH)] if reason else [])]


def _what(entry: AuditEntry) -> str:
    compact = _compact_arguments(entry.arguments)
    if compact is None:  # not JSON: the raw line (unparsable input, a request's text)
        subject = entry.arguments or entry.command or "?"
    else:
        subject = f"{entry.command or '?'} {compact}".rstrip()
    subject = _clip(subject, ARGUMENTS_WIDTH)
    choice = entry.refused_choice
    if choice is None:
        return subject
    return f"{choice} {entry.request_id or '?'} ({subject})"


def _decision(entry: AuditEntry) -> str:
    if entry.refused_choice is not None:
        text = "refused"
    elif entry.approver and entry.decision == audit_log.AuditDecision.DENIED_BY_APPROVER:
        text = f"denied by {entry.approver}"
    elif entry.approver:
        text = f"{entry.decision} by {entry.approver}"
    else:
        text = entry.decision
    if entry.outcome:
        text += f": {entry.outcome}"
        if entry.duration_ms is not None:
            took = entry.duration_ms
            text += f" {took:.0f} ms" if took < 1000 else f" {took / 1000:.1f} s"
    return text


def _compact_arguments(arguments: str) -> str | None:
    """``{"jobs": ["1.21"], "pool": null}`` -> ``jobs=1.21``: the arguments as stored (secrets
    already masked), without the empty ones every row would repeat. None: not a JSON object."""
    if not arguments.startswith("{"):
        return None
    try:
        values = json.loads(arguments)
    except ValueError:
        return None
    if not isinstance(values, dict):
        return None
    parts = []
    for key, value in values.items():
        if value is None or value is False or value == "" or value == []:
            continue
        if value is True:
            parts.append(str(key))  # a flag
        elif isinstance(value, list):  # words, jobs: as typed, one quoted string
            parts.append(f"{key}={_scalar(' '.join(map(str, value)))}")
        else:
            parts.append(f"{key}={_scalar(value)}")
    return " ".join(parts)


def _scalar(value: object) -> str:
    text = str(value)
    if text == "" or any(c.isspace() or c in "\"'," for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
