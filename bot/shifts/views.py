"""The shift notices and command replies as :class:`bot.reply.Reply` (templates
``config/templates/shift_*.j2``). Times are shown in the team's zone with the zone named."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.reply import Action, Level, Reply, Table, Visibility
from bot.shifts.rota import Handover, ShiftSlot
from bot.shifts.store import Ack
from bot.timefmt import format_clock, local_time, zone_label

ACK_COMMAND = "shift ack"


def when(at: datetime, zone: str) -> str:
    """``Mon 2026-03-30 09:00 CEST``: shifts span days, the weekday helps."""
    local = local_time(at, zone)
    return f"{local:%a %Y-%m-%d %H:%M} {zone_label(local)}"


def slot_data(slot: ShiftSlot, zone: str, now: datetime) -> dict[str, Any]:
    return {"person": slot.person, "start": when(slot.start, zone), "end": when(slot.end, zone),
            "origin": slot.origin, "now": slot.covers(now)}


def heads_up(handover: Handover, zone: str, days: int) -> Reply:
    data = {"incoming": handover.incoming, "outgoing": handover.outgoing or "",
            "start": when(handover.at, zone), "end": when(handover.end, zone), "days": days}
    return Reply(title=f"Shift heads-up: {handover.incoming}", template="shift_heads_up.j2",
                 data=data, visibility=Visibility.CHANNEL)


def handover(handover: Handover, zone: str, ack: Ack | None, ack_minutes: float,
             now: datetime) -> Reply:
    """The handover notice: with the Acknowledge button until someone acknowledges, then
    (updated in place) saying who did and when."""
    data: dict[str, Any] = {
        "incoming": handover.incoming, "outgoing": handover.outgoing or "",
        "start": when(handover.at, zone), "end": when(handover.end, zone),
        "ack_seconds": ack_minutes * 60,
        "ack": {"by": ack.by, "at": format_clock(ack.at, zone, now=now)} if ack else None}
    actions = [] if ack else [Action.run("Acknowledge", ACK_COMMAND, style="primary")]
    return Reply(title=f"Shift handover to {handover.incoming}", template="shift_handover.j2",
                 data=data, actions=actions, level=Level.OK if ack else Level.INFO,
                 visibility=Visibility.CHANNEL)


def escalation(handover: Handover, zone: str, ack_minutes: float, fallback: list[str],
               people: list[str]) -> Reply:
    data = {"incoming": handover.incoming, "start": when(handover.at, zone),
            "ack_seconds": ack_minutes * 60, "fallback": fallback, "people": people}
    return Reply(title=f"Shift not acknowledged: {handover.incoming}",
                 template="shift_escalate.j2", data=data, level=Level.WARNING,
                 visibility=Visibility.CHANNEL)


def swap(by: str, a: ShiftSlot, b: ShiftSlot, zone: str) -> Reply:
    data = {"by": by, "a": a.person, "b": b.person, "a_start": when(a.start, zone),
            "a_end": when(a.end, zone), "b_start": when(b.start, zone), "b_end": when(b.end, zone)}
    return Reply(title=f"Shift swap: {a.person} ⇄ {b.person}", template="shift_swap.j2",
                 data=data, level=Level.OK, visibility=Visibility.CHANNEL)


def override(by: str, person: str, start: datetime, end: datetime, ident: int,
             replaced: list[ShiftSlot], zone: str) -> Reply:
    data = {"by": by, "person": person, "start": when(start, zone), "end": when(end, zone),
            "id": ident, "replaced": [f"{s.person} {when(s.start, zone)} to {when(s.end, zone)}"
                                      for s in replaced if s.person != person]}
    return Reply(title=f"Shift override: {person}", template="shift_override.j2", data=data,
                 level=Level.OK, visibility=Visibility.CHANNEL)


def acknowledged(by: str, handover: Handover, zone: str, ahead: bool) -> Reply:
    data = {"by": by, "incoming": handover.incoming, "start": when(handover.at, zone),
            "ahead": ahead}
    return Reply(template="shift_ack.j2", data=data, level=Level.OK,
                 visibility=Visibility.CHANNEL)


def who(slots: list[ShiftSlot], upcoming: ShiftSlot | None, label: str, zone: str,
        now: datetime) -> Reply:
    data = {"slots": [slot_data(s, zone, now) for s in slots], "when": label,
            "next": slot_data(upcoming, zone, now) if upcoming else None}
    title = "on shift: " + (", ".join(dict.fromkeys(s.person for s in slots)) or "nobody")
    return Reply(title=title, template="shift_who.j2", data=data)


def listing(slots: list[ShiftSlot], weeks: int, zone: str, now: datetime,
            configured: bool) -> Reply:
    rows = [[s.person, when(s.start, zone), when(s.end, zone),
             "" if s.origin == "rota" else s.origin, "now" if s.covers(now) else ""]
            for s in slots]
    table = Table(["person", "from", "until", "changed by", ""], rows) if rows else None
    return Reply(title="shifts", template="shift_list.j2", table=table,
                 data={"count": len(rows), "weeks": weeks, "zone": zone,
                       "configured": configured})
