"""The tcp check against real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from status_env import StubEnv

from bot.status.checks.tcp import TcpCheck
from bot.status.model import Level
from bot.status.runner import run_check


def tcp(port: int, **keys: object) -> TcpCheck:
    return TcpCheck.model_validate({"type": "tcp", "name": "t", "host": "127.0.0.1",
                                    "port": port, **keys})


@pytest.fixture
async def listening() -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_open_port(listening: int) -> None:
    result = await run_check(tcp(listening), StubEnv())
    assert result.level is Level.OK
    assert result.summary.startswith(f"127.0.0.1:{listening} accepted a connection in ")
    assert 0 <= result.values["time"] < 1


async def test_latency_thresholds(listening: int) -> None:
    result = await run_check(tcp(listening, latency={"warning": "~:0"}), StubEnv())
    assert result.level is Level.WARNING and "time=" in result.summary
    result = await run_check(tcp(listening, latency={"critical": "~:0"}), StubEnv())
    assert result.level is Level.CRITICAL


async def test_closed_port() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    result = await run_check(tcp(port), StubEnv())
    assert result.level is Level.CRITICAL and "refused" in result.summary.lower()
    result = await run_check(tcp(port, down_level="warning"), StubEnv())
    assert result.level is Level.WARNING


async def test_a_port_that_never_answers_times_out() -> None:
    # A listening socket whose backlog is full: the kernel drops further SYNs, so connect()
    # hangs; the runner stops it at the check's timeout.
    held, sockets = socket.socket(), []
    held.bind(("127.0.0.1", 0))
    held.listen(0)
    port = held.getsockname()[1]
    try:
        for _ in range(8):  # fill the accept queue
            client = socket.socket()
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.connect(("127.0.0.1", port))
            sockets.append(client)
        result = await run_check(tcp(port, timeout_seconds=0.5), StubEnv())
    finally:
        for client in sockets:
            client.close()
        held.close()
    assert (result.level, result.summary) == (Level.UNKNOWN, "timed out after 0.5 s")


@pytest.mark.parametrize("keys", [{"port": 0}, {"port": 70000}, {"host": "a b"},
                                  {"host": ""}, {"down_level": "ok"}])
def test_bad_config(keys: dict) -> None:
    with pytest.raises(ValueError):
        tcp(**{"port": 80, **keys})
