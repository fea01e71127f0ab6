"""The disk check: df's arithmetic on statvfs, thresholds on used percent and free bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from status_env import StubEnv

from bot.status.checks.disk import DiskCheck
from bot.status.model import Level
from bot.status.runner import run_check

GiB = 2**30


def disk(**keys: object) -> DiskCheck:
    return DiskCheck.model_validate({"type": "disk", "name": "d", "path": "/", **keys})


def fake_statvfs(monkeypatch: pytest.MonkeyPatch, *, blocks: int, bfree: int, bavail: int,
                 frsize: int = 4096) -> None:
    result = os.statvfs_result((frsize, frsize, blocks, bfree, bavail, 100, 50, 50, 0, 255))
    monkeypatch.setattr(os, "statvfs", lambda path: result)


@pytest.mark.parametrize(("used_gib", "reserved_gib", "avail_gib", "percent", "level"), [
    (10, 0, 90, 10.0, Level.OK),
    (90, 0, 10, 90.0, Level.OK),  # "90" alerts above 90
    (91, 0, 9, 91.0, Level.WARNING),
    (96, 0, 4, 96.0, Level.CRITICAL),
    (45, 5, 50, 100 * 45 / 95, Level.OK),  # root's reserve is neither used nor available
    (95, 5, 0, 100.0, Level.CRITICAL),
])
async def test_used_percent_as_df(monkeypatch: pytest.MonkeyPatch, used_gib: int,
                                  reserved_gib: int, avail_gib: int, percent: float,
                                  level: Level) -> None:
    blocks_per_gib = GiB // 4096
    total = used_gib + reserved_gib + avail_gib
    fake_statvfs(monkeypatch, blocks=total * blocks_per_gib,
                 bfree=(reserved_gib + avail_gib) * blocks_per_gib,
                 bavail=avail_gib * blocks_per_gib)
    result = await run_check(disk(), StubEnv())
    assert result.level is level
    assert result.values["used_percent"] == pytest.approx(percent)
    assert result.values["free_bytes"] == avail_gib * GiB
    assert result.values["total_bytes"] == total * GiB
    assert result.summary.startswith(f"/: {percent:.1f}% used, ")


@pytest.mark.parametrize(("thresholds", "avail_gib", "level"), [
    ({"warning": "10GB:", "critical": "2GB:"}, 20, Level.OK),
    ({"warning": "10GB:", "critical": "2GB:"}, 5, Level.WARNING),
    ({"warning": "10GB:", "critical": "2GB:"}, 1, Level.CRITICAL),
    ({"critical": "1GiB:"}, 1, Level.OK),  # exactly 1 GiB free: inside 1GiB..inf
])
async def test_free_bytes_thresholds_with_units(monkeypatch: pytest.MonkeyPatch,
                                                thresholds: dict, avail_gib: int,
                                                level: Level) -> None:
    blocks_per_gib = GiB // 4096
    fake_statvfs(monkeypatch, blocks=1000 * blocks_per_gib, bfree=avail_gib * blocks_per_gib,
                 bavail=avail_gib * blocks_per_gib)
    check = disk(used_percent={"warning": "100"}, free_bytes=thresholds)
    result = await run_check(check, StubEnv())
    assert result.level is level
    if level is not Level.OK:  # bounds shown as written
        bound = thresholds[level.name.lower()]
        assert f"free={avail_gib}.0 GiB ({level.name.lower()}: < {bound[:-1]})" in result.summary
    (free,) = [d for d in result.perfdata if d.label == "free_bytes"]
    assert free.crit is not None and ("GB" not in free.crit)


async def test_real_filesystem(tmp_path: Path) -> None:
    stat = os.statvfs(tmp_path)
    used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
    percent = 100 * used / (used + stat.f_bavail * stat.f_frsize)
    below = disk(path=str(tmp_path), used_percent={"warning": f"{percent + 1:.3f}"})
    above = disk(path=str(tmp_path), used_percent={"critical": f"{max(percent - 1, 0):.3f}"})
    assert (await run_check(below, StubEnv())).level is Level.OK
    assert (await run_check(above, StubEnv())).level is Level.CRITICAL


async def test_missing_path_is_unknown(tmp_path: Path) -> None:
    result = await run_check(disk(path=str(tmp_path / "nope")), StubEnv())
    assert result.level is Level.UNKNOWN
    assert result.summary == f"cannot read {tmp_path / 'nope'}: No such file or directory"


@pytest.mark.parametrize("keys", [{"path": ""}, {"used_percent": {"warning": "x"}},
                                  {"free_bytes": {"critical": "2XB:"}},
                                  {"used_percent": {"warn": "1"}}])
def test_bad_config(keys: dict) -> None:
    with pytest.raises(ValueError):
        disk(**keys)
