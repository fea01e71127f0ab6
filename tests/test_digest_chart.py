"""The shift chart: PNG bytes drawn with matplotlib's Agg backend off the event loop, under a
deadline; matplotlib is not imported until a chart is drawn; the digest goes out without a
chart when drawing fails or takes too long."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_digest_rig import INSIDE, PREVIOUS, T0, clock, digest_rig, seed

from bot.digests import chart, content

__all__ = ["clock"]  # fixture

START = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
END = START + timedelta(days=1)


def _data() -> chart.ChartData:
    hours = [START + timedelta(hours=h) for h in range(0, 25, 3)]
    return chart.ChartData(
        START, END, "test shift",
        queue={"idle": [(t, 10 + i) for i, t in enumerate(hours)],
               "held": [(t, i % 3) for i, t in enumerate(hours)]},
        alerts_per_day={"2026-03-30": 4, "2026-03-31": 1},
        levels={"gwcelery": [(START, 0), (START + timedelta(hours=5), 2)],
                "disk": [(START, 1)]})


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    return pixels.shape[1], pixels.shape[0]


def test_draw_gives_a_png_with_one_panel_per_kind_of_data() -> None:
    full = _png_size(chart.draw(_data()))
    only_alerts = chart.ChartData(START, END, alerts_per_day={"2026-03-30": 2})
    one = _png_size(chart.draw(only_alerts))
    assert full[0] == one[0] == 900
    assert full[1] > 2 * one[1]  # three panels stacked against one

    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"


async def test_nothing_to_draw_is_no_chart() -> None:
    assert await chart.render(chart.ChartData(START, END), timeout=5) is None


async def test_drawn_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real = chart.draw

    def slow_draw(data: chart.ChartData) -> bytes:
        threads.append(threading.get_ident())
        time.sleep(0.3)
        return real(data)

    monkeypatch.setattr(chart, "draw", slow_draw)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    png = await chart.render(_data(), timeout=30)
    task.cancel()
    assert png is not None and png.startswith(b"\x89PNG")
    assert threads and threads[0] != threading.get_ident()
    assert ticks >= 10  # the loop kept running while the chart was drawn


async def test_a_slow_draw_hits_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chart, "draw", lambda data: time.sleep(1) or b"")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await chart.render(_data(), timeout=0.2)
    assert time.monotonic() - started < 0.9


def test_matplotlib_is_imported_only_when_drawing() -> None:
    code = ("import sys, handlers.digests, bot.digests.service, bot.digests.chart\n"
            "assert 'matplotlib' not in sys.modules, 'imported early'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=".", timeout=60)


async def test_chart_data_from_the_seeded_database(make_bot: Any, clock: Any) -> None:
    rig = await digest_rig(make_bot)
    await seed(rig.bot)
    sections = await rig.bot.database.run(content.gather, PREVIOUS, T0, 20)
    data = chart.chart_data(sections, PREVIOUS, T0, "t")
    assert data.queue["held"] == [(PREVIOUS - timedelta(minutes=5), 2), (INSIDE, 4),
                                  (T0 - timedelta(minutes=5), 5)]
    assert data.alerts_per_day == {"2026-03-30": 3}
    assert data.levels["gwcelery"] == [(PREVIOUS, 0), (INSIDE, 2)]
    assert data.levels["disk"] == [(PREVIOUS, 1)]


async def test_the_digest_goes_out_without_a_failed_chart(
        make_bot: Any, clock: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    rig = await digest_rig(make_bot, {"digests": {"chart_timeout_seconds": 0.2}})
    await seed(rig.bot)
    monkeypatch.setattr(chart, "draw", lambda data: time.sleep(0.5) or b"")
    with caplog.at_level(logging.WARNING, logger="bot.digests.service"):
        first = await rig.run("digest preview")
        second = await rig.run("digest preview")
    for text in (first, second):
        assert "Alerts: 3 deliveries" in text and "shift-chart.png" not in text
    failures = [r for r in caplog.records if "chart failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info and not failures[1].exc_info


async def test_the_chart_is_saved_in_the_state_dir_by_a_stable_name(
        make_bot: Any, clock: Any, tmp_path: Any) -> None:
    rig = await digest_rig(make_bot)
    await seed(rig.bot)
    text = await rig.run("digest now")
    path = tmp_path / "digest-now-20260331T070000Z.png"  # next to the SQLite database
    assert f"-> shift-chart.png: {path}" in text
    assert path.read_bytes().startswith(b"\x89PNG")
    preview = await rig.run("digest preview")
    assert f"-> shift-chart.png: {tmp_path / 'digest-preview.png'}" in preview
