"""The one clock: everything that reads the time (requests, notices, claims, jobs) asks here.

``utcnow()`` is ``datetime.now(UTC)`` unless a test installed another clock with
:func:`use_clock`; ``time-machine`` also moves it, since it patches ``datetime.now``. Durations
measured inside one process (deadlines, backoff) use ``time.monotonic`` and are not affected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

Now = Callable[[], datetime]


def _system() -> datetime:
    return datetime.now(UTC)


_now: Now = _system


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return _now()


@contextmanager
def use_clock(now: Now) -> Iterator[None]:
    """Tests: read the time from ``now`` inside the ``with`` block."""
    global _now
    previous, _now = _now, now
    try:
        yield
    finally:
        _now = previous


class ManualClock:
    """A clock that moves only when told: ``with use_clock(clock): ... clock.advance(60)``."""

    def __init__(self, start: datetime) -> None:
        self.now = start if start.tzinfo else start.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)
        return self.now
