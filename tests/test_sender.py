"""The shared outbound sender: order per channel, 429 honoured, transient errors retried."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.sender import ChannelSender, RateLimited, TransientError


async def test_order_kept_through_rate_limits_and_failures() -> None:
    delivered: dict[str, list[int]] = {"a": [], "b": []}
    calls = {"n": 0}

    async def post(channel: str, payload: int) -> int:
        calls["n"] += 1
        if calls["n"] % 7 == 0:
            raise RateLimited(retry_after=0.01)
        if calls["n"] % 5 == 0:
            raise TransientError("502")
        delivered[channel].append(payload)
        return payload

    sender: ChannelSender[int] = ChannelSender(post, base_delay=0.001)
    futures = [sender.send_nowait(ch, i) for i in range(50) for ch in ("a", "b")]
    results = await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert delivered == {"a": list(range(50)), "b": list(range(50))}
    assert sorted(results) == sorted(list(range(50)) * 2)
    assert sender.stats.rate_limited > 0 and sender.stats.retried > 0
    await sender.close()


async def test_retry_after_is_honoured_per_channel() -> None:
    hits: list[tuple[str, float]] = []
    limited = {"slow": 1}

    async def post(channel: str, payload: str) -> str:
        hits.append((channel, time.monotonic()))
        if limited.get(channel):
            limited[channel] -= 1
            raise RateLimited(retry_after=0.3)
        return payload

    sender: ChannelSender[str] = ChannelSender(post)
    start = time.monotonic()
    slow = sender.send_nowait("slow", "x")
    fast = await sender.send("fast", "y")
    assert fast == "y" and time.monotonic() - start < 0.2  # other channels keep flowing
    assert await slow == "x" and time.monotonic() - start >= 0.3
    await sender.close()


async def test_permanent_errors_fail_the_caller_not_the_queue() -> None:
    async def post(channel: str, payload: str) -> str:
        if payload == "bad":
            raise ValueError("channel_not_found")
        return payload

    sender: ChannelSender[str] = ChannelSender(post)
    bad = sender.send_nowait("c", "bad")
    good = sender.send_nowait("c", "good")
    with pytest.raises(ValueError, match="channel_not_found"):
        await bad
    assert await good == "good"
    assert sender.stats.failed == 1
    await sender.close()


async def test_gives_up_after_max_attempts() -> None:
    async def post(channel: str, payload: str) -> str:
        raise TransientError("503")

    sender: ChannelSender[str] = ChannelSender(post, max_attempts=3, base_delay=0.001)
    with pytest.raises(TransientError):
        await sender.send("c", "x")
    await sender.close()


async def test_flush_returns_once_everything_is_delivered() -> None:
    delivered: list[str] = []

    async def post(channel: str, payload: str) -> str:
        await asyncio.sleep(0.01)
        delivered.append(payload)
        return payload

    sender: ChannelSender[str] = ChannelSender(post)  # idle workers linger for 60 s
    for i in range(5):
        sender.send_nowait("c", str(i))
    start = time.monotonic()
    await sender.flush(timeout=5)
    assert delivered == ["0", "1", "2", "3", "4"] and sender.pending() == 0
    assert time.monotonic() - start < 1
    await sender.close()
