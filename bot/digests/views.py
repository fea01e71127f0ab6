"""A digest's sections (:mod:`bot.digests.content`) as the template's data: times in the team's
zone, numbers signed where they compare with the previous digest. Rendered by
``config/templates/digest.j2``; a section that is None (its feature is not installed here)
is not in the text at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.reply import FileRef, Level, Reply, Visibility
from bot.timefmt import format_local

TEMPLATE = "digest.j2"


def signed(delta: int | None) -> str:
    """``+3``, ``-2``, ``±0``; "" when there is nothing to compare with."""
    if delta is None:
        return ""
    return f"+{delta}" if delta > 0 else ("±0" if delta == 0 else str(delta))


def _when(at: datetime | None, zone: str) -> str:
    return format_local(at, zone) if at is not None else ""


def _alerts(section: dict[str, Any]) -> dict[str, Any]:
    return section  # already plain: counts, issues with their tickets


def _status(section: dict[str, Any], zone: str) -> dict[str, Any]:
    changes = [{**c, "when": _when(c["at"], zone)} for c in section["changes"]]
    return {"changes": changes, "more": section["more"], "count": section["count"]}


def _commands(section: dict[str, Any], zone: str) -> dict[str, Any]:
    rows = [{**r, "when": _when(r["at"], zone)} for r in section["rows"]]
    return {**section, "rows": rows}


def _condor(section: dict[str, Any], zone: str) -> dict[str, Any]:
    pools = []
    for pool in section["pools"]:
        delta = None if pool["before_total"] is None else pool["total"] - pool["before_total"]
        states = [{"state": s["state"], "now": s["now"], "delta": signed(s["delta"])}
                  for s in pool["states"]]
        pools.append({"pool": pool["pool"], "total": pool["total"], "delta": signed(delta),
                      "when": _when(pool["taken_at"], zone),
                      "before_when": _when(pool["before_at"], zone), "states": states})
    return {"pools": pools}


def _meetings(section: dict[str, Any], zone: str) -> dict[str, Any]:
    held = [{**m, "when": _when(m["starts_at"], zone)} for m in section["meetings"]]
    return {**section, "meetings": held}


def _missed(section: dict[str, Any], zone: str) -> dict[str, Any]:
    return {**section, "rows": [{**r, "when": _when(r["at"], zone)} for r in section["rows"]]}


def template_data(content: dict[str, Any], start: datetime, end: datetime, zone: str, *,
                  shifter: str | None, since_last: bool) -> dict[str, Any]:
    """The template's data: each installed section formatted, the others None."""
    shape = {"status": _status, "commands": _commands, "condor": _condor,
             "meetings": _meetings, "missed": _missed}
    data: dict[str, Any] = {"start": format_local(start, zone), "end": format_local(end, zone),
                            "shifter": shifter or "", "since_last": since_last}
    for name, section in content.items():
        if section is None:
            data[name] = None
        elif name == "alerts":
            data[name] = _alerts(section)
        else:
            data[name] = shape[name](section, zone)
    return data


def level_of(content: dict[str, Any]) -> Level:
    """WARNING when something went unsent, or a check ended the period not OK; else INFO."""
    missed = content.get("missed")
    if missed and missed["count"]:
        return Level.WARNING
    status = content.get("status")
    if status:
        last: dict[str, int | None] = dict(status["initial"])
        for point in status["timeline"]:
            last[point["check"]] = point["level"]
        if any(level not in (None, 0) for level in last.values()):
            return Level.WARNING
    return Level.INFO


def digest_reply(content: dict[str, Any], data: dict[str, Any], title: str,
                 files: list[FileRef], visibility: Visibility) -> Reply:
    return Reply(title=title, template=TEMPLATE, data=data, level=level_of(content),
                 visibility=visibility, files=files)
