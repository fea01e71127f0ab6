"""Start-up cost guard (issue #16): a path imports what it needs when it needs it.

``shiftbot console -c help`` answered within ~0.8x Errbot's start-up only once the HTTP
clients and server (aiohttp, httpx: ~300 ms), the iCalendar parser (~100 ms) and the chat SDKs
stopped loading at start-up (bench/bench_startup.py, docs/performance.md). Each case runs the
real command in a fresh interpreter with ``-X importtime`` and fails naming the module that
came back and the import chain that brought it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Loaded by no part of answering `help` in the console (measured with -X importtime).
NOT_ON_CONSOLE_HELP = [
    "aiohttp", "httpx", "icalendar", "recurring_ical_events", "slack_bolt", "slack_sdk",
    "mattermostautodriver", "matplotlib", "sentry_sdk", "htcondor",
]
# Nor, until `help` is answered (bot/quickhelp.py: before the database opens), these. Every
# handler module is imported by then, so none of them may load these at import time.
NOT_BEFORE_HELP = ["sqlalchemy", "jinja2", "prometheus_client", "apscheduler", "psycopg",
                   "tzlocal"]
# `import handlers.condor` stays cheap: the pool backends load when a pool is first used.
NOT_ON_CONDOR_IMPORT = ["htcondor", "classad2", "aiohttp", "httpx", "sqlalchemy", "matplotlib"]


def _imports(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``python -X importtime ARGV``; the process and the modules it imported, in order.
    Output and import log share one unbuffered pipe: the log is in order with the output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY")}
    env["PYTHONUNBUFFERED"] = "1"
    done = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120)
    done.stderr = done.stdout
    names = [line.rsplit("|", 1)[1].strip() for line in done.stdout.splitlines()
             if line.startswith("import time:") and "|" in line]
    return done, names


def _chain(stderr: str, module: str) -> str:
    """The importers of ``module`` (importtime prints a module after what it imported)."""
    rows = [(len(n) - len(n.lstrip()), n.strip()) for n in
            (line.rsplit("|", 1)[1] for line in stderr.splitlines()
             if line.startswith("import time:") and "|" in line)]
    for index, (indent, name) in enumerate(rows):
        if name == module or name.startswith(module + "."):
            chain = [name]
            for later_indent, later in rows[index + 1:]:
                if later_indent < indent:
                    chain.append(later)
                    indent = later_indent
            return " <- ".join(chain)
    return module


def _demo_config(tmp_path: Path) -> Path:
    """config/demo.yaml with its database in tmp_path and its files made absolute."""
    raw = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    raw["bot"]["database"] = f"sqlite:///{tmp_path / 'demo.db'}"
    for target in raw.get("restart", {}).get("targets", {}).values():
        if target.get("argv"):
            target["argv"][0] = str((ROOT / "config" / target["argv"][0]).resolve())
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def console_help(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    config = _demo_config(tmp_path_factory.mktemp("import-cost"))
    done, names = _imports(["-m", "bot.cli", "console", "--config", str(config), "-c", "help"],
                           ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Commands you may run here" in done.stdout  # it did answer: not an early exit
    # The handlers were loaded (importlib.import_module is not logged by -X importtime, the
    # modules the handlers import are): their config modules.
    assert {"bot.registry", "bot.alerts.config", "bot.meetings.config", "bot.status.config",
            "bot.shifts.config"} <= set(names)
    return done.stderr, names


def _before_answer(output: str) -> tuple[str, list[str]]:
    """The import log up to the line the help answer starts with."""
    head = output.split("shiftbot help\n", 1)
    assert len(head) == 2, "no help answer in the output"
    names = [line.rsplit("|", 1)[1].strip() for line in head[0].splitlines()
             if line.startswith("import time:") and "|" in line]
    return head[0], names


@pytest.mark.parametrize("module", NOT_BEFORE_HELP)
def test_console_help_answers_before_loading(console_help: tuple[str, list[str]],
                                             module: str) -> None:
    stderr, names = _before_answer(console_help[0])
    assert {"bot.alerts.config", "bot.shifts.config"} <= set(names)  # the handlers are loaded
    loaded = [n for n in names if n == module or n.startswith(module + ".")]
    assert not loaded, f"`console -c help` imports {module} before answering: " + _chain(
        stderr, module)


@pytest.mark.parametrize("module", sorted(
    f"handlers.{p.stem}" for p in (ROOT / "handlers").glob("*.py") if not p.stem.startswith("_")))
def test_every_handler_module_is_cheap_to_import(module: str) -> None:
    done, names = _imports(["-c", f"import {module}"], ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    heavy = sorted({n.split(".")[0] for n in names} & set(NOT_BEFORE_HELP + NOT_ON_CONSOLE_HELP))
    assert not heavy, f"import {module} loads " + "; ".join(_chain(done.stderr, m)
                                                             for m in heavy)


@pytest.mark.parametrize("module", NOT_ON_CONSOLE_HELP)
def test_console_help_does_not_import(console_help: tuple[str, list[str]], module: str) -> None:
    stderr, names = console_help
    loaded = [n for n in names if n == module or n.startswith(module + ".")]
    assert not loaded, f"`console -c help` imports {module}: {_chain(stderr, module)}"


def test_import_handlers_condor_stays_cheap() -> None:
    done, names = _imports(["-c", "import handlers.condor"], ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "handlers.condor" in names
    heavy = sorted({n.split(".")[0] for n in names} & set(NOT_ON_CONDOR_IMPORT))
    assert not heavy, "import handlers.condor loads " + "; ".join(
        _chain(done.stderr, m) for m in heavy)
