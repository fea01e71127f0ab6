"""What the ``status`` commands show, as template data: the overview (non-OK first), one check's
details, its history. Plugin output and people's reasons are user text (marked here or with
``|user`` in the templates); times are local (``bot.timezone``), ages human (``1h 5m``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.markup import user
from bot.render import format_duration
from bot.reply import Table
from bot.status import states as st
from bot.status.model import CheckResult, CheckSpec, Level, PerfDatum, worst
from bot.status.store import HistoryEntry, StoredResult
from bot.timefmt import format_clock, format_local

MARK = {Level.OK: "ok", Level.WARNING: "WARN", Level.CRITICAL: "CRIT", Level.UNKNOWN: "UNKN"}


def _ago(now: datetime, then: datetime | None) -> str:
    return "never" if then is None else format_duration((now - then).total_seconds()) + " ago"


def notes(state: st.CheckState | None, now: datetime, zone: str, notify_after: int, *,
          alert: bool = True) -> list[str]:
    """The state behind a check's line: alert since, counting, acknowledged, silenced."""
    if state is None:
        return []
    out = []
    if alert and state.alerting and state.since is not None and state.hard is not None:
        out.append(f"alert {state.hard.name} since "
                   f"{format_clock(state.since, zone, now=now)} "
                   f"({format_duration((now - state.since).total_seconds())})")
    if state.soft is not None:
        out.append(f"{state.soft.name} in {state.soft_count} of {notify_after} results "
                   "before it counts")
    if state.acked:
        out.append(f"acknowledged by {user(state.acked_by)}"
                   + (f": {user(state.acked_reason)}" if state.acked_reason else ""))
    if state.silenced(now) and state.silenced_until is not None:
        out.append(f"silenced until {format_clock(state.silenced_until, zone, now=now)} by "
                   f"{user(state.silenced_by)}"
                   + (f": {user(state.silenced_reason)}" if state.silenced_reason else ""))
    return out


def _reported(result: CheckResult) -> str:
    """The check's own verdict when the severity remap changed it."""
    raw = result.raw_level
    return raw.name if raw is not None and raw != result.level else ""


def check_line(spec: CheckSpec, result: CheckResult, state: st.CheckState | None,
               last: StoredResult | None, now: datetime, zone: str, notify_after: int
               ) -> dict[str, Any]:
    counted = result.level
    extra = notes(state, now, zone, notify_after)
    if result.level == Level.UNKNOWN and last is not None and last.result.checked_at:
        extra.insert(0, f"last stored result {last.result.level.name}, "
                        f"{_ago(now, last.result.checked_at)}")
    return {"name": spec.name, "level": counted.name, "mark": MARK[counted],
            "reported": _reported(result), "summary": result.summary,
            "age": _ago(now, result.checked_at), "notes": extra, "rank": counted.rank}


def overview(lines: list[dict[str, Any]], took: float) -> dict[str, Any]:
    lines = sorted(lines, key=lambda line: (-line["rank"], line["name"]))
    levels = [Level[line["level"]] for line in lines]
    bad = sum(1 for level in levels if level != Level.OK)
    return {"overall": worst(levels).name, "checks": lines, "count": len(lines), "bad": bad,
            "took": f"{took:.1f} s"}


def perf_table(perfdata: Sequence[PerfDatum]) -> Table | None:
    if not perfdata:
        return None
    return Table(["label", "value", "warn", "crit", "min", "max"], [
        [p.label, ("U" if p.value is None else f"{p.value:g}") + p.uom, p.warn or "",
         p.crit or "", "" if p.min is None else f"{p.min:g}",
         "" if p.max is None else f"{p.max:g}"] for p in perfdata])


def result_lines(results: Sequence[StoredResult], now: datetime, zone: str) -> list[str]:
    return [f"{format_clock(r.result.checked_at, zone, now=now) if r.result.checked_at else '-'}"
            f" {r.result.level.name}: {user(r.result.summary)}"
            + (" (on demand)" if r.source != "periodic" else "") for r in results]


def history_line(entry: HistoryEntry, zone: str) -> list[str]:
    """One row of ``status history``: when, what, detail."""
    when = format_local(entry.at, zone)
    if entry.kind == "level":
        old = entry.old.name if entry.old is not None else "new"
        what = f"{old} -> {entry.new.name if entry.new is not None else '?'}"
        detail = entry.summary
    elif entry.kind == "ack":
        what = f"acknowledged by {entry.who}"
        detail = entry.reason or ""
    elif entry.kind == "silence":
        until = format_local(entry.until, zone) if entry.until else "?"
        what, detail = f"silenced by {entry.who} until {until}", entry.reason or ""
    else:
        what, detail = f"silence lifted by {entry.who}", entry.reason or ""
    return [when, what, detail]


def details(spec: CheckSpec, result: CheckResult, state: st.CheckState | None,
            recent: Sequence[StoredResult], changes: Sequence[HistoryEntry],
            settings: Mapping[str, Any], now: datetime, zone: str) -> dict[str, Any]:
    counted = result.level
    return {
        "name": spec.name, "type": settings["type"], "description": spec.description,
        "runbook": spec.runbook, "level": counted.name,
        "reported": _reported(result), "summary": result.summary, "long_output": result.long_output,
        "took": f"{result.duration_seconds:.1f} s", "settings": settings,
        "notes": notes(state, now, zone, settings["notify_after"], alert=False),
        "results": result_lines(recent, now, zone),
        "changes": [" ".join(part for part in (when, what, user(detail) if detail else "")
                             if part) for when, what, detail in
                    (history_line(entry, zone) for entry in changes)],
        "hard": state.hard.name if state and state.hard is not None else "none yet",
        "since": format_clock(state.since, zone, now=now) if state and state.since else "",
    }
