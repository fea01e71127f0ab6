"""The ``condor`` check: jobs by state in a pool, with thresholds per state."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.secrets import masker
from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level, PerfDatum
from bot.status.thresholds import Thresholds, assess, number_text, perf_range, summary_of

SHOWN = ("idle", "running", "held")  # named in the summary even when 0


class CondorCheck(CheckSpec):
    type: Literal["condor"]
    pool: str | None = None  # a pool of the condor: section; default: its default pool
    # Ranges per state name (idle, running, held, ..., total): held jobs warn by default.
    thresholds: dict[str, Thresholds] = Field(
        default_factory=lambda: {"held": Thresholds(warning="0")})

    async def run(self, env: CheckEnv) -> CheckResult:
        try:
            counts = await env.condor_counts(self.pool)
        except Exception as exc:  # the worker's errors are many; each is "cannot tell"
            return CheckResult(Level.UNKNOWN, f"cannot read pool {self.pool or '(default)'}: "
                               + masker.mask(" ".join(str(exc).split()) or type(exc).__name__))
        values = {state: float(count) for state, count in counts.items()}
        values.setdefault("total", float(sum(counts.values())))
        for state in self.thresholds:  # a state nobody is in is 0, not missing
            if not any(char in state for char in "*?["):
                values.setdefault(state, 0.0)
        level, reasons = assess(values, self.thresholds)
        shown = [state for state in SHOWN if state in values] + sorted(
            state for state in values if state not in SHOWN and state != "total"
            and values[state])
        counts_text = ", ".join(f"{number_text(values[s])} {s}" for s in shown)
        pool = f"pool {self.pool}: " if self.pool else ""
        summary = summary_of(reasons, f"{pool}{counts_text or 'no jobs'}")
        if reasons:
            summary = f"{pool}{summary}"
        perfdata = tuple(
            PerfDatum(state, values[state], "", perf_range(rule.warning),
                      perf_range(rule.critical), 0)
            for state, rule in ((s, self.thresholds.get(s, Thresholds())) for s in sorted(values)))
        return CheckResult(level, summary, long_output=counts_text, perfdata=perfdata,
                           values=values)
