"""bot/lazy.py: a module named now, imported at its first use, then the module itself."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from bot.lazy import lazy_module


@pytest.fixture
def fresh_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module nobody imported yet that counts its own imports."""
    (tmp_path / "lazy_probe.py").write_text(
        "import builtins\n"
        "builtins.lazy_probe_loads = getattr(builtins, 'lazy_probe_loads', 0) + 1\n"
        "VALUE = 42\n"
        "def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe", raising=False)
    import builtins

    monkeypatch.setattr(builtins, "lazy_probe_loads", 0, raising=False)
    return "lazy_probe"


def test_nothing_is_imported_until_the_first_use(fresh_module: str) -> None:
    import builtins

    probe = lazy_module(fresh_module)
    assert fresh_module not in sys.modules and builtins.lazy_probe_loads == 0
    assert "not loaded yet" in repr(probe)
    assert probe.VALUE == 42 and probe.double(4) == 8
    assert builtins.lazy_probe_loads == 1 and probe.double is sys.modules[fresh_module].double
    assert "loaded" in repr(probe)


def test_threads_using_it_at_once_import_it_once(fresh_module: str) -> None:
    import builtins

    probe = lazy_module(fresh_module)
    start = threading.Barrier(8)
    seen: list[int] = []

    def use() -> None:
        start.wait()
        seen.append(probe.VALUE)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [42] * 8 and builtins.lazy_probe_loads == 1


def test_patching_through_it_patches_the_module(fresh_module: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    probe = lazy_module(fresh_module)
    monkeypatch.setattr(probe, "double", lambda x: -x)
    assert sys.modules[fresh_module].double(3) == -3 and probe.double(3) == -3
    monkeypatch.undo()
    assert probe.double(3) == 6


def test_a_missing_module_fails_at_its_first_use_with_the_import_error() -> None:
    probe = lazy_module("bot.no_such_module_here")
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        probe.anything  # noqa: B018
    with pytest.raises(AttributeError):
        lazy_module("json").no_such_attribute  # noqa: B018
