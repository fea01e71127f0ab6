"""Words for the plan of a hold, release, rm or resubmit: which jobs, in which state, whose.

``removes 23 jobs of emfollow: 1.0-1.19 running, 1.20-1.22 held`` is what the confirmation and
approval cards show (``bot.commands.Plan``). Pure functions over a :class:`Matched`.
"""

from __future__ import annotations

from collections import Counter

from bot.condor import states
from bot.condor.models import Matched

# Which jobs each action changes; the others are reported, not counted as targets.
APPLICABLE = {
    "hold": frozenset({"I", "R", "<", ">", "S"}),
    "release": frozenset({"H"}),
    "remove": frozenset(set(states.LETTERS) - {"X"}),
}
VERB = {"hold": "holds", "release": "releases", "remove": "removes"}
MAX_RANGES = 12  # a card lists this many id ranges, then "and N more"


def job_key(job: str) -> tuple[int, int]:
    """Sort key of a job id: ``1.10`` after ``1.9``."""
    cluster, _, proc = job.partition(".")
    return int(cluster), int(proc or 0)


def job_ranges(jobs: list[str]) -> list[str]:
    """``["1.0", "1.1", "1.2", "1.5", "2.0"]`` -> ``["1.0-1.2", "1.5", "2.0"]``."""
    out: list[str] = []
    start = previous = None
    for job in sorted(jobs, key=job_key):
        key = job_key(job)
        if previous is not None and key == (previous[0], previous[1] + 1):
            previous = key
            continue
        if start is not None and previous is not None:
            out.append(_range(start, previous))
        start = previous = key
    if start is not None and previous is not None:
        out.append(_range(start, previous))
    return out


def _range(start: tuple[int, int], end: tuple[int, int]) -> str:
    first = f"{start[0]}.{start[1]}"
    return first if start == end else f"{first}-{end[0]}.{end[1]}"


def by_state(matched: Matched, jobs: list[str]) -> str:
    """``1.0-1.19 running, 1.20-1.22 held`` (states in condor_q's order)."""
    parts: list[str] = []
    shown = 0
    for letter in (*states.LETTERS, "?"):
        chosen = [job for job in jobs if matched.states.get(job) == letter]
        if not chosen:
            continue
        ranges = job_ranges(chosen)
        room = max(1, MAX_RANGES - shown)
        text = ", ".join(ranges[:room])
        if len(ranges) > room:
            text += f" and {len(ranges) - room} more ranges"
        shown += len(ranges)
        parts.append(f"{text} {states.NAMES.get(letter, letter).lower()}")
    return ", ".join(parts)


def owners(matched: Matched, jobs: list[str]) -> str:
    counts = Counter(matched.owners.get(job, "?") for job in jobs)
    names = [name for name, _ in counts.most_common(3)]
    extra = len(counts) - len(names)
    return ", ".join(names) + (f" and {extra} more owners" if extra > 0 else "")


def summary(action: str, matched: Matched, jobs: list[str], where: str) -> str:
    """``removes 23 jobs of emfollow on gwcelery: 1.0-1.19 running, 1.20-1.22 held``."""
    noun = "job" if len(jobs) == 1 else "jobs"
    return (f"{VERB[action]} {len(jobs)} {noun} of {owners(matched, jobs)} {where}: "
            f"{by_state(matched, jobs)}")


def skipped(action: str, matched: Matched) -> list[str]:
    """The matching jobs the action leaves alone (already held, not held, ...)."""
    return [job for job, letter in matched.states.items() if letter not in APPLICABLE[action]]
