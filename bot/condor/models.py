"""Plain data crossing the worker pipe (pickled): pool specs in, results out. No heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEMO_SCHEDD = "emfollow.ligo.caltech.edu"  # the demo schedd's name, unless the pool sets one
# What `getenv` in a submit description may copy from the worker's environment into a job ad
# (condor.pools.<pool>.getenv_allow): nothing secret, and nothing shiftbot-specific (the
# worker's PYTHONPATH points at shiftbot, not at the pipeline).
DEFAULT_GETENV_ALLOW = ("PATH", "HOME", "LANG", "TZ")


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """What a worker needs to reach one pool (built from ``CondorPoolConfig``)."""

    name: str
    backend: str = "htcondor"  # htcondor | demo
    collector: str | None = None
    schedd: str | None = None
    schedd_address: str | None = None
    scope: str | None = None  # validated, canonical
    timeout: float = 10.0
    environment: dict[str, str] = field(default_factory=dict)
    getenv_allow: tuple[str, ...] = DEFAULT_GETENV_ALLOW
    demo_jobs: int = 300
    demo_seed: int = 1
    demo_remove_delay: float = 2.0

    @property
    def label(self) -> str:
        """How messages name the schedd: ``schedd emfollow.ligo.caltech.edu``."""
        if self.backend == "demo":
            return f"schedd {self.schedd or DEMO_SCHEDD}"
        if self.schedd:
            return f"schedd {self.schedd}"
        if self.schedd_address:
            return f"schedd {self.schedd_address}"
        return f"the local schedd of pool {self.name}"


@dataclass(slots=True)
class QueueRow:
    job: str  # 1234.0
    owner: str
    batch: str
    status: str  # condor_q letter
    since: int | None  # EnteredCurrentStatus (epoch seconds)
    worker: str  # RemoteHost, else LastRemoteHost, "(local)" for local/scheduler universe
    universe: int = 5
    hold_code: int | None = None
    hold_subcode: int | None = None
    hold_reason: str = ""


@dataclass(slots=True)
class QueueSummary:
    totals: dict[str, int]  # letter -> count over the whole query
    total: int
    rows: list[QueueRow]  # worst first, at most max_rows
    listed: int  # how many jobs qualified for the table (rows + omitted)
    now: float  # the worker's clock when it answered (time in status is relative to it)
    fetch_seconds: float = 0.0  # time spent inside schedd.query() calls
    elapsed_seconds: float = 0.0  # the whole operation inside the worker
    queries: int = 0

    @property
    def omitted(self) -> int:
        return max(0, self.listed - len(self.rows))


@dataclass(slots=True)
class Clause:
    text: str
    slots_ok: int  # slots for which this clause is true
    undefined: int = 0  # slots for which it is undefined (an attribute is missing)


@dataclass(slots=True)
class MatchReport:
    collector: str
    slots: int  # startd slots the collector returned
    job_side_ok: int  # slots satisfying the job's Requirements
    slot_side_ok: int  # slots whose own Requirements accept the job
    matching: int  # both (symmetricMatch)
    matching_unclaimed: int
    clauses: list[Clause] = field(default_factory=list)
    failing: str | None = None  # the clause no slot satisfies (or the most selective one)
    error: str | None = None  # the collector could not be asked; the rest is still valid


@dataclass(slots=True)
class Analysis:
    job: str
    status: str
    since: int | None
    now: float
    owner: str = ""
    batch: str = ""
    universe: int = 5
    worker: str = ""
    hold_reason: str = ""
    hold_code: int | None = None
    hold_subcode: int | None = None
    num_holds: int | None = None
    num_job_starts: int | None = None
    last_rej_match_reason: str = ""
    last_rej_match_time: int | None = None
    last_match_time: int | None = None
    requests: dict[str, Any] = field(default_factory=dict)  # Cpus, Memory (MB), Disk (KB), GPUs
    requirements: str = ""  # flattened with the job's own values
    match: MatchReport | None = None


@dataclass(slots=True)
class ActionResult:
    action: str  # hold | release | remove
    targets: list[str]  # job ids found in scope and acted on
    not_found: list[str] = field(default_factory=list)  # asked for, not in the queue/scope
    success: int = 0
    bad_status: int = 0  # e.g. release of a job that is not held
    already_done: int = 0
    permission_denied: int = 0
    error: int = 0
    states: dict[str, str] = field(default_factory=dict)  # job -> letter before the action


@dataclass(slots=True)
class SubmitOutcome:
    clusters: list[int]
    jobs: int
    batch: str | None = None
    first_job: str = ""


@dataclass(slots=True)
class Matched:
    """The jobs an action would touch (its preview): nothing was changed."""

    states: dict[str, str]  # job id -> condor_q letter, in job order
    owners: dict[str, str]  # job id -> Owner
    not_found: list[str] = field(default_factory=list)  # asked for, not in the queue/scope
