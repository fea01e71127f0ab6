"""The state machine of status checks (bot/status/states.py), without a database: soft and hard
levels with flap suppression, acknowledgements, silences, and the notice operations each
result calls for."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.status import states as st
from bot.status.model import Level

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
NOT_OK = [Level.WARNING, Level.CRITICAL, Level.UNKNOWN]


class Machine:
    """Feeds results one interval apart, as the service does (change ids from a counter)."""

    def __init__(self, k: int = 2, renotify: timedelta | None = None,
                 state: st.CheckState | None = None) -> None:
        self.k, self.renotify = k, renotify
        self.state = state or st.CheckState("disk")
        self.now = T0
        self.ids = itertools.count(1)
        self.changes: list[st.Change] = []

    def feed(self, *levels: Level, step: float = 60) -> list[st.NoticeOp]:
        """Results at ``step`` s apart; returns the notice operations they added."""
        before = len(self.state.pending)
        for level in levels:
            self.now += timedelta(seconds=step)
            state, change = st.advance(self.state, level, summary=f"{level.name} result",
                                       at=self.now, instant=self.now, notify_after=self.k)
            if change is not None:
                self.changes.append(change)
                state = replace(state, change_id=next(self.ids))
            self.state = st.notices(state, change, self.now, self.renotify)
        return list(self.state.pending[before:])

    def done(self) -> None:
        self.state = replace(self.state, pending=())


def roles(ops: list[st.NoticeOp]) -> list[tuple[str, str, str]]:
    return [(op.kind, op.role, op.level.name) for op in ops]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("level", NOT_OK)
def test_every_level_counts_after_k_consecutive_results(level: Level, k: int) -> None:
    m = Machine(k)
    assert m.feed(Level.OK) == [] and m.state.hard == Level.OK  # a first OK counts at once
    for i in range(1, k):
        assert m.feed(level) == []
        assert (m.state.hard, m.state.soft, m.state.soft_count) == (Level.OK, level, i)
    (alert,) = m.feed(level)
    assert (alert.kind, alert.role, alert.level) == (st.POST, st.ALERT, level)
    assert alert.key == f"status:disk:{m.state.change_id}"
    assert m.state.hard == level and m.state.since == m.now and m.state.soft is None
    assert m.changes[-1] == st.Change(Level.OK, level, T0 + timedelta(seconds=60))
    m.done()
    # ...and back: a recovery needs k OK results too
    for _ in range(1, k):
        assert m.feed(Level.OK) == [] and m.state.hard == level
    assert roles(m.feed(Level.OK)) == [(st.THREAD, st.RECOVERY, "OK"),
                                       (st.UPDATE, st.RECOVERED, level.name)]
    assert m.state.notice_key is None and m.state.hard == Level.OK


@pytest.mark.parametrize("k", [2, 3])
def test_flapping_never_reaches_anyone(k: int) -> None:
    m = Machine(k)
    m.feed(Level.OK)
    for _ in range(10):
        assert m.feed(Level.CRITICAL, Level.OK) == []
    assert m.state.hard == Level.OK and len(m.changes) == 1  # only the first OK
    # a blip inside an alert does not end it either
    m.feed(*[Level.CRITICAL] * k)
    m.done()
    assert m.feed(Level.OK, Level.CRITICAL, Level.OK, Level.CRITICAL) == []
    assert m.state.hard == Level.CRITICAL


def test_a_run_of_mixed_bad_levels_counts_as_one_and_ends_on_the_latest() -> None:
    m = Machine(3)
    m.feed(Level.OK)
    (alert,) = m.feed(Level.WARNING, Level.CRITICAL, Level.UNKNOWN)
    assert alert.level == Level.UNKNOWN and m.state.hard == Level.UNKNOWN


def test_a_new_check_that_starts_bad_waits_like_any_change() -> None:
    m = Machine(2)
    assert m.feed(Level.CRITICAL) == [] and m.state.hard is None
    (alert,) = m.feed(Level.CRITICAL)
    assert alert.role == st.ALERT and m.changes == [st.Change(None, Level.CRITICAL, None)]


def test_a_worse_level_posts_a_new_alert_and_the_old_one_points_to_it() -> None:
    m = Machine(1)
    m.feed(Level.OK)
    (first,) = m.feed(Level.WARNING)
    m.done()
    update, alert = m.feed(Level.CRITICAL)
    assert (update.kind, update.role, update.key, update.extra["now"]) == (
        st.UPDATE, st.SUPERSEDED, first.key, int(Level.CRITICAL))
    assert (alert.kind, alert.role, alert.level) == (st.POST, st.ALERT, Level.CRITICAL)
    assert alert.key != first.key and m.state.notice_key == alert.key


def test_reminders_repeat_until_acknowledged_and_the_ack_ends_with_the_level() -> None:
    m = Machine(1, renotify=timedelta(minutes=30))
    m.feed(Level.OK)
    (alert,) = m.feed(Level.CRITICAL)
    m.done()
    assert m.feed(*[Level.CRITICAL] * 29) == []  # 29 min after the alert
    superseded, repeat = m.feed(Level.CRITICAL)  # 30 min
    assert (superseded.key, repeat.role, repeat.key) == (alert.key, st.REPEAT, alert.key + ":2")
    m.done()
    m.state = st.acknowledge(m.state, "alice", "on it", m.now)
    (acked,) = m.state.pending
    assert (acked.kind, acked.role, acked.key, acked.extra) == (
        st.UPDATE, st.ACKED, repeat.key, {"by": "alice", "reason": "on it"})
    m.done()
    assert m.feed(*[Level.CRITICAL] * 120) == []  # two hours: acknowledged, quiet
    # a change of level ends the acknowledgement: the new level is alerted and repeated
    _, alert2 = m.feed(Level.WARNING)
    assert alert2.role == st.ALERT and not m.state.acked
    m.done()
    assert [op.role for op in m.feed(*[Level.WARNING] * 30)] == [st.SUPERSEDED, st.REPEAT]


def test_nothing_to_acknowledge_when_ok_or_new() -> None:
    with pytest.raises(ValueError, match=r"no alert to acknowledge.*no result yet"):
        st.acknowledge(st.CheckState("disk"), "alice", None, T0)
    m = Machine(1)
    m.feed(Level.OK)
    with pytest.raises(ValueError, match="its level: OK"):
        st.acknowledge(m.state, "alice", None, T0)


def test_a_silence_mutes_alerts_and_reminders_until_it_ends() -> None:
    m = Machine(1, renotify=timedelta(minutes=10))
    m.feed(Level.OK)
    m.state = st.silence(m.state, m.now + timedelta(hours=1), "bob", "maintenance")
    assert m.state.silenced(m.now) and not m.state.silenced(m.now + timedelta(hours=1))
    assert m.feed(Level.CRITICAL) == [] and m.state.hard == Level.CRITICAL
    assert m.feed(*[Level.CRITICAL] * 58) == []  # still silenced
    (alert,) = m.feed(Level.CRITICAL)  # the hour is over: the alert goes out now
    assert alert.role == st.ALERT and alert.level == Level.CRITICAL


def test_a_recovery_during_a_silence_fixes_the_alert_message_quietly() -> None:
    m = Machine(1)
    m.feed(Level.OK)
    (alert,) = m.feed(Level.CRITICAL)
    m.done()
    m.state = st.silence(m.state, m.now + timedelta(hours=1), "bob", None)
    (recovered,) = m.feed(Level.OK)  # no thread reply, only the message updated
    assert (recovered.kind, recovered.role, recovered.key) == (st.UPDATE, st.RECOVERED,
                                                               alert.key)
    m.state = st.silence(m.state, None, None, None)
    assert m.state.silenced_by is None and m.feed(Level.OK) == []


def test_notice_operations_survive_json() -> None:
    m = Machine(1)
    m.feed(Level.OK)
    m.feed(Level.CRITICAL)
    m.state = st.acknowledge(m.state, "alice", "x", m.now)
    for op in m.state.pending:
        assert st.NoticeOp.from_json(op.to_json()) == op
