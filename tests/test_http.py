"""The HTTP server over real sockets: /healthz, /metrics, `shiftbot run` and SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from conftest import BASE, console, deep_merge

from bot.health import ComponentState
from bot.runtime import attach_http

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_healthz_and_metrics(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    http = attach_http(bot, "127.0.0.1", 0)
    await http.start()
    try:
        async with httpx.AsyncClient(base_url=http.url) as client:
            healthy = await client.get("/healthz")
            assert healthy.status_code == 200
            assert healthy.json()["components"]["database"]["ok"] is True
            await bot.handle(console("alice", "help"))
            await bot.handle(console("dave", "sample wipe x"))
            metrics = (await client.get("/metrics")).text
            assert 'shiftbot_commands_total{decision="allowed",family="help"} 1.0' in metrics
            assert 'shiftbot_commands_total{decision="denied",family="sample"} 1.0' in metrics
            assert 'shiftbot_command_duration_seconds_bucket{family="help",le="0.01"}' in metrics
            bot.health.set("slack", False, "no websocket for 75 s")
            sick = await client.get("/healthz")
            assert sick.status_code == 503
            assert sick.json()["components"]["slack"] == {
                "ok": False, "detail": "no websocket for 75 s",
                "since": sick.json()["components"]["slack"]["since"]}
            assert 'shiftbot_component_up{component="slack"} 0.0' in (
                await client.get("/metrics")).text

            async def broken() -> ComponentState:
                raise RuntimeError("probe exploded")

            bot.health.set("slack", True)
            bot.health.register("thing", broken)
            assert (await client.get("/healthz")).status_code == 503
    finally:
        await http.stop()


def test_run_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    raw = deep_merge(BASE, {"bot": {"database": f"sqlite:///{tmp_path / 'r.db'}",
                                    "http": {"host": "127.0.0.1", "port": port}}})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--config", str(path)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200
        assert "shiftbot_build_info" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, output
        assert "shutting down" in output
    finally:
        if proc.poll() is None:
            proc.kill()
