"""The delivery memory both adapters use to run a retried or replayed delivery once."""

from __future__ import annotations

from bot.dedupe import RecentKeys


def test_keys_are_forgotten_after_their_ttl() -> None:
    now = [0.0]
    seen = RecentKeys(10, max_items=3, clock=lambda: now[0])
    assert seen.first_time("a") and not seen.first_time("a")
    now[0] = 11
    assert seen.first_time("a")  # expired, seen again as new
    for key in "bcd":
        assert seen.first_time(key)
    assert len(seen) == 3 and seen.first_time("a")  # bounded: the oldest went


def test_missing_keys_always_count_as_new() -> None:
    seen = RecentKeys(10)
    assert seen.first_time(None) and seen.first_time(None) and seen.first_time("")
    assert len(seen) == 0
