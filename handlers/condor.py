"""condor: the HTCondor queue as a shifter needs it (q, analyze, hold/release/rm, submit).

Every HTCondor call runs in a worker process per pool (bot/condor/worker.py) with a deadline;
this module only validates, calls :class:`bot.condor.service.CondorService` and formats. It does
not import htcondor2 or classad2 (``import handlers.condor`` stays cheap); permissions,
confirmation of ``rm``/``resubmit`` and the audit trail are the core's job.
"""

from __future__ import annotations

import re
from typing import Any

from bot.commands import Arg, CommandError, Context, Family, Opt, command
from bot.condor import holdcodes, states
from bot.condor.errors import CondorError
from bot.condor.models import Analysis, QueueRow
from bot.condor.service import CondorService
from bot.render import format_duration
from bot.reply import Level, Reply, Table

FAMILY = Family("condor", "HTCondor queues and jobs", order=20)

REASON_WIDTH = 70
_ERROR_FROM = re.compile(r"^Error from [^:]+:\s*")


# ------------------------------------------------------------------------ lifecycle


async def startup(bot: Any) -> None:
    if bot.config.condor.pools:
        bot.services.add(CondorService.from_config(bot.config))


async def shutdown(bot: Any) -> None:
    service = bot.services.pop(CondorService)
    if service is not None:
        await service.close()


def service_of(ctx: Context) -> CondorService:
    service = ctx.bot.services.get(CondorService)
    if service is None:
        if not ctx.bot.config.condor.pools:
            raise CommandError("No HTCondor pool is configured (the condor: section is empty).")
        service = ctx.bot.services.add(CondorService.from_config(ctx.bot.config))
    return service


class _Failures:
    """``async with _Failures():`` turns CondorError into the core's one-line CommandError."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, CondorError):
            raise CommandError(str(exc)) from None
        return False


# ------------------------------------------------------------------------ formatting


def short_reason(code: int | None, reason: str, width: int = REASON_WIDTH) -> str:
    """``34 JobOutOfResources: Job has gone over cgroup memory limit of 16384 ...``"""
    if not reason and code is None:
        return ""
    text = _ERROR_FROM.sub("", " ".join(reason.split()))
    if code is not None:
        head = f"{code} {holdcodes.label(code)}"
        text = f"{head}: {text}" if text else head
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def _age(now: float, since: int | None) -> str:
    return format_duration(now - since) if since else "-"


def _row(row: QueueRow, now: float) -> list[str]:
    return [row.job, row.owner, row.batch or "-", row.status, _age(now, row.since),
            row.worker or "-", short_reason(row.hold_code, row.hold_reason) if row.status == "H"
            else ""]


def _totals(totals: dict[str, int]) -> str:
    shown = [f"{letter} {totals[letter]}" for letter in states.LETTERS if totals.get(letter)]
    shown += [f"{k} {v}" for k, v in totals.items() if k not in states.LETTERS]
    return ", ".join(shown) if shown else "none"


def _megabytes(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value / 1024:.3g} GB" if value >= 1024 else f"{value:g} MB"
    return str(value)


def _requests(requests: dict[str, Any]) -> str:
    parts = []
    for name, value in requests.items():
        if name == "Memory":
            parts.append(f"memory {_megabytes(value)}")
        elif name == "Disk":  # KiB
            numeric = isinstance(value, (int, float))
            parts.append(f"disk {_megabytes(value / 1024) if numeric else value}")
        else:
            parts.append(f"{name.lower()} {value}")
    return ", ".join(parts) or "-"


def verdict(a: Analysis) -> str:
    """What the shifter should conclude, in one or two sentences."""
    if a.status == "H":
        entry = holdcodes.HOLD_CODES.get(a.hold_code or -1)
        hint = f" Usually: {entry.hint}." if entry and entry.hint else ""
        return f"Held: it will not run until released.{hint}"
    if a.status in ("R", "<", ">"):
        return f"Running on {a.worker or 'an unknown slot'}: nothing blocks it."
    if a.status == "X":
        return ("Removed, still leaving the queue: if this lasts, the execute node or the "
                "shadow is stuck (condor rm again forces it in HTCondor >= 9 with -forcex).")
    if a.status == "C":
        return "Completed, kept in the queue by its leave_in_queue policy."
    if a.status == "S":
        return "Suspended by the execute node's policy; it resumes when the node allows it."
    if a.universe in states.LOCAL_UNIVERSES:
        return ("A local-universe job waiting: the schedd starts these itself; look at the "
                "schedd's log (START_LOCAL_UNIVERSE) if it stays idle.")
    m = a.match
    if m is None:
        return ("No collector configured for this pool, so matching slots cannot be counted; "
                + (f"the last match attempt said: {a.last_rej_match_reason}."
                   if a.last_rej_match_reason else "no match attempt is recorded yet."))
    if m.error:
        return f"Could not ask the collector ({m.error}); matching was not checked."
    if m.slots == 0:
        return "The collector returned no slots at all: is the pool up?"
    if m.failing and not any(c.slots_ok for c in m.clauses if c.text == m.failing):
        return f"No slot satisfies '{m.failing}': change the requirement or the request."
    if m.job_side_ok == 0:
        return ("Every clause of the requirements is met by some slot, but no slot meets all of "
                f"them together (the most selective clause is '{m.failing}').")
    if m.matching == 0:
        return (f"{m.job_side_ok} slots satisfy the job's requirements but none accepts the job "
                "(their START or requirements reject it).")
    if m.matching_unclaimed == 0:
        return (f"{m.matching} slots match, all busy: the job waits for one of them to free up "
                "(or for a higher priority).")
    return (f"{m.matching_unclaimed} unclaimed slots match: it should start at the next "
            "negotiation cycle; if it does not, check the submitter's priority.")


# ------------------------------------------------------------------------ commands

_STATUS = tuple(states.STATUS_CHOICES)
_POOL_OPT = Opt("pool", help="pool name from the config (default: the default pool)")


@command(
    "condor q", summary="Jobs by state, then the jobs that are not running (worst first)",
    args=[Arg("pool", help="pool name from the config", required=False)],
    options=[
        Opt("owner", kind="text", max_length=100, help="only this owner's jobs"),
        Opt("batch", kind="text", max_length=200, help="only this JobBatchName"),
        Opt("status", kind="choice", choices=_STATUS, help="only jobs in this state"),
        Opt("constraint", kind="text", max_length=1000,
            help="a ClassAd expression, ANDed with the pool's scope"),
        Opt("all", kind="flag", help="list running jobs too"),
    ],
    help="Totals use condor_q's letters: R running, I idle, H held, C completed, X removed, "
         "S suspended, > and < transferring output/input. The table lists the jobs that are "
         "not running, held first, longest in their state first, with the worker to report "
         "(RemoteHost, else LastRemoteHost).",
    examples=["condor q", "condor q --status held", "condor q --owner emfollow --all",
              "condor q gwcelery --batch gwcelery",
              "condor q --constraint 'RequestMemory > 8192'"],
    slow=True, timeout=120,
)
async def q(ctx: Context) -> Reply:
    service = service_of(ctx)
    args = ctx.args
    max_rows = ctx.bot.config.bot.max_table_rows
    async with _Failures():
        spec = service.pool(args["pool"])
        summary = await service.q(
            spec.name, owner=args["owner"], batch=args["batch"],
            statuses=[args["status"]] if args["status"] else None,
            constraint=args["constraint"], include_running=args["all"], max_rows=max_rows)
    filters = [f"{name} {args[name]}" for name in ("owner", "batch", "status", "constraint")
               if args[name]]
    rows = [_row(row, summary.now) for row in summary.rows]
    held = summary.totals.get("H", 0)
    data = {
        "pool": spec.name, "schedd": spec.label, "scope": spec.scope, "filters": filters,
        "total": summary.total, "totals": _totals(summary.totals), "listed": summary.listed,
        "shown": len(rows), "omitted": summary.omitted, "include_running": args["all"],
        "status": args["status"], "held": held,
        # For the benchmark and the curious: time inside schedd.query, and in the worker.
        "fetch_seconds": summary.fetch_seconds, "worker_seconds": summary.elapsed_seconds,
        "queries": summary.queries,
    }
    table = Table(["job", "owner", "batch", "st", "in state", "worker", "hold reason"], rows,
                  omitted=summary.omitted) if rows else None
    level = Level.WARNING if held else Level.INFO
    return Reply(title=f"condor q {spec.name}", template="condor_q.j2", data=data, table=table,
                 level=level)


@command(
    "condor analyze", summary="Why a job is not running (an approximation of -better-analyze)",
    args=[Arg("job", kind="jobid", help="1234.0 (1234 means its first job)"),
          Arg("pool", help="pool name from the config", required=False)],
    help="Shows the state and how long, the hold reason with its code explained, job starts, "
         "the last match rejection, the requested resources and, when the pool has a "
         "collector, how many slots match and which requirement clause no slot satisfies.",
    examples=["condor analyze 1.21", "condor analyze 2.9 gwcelery"],
    slow=True, timeout=120,
)
async def analyze(ctx: Context) -> Reply:
    service = service_of(ctx)
    async with _Failures():
        spec = service.pool(ctx.args["pool"])
        a = await service.analyze(spec.name, ctx.args["job"])
    match = a.match
    data = {
        "pool": spec.name, "job": a.job, "status": a.status,
        "status_name": states.NAMES.get(a.status, a.status), "age": _age(a.now, a.since),
        "owner": a.owner, "batch": a.batch or "-",
        "universe": states.UNIVERSES.get(a.universe, str(a.universe)), "worker": a.worker,
        "hold_reason": a.hold_reason,
        "hold_explained": holdcodes.explain(a.hold_code, a.hold_subcode) if a.status == "H"
        else "", "num_holds": a.num_holds, "starts": a.num_job_starts,
        "last_rejection": a.last_rej_match_reason,
        "last_rejection_age": _age(a.now, a.last_rej_match_time)
        if a.last_rej_match_time else "",
        "requests": _requests(a.requests), "requirements": a.requirements,
        "match": match, "verdict": verdict(a),
    }
    table = None
    if match is not None and match.clauses and not match.error:
        table = Table(["requirement clause", "slots ok", "undefined"],
                      [[c.text, str(c.slots_ok), str(c.undefined or "")] for c in match.clauses])
    level = Level.WARNING if a.status in ("H", "I", "X") else Level.INFO
    return Reply(title=f"condor analyze {a.job}", template="condor_analyze.j2", data=data,
                 table=table, level=level)


@command(
    "condor pools", summary="The configured pools, their scope and submit descriptions",
    examples=["condor pools"],
)
async def pools(ctx: Context) -> Reply:
    service = service_of(ctx)
    rows = []
    for name, spec in service.pools.items():
        pool_config = service.config.pools[name]
        state = service.worker_state(name)
        rows.append([name + (" (default)" if name == service.default_pool else ""),
                     spec.backend, spec.label.removeprefix("schedd "), spec.scope or "-",
                     f"{spec.timeout:g} s", ", ".join(pool_config.submit) or "-", state])
    return Reply(title="HTCondor pools", table=Table(
        ["pool", "backend", "schedd", "scope", "deadline", "submit", "worker"], rows))
