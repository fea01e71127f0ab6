"""Remembering deliveries for a while, so a retried or replayed one runs once.

Slack retries events it thinks were not acknowledged (same event id, trigger id, envelope);
a Mattermost socket that resumes replays events (same post id). Adapters ask
:meth:`RecentKeys.first_time` before running anything.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RecentKeys:
    """A bounded set of keys, each forgotten ``ttl`` seconds after it was first seen."""

    def __init__(self, ttl: float, max_items: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str | None) -> bool:
        """Record ``key``; False when it was already seen within ``ttl``. A missing key (None
        or empty) cannot be recognised again, so it always counts as the first time."""
        if not key:
            return True
        now = self.clock()
        while self._seen:
            _oldest, when = next(iter(self._seen.items()))
            if now - when <= self.ttl and len(self._seen) < self.max_items:
                break
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def forget(self, key: str) -> None:
        """Let ``key`` count as new again (its handling failed before it did anything)."""
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)
