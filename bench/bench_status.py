"""Status checks: `status` with many checks against the slowest one, and periodic checks' cost.

1. ``status`` with 50 HTTP checks on loopback, half of them slow (the server waits ``--slow``
   seconds before answering), answered through the bot as a person types it; the floor is the
   same ``status`` with the slowest check alone, measured in the same run. Target: median
   ratio < 1.1.
2. 200 periodic checks (HTTP, TCP and disk, 10 s intervals) run by the real scheduler for
   ``--minutes`` (default 5): event-loop lag p99 (a 20 ms probe's overshoot) < 20 ms, and the
   bot's CPU share (process CPU time / wall time; the HTTP server is another process).

    .venv/bin/python bench/bench_status.py [--minutes 5] [--rounds 7] [--slow 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import ChildProcess, percentile, print_table, verdict

STATUS_RATIO_TARGET = 1.1
LAG_P99_TARGET_MS = 20.0
PROBE_SECONDS = 0.02


# ------------------------------------------------------------------ the HTTP server's process

async def serve() -> None:
    """Child side: /fast answers at once, /slow after ?delay= seconds; READY PORT."""
    from aiohttp import web

    async def fast(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "workers": 66})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "1")))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/fast", fast)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print("READY", port, flush=True)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "quit":
            break
        print("OK", f"{time.process_time():.3f}", flush=True)
    await runner.cleanup()


# ------------------------------------------------------------------ the bot side

def http_check(name: str, port: int, slow: float | None, interval: float = 60) -> dict[str, Any]:
    path = f"/slow?delay={slow}" if slow else "/fast"
    return {"name": name, "type": "http", "url": f"http://127.0.0.1:{port}{path}",
            "timeout_seconds": 10, "interval_seconds": interval}


def config(tmp: Path, checks: list[dict[str, Any]]) -> Any:
    from bot.config import parse_config

    return parse_config({
        "bot": {"name": "bench", "database": f"sqlite:///{tmp / 'bench.db'}",
                "handlers": ["handlers.builtin", "handlers.status"], "console_person": "alice"},
        "people": {"alice": {"name": "Alice"}},
        "roles": {"viewer": {"allow": ["status", "help"]}},
        "grants": [{"role": "viewer", "people": ["alice"]}],
        "channels": {"ops": {}},
        "status": {"checks": checks, "channel": "ops", "margin_seconds": 2},
    }, tmp)


async def timed_status(bot: Any) -> float:
    from bot.identity import Inbound

    started = time.perf_counter()
    outcome = await bot.handle(Inbound("console", "alice", "status"))
    elapsed = time.perf_counter() - started
    assert outcome.reply.level.value != "error", outcome.reply.text
    return elapsed


async def status_part(port: int, rounds: int, slow: float) -> tuple[list[list[str]], bool]:
    from bot.core import Bot

    many = [http_check(f"c{i:02d}", port, slow if i % 2 else None) for i in range(50)]
    alone = [http_check("c01", port, slow)]
    times: dict[str, list[float]] = {"50 checks (25 slow)": [], "slowest alone (floor)": []}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        big = await Bot.create(config(Path(a), many))
        one = await Bot.create(config(Path(b), alone))
        try:
            await timed_status(big)  # warm: connections, templates, the first query
            await timed_status(one)
            for _ in range(rounds):  # interleaved: both see the same machine load
                times["50 checks (25 slow)"].append(await timed_status(big))
                times["slowest alone (floor)"].append(await timed_status(one))
        finally:
            await big.close()
            await one.close()
    ratio = statistics.median(times["50 checks (25 slow)"]) / statistics.median(
        times["slowest alone (floor)"])
    rows = [[name, f"{statistics.median(v) * 1000:.0f}", f"{min(v) * 1000:.0f}",
             f"{max(v) * 1000:.0f}"] for name, v in times.items()]
    rows.append(["ratio (median)", f"{ratio:.3f}", f"target < {STATUS_RATIO_TARGET}",
                 verdict(ratio < STATUS_RATIO_TARGET)])
    return rows, ratio < STATUS_RATIO_TARGET


async def probe_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late the loop wakes a 20 ms sleep: what any event (a command, a click) waits."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(PROBE_SECONDS)
        lags.append(max(0.0, time.perf_counter() - started - PROBE_SECONDS) * 1000)


async def periodic_part(port: int, minutes: float, server: ChildProcess
                        ) -> tuple[list[list[str]], bool]:
    from bot.lifecycle import Lifecycle
    from bot.status.service import StatusService

    checks: list[dict[str, Any]] = []
    for i in range(200):
        name, kind = f"p{i:03d}", i % 4
        if kind in (0, 1):
            checks.append(http_check(name, port, None, interval=10))
        elif kind == 2:
            checks.append({"name": name, "type": "tcp", "host": "127.0.0.1", "port": port,
                           "timeout_seconds": 5, "interval_seconds": 10})
        else:
            checks.append({"name": name, "type": "disk", "path": "/", "timeout_seconds": 5,
                           "interval_seconds": 10})
    with tempfile.TemporaryDirectory() as tmp:
        life = Lifecycle(config(Path(tmp), checks), http=False, jobs=True)
        bot = await life.start()
        stop, lags = asyncio.Event(), []
        probe = asyncio.create_task(probe_lag(stop, lags))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        server0 = float((await server.ask("cpu"))[0])
        await asyncio.sleep(minutes * 60)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        server_cpu = float((await server.ask("cpu"))[0]) - server0
        stop.set()
        await probe
        bot.services.require(StatusService)  # the feature ran (not a silent no-op)
        runs = await bot.database.run(_count_results)
        await life.stop()
    p99 = percentile(lags, 99)
    rows = [["checks x interval", "200 x 10 s", f"{minutes:g} min", ""],
            ["results stored", str(runs), f"expected ~{int(200 * minutes * 6)}", ""],
            ["loop lag p50 / p99 / max (ms)", f"{percentile(lags, 50):.2f}",
             f"{p99:.2f} / {max(lags):.1f}", verdict(p99 < LAG_P99_TARGET_MS)],
            ["bot CPU share", f"{cpu / wall * 100:.1f}%", f"server {server_cpu / wall * 100:.1f}%",
             "(one core = 100%)"]]
    return rows, p99 < LAG_P99_TARGET_MS


def _count_results(conn: Any) -> int:
    from sqlalchemy import text

    return int(conn.execute(text("SELECT count(*) FROM status_results")).scalar() or 0)


async def main_async(args: argparse.Namespace) -> int:
    server = ChildProcess([sys.executable, __file__, "--serve"])
    await server.start()
    port = int(server.ready[0])
    try:
        rows, ok_status = await status_part(port, args.rounds, args.slow)
        print_table(f"status with 50 HTTP checks, half answering after {args.slow:g} s "
                    f"({args.rounds} rounds, ms)", ["run", "median", "min", "max"], rows)
        ok_periodic = True
        if args.minutes > 0:
            rows, ok_periodic = await periodic_part(port, args.minutes, server)
            print_table("200 periodic checks (100 http, 50 tcp, 50 disk)",
                        ["measure", "value", "", "verdict"], rows)
    finally:
        await server.stop()
    return 0 if ok_status and ok_periodic else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--slow", type=float, default=1.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
