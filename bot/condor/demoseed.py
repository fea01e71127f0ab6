"""The demo pools' seeded contents: a deterministic, GWCelery-like queue of any size (a few
hundred jobs for the demo, 100,000 for the benchmark) and the startd slots the demo collector
answers with (``bot/condor/demo.py`` serves them)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import classad2

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
