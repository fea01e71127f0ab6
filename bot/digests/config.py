"""The ``digests:`` section (docs/digests.md): when shift digests go out, and what they carry.

::

    digests:
      channel: ops                 # where `digest now` and the scheduled digests are posted
      at_handover: true            # one at each handover of the rota (shifts:); off without one
      daily: {time: "02:30", zone: Europe/Zurich}   # and/or one a day (DST-safe)
      grace_hours: 6               # after downtime a digest is still sent this late
      chart: true                  # attach one PNG chart of the shift
      snapshot_minutes: 15         # an HTCondor queue snapshot this often (0: none)
      pools: [gwcelery]            # the pools snapshotted (default: every configured pool)
"""

from __future__ import annotations

from datetime import time

from pydantic import Field, field_validator

from bot.configbase import Strict
from bot.schedule.local import zone_info


class DailyDigest(Strict):
    time: time  # local wall time, "02:30"
    zone: str | None = None  # IANA zone; default bot.timezone

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone_info(value)
        return value


class DigestsConfig(Strict):
    channel: str | None = None  # alias; None: preview only (nothing is scheduled or posted)
    at_handover: bool = True
    daily: DailyDigest | None = None
    grace_hours: float = Field(6, ge=0, le=7 * 24)
    chart: bool = True
    chart_timeout_seconds: float = Field(30, gt=0, le=600)
    # Where the chart PNG is written; relative to the config file. Default: the directory of
    # the SQLite database (var/ in the demo), else var/ next to the config.
    chart_dir: str | None = None
    snapshot_minutes: float = Field(15, ge=0, le=24 * 60)
    pools: list[str] | None = None  # None: every pool of condor.pools
    default_hours: float = Field(24, gt=0, le=31 * 24)  # the first digest's period
    max_items: int = Field(15, ge=1, le=200)  # lines per section; the rest is counted
    keep_days: int = Field(90, ge=1, le=3650)  # snapshots and sent digests kept this long
