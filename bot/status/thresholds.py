"""Warning/critical thresholds on named numbers: the one rule every check type applies."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict

from bot.status.model import Level
from bot.status.ranges import NagiosRange, SizeRange


class Thresholds(BaseModel):
    """``{warning: RANGE, critical: RANGE}``; critical wins when both alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warning: NagiosRange | None = None
    critical: NagiosRange | None = None

    def level(self, value: float) -> Level:
        if math.isnan(value):
            return Level.UNKNOWN
        if self.critical is not None and self.critical.alerts(value):
            return Level.CRITICAL
        if self.warning is not None and self.warning.alerts(value):
            return Level.WARNING
        return Level.OK

    def reason(self, name: str, value: float,
               shown: Callable[[float], str] | None = None) -> str | None:
        """``held=3 (warning: > 0)`` when the value alerts, else None."""
        level = self.level(value)
        if level is Level.OK:
            return None
        text = (shown or number_text)(value)
        if level is Level.UNKNOWN:
            return f"{name} is not a number"
        bound = self.critical if level is Level.CRITICAL else self.warning
        assert bound is not None
        return f"{name}={text} ({level.name.lower()}: {bound.describe()})"


class SizeThresholds(Thresholds):
    """Thresholds on byte counts, bounds with units (``2GB:``)."""

    warning: SizeRange | None = None
    critical: SizeRange | None = None


def number_text(value: float) -> str:
    """A value as people read it: 3, 0.25, 1.5e+12."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def assess(values: Mapping[str, float], thresholds: Mapping[str, Thresholds]
           ) -> tuple[Level, list[str]]:
    """The worst level of ``values`` under ``thresholds`` (keys may be fnmatch globs, e.g.
    ``*.nfail``) and the reasons, worst first."""
    found: list[tuple[Level, str]] = []
    for pattern, rule in thresholds.items():
        for name in _matching(pattern, values):
            reason = rule.reason(name, values[name])
            if reason is not None:
                found.append((rule.level(values[name]), reason))
    found.sort(key=lambda item: -item[0].rank)
    level = found[0][0] if found else Level.OK
    return level, [reason for _, reason in found]


def _matching(pattern: str, values: Mapping[str, float]) -> list[str]:
    if any(char in pattern for char in "*?["):
        return sorted(name for name in values if fnmatch.fnmatchcase(name, pattern))
    return [pattern] if pattern in values else []


def missing(thresholds: Mapping[str, Thresholds], values: Mapping[str, float]) -> list[str]:
    """Plain (non-glob) threshold names with no value: the check could not measure them."""
    return sorted(name for name in thresholds
                  if not any(char in name for char in "*?[") and name not in values)


def size_text(value: float) -> str:
    """Bytes as people read them (binary units, as df -h): 512 B, 3.2 GiB."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{int(value)} B"


def perf_range(rng: NagiosRange | None) -> str | None:
    """A range in plain numbers for perfdata (``2GB:`` becomes ``2000000000:``)."""
    if rng is None:
        return None
    start = "~" if rng.start == -math.inf else number_text(rng.start)
    end = "" if rng.end == math.inf else number_text(rng.end)
    body = end if start == "0" and end else f"{start}:{end}"
    return ("@" if rng.inside else "") + body


def summary_of(reasons: list[str], fallback: str, limit: int = 3) -> str:
    """The first reasons (worst first) as one line, or ``fallback`` when there are none."""
    if not reasons:
        return fallback
    shown = "; ".join(reasons[:limit])
    return shown + (f" (+{len(reasons) - limit} more)" if len(reasons) > limit else "")
