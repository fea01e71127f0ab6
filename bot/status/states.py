"""The state of a check between results: soft and hard levels, acknowledgements, silences, and
the notices a result calls for. Pure functions of (state, input, time): the store persists the
state, the service performs the notice operations.

Nagios' model, made explicit:

- a result's level is the one after the check's ``severity`` remap (the runner applies it);
- the *hard* level is what the check is considered to be, and what is notified. A result that
  differs from it starts or continues a *soft* run; the run counts consecutive results on the
  same side (all OK, or all not OK: WARNING then CRITICAL is one run, as in Nagios' attempts),
  and after ``notify_after`` of them the hard level becomes the latest one's. A result equal to
  the hard level ends the run. This is the flap suppression: a check must stay changed for K
  results, in either direction, before anyone hears about it;
- a change of the hard level is recorded (``status history``), ends an acknowledgement, and is
  posted once (unless silenced). A recovery goes into the thread of the alert it ends, and the
  alert message is updated to say so;
- while the hard level is not OK, not acknowledged and not silenced, the alert is repeated every
  ``renotify`` (a new message with the mention; the previous one is updated to point to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.status.model import Level

# Roles of notice operations (what the message says), see bot/status/notify.py.
ALERT, REPEAT, SUPERSEDED, RECOVERY, RECOVERED, ACKED = (
    "alert", "repeat", "superseded", "recovery", "recovered", "acked")
POST, UPDATE, THREAD = "post", "update", "thread"


@dataclass(frozen=True, slots=True)
class NoticeOp:
    """One thing to do on the notice path, kept with the state until it is done (JSON)."""

    kind: str  # post | update | thread
    key: str  # the notice's key (post: the new one; update/thread: the one it changes)
    role: str  # alert | repeat | superseded | recovery | recovered | acked
    level: Level
    summary: str
    at: datetime  # when the level began (alert, repeat) or changed (recovery)
    extra: dict[str, Any] = field(default_factory=dict)  # acked_by, reason, newer key, ...

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "role": self.role, "level": int(self.level),
                "summary": self.summary, "at": self.at.isoformat(), "extra": self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NoticeOp:
        return cls(data["kind"], data["key"], data["role"], Level(data["level"]),
                   data["summary"], datetime.fromisoformat(data["at"]), dict(data["extra"]))


@dataclass(frozen=True, slots=True)
class CheckState:
    check: str
    hard: Level | None = None  # None: no hard level yet (a new check)
    since: datetime | None = None  # when the hard level began
    change_id: int | None = None  # the status_changes row of the last hard change
    soft: Level | None = None  # the latest result differing from ``hard``
    soft_count: int = 0  # consecutive results on ``soft``'s side
    last_instant: datetime | None = None  # the scheduled instant of the last counted result
    checked_at: datetime | None = None
    summary: str = ""  # of the last counted result
    notice_key: str | None = None  # the live alert message (not OK, not recovered yet)
    notice_level: Level | None = None  # the level that message shows
    notices_sent: int = 0  # alert messages for the current change (1 + repeats)
    notified_at: datetime | None = None
    acked_by: str | None = None
    acked_reason: str | None = None
    acked_at: datetime | None = None
    silenced_until: datetime | None = None
    silenced_by: str | None = None
    silenced_reason: str | None = None
    pending: tuple[NoticeOp, ...] = ()  # notice operations decided but not done yet

    @property
    def acked(self) -> bool:
        return self.acked_by is not None

    def silenced(self, now: datetime) -> bool:
        return self.silenced_until is not None and now < self.silenced_until

    @property
    def alerting(self) -> bool:
        """A hard level that is not OK."""
        return self.hard is not None and self.hard != Level.OK


@dataclass(frozen=True, slots=True)
class Change:
    """A change of the hard level: ``old`` None for a new check's first hard level."""

    old: Level | None
    new: Level
    old_since: datetime | None = None  # when the old level began


def advance(state: CheckState, level: Level, *, summary: str, at: datetime,
            instant: datetime | None, notify_after: int) -> tuple[CheckState, Change | None]:
    """Count one (already remapped) result; returns the new state and the hard change, if any.

    A new check's first OK result is its hard level at once (nothing to suppress); a first
    level that is not OK must hold for ``notify_after`` results like any other change."""
    state = replace(state, checked_at=at, summary=summary,
                    last_instant=instant or state.last_instant)
    if state.hard is None and level == Level.OK:
        return _changed(state, level, at), Change(None, level)
    if level == state.hard:
        return replace(state, soft=None, soft_count=0), None
    same_side = state.soft is not None and (state.soft == Level.OK) == (level == Level.OK)
    count = state.soft_count + 1 if same_side else 1
    if count >= notify_after:
        return _changed(state, level, at), Change(state.hard, level, state.since)
    return replace(state, soft=level, soft_count=count), None


def _changed(state: CheckState, level: Level, at: datetime) -> CheckState:
    # A change of level ends the acknowledgement: the person acked *that* level.
    return replace(state, hard=level, since=at, soft=None, soft_count=0, acked_by=None,
                   acked_reason=None, acked_at=None)


def notices(state: CheckState, change: Change | None, now: datetime,
            renotify: timedelta | None) -> CheckState:
    """Decide the notice operations after a result (``change`` as :func:`advance` returned,
    with ``state.change_id`` already set for it); they are appended to ``state.pending``."""
    ops: list[NoticeOp] = []
    silenced = state.silenced(now)
    if change is not None and change.new == Level.OK and state.notice_key is not None:
        at = state.since or now
        was = state.notice_level or Level.UNKNOWN
        extra = {"was": int(was), "began": (change.old_since or at).isoformat()}
        if not silenced:
            ops.append(NoticeOp(THREAD, state.notice_key, RECOVERY, Level.OK, state.summary, at,
                                extra))
        ops.append(NoticeOp(UPDATE, state.notice_key, RECOVERED, was, state.summary, at, extra))
        state = replace(state, notice_key=None, notice_level=None, notices_sent=0)
    if state.alerting and not silenced:
        state, more = _alert_or_repeat(state, now, renotify)
        ops += more
    if not ops:
        return state
    return replace(state, pending=state.pending + tuple(ops))


def _alert_or_repeat(state: CheckState, now: datetime, renotify: timedelta | None
                     ) -> tuple[CheckState, list[NoticeOp]]:
    assert state.hard is not None
    if state.notice_key is not None and state.notice_level == state.hard:
        due = (renotify is not None and not state.acked and state.notified_at is not None
               and now - state.notified_at >= renotify)
        if not due:
            return state, []
        role, count = REPEAT, state.notices_sent + 1
    else:  # a new level (or the first one since a silence ended): a new alert
        role, count = ALERT, 1
    key = f"status:{state.check}:{state.change_id}" + (f":{count}" if count > 1 else "")
    at = state.since or now
    ops = [NoticeOp(POST, key, role, state.hard, state.summary, at, {"repeat": count - 1})]
    if state.notice_key is not None:  # the older message now points to the newer one
        ops.insert(0, NoticeOp(UPDATE, state.notice_key, SUPERSEDED,
                               state.notice_level or Level.UNKNOWN, state.summary, at,
                               {"now": int(state.hard)}))
    return replace(state, notice_key=key, notice_level=state.hard, notices_sent=count,
                   notified_at=now), ops


def acknowledge(state: CheckState, who: str, reason: str | None, now: datetime
                ) -> CheckState:
    """``status ack``: stops the repeats until the level changes (ValueError when there is
    nothing to acknowledge). The live alert message is updated to show it."""
    if not state.alerting:
        level = state.hard.name if state.hard is not None else "no result yet"
        raise ValueError(f"{state.check} has no alert to acknowledge (its level: {level})")
    state = replace(state, acked_by=who, acked_reason=reason, acked_at=now)
    if state.notice_key is None:
        return state
    assert state.hard is not None
    op = NoticeOp(UPDATE, state.notice_key, ACKED, state.hard, state.summary,
                  state.since or now, {"by": who, "reason": reason or ""})
    return replace(state, pending=(*state.pending, op))


def silence(state: CheckState, until: datetime | None, who: str | None,
            reason: str | None) -> CheckState:
    """``status silence`` (``until`` None: ``status unsilence``)."""
    return replace(state, silenced_until=until, silenced_by=who if until else None,
                   silenced_reason=reason if until else None)
