"""One chart of the shift, as PNG bytes: the HTCondor queue by state over the period (from the
recorded snapshots), alerts per day, and the status checks' levels as a timeline.

matplotlib is imported inside :func:`draw` only (a bot without digests never loads it), with
the Agg backend (no display, thread-safe enough for one figure per call); :func:`render`
draws off the event loop (``asyncio.to_thread``) under a deadline, so a slow draw never
stalls the bot. A panel without data is left out; no data at all: no chart (None).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Level -> colour in the timeline (OK, WARNING, CRITICAL, UNKNOWN), and the states' colours.
LEVEL_COLOURS = {0: "#2e7d32", 1: "#f9a825", 2: "#c62828", 3: "#6a1b9a"}
STATE_COLOURS = {"held": "#c62828", "idle": "#f9a825", "running": "#2e7d32",
                 "completed": "#1565c0", "removed": "#757575"}
MAX_CHECKS = 12  # timeline rows at most


@dataclass
class ChartData:
    """What the chart shows (see :func:`chart_data` for how a digest fills it)."""

    start: datetime
    end: datetime
    title: str = "Shift"
    zone: str = "UTC"  # the time axis is labelled in the team's zone
    queue: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict)  # state -> points
    alerts_per_day: dict[str, int] = field(default_factory=dict)  # "YYYY-MM-DD" -> count
    levels: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict)  # check -> steps

    @property
    def empty(self) -> bool:
        return not (self.queue or self.alerts_per_day or self.levels)


def chart_data(content: dict[str, Any], start: datetime, end: datetime,
               title: str, zone: str = "UTC") -> ChartData:
    """The chart's input from a digest's sections (:func:`bot.digests.content.gather`)."""
    data = ChartData(start, end, title, zone)
    condor = content.get("condor")
    if condor:
        states = sorted({state for snap in condor["series"] for state in snap.counts})
        for snap in condor["series"]:
            for state in states:
                _add_point(data.queue.setdefault(state, []), snap.taken_at,
                           snap.counts.get(state, 0))
    alerts = content.get("alerts")
    if alerts and alerts["per_day"]:
        data.alerts_per_day = dict(alerts["per_day"])
    status = content.get("status")
    if status and (status["timeline"] or status["initial"]):
        for check, level in status["initial"].items():
            if level is not None:
                data.levels.setdefault(check, []).append((start, int(level)))
        for point in status["timeline"]:
            if point["level"] is not None:
                data.levels.setdefault(point["check"], []).append(
                    (point["at"], int(point["level"])))
    return data


def _add_point(points: list[tuple[datetime, int]], at: datetime, count: int) -> None:
    """Several pools snapshotted together add up to one point per instant."""
    if points and points[-1][0] == at:
        points[-1] = (at, points[-1][1] + count)
    else:
        points.append((at, count))


def draw(data: ChartData) -> bytes:
    """The PNG (blocking: call it in a thread)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    panels = [name for name, has in (("queue", data.queue), ("alerts", data.alerts_per_day),
                                     ("levels", data.levels)) if has]
    figure = Figure(figsize=(9, 2.6 * max(1, len(panels))), dpi=100, layout="constrained")
    axes = figure.subplots(max(1, len(panels)), 1, squeeze=False)[:, 0]
    figure.suptitle(data.title)
    for ax, panel in zip(axes, panels, strict=False):
        {"queue": _queue, "alerts": _alerts, "levels": _levels}[panel](ax, data)
    if not panels:
        axes[0].text(0.5, 0.5, "no data in this period", ha="center", va="center")
        axes[0].set_axis_off()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _queue(ax: Any, data: ChartData) -> None:
    for state, points in sorted(data.queue.items()):
        if not any(count for _, count in points):
            continue
        # The last count holds until the period's end (one snapshot is a flat line, not a dot).
        shown = [*points, (data.end, points[-1][1])] if points[-1][0] < data.end else points
        ax.plot([p[0] for p in shown], [p[1] for p in shown], label=state, marker="o",
                markersize=3, markevery=range(len(points)), color=STATE_COLOURS.get(state),
                drawstyle="steps-post")
    ax.set_title("HTCondor queue by state")
    _time_axis(ax, data)
    ax.set_ylabel("jobs")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize="small", ncols=3)


def _alerts(ax: Any, data: ChartData) -> None:
    days = list(data.alerts_per_day)
    ax.bar(days, [data.alerts_per_day[d] for d in days], color="#c62828")
    ax.set_title("Sentry alerts per day")
    ax.set_ylabel("alerts")


def _levels(ax: Any, data: ChartData) -> None:
    checks = sorted(data.levels)[:MAX_CHECKS]
    least = (data.end - data.start) / 200  # a level held for an instant still shows
    for row, check in enumerate(checks):
        steps = sorted(data.levels[check])
        for (at, level), following in zip(steps, [*steps[1:], (data.end, None)], strict=True):
            begin, finish = max(at, data.start), min(following[0], data.end)
            width = max(finish - begin, least)
            ax.broken_barh([(min(begin, data.end - width), width)], (row - 0.4, 0.8),
                           color=LEVEL_COLOURS.get(level, "#9e9e9e"))
    ax.set_yticks(range(len(checks)), labels=checks)
    _time_axis(ax, data)
    ax.set_title("Status checks (green OK, yellow WARNING, red CRITICAL, purple UNKNOWN)")


def _time_axis(ax: Any, data: ChartData) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    from bot.timefmt import zone_of

    ax.set_xlim(data.start, data.end)
    locator = AutoDateLocator(tz=zone_of(data.zone))
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=zone_of(data.zone)))
    ax.set_xlabel(data.zone, fontsize="small")


async def render(data: ChartData, timeout: float) -> bytes | None:
    """The PNG drawn in a worker thread within ``timeout`` s; None when there is nothing to
    draw. TimeoutError past the deadline (the thread finishes on its own, unused)."""
    if data.empty:
        return None
    async with asyncio.timeout(timeout):
        return await asyncio.to_thread(draw, data)


def save(png: bytes, directory: Path, name: str) -> Path:
    """Write ``png`` as ``directory/name`` atomically (a reader never sees half a file);
    the same name each time, so the chart of the latest digest is always there."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".chart-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(png)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
