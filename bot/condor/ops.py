"""What the worker can be asked to do. Runs inside the worker process only.

Every operation takes the pool's :class:`~bot.condor.backend.Backend` and plain parameters,
projects only the attributes it reads, and returns a small picklable result
(:mod:`bot.condor.models`): summaries are computed here, next to the ads, so a 100,000-job queue
never crosses the pipe. Failures are translated into :mod:`bot.condor.errors` before they leave.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import classad2
import htcondor2

from bot.condor import analyze as analysis
from bot.condor import states, submitdesc
from bot.condor.backend import Backend
from bot.condor.constraints import all_of, attr_equals
from bot.condor.errors import CondorRefused, translate
from bot.condor.models import (
    ActionResult,
    Analysis,
    Matched,
    QueueRow,
    QueueSummary,
    SubmitOutcome,
)

log = logging.getLogger(__name__)

# What each step of `condor q` reads.
TOTALS_ATTRS = ["JobStatus", "TransferringInput", "TransferringOutput"]
KEY_ATTRS = ["ClusterId", "ProcId", "EnteredCurrentStatus"]
ROW_ATTRS = [
    "ClusterId", "ProcId", "Owner", "JobBatchName", "JobStatus", "EnteredCurrentStatus",
    "JobUniverse", "RemoteHost", "LastRemoteHost", "HoldReason", "HoldReasonCode",
    "HoldReasonSubCode", "TransferringInput", "TransferringOutput",
]
# A state with at most this many jobs is fetched with full rows at once; bigger ones are
# ranked on three attributes first, then only the rows to show are fetched. (Each query is a
# scan of the whole queue on the schedd; a full row costs about twice a ranking row.)
DIRECT_FETCH = 10_000

ACTIONS = {"hold": htcondor2.JobAction.Hold, "release": htcondor2.JobAction.Release,
           "remove": htcondor2.JobAction.Remove}


class Timer:
    """Counts the time spent inside schedd.query (the benchmark's floor)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.queries = 0

    def query(self, backend: Backend, constraint: str, projection: list[str],
              **kwargs: Any) -> list[Any]:
        schedd = backend.schedd()
        started = time.perf_counter()
        try:
            return list(schedd.query(constraint, projection, **kwargs))
        except Exception as exc:
            backend.forget()
            raise translate(exc, daemon=backend.spec.label) from None
        finally:
            self.seconds += time.perf_counter() - started
            self.queries += 1


def _get(ad: Any, attr: str, default: Any = None) -> Any:
    try:
        value = ad[attr]
    except KeyError:
        return default
    return default if isinstance(value, (classad2.ExprTree, classad2.Value)) else value


def _letter(ad: Any) -> str:
    try:
        status = ad["JobStatus"]
    except KeyError:
        return "?"
    if len(ad) == 1:  # the common case: no TransferringInput/Output attribute at all
        return states.letter(status)
    return states.letter(status, _get(ad, "TransferringInput"), _get(ad, "TransferringOutput"))


def _rank_key(ad: Any) -> tuple[int, int, int]:
    return (_get(ad, "EnteredCurrentStatus", 0) or 0, ad["ClusterId"], ad["ProcId"])


def _row(ad: Any) -> QueueRow:
    universe = _get(ad, "JobUniverse", 5) or 5
    worker = _get(ad, "RemoteHost") or _get(ad, "LastRemoteHost") or ""
    if not worker and universe in states.LOCAL_UNIVERSES:
        worker = "(local)"
    return QueueRow(
        job=f"{ad['ClusterId']}.{ad['ProcId']}", owner=str(_get(ad, "Owner", "")),
        batch=str(_get(ad, "JobBatchName", "") or ""), status=_letter_full(ad),
        since=_get(ad, "EnteredCurrentStatus"), worker=str(worker), universe=int(universe),
        hold_code=_get(ad, "HoldReasonCode"), hold_subcode=_get(ad, "HoldReasonSubCode"),
        hold_reason=str(_get(ad, "HoldReason", "") or ""),
    )


def _letter_full(ad: Any) -> str:
    return states.letter(_get(ad, "JobStatus", 0), _get(ad, "TransferringInput"),
                         _get(ad, "TransferringOutput"))


def q(backend: Backend, constraint: str, letters: tuple[str, ...], max_rows: int) -> QueueSummary:
    """Totals by letter over ``constraint``; the worst ``max_rows`` jobs whose letter is listed.

    Three kinds of queries, each projected: one over every job for the totals (JobStatus and
    the two transfer flags), then per listed state, worst first, either the full rows (small
    states) or a ranking on (EnteredCurrentStatus, ClusterId, ProcId) followed by the full rows
    of just the jobs that will be shown.
    """
    started = time.perf_counter()
    timer = Timer()
    totals = Counter(timer.query(backend, constraint, TOTALS_ATTRS, callback=_letter))
    listed = sum(totals[letter] for letter in letters)
    rows: list[QueueRow] = []
    quota = max_rows
    for letter in states.SEVERITY:
        if quota <= 0:
            break
        count = totals.get(letter, 0)
        if letter not in letters or count == 0:
            continue
        selected = all_of(constraint, states.LETTER_CONSTRAINT[letter])
        if count <= max(DIRECT_FETCH, 4 * quota):
            ads = timer.query(backend, selected, ROW_ATTRS)
        else:
            ranked = timer.query(backend, selected, KEY_ATTRS, callback=_rank_key)
            ranked.sort()
            ads = timer.query(backend, _top_constraint(selected, ranked, quota), ROW_ATTRS)
            wanted = set(ranked[:quota])
            ads = [ad for ad in ads if _rank_key(ad) in wanted]
        ads.sort(key=_rank_key)
        chosen = ads[:quota]
        rows.extend(_row(ad) for ad in chosen)
        quota -= len(chosen)
    return QueueSummary(
        totals={k: v for k, v in totals.items() if v}, total=sum(totals.values()), rows=rows,
        listed=listed, now=time.time(), fetch_seconds=timer.seconds,
        elapsed_seconds=time.perf_counter() - started, queries=timer.queries,
    )


def _top_constraint(selected: str, ranked: list[tuple[int, int, int]], quota: int) -> str:
    """A short constraint covering the first ``quota`` ranked jobs (and a few more at most).

    Short matters: the schedd evaluates it against every job in the queue. The time in state
    of the last wanted job is a threshold that needs no job ids at all, unless many jobs share
    it (a big cluster submitted at once): then the wanted clusters and procs are listed.
    """
    top = ranked[:quota]
    threshold = top[-1][0]
    at_or_before = sum(1 for key in ranked if key[0] <= threshold)  # ranked is sorted
    if threshold > 0 and at_or_before <= max(4 * quota, 100):
        return all_of(selected, f"EnteredCurrentStatus <= {threshold}")
    clusters = ", ".join(str(c) for c in sorted({c for _, c, _ in top}))
    procs = ", ".join(str(p) for p in sorted({p for _, _, p in top}))
    return all_of(selected, f"member(ClusterId, {{{clusters}}}) && member(ProcId, {{{procs}}})")


def count(backend: Backend, constraint: str) -> dict[str, int]:
    """Jobs matching ``constraint`` by letter (resubmit polls this until it is empty)."""
    timer = Timer()
    return dict(Counter(timer.query(backend, constraint, TOTALS_ATTRS, callback=_letter)))


def act(backend: Backend, action: str, constraint: str, requested: list[str] | None,
        reason: str, subcode: int) -> ActionResult:
    """Hold/release/remove the jobs matching ``constraint`` (the scope is part of it).

    The matching jobs are listed first (to report what was asked for but is not there); the
    action itself is sent with the same constraint, so the schedd re-applies the scope.
    """
    timer = Timer()
    found = timer.query(backend, constraint,
                        ["ClusterId", "ProcId", *TOTALS_ATTRS],
                        callback=lambda ad: (f"{ad['ClusterId']}.{ad['ProcId']}", _letter(ad)))
    present = dict(found)
    clusters = {job.split(".")[0] for job in present}
    not_found = [job for job in requested or []
                 if (job not in present if "." in job else job not in clusters)]
    result = ActionResult(action=action, targets=sorted(present, key=_job_sort),
                          not_found=not_found, states=present)
    if not present:
        return result
    try:
        ad = backend.schedd().act(ACTIONS[action], classad2.ExprTree(constraint),
                                  (reason, int(subcode)))
    except Exception as exc:
        backend.forget()
        raise translate(exc, daemon=backend.spec.label) from None
    result.success = int(_get(ad, "TotalSuccess", 0) or 0)
    result.bad_status = int(_get(ad, "TotalBadStatus", 0) or 0)
    result.already_done = int(_get(ad, "TotalAlreadyDone", 0) or 0)
    result.permission_denied = int(_get(ad, "TotalPermissionDenied", 0) or 0)
    result.error = int(_get(ad, "TotalError", 0) or 0)
    return result


def match(backend: Backend, constraint: str, requested: list[str] | None) -> Matched:
    """The jobs ``act`` would touch with the same constraint: the preview of hold/rm."""
    found = Timer().query(backend, constraint, ["ClusterId", "ProcId", "Owner", *TOTALS_ATTRS],
                          callback=lambda ad: (f"{ad['ClusterId']}.{ad['ProcId']}",
                                               _letter(ad), str(_get(ad, "Owner", "?"))))
    found.sort(key=lambda row: _job_sort(row[0]))
    clusters = {job.split(".")[0] for job, _, _ in found}
    present = {job for job, _, _ in found}
    not_found = [job for job in requested or []
                 if (job not in present if "." in job else job not in clusters)]
    return Matched(states={job: letter for job, letter, _ in found},
                   owners={job: owner for job, _, owner in found}, not_found=not_found)


def _job_sort(job: str) -> tuple[int, int]:
    cluster, _, proc = job.partition(".")
    return int(cluster), int(proc or 0)


def submit(backend: Backend, name: str, text: str, attributes: dict[str, str],
           batch: str | None, scope: str | None, refuse_if_present: bool) -> SubmitOutcome:
    """Submit a configured description (never text from chat), one cluster per queue statement."""
    submitdesc.check_attributes(attributes, f"submit description {name}")
    parts = submitdesc.split(text, f"submit description {name}")
    submitdesc.check_initialdir(parts[-1], attributes, f"submit description {name}")
    allowed = backend.spec.getenv_allow
    parts, attributes, rewrites = submitdesc.restrict_description(parts, attributes, allowed)
    for rewrite in rewrites:
        if rewrite.worth_a_warning:
            log.warning("submit description %s: getenv = %s submitted as getenv = %s%s "
                        "(condor.pools.%s.getenv_allow)", name, rewrite.original.strip(),
                        rewrite.value, f"; not allowed: {', '.join(rewrite.dropped)}"
                        if rewrite.dropped else "", backend.spec.name)
    if refuse_if_present and batch:
        present = Timer().query(backend, all_of(scope, attr_equals("JobBatchName", batch)),
                                ["ClusterId"], limit=1)
        if present:
            raise CondorRefused(f"batch {batch} already has jobs in the queue of "
                                f"{backend.spec.label}; use 'condor resubmit {name}' to replace "
                                "them")
    schedd = backend.schedd()
    clusters: list[int] = []
    jobs = 0
    first = ""
    for part in parts:
        try:
            description = htcondor2.Submit(part)
            for key, value in attributes.items():
                description[key] = value
            _enforce_getenv(description, allowed)
            if batch and "batch_name" not in {k.lower() for k in description}:
                description["batch_name"] = batch
            result = schedd.submit(description)
        except Exception as exc:
            backend.forget()
            error = translate(exc, daemon=backend.spec.label)
            if clusters:  # say what is already in the queue: a half-submitted deployment
                error = type(error)(f"{error} (clusters already submitted: "
                                    f"{', '.join(map(str, clusters))})")
            raise error from None
        clusters.append(int(result.cluster()))
        jobs += int(result.num_procs())
        first = first or f"{result.cluster()}.{result.first_proc()}"
    return SubmitOutcome(clusters=clusters, jobs=jobs, batch=batch, first_job=first)


def _enforce_getenv(description: htcondor2.Submit, allowed: tuple[str, ...]) -> None:
    """Last look at the object actually submitted: whatever spelling reached it, ``getenv``
    names only allowed variables (the text and attributes were rewritten already)."""
    for key in list(description):
        if key.lower() in submitdesc.GETENV_KEYS:
            description[key] = submitdesc.restrict_getenv(str(description[key]), allowed).value


def fetch(backend: Backend, constraint: str, projection: list[str]) -> dict[str, float]:
    """The benchmark's floor: one projected query, timed, nothing else done with the ads."""
    started = time.perf_counter()
    ads = Timer().query(backend, constraint, projection)
    return {"count": len(ads), "seconds": time.perf_counter() - started}


def ads(backend: Backend, constraint: str, limit: int = 100) -> list[dict[str, Any]]:
    """Diagnostics and tests: whole job ads (every attribute; expressions as text)."""
    found = Timer().query(backend, constraint, [], limit=int(limit))
    return [{key: str(value) if isinstance(value, (classad2.ExprTree, classad2.Value))
             else value for key, value in ((k, ad[k]) for k in ad)} for ad in found]


def ping(backend: Backend) -> dict[str, Any]:
    return {"pid": os.getpid(), "htcondor": htcondor2.version(), "backend": backend.spec.backend}


def sleep(backend: Backend, seconds: float) -> float:
    """Diagnostics and tests: keep the worker busy (a stand-in for a hung schedd)."""
    time.sleep(float(seconds))
    return float(seconds)


def crash(backend: Backend) -> None:
    """Tests: the worker dies without answering."""
    os._exit(3)


def do_analyze(backend: Backend, constraint: str, job: str) -> Analysis:
    return analysis.analyze(backend, constraint, job)


OPERATIONS: dict[str, Callable[..., Any]] = {
    "q": q, "count": count, "act": act, "submit": submit, "analyze": do_analyze,
    "fetch": fetch, "ads": ads, "match": match, "ping": ping, "sleep": sleep, "crash": crash,
}
