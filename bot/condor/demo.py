"""A fake schedd and collector made of real ``classad2.ClassAd`` objects (demo pools and tests).

:class:`DemoSchedd` mirrors ``htcondor2.Schedd``: the same method signatures (``query``, ``act``,
``edit``, ``submit``), the same argument checks, the same result shapes (``act`` returns the
``Total*`` ad, ``submit`` a real ``htcondor2.SubmitResult``). Constraints are evaluated by the
real ClassAd evaluator (``ExprTree(c).eval(ad) is True``: Undefined never matches), projections
are honoured (only the projected attributes come back, in fresh ads) and so is ``limit``. The
worker code path is therefore the same for a real pool and for the demo.

``submit`` builds the job's ``Environment`` the way condor_submit does, from ``environment``
and ``getenv``, importing variables from *this* process's environment (the worker's), so a
test can see in the ad what a real pool would have stored.

It also reproduces two pitfalls of the real bindings on purpose: a plain-string ``reason`` given
to ``act`` is dropped (only ``("text", subcode)`` is used), and a constraint that does not parse
fails with an ``HTCondorException`` with an empty message.

Time is simulated lazily: removed jobs that were running linger in state X for
``remove_delay`` seconds before they leave the queue (idle and held ones leave at once), which
is what ``condor resubmit`` has to wait for.

:func:`seed_queue` builds a deterministic, GWCelery-like queue of any size (a few hundred jobs
for the demo, 100,000 for the benchmark); :func:`seed_slots` the startd slots the demo collector
answers with.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import classad2
import htcondor2

from bot.condor.demoseed import seed_queue as seed_queue
from bot.condor.demoseed import seed_slots as seed_slots
from bot.condor.demosubmit import ad_from_submit
from bot.condor.models import DEMO_SCHEDD, PoolSpec

CONDOR_VERSION = "$CondorVersion: 25.14.1 2026-09-24 BuildID: shiftbot-demo $"
DEFAULT_SCHEDD = DEMO_SCHEDD
_DEFAULT_ITEMDATA = object()


class _Job:
    """One queue entry: the ad, its (interned) attribute names, and when it leaves the queue."""

    __slots__ = ("ad", "gone_at", "keys")

    def __init__(self, ad: classad2.ClassAd, keys: frozenset[str]) -> None:
        self.ad = ad
        self.keys = keys
        self.gone_at: float | None = None


class DemoSchedd:
    """A schedd in memory. Same signatures as ``htcondor2.Schedd``; see the module docstring."""

    def __init__(self, jobs: Iterable[classad2.ClassAd] = (), *, name: str = DEFAULT_SCHEDD,
                 user: str = "emfollow", remove_delay: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.user = user
        self.remove_delay = remove_delay
        self.clock = clock
        self._jobs: dict[tuple[int, int], _Job] = {}
        self._keysets: dict[frozenset[str], frozenset[str]] = {}
        self._next_cluster = 1
        for ad in jobs:
            self.add(ad)

    # ------------------------------------------------------------------ fake-only helpers

    def add(self, ad: classad2.ClassAd) -> None:
        """Put a job ad in the queue (it must carry ClusterId and ProcId)."""
        key = (int(ad["ClusterId"]), int(ad["ProcId"]))
        self._jobs[key] = _Job(ad, self._intern(ad))
        self._next_cluster = max(self._next_cluster, key[0] + 1)

    def __len__(self) -> int:
        self._reap()
        return len(self._jobs)

    def location(self) -> classad2.ClassAd:
        """The ad ``Collector.locate`` would return for this schedd."""
        return classad2.ClassAd({"MyAddress": "<127.0.0.1:0?alias=demo>", "Name": self.name,
                                 "MyType": "Scheduler", "CondorVersion": CONDOR_VERSION})

    def _intern(self, ad: classad2.ClassAd) -> frozenset[str]:
        keys = frozenset(ad)
        return self._keysets.setdefault(keys, keys)

    def _reap(self) -> None:
        now = self.clock()
        gone = [key for key, job in self._jobs.items()
                if job.gone_at is not None and job.gone_at <= now]
        for key in gone:
            del self._jobs[key]

    def _compile(self, constraint: Any) -> Callable[[classad2.ClassAd], Any]:
        if isinstance(constraint, classad2.ExprTree):
            return constraint.eval
        text = str(constraint).strip() if constraint is not None else "true"
        try:
            return classad2.ExprTree(text or "true").eval
        except classad2.ClassAdException:
            # What the real schedd does with an unparsable constraint: an empty message.
            raise htcondor2.HTCondorException("") from None

    # ------------------------------------------------------------------ htcondor2.Schedd API

    def query(self, constraint: str | classad2.ExprTree = "True", projection: list[str] = [],  # noqa: B006
              callback: Callable[[classad2.ClassAd], Any] | None = None, limit: int = -1,
              opts: htcondor2.QueryOpt = htcondor2.QueryOpt.Default) -> list[Any]:
        if not isinstance(projection, list):
            raise TypeError("projection must be a list")
        if int(opts) != int(htcondor2.QueryOpt.Default):
            raise NotImplementedError("the demo schedd implements QueryOpt.Default only")
        self._reap()
        matches = self._compile(constraint)
        wanted = [str(p) for p in projection]
        limit = int(limit)
        results: list[Any] = []
        make = classad2.ClassAd
        found = 0
        for job in self._jobs.values():
            if 0 <= limit <= found:
                break
            ad = job.ad
            if matches(ad) is not True:
                continue
            found += 1
            keys = job.keys
            result = make({k: ad[k] for k in wanted if k in keys}) if wanted else make(str(ad))
            # The real bindings apply the callback after the whole list arrived; the result
            # is the same, and applying it here keeps the fake's memory down at 100k jobs.
            if callback is not None:
                result = callback(result)
                if result is None:
                    continue
            results.append(result)
        return results

    def act(self, action: htcondor2.JobAction, job_spec: list[str] | str | classad2.ExprTree | int,
            reason: str | tuple[str, int] | None = None) -> classad2.ClassAd:
        if not isinstance(action, htcondor2.JobAction):
            raise TypeError("action must be a JobAction")
        text: str | None
        subcode: int | None = None
        if reason is None:
            text = "Python-initiated action"
        elif isinstance(reason, tuple):
            text, code = reason
            subcode = int(code) if code is not None else None
        else:
            text = None  # htcondor2 drops a plain-string reason; so do we
        self._reap()
        targets, not_found = self._select(job_spec)
        totals = {"TotalError": 0, "TotalSuccess": 0, "TotalNotFound": not_found,
                  "TotalBadStatus": 0, "TotalAlreadyDone": 0, "TotalPermissionDenied": 0}
        changed = 0
        for job in targets:
            outcome = self._apply(action, job, text, subcode)
            totals[outcome] += 1
            if outcome == "TotalSuccess":
                changed += 1
                job.keys = self._intern(job.ad)
        result = classad2.ClassAd(totals)
        result["TotalJobAds"] = len(targets)
        result["TotalChangedAds"] = changed
        return result

    def edit(self, job_spec: list[str] | str | classad2.ExprTree | int, attr: str,
             value: str | classad2.ExprTree, flags: Any = None) -> int:
        if not isinstance(value, (str, classad2.ExprTree)):
            raise TypeError("value must be a string or an ExprTree")
        expr = value if isinstance(value, classad2.ExprTree) else classad2.ExprTree(value)
        self._reap()
        targets, _ = self._select(job_spec)
        for job in targets:
            job.ad[attr] = expr
            job.keys = self._intern(job.ad)
        return len(targets)

    def submit(self, description: htcondor2.Submit, count: int = 0, spool: bool = False,
               itemdata: Any = _DEFAULT_ITEMDATA,
               queue: str | None = None) -> htcondor2.SubmitResult:
        if not isinstance(description, htcondor2.Submit):
            raise TypeError("description must be an htcondor2.Submit object")
        if queue is not None and (count or itemdata is not _DEFAULT_ITEMDATA):
            raise ValueError("queue and count/itemdata are mutually exclusive")
        if itemdata is not _DEFAULT_ITEMDATA and itemdata is not None:
            raise NotImplementedError("the demo schedd does not implement itemdata")
        qargs = (queue if queue is not None else description.getQArgs()).strip()
        qargs = re.sub(r"(?i)^queue\s*", "", qargs)
        if count:
            procs = int(count)
        elif not qargs:
            procs = 1
        elif qargs.isdigit():
            procs = int(qargs)
        else:
            raise NotImplementedError(f"the demo schedd only implements 'queue N' (got {qargs!r})")
        self._reap()
        cluster = self._next_cluster
        self._next_cluster += 1
        now = int(self.clock())
        commands = {k: str(v) for k, v in description.items()}
        for proc in range(procs):
            ad = ad_from_submit(commands, cluster, proc, self.user, now, self.name)
            if spool:
                ad["JobStatus"] = 5
                ad["HoldReason"] = "Spooling input data files"
                ad["HoldReasonCode"] = 16
                ad["HoldReasonSubCode"] = 0
            self.add(ad)
        cluster_ad = classad2.ClassAd({"ClusterId": cluster, "Owner": self.user, "QDate": now})
        return htcondor2.SubmitResult(cluster, 0, procs, cluster_ad, None)

    # ------------------------------------------------------------------ internals

    def _select(self, job_spec: Any) -> tuple[list[_Job], int]:
        """Mirror htcondor2's job_spec handling; returns (jobs, how many ids were not found)."""
        if isinstance(job_spec, list):
            if not all(isinstance(i, str) for i in job_spec):
                raise TypeError("All elements of the job_spec list must be strings.")
            if all(re.fullmatch(r"\d+\.\d+", i) for i in job_spec):
                found, missing = [], 0
                for item in job_spec:
                    cluster, proc = item.split(".")
                    job = self._jobs.get((int(cluster), int(proc)))
                    if job is None:
                        missing += 1
                    else:
                        found.append(job)
                return found, missing
            clauses = []
            for item in job_spec:
                if re.fullmatch(r"\d+", item):
                    clauses.append(f"(ClusterId == {item})")
                elif re.fullmatch(r"\d+\.\d+", item):
                    cluster, proc = item.split(".")
                    clauses.append(f"(ClusterId == {cluster} && ProcId == {proc})")
                else:
                    raise ValueError("All elements of the job_spec list must be strings of the "
                                     "form clusterID[.procID]")
            return self._matching(" || ".join(clauses)), 0
        if isinstance(job_spec, int):
            return self._matching(f"ClusterId == {job_spec}"), 0
        if isinstance(job_spec, classad2.ExprTree):
            return self._matching(job_spec), 0
        if isinstance(job_spec, str):
            if re.fullmatch(r"\d+\.\d+", job_spec):
                return self._select([job_spec])
            if re.fullmatch(r"\d+", job_spec):
                return self._matching(f"ClusterId == {job_spec}"), 0
            try:
                classad2.ExprTree(job_spec)
            except classad2.ClassAdException:
                raise ValueError("The job_spec string must be a clusterID[.procID] or the "
                                 "string form of an ExprTree.") from None
            return self._matching(job_spec), 0
        raise TypeError("The job_spec must be list of strings, a string, an int, or an ExprTree.")

    def _matching(self, constraint: Any) -> list[_Job]:
        matches = self._compile(constraint)
        return [job for job in self._jobs.values() if matches(job.ad) is True]

    def _apply(self, action: htcondor2.JobAction, job: _Job, text: str | None,
               subcode: int | None) -> str:
        ad, now = job.ad, int(self.clock())
        status = int(ad.get("JobStatus", 1))
        by = f"(by user {self.user})"
        if action == htcondor2.JobAction.Hold:
            if status == 5:
                return "TotalAlreadyDone"
            if status in (3, 4):
                return "TotalBadStatus"
            _leave_slot(ad)
            ad["JobStatus"] = 5
            ad["HoldReason"] = text or f"via condor_hold {by}"
            ad["HoldReasonCode"] = 1
            ad["HoldReasonSubCode"] = subcode or 0
            ad["NumHolds"] = int(ad.get("NumHolds", 0)) + 1
            ad["EnteredCurrentStatus"] = now
            return "TotalSuccess"
        if action == htcondor2.JobAction.Release:
            if status != 5:
                return "TotalBadStatus"
            for attr in ("HoldReason", "HoldReasonCode", "HoldReasonSubCode"):
                if attr in job.keys:
                    ad["Last" + attr] = ad[attr]
                    del ad[attr]
            ad["JobStatus"] = 1
            ad["ReleaseReason"] = text or f"via condor_release {by}"
            ad["EnteredCurrentStatus"] = now
            return "TotalSuccess"
        if action == htcondor2.JobAction.Remove:
            if status == 3:
                return "TotalAlreadyDone"
            was_running = status in (2, 6, 7)
            _leave_slot(ad)
            ad["JobStatus"] = 3
            ad["RemoveReason"] = text or f"via condor_rm {by}"
            ad["EnteredCurrentStatus"] = now
            job.gone_at = self.clock() + (self.remove_delay if was_running else 0.0)
            return "TotalSuccess"
        if action == htcondor2.JobAction.RemoveX:
            if status != 3:
                return "TotalBadStatus"
            job.gone_at = self.clock()
            return "TotalSuccess"
        if action in (htcondor2.JobAction.Vacate, htcondor2.JobAction.VacateFast):
            if status != 2:
                return "TotalBadStatus"
            _leave_slot(ad)
            ad["JobStatus"] = 1
            ad["EnteredCurrentStatus"] = now
            return "TotalSuccess"
        if action == htcondor2.JobAction.Suspend:
            if status != 2:
                return "TotalBadStatus"
            ad["JobStatus"] = 7
            ad["EnteredCurrentStatus"] = now
            return "TotalSuccess"
        if action == htcondor2.JobAction.Continue:
            if status != 7:
                return "TotalBadStatus"
            ad["JobStatus"] = 2
            ad["EnteredCurrentStatus"] = now
            return "TotalSuccess"
        return "TotalError"


def _leave_slot(ad: classad2.ClassAd) -> None:
    if "RemoteHost" in set(ad):
        ad["LastRemoteHost"] = ad["RemoteHost"]
        del ad["RemoteHost"]
    for attr in ("TransferringInput", "TransferringOutput"):
        if attr in set(ad):
            del ad[attr]


class DemoCollector:
    """A collector that knows one schedd and a list of startd slot ads."""

    def __init__(self, schedd: DemoSchedd, slots: Iterable[classad2.ClassAd] = ()) -> None:
        self.schedd = schedd
        self.slots = list(slots)

    def locate(self, daemon_type: htcondor2.DaemonType,
               name: str | None = None) -> classad2.ClassAd | None:
        if daemon_type != htcondor2.DaemonType.Schedd:
            return None
        if name is not None and name != self.schedd.name:
            return None
        return self.schedd.location()

    def query(self, ad_type: htcondor2.AdType = htcondor2.AdType.Any, constraint: str | None = None,
              projection: list[str] | None = None,
              statistics: str | None = None) -> list[classad2.ClassAd]:
        if not isinstance(ad_type, htcondor2.AdType):
            raise TypeError("ad_type must be an htcondor.AdType")
        if ad_type not in (htcondor2.AdType.Startd, htcondor2.AdType.Slot, htcondor2.AdType.Any):
            return []
        matches = classad2.ExprTree(constraint or "true").eval
        out = []
        for slot in self.slots:
            if matches(slot) is not True:
                continue
            if projection:
                keys = set(slot)
                out.append(classad2.ClassAd({k: slot[k] for k in projection if k in keys}))
            else:
                out.append(classad2.ClassAd(str(slot)))
        return out


# ------------------------------------------------------------------------- submit -> ad


def build(spec: PoolSpec,
          clock: Callable[[], float] = time.time) -> tuple[DemoSchedd, DemoCollector]:
    """The demo pool of a spec: a seeded schedd and a collector that knows it."""
    schedd = DemoSchedd(seed_queue(spec.demo_jobs, spec.demo_seed, clock()),
                        name=spec.schedd or DEFAULT_SCHEDD, remove_delay=spec.demo_remove_delay,
                        clock=clock)
    return schedd, DemoCollector(schedd, seed_slots(spec.demo_seed))


def iter_jobs(schedd: DemoSchedd) -> Iterator[classad2.ClassAd]:
    """Every job ad, in queue order (tests and the benchmark inspect the fake directly)."""
    schedd._reap()
    for job in schedd._jobs.values():
        yield job.ad
