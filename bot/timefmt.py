"""Times shown to people: in the configured zone (``bot.timezone``), always with the zone named.

The database keeps UTC (``bot/db.py``); only text that people read is converted, at the last
moment, so a stored time never depends on the configuration. The zone is named on every time
because a shifter reading "02:30" the night clocks change cannot tell which 02:30 it was:
``2026-10-25 02:30 CEST`` and ``2026-10-25 02:30 CET`` are an hour apart.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

Zone = str | tzinfo


@lru_cache(maxsize=16)
def _named_zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone_of(zone: Zone) -> tzinfo:
    """``"Europe/Zurich"`` -> its ZoneInfo (cached); a tzinfo is returned as it is."""
    return _named_zone(zone) if isinstance(zone, str) else zone


def local_time(dt: datetime, zone: Zone) -> datetime:
    """``dt`` in ``zone``. A naive ``dt`` is UTC: that is what the database hands back."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(zone_of(zone))


def zone_label(local: datetime) -> str:
    """How to name the zone of an aware ``local`` time: its abbreviation when it has a word
    for one (CET, CEST, UTC, EST), else the zone's IANA name (Asia/Dubai's abbreviation is
    just "+04", which reads like part of the time)."""
    abbreviation = local.tzname() or ""
    if abbreviation.isalpha():
        return abbreviation
    key = getattr(local.tzinfo, "key", None)
    return key or f"UTC{local:%z}"


def format_local(dt: datetime, zone: Zone, *, seconds: bool = False) -> str:
    """``2026-12-03 14:05 CET``: date, time and zone, for lists that span days (audit)."""
    local = local_time(dt, zone)
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    return f"{local:%Y-%m-%d} {clock} {zone_label(local)}"


def format_clock(dt: datetime, zone: Zone, *, now: datetime | None = None,
                 seconds: bool = False) -> str:
    """``14:05 CET`` when ``dt`` falls on today's local date (``now``, default the current
    time), else the full :func:`format_local`: "expired at 00:10" must not hide that it was
    yesterday. For expiry times and other moments close to now."""
    local = local_time(dt, zone)
    today = local_time(now or datetime.now(UTC), zone).date()
    if local.date() != today:
        return format_local(dt, zone, seconds=seconds)
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    return f"{clock} {zone_label(local)}"


def zone_name(zone: Zone) -> str:
    """The configured zone as people should read it in a note: its IANA name."""
    resolved = zone_of(zone)
    return getattr(resolved, "key", None) or str(resolved)
