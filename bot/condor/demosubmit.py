"""What the demo schedd stores for a submitted job: the ad condor_submit would have built from
the submit commands (universe, requirements, memory units, ``+Custom`` attributes, accounting
group, ``$(Cluster)``/``$(Process)`` substitution, the job's Environment)."""

from __future__ import annotations

import os
import re
from typing import Any

import classad2

from bot.condor.jobenv import job_environment

_UNIVERSES = {"vanilla": 5, "standard": 1, "scheduler": 7, "grid": 9, "java": 10,
              "parallel": 11, "local": 12, "vm": 13, "docker": 5, "container": 5}
_UNITS = {"": 1, "K": 1 / 1024, "KB": 1 / 1024, "M": 1, "MB": 1, "G": 1024, "GB": 1024,
          "T": 1024 * 1024, "TB": 1024 * 1024}



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


def ad_from_submit(commands: dict[str, str], cluster: int, proc: int, user: str, now: int,
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
