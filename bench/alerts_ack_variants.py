"""Why bench/bench_alerts.py misses its timing targets: the Sentry webhook's ack path as it is
and two cheaper variants, each a server built from the same bot pieces, measured side by side
under the benchmark's load (1,000 signed webhooks, 50 clients), CPU per request compared.

* floor: verify the HMAC, answer 200 (as in bench_alerts.py);
* single: as bot/alerts/webhooks.py does it: verify, ``parse_webhook``, one transaction per
  delivery (``inbox.accept`` through ``bot.database.run``), then 200;
* group: the same, but deliveries waiting at the same moment are stored in one transaction
  (up to 100) by one writer task; each request is answered after its row is committed;
* lean: group, plus only the dedupe key taken from the JSON before the ack and the batch
  written with one ``executemany``.

Servers pinned to core 0, this load generator to core 1 (docs/performance.md, "Sentry
alerts"). Run: .venv/bin/python bench/alerts_ack_variants.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from _util import ChildProcess, free_port, percentile, pin, print_table
from bench_alerts import CLIENTS, deliveries, send_all, signed, spawn_floor  # also sets paths

KINDS = ("single", "group", "lean")
BATCH = 100


def lean_key(resource: str, body: bytes) -> tuple[str, str, str, str]:
    """(dedupe key, resource, action, subject) from the JSON alone (the two shapes sent)."""
    data = json.loads(body)["data"]
    if resource == "issue":
        issue = data["issue"]
        return (f"issue:{issue['id']}:created:{issue['lastSeen']}:{issue['status']}", resource,
                "created", f"sentry:{issue['id']}")
    event = data["event"]
    return f"event:{event['event_id']}", resource, "triggered", f"sentry:{event['issue_id']}"


async def serve(kind: str, port: int, tmp: Path) -> None:
    from aiohttp import web
    from alerts_stack import ALERTS_HANDLERS, CLIENT_SECRET
    from sqlalchemy.dialects import sqlite

    from bot import clock
    from bot.alerts import inbox
    from bot.alerts.payloads import parse_webhook
    from bot.alerts.signature import verify
    from bot.alerts.tables import inbox as table
    from bot.config import parse_config
    from bot.core import Bot

    bot = await Bot.create(parse_config({"bot": {
        "database": f"sqlite:///{tmp / kind}.db",
        "handlers": ["handlers.builtin", *ALERTS_HANDLERS]}}, tmp), start_handlers=False)
    insert = sqlite.insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"])
    waiting: list[tuple[Any, str, asyncio.Future[None]]] = []
    wake = asyncio.Event()

    def write(conn: Any, batch: list[tuple[Any, str, Any]]) -> None:
        now = clock.utcnow()
        if kind == "lean":
            conn.execute(insert, [
                {"dedupe_key": key, "resource": resource, "action": action, "subject": subject,
                 "body": body, "request_id": None, "received_at": now, "state": "pending",
                 "attempts": 0, "next_at": now}
                for (key, resource, action, subject), body, _ in batch])
        else:
            for alert, body, _ in batch:
                inbox.accept(conn, alert, body, None, now)

    async def writer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            while waiting:
                batch = waiting[:BATCH]
                del waiting[:BATCH]
                await bot.database.run(write, batch)
                for *_, done in batch:
                    done.set_result(None)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(CLIENT_SECRET, body, request.headers.get("Sentry-Hook-Signature")):
            return web.json_response({"ok": False}, status=401)
        resource = request.headers["Sentry-Hook-Resource"]
        if kind == "single":
            alert = parse_webhook(resource, body)
            await bot.database.run(inbox.accept, alert, body.decode(), None, clock.utcnow())
        else:
            done = asyncio.get_running_loop().create_future()
            parsed = lean_key(resource, body) if kind == "lean" else parse_webhook(resource,
                                                                                   body)
            waiting.append((parsed, body.decode(), done))
            wake.set()
            await done
        return web.json_response({"ok": True})

    keep = asyncio.create_task(writer())
    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/webhooks/sentry", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("READY", flush=True)
    await asyncio.Event().wait()
    keep.cancel()


async def drive(rounds: int) -> list[list[str]]:
    import aiohttp
    from alerts_stack import CLIENT_SECRET

    pin(1)
    tmp = tempfile.mkdtemp(prefix="ack-variants-")
    servers: dict[str, tuple[ChildProcess, str]] = {}
    for kind in ("floor", *KINDS):
        port = free_port()
        if kind == "floor":
            child = await spawn_floor(port, CLIENT_SECRET)
        else:
            child = ChildProcess([sys.executable, os.path.abspath(__file__), "--serve", kind,
                                  str(port), tmp])
            await child.start()
        servers[kind] = (child, f"http://127.0.0.1:{port}/webhooks/sentry")
    rows = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2 * CLIENTS)) as s:
            for n in range(rounds + 1):  # round 0 warms up
                for kind, (child, url) in servers.items():
                    issues = list(range(1000 * n, 1000 * n + 50))
                    load = await send_all(s, url, signed(deliveries(issues, 1000, kind),
                                                         CLIENT_SECRET), child.proc.pid)
                    if n:
                        rows.append([str(n), kind, f"{load.cpu_ms:.3f}", f"{load.rate:.0f}",
                                     f"{percentile(load.latencies, 99):.1f}",
                                     str(load.non_200)])
    finally:
        for child, _url in servers.values():
            await child.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "TMP"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        pin(0)
        kind, port, tmp = args.serve
        asyncio.run(serve(kind, int(port), Path(tmp)))
        return 0
    print_table("Ack path variants: 1,000 signed webhooks, 50 clients, per round",
                ["round", "server", "server CPU ms/req", "webhooks/s", "p99 ms", "non-200"],
                asyncio.run(drive(args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
