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

import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import classad2
import htcondor2

from bot.condor.jobenv import job_environment
from bot.condor.models import DEMO_SCHEDD, PoolSpec

CONDOR_VERSION = "$CondorVersion: 25.14.1 2026-09-24 BuildID: shiftbot-demo $"
DEFAULT_SCHEDD = DEMO_SCHEDD
_DEFAULT_ITEMDATA = object()
_UNIVERSES = {"vanilla": 5, "standard": 1, "scheduler": 7, "grid": 9, "java": 10,
              "parallel": 11, "local": 12, "vm": 13, "docker": 5, "container": 5}
_UNITS = {"": 1, "K": 1 / 1024, "KB": 1 / 1024, "M": 1, "MB": 1, "G": 1024, "GB": 1024,
          "T": 1024 * 1024, "TB": 1024 * 1024}


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
            ad = _ad_from_submit(commands, cluster, proc, self.user, now, self.name)
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


def _megabytes(value: str) -> Any:
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]B?)?\s*", value, re.IGNORECASE)
    if not match:
        return classad2.ExprTree(value)
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "M").upper()])


def _substitute(value: str, cluster: int, proc: int) -> str:
    for name, number in (("Process", proc), ("ProcId", proc), ("Cluster", cluster),
                         ("ClusterId", cluster)):
        value = re.sub(rf"\$\({name}\)", str(number), value, flags=re.IGNORECASE)
    return value


def _ad_from_submit(commands: dict[str, str], cluster: int, proc: int, user: str, now: int,
                    schedd: str) -> classad2.ClassAd:
    lower = {k.lower(): _substitute(v, cluster, proc) for k, v in commands.items()}
    universe = _UNIVERSES.get(lower.get("universe", "vanilla").lower(), 5)
    local = universe in (7, 12)
    ad = classad2.ClassAd({
        "ClusterId": cluster, "ProcId": proc, "Owner": user, "QDate": now,
        "EnteredCurrentStatus": now, "JobUniverse": universe,
        "JobStatus": 2 if local else 1, "NumJobStarts": 1 if local else 0,
        "Cmd": lower.get("executable", "/bin/true"),
        "Iwd": lower.get("initialdir", f"/home/{user}"),
        "GlobalJobId": f"{schedd}#{cluster}.{proc}#{now}",
        "RequestCpus": 1, "RequestMemory": 128, "RequestDisk": 1024,
    })
    if "arguments" in lower:
        ad["Args"] = lower["arguments"].strip('"')
    if "description" in lower:
        ad["JobDescription"] = lower["description"]
    batch = lower.get("batch_name") or lower.get("jobbatchname")
    if batch:
        ad["JobBatchName"] = batch.strip('"')
    if "request_memory" in lower:
        ad["RequestMemory"] = _megabytes(lower["request_memory"])
    if "request_disk" in lower:
        disk = _megabytes(lower["request_disk"])
        ad["RequestDisk"] = disk * 1024 if isinstance(disk, int) else disk
    if "request_cpus" in lower:
        cpus = lower["request_cpus"].strip()
        ad["RequestCpus"] = int(cpus) if cpus.isdigit() else classad2.ExprTree(cpus)
    if "requirements" in lower:
        ad["Requirements"] = classad2.ExprTree(lower["requirements"])
    elif not local:
        ad["Requirements"] = classad2.ExprTree(
            '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && '
            "(TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && "
            "(TARGET.HasFileTransfer)")
    ad["Environment"] = job_environment(lower, os.environ)
    if "accounting_group" in lower:
        group = lower["accounting_group"]
        group_user = lower.get("accounting_group_user", user)
        ad["AcctGroup"] = group
        ad["AcctGroupUser"] = group_user
        ad["AccountingGroup"] = f"{group}.{group_user}"
    for key, value in commands.items():
        if key.startswith("+") or key.upper().startswith("MY."):
            name = key[1:] if key.startswith("+") else key[3:]
            ad[name] = classad2.ExprTree(_substitute(value, cluster, proc))
    return ad


# ------------------------------------------------------------------------- seeded queue

GWCELERY_SERVICES = [
    ("gwcelery-beat", "gwcelery beat -f gwcelery-beat.log"),
    ("gwcelery-flask", "gwcelery flask -l info -f gwcelery-flask.log run --with-threads "
                       "--host 127.0.0.1"),
    ("gwcelery-flower", "gwcelery flower --address=127.0.0.1 "
                        "--log-file-prefix=gwcelery-flower.log"),
    ("gwcelery-worker", "gwcelery worker -l info -n gwcelery-worker@%h -f %n.log -Q celery "
                        "--igwn-alert --email --concurrency 64"),
    ("gwcelery-exttrig-worker", "gwcelery worker -l info -n gwcelery-exttrig-worker@%h -f "
                                "%n.log -Q exttrig -c 1"),
    ("gwcelery-superevent-worker", "gwcelery worker -l info -n gwcelery-superevent-worker@%h "
                                   "-f %n.log -Q superevent -c 1 --prefetch-multiplier 1"),
    ("gwcelery-voevent-worker", "gwcelery worker -l info -n gwcelery-voevent-worker@%h -f "
                                "%n.log -Q voevent -P solo"),
    ("gwcelery-kafka-worker", "gwcelery worker -l info -n gwcelery-kafka-worker@%h -f %n.log "
                              "-Q kafka -P solo"),
]
OPENMP_WORKERS = 16
EMFOLLOW_REQUIREMENTS = (
    '(TARGET.Online_EMFollow =?= true) && (TARGET.Arch == "X86_64") && '
    '(TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && '
    "(TARGET.Memory >= RequestMemory) && (TARGET.HasFileTransfer)")
GENERIC_REQUIREMENTS = "(TARGET.Memory >= RequestMemory) && (TARGET.Disk >= RequestDisk)"

# (HoldReasonCode, HoldReasonSubCode, HoldReason); {slot}, {owner}, {batch} are filled in.
HOLD_REASONS: list[tuple[int, int, str]] = [
    (34, 102, "Error from {slot}: Job has gone over cgroup memory limit of {memory} megabytes. "
              "Last measured usage: {usage} megabytes.  Consider resubmitting with a higher "
              "request_memory."),
    (13, 2, "Transfer input files failure at execution point {slot} while receiving files from "
            "access point ldas-grid.ligo.caltech.edu. Details: reading from file "
            "/home/{owner}/runs/{batch}/data/{batch}_data0.pickle: (errno 2) No such file or "
            "directory"),
    (12, 2, "Transfer output files failure at execution point {slot} while sending files to "
            "access point ldas-grid.ligo.caltech.edu. Details: reading from file "
            "/var/lib/condor/execute/dir_4127/result.hdf5: (errno 2) No such file or directory"),
    (6, 2, "Error from {slot}: Failed to execute '/home/{owner}/.local/bin/run_{batch}.sh': "
           "(errno=2: 'No such file or directory')"),
    (1, 0, "via condor_hold (by user {owner})"),
    (26, 0, "The system macro SYSTEM_PERIODIC_HOLD expression '(JobStatus == 2) && "
            "(time() - EnteredCurrentStatus > 14 * 86400)' evaluated to TRUE"),
    (3, 0, "The job attribute PeriodicHold expression 'NumJobStarts > 10' evaluated to TRUE"),
    (46, 0, "The job exceeded allowed job duration of 2+00:00:00"),
    (45, 0, "Error from {slot}: Singularity test failed: FATAL: could not open image "
            "/cvmfs/singularity.opensciencegrid.org/lscsoft/bilby:latest: failed to retrieve "
            "path: no such file or directory"),
    (15, 0, "submitted on hold at user's request"),
]

OTHER_BATCHES = [
    ("bilby", "bilby_GW{n}_data0_analysis", 8192),
    ("pycbc", "pycbc_inference_S{n}", 4096),
    ("rift", "rift_S{n}_ILE", 2048),
    ("gstlal", "gstlal_inspiral_injection_{n}", 4000),
    ("detchar", "omicron_online_L1_{n}", 1024),
    ("cwb", "cwb_2g_allsky_{n}", 3000),
    ("bilby", "bilby_S{n}_pe_dynesty", 65536),
]


def _slot_name(rng: random.Random, emfollow: bool = False) -> str:
    if emfollow:
        return f"slot1@node{2290 + rng.randrange(14)}.cluster.ldas.cit"
    return f"slot1_{rng.randrange(1, 33)}@node{rng.randrange(100, 1400)}.cluster.ldas.cit"


def _hold(ad: dict[str, Any], rng: random.Random, now: int,
          reason: tuple[int, int, str] | None = None) -> None:
    code, sub, template = reason or rng.choice(HOLD_REASONS)
    requested = ad.get("RequestMemory")
    memory = requested if isinstance(requested, int) else 16384
    slot = _slot_name(rng)
    ad.update({
        "JobStatus": 5, "HoldReasonCode": code, "HoldReasonSubCode": sub,
        "HoldReason": template.format(slot=slot, owner=ad["Owner"],
                                      batch=ad.get("JobBatchName", "job"), memory=memory,
                                      usage=memory + rng.randrange(1, 900)),
        "NumHolds": 1, "EnteredCurrentStatus": now - rng.randrange(300, 4 * 86400),
    })
    if code not in (1, 15):
        ad["LastRemoteHost"] = slot
        ad["NumJobStarts"] = max(1, int(ad.get("NumJobStarts", 0)))


def _gwcelery(cluster: int, owner: str, now: int, rng: random.Random,
              tweak: Callable[[int, dict[str, Any]], None]) -> list[dict[str, Any]]:
    """One GWCelery deployment as gwcelery.sub submits it: 8 local services, 16 OpenMP workers."""
    iwd = f"/home/{owner}/gwcelery"
    started = now - 3 * 86400 - rng.randrange(3600)
    common = {"Owner": owner, "JobBatchName": "gwcelery", "Iwd": iwd, "QDate": started,
              "ClusterId": cluster, "Cmd": "/usr/bin/env",
              "AcctGroup": "ligo.prod.o4.cbc.pe.bayestar", "AcctGroupUser": owner}
    jobs = []
    for proc, (description, arguments) in enumerate(GWCELERY_SERVICES):
        jobs.append({**common, "ProcId": proc, "JobUniverse": 12, "JobStatus": 2,
                     "EnteredCurrentStatus": started + 5, "JobDescription": description,
                     "Args": arguments, "RequestDisk": 7 * 1024 * 1024, "RequestMemory": 128,
                     "RequestCpus": 1, "NumJobStarts": 1})
    for i in range(OPENMP_WORKERS):
        proc = len(GWCELERY_SERVICES) + i
        jobs.append({**common, "ProcId": proc, "JobUniverse": 5, "JobStatus": 2,
                     "Cmd": "/bin/env", "EnteredCurrentStatus": started + 30,
                     "JobDescription": f"gwcelery-openmp-worker-{proc}",
                     "Args": "--unset OMP_NUM_THREADS gwcelery-condor-submit-helper gwcelery "
                             f"worker -l info -n gwcelery-openmp-worker-{proc}@%h -f %n.log "
                             "-Q openmp -c 1 --prefetch-multiplier 1",
                     "Online_EMFollow": True, "RequestMemory": 16384,
                     "RequestCpus": classad2.ExprTree("TARGET.Cpus"),
                     "RequestDisk": 7 * 1024 * 1024,
                     "Requirements": classad2.ExprTree(EMFOLLOW_REQUIREMENTS),
                     "RemoteHost": f"slot1@node{2290 + i % 14}.cluster.ldas.cit",
                     "NumJobStarts": 1})
    for proc, job in enumerate(jobs):
        tweak(proc, job)
    return jobs


def seed_queue(size: int = 300, seed: int = 1, now: float | None = None) -> list[classad2.ClassAd]:
    """A deterministic GWCelery-like queue of exactly ``size`` jobs.

    From 72 jobs on: three GWCelery deployments (production ``emfollow``, ``emfollow-playground``,
    ``emfollow-test``; 24 jobs each: local-universe services and vanilla OpenMP workers, a few
    idle or held with real hold reasons and codes), then other pipelines' batches to fill up.
    """
    rng = random.Random(seed)
    t = int(now if now is not None else time.time())
    dicts: list[dict[str, Any]] = []

    def production(proc: int, job: dict[str, Any]) -> None:
        if proc == 20:  # evicted three times, waiting for an Online_EMFollow node
            job.update(JobStatus=1, NumJobStarts=3, EnteredCurrentStatus=t - 2 * 3600,
                       LastRemoteHost=job.pop("RemoteHost"), LastRejMatchReason="no match found",
                       LastRejMatchTime=t - 40, LastMatchTime=t - 2 * 3600 - 60)
        elif proc == 21:  # never started: every Online_EMFollow slot is taken
            job.update(JobStatus=1, NumJobStarts=0, EnteredCurrentStatus=t - 50 * 60,
                       QDate=t - 50 * 60, LastRejMatchReason="no match found",
                       LastRejMatchTime=t - 30)
            job.pop("RemoteHost")
        elif proc == 22:
            job.pop("RemoteHost")
            _hold(job, rng, t, HOLD_REASONS[0])
            job["HoldReason"] = ("Error from slot1@node2296.cluster.ldas.cit: Job has gone over "
                                 "cgroup memory limit of 16384 megabytes. Last measured usage: "
                                 "16611 megabytes.  Consider resubmitting with a higher "
                                 "request_memory.")
            job["LastRemoteHost"] = "slot1@node2296.cluster.ldas.cit"
            job["EnteredCurrentStatus"] = t - 5 * 3600

    def playground(proc: int, job: dict[str, Any]) -> None:
        job["AcctGroup"] = "ligo.dev.o4.cbc.pe.bayestar"
        if proc == 7:  # the kafka worker was stopped by hand
            job.update(JobStatus=5, HoldReasonCode=1, HoldReasonSubCode=0, NumHolds=1,
                       HoldReason="stopped during the Kafka broker migration (carol)",
                       EnteredCurrentStatus=t - 26 * 3600)
        elif proc == 9:
            job.pop("RemoteHost")
            _hold(job, rng, t, (6, 2, "Error from slot1@node2301.cluster.ldas.cit: Failed to "
                                      "execute '/home/emfollow-playground/.local/bin/"
                                      "gwcelery-condor-submit-helper': (errno=2: 'No such file "
                                      "or directory')"))
            job["LastRemoteHost"] = "slot1@node2301.cluster.ldas.cit"
        elif proc == 17:
            job.update(JobStatus=1, NumJobStarts=0, EnteredCurrentStatus=t - 20 * 60,
                       LastRejMatchReason="no match found", LastRejMatchTime=t - 25)
            job.pop("RemoteHost")

    def test(proc: int, job: dict[str, Any]) -> None:
        job["AcctGroup"] = "ligo.dev.o4.cbc.pe.bayestar"
        if proc == 12:
            job.pop("RemoteHost")
            _hold(job, rng, t, HOLD_REASONS[2])
        elif proc == 15:
            job["TransferringOutput"] = True

    if size >= 72:
        dicts += _gwcelery(1, "emfollow", t, rng, production)
        dicts += _gwcelery(2, "emfollow-playground", t, rng, playground)
        dicts += _gwcelery(3, "emfollow-test", t, rng, test)
    ads = [classad2.ClassAd(job) for job in dicts]
    cluster = 100
    weights = {"R": 55, "I": 35, "H": 4, "C": 2, "X": 1, "<": 1, ">": 1, "S": 1}
    letters, cumulative = list(weights), list(weights.values())
    while len(ads) < size:
        owner, batch_template, memory = rng.choice(OTHER_BATCHES)
        batch = batch_template.format(n=f"{rng.randrange(230101, 251231)}{rng.choice('abcdefgh')}")
        procs = min(size - len(ads), rng.choice([1, 1, 4, 10, 20, 50, 100, 200, 500]))
        submitted = t - rng.randrange(600, 6 * 86400)
        requirements = classad2.ExprTree(GENERIC_REQUIREMENTS)
        for proc in range(procs):
            state = rng.choices(letters, cumulative)[0]
            # Lean on purpose (100,000 of these fit in the benchmark's memory budget): the
            # attributes shiftbot's commands read, no Cmd/Iwd/AcctGroup.
            job: dict[str, Any] = {
                "ClusterId": cluster, "ProcId": proc, "Owner": owner, "JobBatchName": batch,
                "QDate": submitted, "JobUniverse": 5, "JobStatus": 1,
                "EnteredCurrentStatus": submitted, "RequestCpus": 1, "RequestMemory": memory,
                "RequestDisk": 2 * 1024 * 1024, "Requirements": requirements, "NumJobStarts": 0,
            }
            if state in ("R", "<", ">", "S", "C", "X"):
                job["NumJobStarts"] = 1
                job["EnteredCurrentStatus"] = rng.randrange(submitted, t)
            if state in ("R", "<", ">", "S"):
                job["JobStatus"] = 7 if state == "S" else 2
                job["RemoteHost"] = _slot_name(rng)
                if state == "<":
                    job["TransferringInput"] = True
                elif state == ">":
                    job["TransferringOutput"] = True
            elif state == "I" and rng.random() < 0.15:
                job["NumJobStarts"] = rng.randrange(1, 4)
                job["LastRemoteHost"] = _slot_name(rng)
                job["EnteredCurrentStatus"] = rng.randrange(submitted, t)
            elif state == "H":
                _hold(job, rng, t)
            elif state == "C":
                job["JobStatus"] = 4
                job["LastRemoteHost"] = _slot_name(rng)
            elif state == "X":
                job["JobStatus"] = 3
                job["LastRemoteHost"] = _slot_name(rng)
                job["RemoveReason"] = f"via condor_rm (by user {owner})"
            ads.append(classad2.ClassAd(job))
        cluster += 1 + rng.randrange(3)
    return ads


def seed_slots(seed: int = 1) -> list[classad2.ClassAd]:
    """Startd slots: 14 dedicated Online_EMFollow nodes (all busy) and 50 general ones."""
    rng = random.Random(seed + 7)
    within = classad2.ExprTree("(TARGET.RequestCpus <= MY.Cpus) && "
                               "(TARGET.RequestMemory <= MY.Memory) && "
                               "(TARGET.RequestDisk <= MY.Disk)")
    slots = []
    for i in range(14):
        slots.append(classad2.ClassAd({
            "Name": f"slot1@node{2290 + i}.cluster.ldas.cit",
            "Machine": f"node{2290 + i}.cluster.ldas.cit", "State": "Claimed",
            "Activity": "Busy", "Cpus": 32, "Memory": 192 * 1024, "Disk": 400 * 1024 * 1024,
            "Arch": "X86_64", "OpSys": "LINUX", "HasFileTransfer": True,
            "FileSystemDomain": "ldas.cit", "Online_EMFollow": True, "START": True,
            "WithinResourceLimits": within,
            "Requirements": classad2.ExprTree("START && WithinResourceLimits"),
        }))
    for i in range(50):
        claimed = rng.random() < 0.7
        slots.append(classad2.ClassAd({
            "Name": f"slot1_{i % 8 + 1}@node{300 + i // 8}.cluster.ldas.cit",
            "Machine": f"node{300 + i // 8}.cluster.ldas.cit",
            "State": "Claimed" if claimed else "Unclaimed",
            "Activity": "Busy" if claimed else "Idle", "Cpus": rng.choice([1, 2, 4, 8]),
            "Memory": rng.choice([2048, 4096, 8192, 16384, 32768]),
            "Disk": rng.choice([20, 50, 100]) * 1024 * 1024, "Arch": "X86_64", "OpSys": "LINUX",
            "HasFileTransfer": True, "FileSystemDomain": "ldas.cit", "START": True,
            "WithinResourceLimits": within,
            "Requirements": classad2.ExprTree("START && WithinResourceLimits"),
        }))
    return slots


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
