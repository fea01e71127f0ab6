"""A bot process for the notice crash tests (tests/test_notices_crash.py), run as a real process
so it can be killed with SIGKILL in the middle of a send.

    python tests/notice_proc.py CONFIG [--restart] [--clock-offset SECONDS]

It starts the bot the way ``shiftbot run`` does (the lifecycle, every adapter the config
enables), posts the notices of :data:`SCRIPT`, waits until the outbox has delivered them, prints
``delivered`` and stops cleanly. ``--restart`` is the same process started again after a crash:
it posts the notices again (a no-op for a key already stored, as when a feature's job runs
again) but not the updates and thread replies, which add a step each time they are called.
``--clock-offset`` moves the one clock forward (``bot.clock.use_clock``): a restart that comes
after the dead process's claims expired, without waiting for them in real time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.clock import use_clock
from bot.config import load_config
from bot.core import Bot
from bot.lifecycle import Lifecycle
from bot.observability import setup_logging
from bot.reply import Reply
from bot.runtime import build_adapters

ALIAS = "ops"
# (call, key, text): what the notice feature does, in this order
SCRIPT: list[tuple[str, str, str]] = [
    ("post", "k0", "k0"),
    ("thread", "k0", "k0 reply"),
    ("update", "k0", "k0 updated"),
    ("post", "k1", "k1"),
    ("post", "k2", "k2"),
]
DELIVERY_TIMEOUT = 20.0


async def post_script(bot: Bot, restart: bool) -> None:
    for call, key, text in SCRIPT:
        if call == "post":
            await bot.notices.post(ALIAS, Reply(text=text), key=key)
        elif not restart:
            await getattr(bot.notices, call)(key, Reply(text=text))


async def run(config_path: str, restart: bool) -> int:
    lifecycle = Lifecycle(load_config(config_path), adapters=build_adapters)
    bot = await lifecycle.start()
    try:
        await post_script(bot, restart)
        print("posted", flush=True)
        for key in sorted({key for _call, key, _text in SCRIPT}):
            await bot.notices.delivered(key, DELIVERY_TIMEOUT)
        if not await bot.notices.idle(DELIVERY_TIMEOUT):
            print("not idle", flush=True)
            return 1
        print("delivered", flush=True)
        return 0
    finally:
        await lifecycle.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--restart", action="store_true")
    parser.add_argument("--clock-offset", type=float, default=0.0)
    args = parser.parse_args(argv)
    setup_logging("INFO")
    offset = timedelta(seconds=args.clock_offset)
    with use_clock(lambda: datetime.now(UTC) + offset):
        return asyncio.run(run(args.config, args.restart))


if __name__ == "__main__":
    sys.exit(main())
