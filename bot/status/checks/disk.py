"""The ``disk`` check: a path's used percentage and free bytes (``os.statvfs``, like df)."""

from __future__ import annotations

import asyncio
import os
from typing import Literal

from pydantic import Field

from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level, PerfDatum, worst
from bot.status.thresholds import SizeThresholds, Thresholds, perf_range, size_text


class DiskCheck(CheckSpec):
    type: Literal["disk"]
    path: str = Field(min_length=1)  # any path on the filesystem
    # Ranges on the used percentage: above 90 warns, above 95 is critical by default.
    used_percent: Thresholds = Thresholds(warning="90", critical="95")
    # Ranges on the bytes free to unprivileged users, with units: {critical: "2GB:"}.
    free_bytes: SizeThresholds = SizeThresholds()

    async def run(self, env: CheckEnv) -> CheckResult:
        try:
            stat = await asyncio.to_thread(os.statvfs, self.path)
        except OSError as exc:
            return CheckResult(Level.UNKNOWN, f"cannot read {self.path}: "
                                              f"{exc.strerror or exc}")
        total = stat.f_blocks * stat.f_frsize
        used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
        free = stat.f_bavail * stat.f_frsize
        # As df: the root-reserved blocks count neither as used nor as available.
        percent = 100.0 * used / (used + free) if used + free else 0.0
        levels = [self.used_percent.level(percent), self.free_bytes.level(free)]
        reasons = [reason for reason in (
            self.used_percent.reason("used", percent, lambda v: f"{v:.1f}%"),
            self.free_bytes.reason("free", free, size_text)) if reason]
        summary = (f"{self.path}: {percent:.1f}% used, {size_text(free)} free of "
                   f"{size_text(total)}")
        if reasons:
            summary += " - " + "; ".join(reasons)
        perfdata = (
            PerfDatum("used_percent", round(percent, 2), "%", perf_range(self.used_percent.warning),
                      perf_range(self.used_percent.critical), 0, 100),
            PerfDatum("free_bytes", free, "B", perf_range(self.free_bytes.warning),
                      perf_range(self.free_bytes.critical), 0, total),
        )
        return CheckResult(worst(levels), summary, perfdata=perfdata,
                           values={"used_percent": percent, "free_bytes": float(free),
                                   "used_bytes": float(used), "total_bytes": float(total)})
