"""Why is this job not running? An approximation of ``condor_q -better-analyze`` (worker side).

The bindings have no analyze call, so: fetch the job with the attributes analysis needs, then,
when the pool has a collector, fetch the startd slots (projected to what matchmaking reads),
count the slots that match both ways (``symmetricMatch``), and evaluate each top-level clause of
the job's flattened ``Requirements`` against every slot to say which clause fails.

Limitation (documented for users): ``ExprTree.eval(job, slot)`` resolves ``TARGET.X`` in the slot
but does not fall back to the slot for *unscoped* names the job lacks, as the negotiator does;
condor_submit writes ``TARGET.`` prefixes, hand-written requirements may not. Such clauses show
up as "undefined" rather than failing silently.
"""

from __future__ import annotations

import time
from typing import Any

import classad2
import htcondor2

from bot.condor import states
from bot.condor.backend import Backend
from bot.condor.errors import CondorError, CondorNotFound, translate
from bot.condor.models import Analysis, Clause, MatchReport

JOB_ATTRS = [
    "ClusterId", "ProcId", "Owner", "JobBatchName", "JobStatus", "EnteredCurrentStatus",
    "JobUniverse", "RemoteHost", "LastRemoteHost", "HoldReason", "HoldReasonCode",
    "HoldReasonSubCode", "NumHolds", "NumJobStarts", "LastRejMatchReason", "LastRejMatchTime",
    "LastMatchTime", "RequestCpus", "RequestMemory", "RequestDisk", "RequestGPUs",
    "Requirements", "TransferringInput", "TransferringOutput",
]
SLOT_ATTRS = [
    "Name", "Machine", "State", "Activity", "Requirements", "START", "WithinResourceLimits",
    "IsValidCheckpointPlatform", "Cpus", "Memory", "Disk", "GPUs", "Arch", "OpSys",
]
REQUESTS = [("Cpus", "RequestCpus"), ("Memory", "RequestMemory"), ("Disk", "RequestDisk"),
            ("GPUs", "RequestGPUs")]


def split_and(text: str) -> list[str]:
    """Top-level ``&&`` clauses of an expression, outer parentheses removed."""
    clauses, depth, start, i, quote = [], 0, 0, 0, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith("&&", i):
            clauses.append(text[start:i])
            start = i + 2
            i += 1
        i += 1
    clauses.append(text[start:])
    return [_unwrap(c.strip()) for c in clauses if c.strip()]


def _unwrap(text: str) -> str:
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text  # "(a) && (b)" style: the first paren closes early
        text = text[1:-1].strip()
    return text


def _value(ad: Any, attr: str) -> Any:
    try:
        value = ad[attr]
    except KeyError:
        return None
    if isinstance(value, classad2.ExprTree):
        return str(value)
    if isinstance(value, classad2.Value):
        return None
    return value


def _int(ad: Any, attr: str) -> int | None:
    value = _value(ad, attr)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _job_query(backend: Backend, constraint: str, extra: list[str]) -> list[Any]:
    try:
        return list(backend.schedd().query(constraint, JOB_ATTRS + extra, limit=1))
    except Exception as exc:
        backend.forget()
        raise translate(exc, daemon=backend.spec.label) from None


def analyze(backend: Backend, constraint: str, job_label: str) -> Analysis:
    """``constraint`` selects the job (scope included); ``job_label`` names it in messages."""
    ads = _job_query(backend, constraint, [])
    if not ads:
        scoped = " within this pool's scope" if backend.spec.scope else ""
        raise CondorNotFound(f"job {job_label} is not in the queue of {backend.spec.label}"
                             f"{scoped} (finished jobs are in condor_history)")
    job = ads[0]
    status = states.letter_of({k: _value(job, k) for k in
                               ("JobStatus", "TransferringInput", "TransferringOutput")})
    universe = _int(job, "JobUniverse") or 5
    worker = _value(job, "RemoteHost") or _value(job, "LastRemoteHost") or ""
    if universe in states.LOCAL_UNIVERSES and not worker:
        worker = "(local)"
    requirements = ""
    if "Requirements" in set(job):
        requirements = " ".join(str(job.flatten(job.lookup("Requirements"))).split())
    result = Analysis(
        job=f"{_int(job, 'ClusterId')}.{_int(job, 'ProcId')}", status=status,
        since=_int(job, "EnteredCurrentStatus"), now=time.time(),
        owner=str(_value(job, "Owner") or ""), batch=str(_value(job, "JobBatchName") or ""),
        universe=universe, worker=str(worker),
        hold_reason=str(_value(job, "HoldReason") or ""),
        hold_code=_int(job, "HoldReasonCode"), hold_subcode=_int(job, "HoldReasonSubCode"),
        num_holds=_int(job, "NumHolds"), num_job_starts=_int(job, "NumJobStarts"),
        last_rej_match_reason=str(_value(job, "LastRejMatchReason") or ""),
        last_rej_match_time=_int(job, "LastRejMatchTime"),
        last_match_time=_int(job, "LastMatchTime"),
        requests={name: _value(job, attr) for name, attr in REQUESTS
                  if _value(job, attr) is not None},
        requirements=requirements,
    )
    if status == "I" and universe not in states.LOCAL_UNIVERSES and backend.collector() is not None:
        result.match = _match(backend, job, constraint)
    return result


def _slots(backend: Backend, projection: list[str]) -> list[Any]:
    collector = backend.collector()
    assert collector is not None
    return list(collector.query(htcondor2.AdType.Startd, "true", projection))


def _match(backend: Backend, job: Any, constraint: str) -> MatchReport:
    label = backend.collector_label
    requirements = job.lookup("Requirements") if "Requirements" in set(job) else None
    job_refs = job.externalRefs(requirements) if requirements is not None else []
    projection = sorted(set(SLOT_ATTRS) | {r.split(".", 1)[1] for r in job_refs
                                           if r.upper().startswith("TARGET.")})
    try:
        slots = _slots(backend, projection)
        # The slots' own expressions may read slot attributes we did not project, and job
        # attributes we did not fetch: one more round for each, never more.
        slot_refs: set[str] = set()
        seen: set[str] = set()
        for slot in slots:
            if "Requirements" not in set(slot):
                continue
            text = str(slot.lookup("Requirements"))
            if text in seen:
                continue
            seen.add(text)
            slot_refs.update(slot.externalRefs(slot.lookup("Requirements")))
        missing_slot = {r for r in slot_refs if "." not in r} - set(projection)
        if missing_slot:
            slots = _slots(backend, sorted(set(projection) | missing_slot))
        job_extra = sorted({r.split(".", 1)[1] for r in slot_refs
                            if r.upper().startswith("TARGET.")} - set(JOB_ATTRS))
        if job_extra:
            refreshed = _job_query(backend, constraint, job_extra)
            if refreshed:
                job = refreshed[0]
    except CondorError as exc:
        return MatchReport(label, 0, 0, 0, 0, 0, error=str(exc))
    except Exception as exc:
        return MatchReport(label, 0, 0, 0, 0, 0,
                           error=str(translate(exc, daemon=label)))
    if requirements is not None:
        requirements = job.lookup("Requirements")
    clauses = split_and(str(job.flatten(requirements))) if requirements is not None else []
    compiled = [(text, classad2.ExprTree(text)) for text in clauses]
    counts = [[0, 0] for _ in compiled]
    job_ok = slot_ok = both = unclaimed = 0
    for slot in slots:
        slot_accepts = job.matches(slot)  # the slot's Requirements, against the job
        job_accepts = slot.matches(job)  # the job's Requirements, against the slot
        job_ok += job_accepts
        slot_ok += slot_accepts
        if slot_accepts and job_accepts:
            both += 1
            unclaimed += _value(slot, "State") == "Unclaimed"
        for index, (_, expr) in enumerate(compiled):
            value = expr.eval(job, slot)
            if value is True:
                counts[index][0] += 1
            elif isinstance(value, classad2.Value):
                counts[index][1] += 1
    report = MatchReport(label, len(slots), job_ok, slot_ok, both, unclaimed,
                         clauses=[Clause(text, ok, undefined)
                                  for (text, _), (ok, undefined) in zip(compiled, counts,
                                                                        strict=True)])
    failing = [c for c in report.clauses if c.slots_ok == 0]
    if failing:
        report.failing = failing[0].text
    elif report.clauses and job_ok == 0:
        report.failing = min(report.clauses, key=lambda c: c.slots_ok).text
    return report
