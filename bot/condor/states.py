"""Job states as condor_q shows them: letters, names, constraints and how bad each one is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# JobStatus codes (htcondor2.JobStatus).
IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING_OUTPUT, SUSPENDED = 1, 2, 3, 4, 5, 6, 7

# condor_q's ST column. "<" and ">" are running jobs moving files.
LETTERS: tuple[str, ...] = ("R", "I", "H", "C", "X", "S", ">", "<")

NAMES: dict[str, str] = {
    "R": "running",
    "I": "idle",
    "H": "held",
    "C": "completed",
    "X": "removed",
    "S": "suspended",
    ">": "transferring output",
    "<": "transferring input",
}

# The words `condor q --status` accepts -> letters.
STATUS_CHOICES: dict[str, tuple[str, ...]] = {
    "held": ("H",),
    "idle": ("I",),
    "running": ("R",),
    "removed": ("X",),
    "completed": ("C",),
    "suspended": ("S",),
    "transferring": ("<", ">"),
}

# Worst first: what a shifter must look at before anything else.
SEVERITY: tuple[str, ...] = ("H", "I", "S", "X", "<", ">", "C", "R")

# A constraint selecting exactly the jobs that show a letter (TransferringInput/Output are
# undefined on most jobs: =?= / =!= keep Undefined from matching).
LETTER_CONSTRAINT: dict[str, str] = {
    "H": "JobStatus == 5",
    "I": "JobStatus == 1",
    "X": "JobStatus == 3",
    "C": "JobStatus == 4",
    "S": "JobStatus == 7",
    ">": "(JobStatus == 6 || (JobStatus == 2 && TransferringOutput =?= true))",
    "<": "(JobStatus == 2 && TransferringInput =?= true && TransferringOutput =!= true)",
    "R": "(JobStatus == 2 && TransferringInput =!= true && TransferringOutput =!= true)",
}

_BY_STATUS = {IDLE: "I", REMOVED: "X", COMPLETED: "C", HELD: "H", TRANSFERRING_OUTPUT: ">",
              SUSPENDED: "S"}

UNIVERSES: dict[int, str] = {
    1: "standard", 5: "vanilla", 7: "scheduler", 8: "MPI", 9: "grid", 10: "java",
    11: "parallel", 12: "local", 13: "vm", 14: "docker",
}
LOCAL_UNIVERSES = frozenset({7, 12})


def letter(status: int, transferring_input: Any = None, transferring_output: Any = None) -> str:
    """condor_q's letter for a job (``?`` for a status code it does not know)."""
    if status == RUNNING:
        if transferring_output is True:
            return ">"
        if transferring_input is True:
            return "<"
        return "R"
    return _BY_STATUS.get(status, "?")


def letter_of(ad: Mapping[str, Any]) -> str:
    return letter(int(ad.get("JobStatus", 0) or 0), ad.get("TransferringInput"),
                  ad.get("TransferringOutput"))


def letters_for(statuses: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """``["held", "transferring"]`` -> ``("H", "<", ">")``; unknown words raise KeyError."""
    out: list[str] = []
    for word in statuses or ():
        for item in STATUS_CHOICES[word]:
            if item not in out:
                out.append(item)
    return tuple(out)
