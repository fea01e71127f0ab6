"""Start-up and memory: shiftbot against Errbot 6.2.1 and opsdroid 0.31, side by side, one run.

First reply: wall time from spawning the process to the reply to ``help`` on its stdout
(PYTHONUNBUFFERED=1), pinned to core 1 (this process and the fakes on core 0), median of 7
after one unmeasured warm-up each: ``shiftbot console -c help`` (the target), the interactive
console fed ``help``, Errbot's Text backend fed ``!help``, opsdroid's shell with the help skill
(loaded through a three-line subclass: 0.31's shell keeps its loader's closed loop). RSS: 1 s
after the reply; for ``shiftbot run`` with Slack and Mattermost on the fakes of tests/fakes, 1 s
after ``/readyz`` answers 200; and the floor, a bare python importing only the libraries that
run needs. Peers are installed into throwaway venvs (``--peers-dir``); one that cannot be is
skipped with the reason printed. Method and results: docs/performance.md.
Targets (issue #16): first reply <= 0.8x Errbot's; idle RSS of ``shiftbot run`` <= Errbot's.
Run: .venv/bin/python bench/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _util import free_port, pin, print_table, repo_root, rss_mb, verdict  # noqa: E402

ROOT = Path(repo_root())
SHIFTBOT = str(ROOT / ".venv/bin/shiftbot")
REPLY_RATIO = 0.8
MEASURED_CORE, OTHER_CORE = 1 % (os.cpu_count() or 1), 0  # one core: both on it
# Every child: bytecode cached (the warm-up run writes it) under the run's temp dir, so no
# process compiles its sources each start (an editable install has no .pyc of its own, and
# PYTHONDONTWRITEBYTECODE may be set), and the working tree gets no __pycache__.
TREE_ENV: dict[str, str] = {}  # + --tree: PYTHONPATH of another copy of bot/ and handlers/
PEERS = {  # name -> (requirements, executable in the venv)
    "errbot": (["errbot==6.2.1"], "errbot"),
    # opsdroid 0.31 imports pkg_resources, gone from setuptools >= 81.
    "opsdroid": (["opsdroid==0.31.0", "setuptools>=76,<81"], "opsdroid"),
}
ERRBOT_CONFIG = """import logging
BACKEND = "Text"
BOT_DATA_DIR = r"{tmp}/errbot-data"
BOT_EXTRA_PLUGIN_DIR = r"{tmp}/errbot-plugins"
BOT_LOG_FILE = r"{tmp}/errbot.log"
BOT_LOG_LEVEL = logging.WARNING
BOT_ADMINS = ("@CHANGE_ME",)
"""
OPSDROID_CONFIG = """logging: {{level: warning, console: false}}
welcome-message: false
web: {{port: {port}}}
connectors:
  shellrunningloop: {{path: {tmp}/shellrunningloop, bot-name: opsdroid}}
skills:
  help: {{path: {tmp}/skill-help}}
"""
OPSDROID_SHELL = '''import asyncio

import opsdroid.connector.shell as shell


class ConnectorShellRunningLoop(shell.ConnectorShell):
    async def listen(self):
        self.loop = asyncio.get_running_loop()
        await super().listen()
'''
# https://github.com/opsdroid/skill-help (MIT), __init__.py at 59a2617, the `help` half.
OPSDROID_HELP_SKILL = '''import logging

from opsdroid.matchers import match_regex
from opsdroid.skill import Skill


class Helper(Skill):
    @match_regex(r"help$")
    async def help(self, message):
        """help - Displays this help message"""
        response = []
        for skill in self.opsdroid.skills:
            if skill.__doc__:
                response.append("{}: {}".format(skill.__name__, skill.__doc__))
            else:
                logging.debug("doc string not found for {}".format(skill.__name__))
                response.append(skill.__name__)
        await message.respond("\\n".join(sorted(response)))
'''


class Candidate:
    """One way of starting a bot and asking it ``help``: argv, stdin text, reply marker."""

    def __init__(self, name: str, argv: list[str], stdin: str, marker: str,
                 env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.name, self.argv, self.stdin, self.marker = name, argv, stdin, marker.encode()
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **TREE_ENV,
                    **(env or {})}
        self.cwd = cwd
        self.times: list[float] = []
        self.cpu: list[float] = []  # CPU seconds used by the reply (robust on a busy machine)
        self.rss: list[float] = []

    def run_once(self, measure_rss: bool) -> None:
        """Spawn, feed stdin, wait for the marker on stdout; then (optionally) RSS 1 s later."""
        started = time.perf_counter()
        proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                preexec_fn=lambda: os.sched_setaffinity(0, {MEASURED_CORE}))
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(self.stdin.encode())
            proc.stdin.flush()
            seen = _read_until(proc, self.marker, deadline=started + 60)
            self.times.append(time.perf_counter() - started)
            self.cpu.append(cpu_seconds(proc.pid))
            if measure_rss and proc.poll() is None:
                time.sleep(1.0)
                self.rss.append(rss_mb(proc.pid))
            if not seen:
                raise SystemExit(f"{self.name}: no reply to help within 60 s")
        finally:
            _stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (or of the zombie it left: not yet waited for)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _read_until(proc: subprocess.Popen[bytes], marker: bytes, deadline: float) -> bool:
    assert proc.stdout is not None
    fd, out = proc.stdout.fileno(), b""
    while marker not in out:
        wait = deadline - time.perf_counter()
        if wait <= 0 or not select.select([fd], [], [], wait)[0]:
            return False
        chunk = os.read(fd, 65536)
        if not chunk:
            return marker in out
        out += chunk
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close stdin (every console leaves on EOF), then terminate, then kill."""
    for step in (proc.stdin.close if proc.stdin else None, proc.terminate, proc.kill):
        if step is not None and proc.poll() is None:
            step()
        try:
            proc.wait(5)
            return
        except subprocess.TimeoutExpired:
            continue


def ensure_peer(peers_dir: Path, name: str) -> Path | str:
    """The peer's executable, installing its venv on first use; or why it is unavailable."""
    requirements, script = PEERS[name]
    venv = peers_dir / f"{name}-venv"
    exe = venv / "bin" / script
    if not exe.exists():
        print(f"installing {name} into {venv} ...", flush=True)
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin/pip"), "install", "-q", *requirements]]
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                return f"{' '.join(argv[-len(requirements):])} failed: {done.stderr[-300:]}"
    return exe


def shiftbot_config(tmp: Path, platforms: dict[str, object] | None = None) -> Path:
    """config/demo.yaml with its files made absolute, its database in tmp, plus platforms."""
    import yaml

    raw = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    raw["bot"]["database"] = f"sqlite:///{tmp / 'shiftbot.db'}"
    raw["bot"]["http"] = {"host": "127.0.0.1", "port": free_port()}
    for target in raw.get("restart", {}).get("targets", {}).values():
        if target.get("argv"):
            target["argv"][0] = str((ROOT / "config" / target["argv"][0]).resolve())
    raw.update(platforms or {})
    path = tmp / f"shiftbot-{len(list(tmp.glob('shiftbot-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def candidates(tmp: Path, peers_dir: Path, install: bool) -> list[Candidate]:
    demo = str(shiftbot_config(tmp))
    found = [
        Candidate("shiftbot console -c help", [SHIFTBOT, "console", "--config", demo, "-c",
                                               "help"], "", "Commands you may run here"),
        Candidate("shiftbot console (stdin)", [SHIFTBOT, "console", "--config", demo],
                  "help\n", "Commands you may run here"),
    ]
    for name in PEERS:
        exe = ensure_peer(peers_dir, name) if install else peers_dir / f"{name}-venv/bin/{name}"
        if isinstance(exe, str) or not exe.exists():
            print(f"SKIPPED {name}: {exe if isinstance(exe, str) else 'not installed'}")
            continue
        found.append(_peer(name, exe, tmp))
    return found


def _peer(name: str, exe: Path, tmp: Path) -> Candidate:
    if name == "errbot":
        for sub in ("errbot-data", "errbot-plugins"):
            (tmp / sub).mkdir(exist_ok=True)
        (tmp / "config.py").write_text(ERRBOT_CONFIG.format(tmp=tmp))
        return Candidate("Errbot 6.2.1 (Text)", [str(exe), "-c", str(tmp / "config.py")],
                         "!help\n", "All commands", cwd=tmp)
    for sub, source in (("shellrunningloop", OPSDROID_SHELL), ("skill-help", OPSDROID_HELP_SKILL)):
        (tmp / sub).mkdir(exist_ok=True)
        (tmp / sub / "__init__.py").write_text(source)
    (tmp / "configuration.yaml").write_text(OPSDROID_CONFIG.format(tmp=tmp, port=free_port()))
    (tmp / "home").mkdir(exist_ok=True)
    return Candidate("opsdroid 0.31 (shell)", [str(exe), "start", "-f",
                                               str(tmp / "configuration.yaml")],
                     "help\n", "Displays this help message",
                     env={"HOME": str(tmp / "home"), "USER": "bench"}, cwd=tmp)


# ------------------------------------------------------------------ shiftbot run, idle RSS


async def serve_fakes() -> None:
    """Child side: the fake Slack and the fake Mattermost until stdin closes."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakes.mattermost import FakeMattermost
    from fakes.slack import FakeSlack

    async with FakeSlack() as slack:
        mm = await FakeMattermost(users=("alice",), channels=[("ops", "O")]).start()
        print("READY", slack.api_url, slack.bot_token, slack.app_token, mm.url, mm.bot_token,
              mm.team.name, flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await mm.close()


def run_rss(tmp: Path, runs: int) -> tuple[list[float], list[float]]:
    """`shiftbot run` with both platforms: seconds to /readyz 200 and RSS 1 s later, per run."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           **TREE_ENV}
    fakes = subprocess.Popen([sys.executable, __file__, "--serve-fakes"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env,
                             preexec_fn=lambda: os.sched_setaffinity(0, {OTHER_CORE}))
    assert fakes.stdout is not None and fakes.stdin is not None
    words = fakes.stdout.readline().split()
    if not words or words[0] != "READY":
        raise SystemExit("the fake Slack/Mattermost process did not start")
    slack_api, slack_bot, slack_app, mm_url, mm_token, mm_team = words[1:7]
    platforms = {
        "slack": {"mode": "socket", "bot_token": slack_bot, "app_token": slack_app,
                  "api_url": slack_api, "channels": {"ops": "C00000001"}},
        "mattermost": {"url": mm_url, "token": mm_token, "team": mm_team,
                       "channels": {"ops": "ops"}},
    }
    ready_s: list[float] = []
    rss: list[float] = []
    try:
        for index in range(runs + 1):  # the first (migrations, caches) is not counted
            config = shiftbot_config(tmp, platforms)
            seconds, mb = _one_run(config, env)
            if index:
                ready_s.append(seconds)
                rss.append(mb)
    finally:
        fakes.stdin.close()
        fakes.wait(10)
    return ready_s, rss


def _one_run(config: Path, env: dict[str, str]) -> tuple[float, float]:
    import yaml

    port = yaml.safe_load(config.read_text())["bot"]["http"]["port"]
    started = time.perf_counter()
    proc = subprocess.Popen([SHIFTBOT, "run", "--config", str(config)], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.sched_setaffinity(0, {MEASURED_CORE}))
    try:
        while not _ready(port):
            if proc.poll() is not None or time.perf_counter() - started > 60:
                err = proc.stderr.read().decode()[-800:] if proc.poll() is not None else ""
                raise SystemExit(f"shiftbot run never became ready: {err}")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        time.sleep(1.0)
        return seconds, rss_mb(proc.pid)
    finally:
        _stop(proc)


def _ready(port: int) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


# The libraries `shiftbot run` with Slack and Mattermost cannot do without, imported by a bare
# interpreter: the RSS floor no placement of shiftbot's own imports can go below.
NEEDED_LIBRARIES = ("sqlalchemy", "pydantic", "yaml", "jinja2", "prometheus_client",
                    "aiohttp.web", "slack_bolt.async_app", "mattermostautodriver", "httpx")


def library_floor_rss(runs: int) -> list[float]:
    code = (f"import sys, {', '.join(NEEDED_LIBRARIES)}; print('ready', flush=True); "
            "sys.stdin.read()")
    found = []
    for _ in range(runs):
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env={**os.environ, **TREE_ENV})
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(1.0)
        found.append(rss_mb(proc.pid))
        _stop(proc)
    return found


# ------------------------------------------------------------------ report


def report(found: list[Candidate], ready_s: list[float], run_rss_mb: list[float],
           floor_mb: list[float]) -> int:
    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f}" if values else "-"

    rows = [[c.name, ms(c.times), f"{min(c.times) * 1000:.0f}", f"{max(c.times) * 1000:.0f}",
             ms(c.cpu), f"{statistics.median(c.rss):.1f}" if c.rss else "-"] for c in found]
    if ready_s:
        rows.append(["shiftbot run (Slack+Mattermost)", f"{ms(ready_s)} (readyz)",
                     f"{min(ready_s) * 1000:.0f}", f"{max(ready_s) * 1000:.0f}", "-",
                     f"{statistics.median(run_rss_mb):.1f}"])
    if floor_mb:
        rows.append(["its libraries alone (bare python)", "-", "-", "-", "-",
                     f"{statistics.median(floor_mb):.1f}"])
    print_table("First reply to help (ms, whole process, pinned to one core) and RSS (MB)",
                ["process", "median", "min", "max", "CPU median", "RSS 1 s later"], rows)
    by = {c.name: c for c in found}
    errbot = by.get("Errbot 6.2.1 (Text)")
    if errbot is None:
        print("\nNo Errbot measurement: the targets cannot be judged.")
        return 1
    ours = statistics.median(by["shiftbot console -c help"].times)
    theirs = statistics.median(errbot.times)
    cpu_ratio = statistics.median(by["shiftbot console -c help"].cpu) / statistics.median(
        errbot.cpu)
    errbot_rss = statistics.median(errbot.rss)
    ours_rss = statistics.median(run_rss_mb) if run_rss_mb else float("nan")
    checks = [
        ["console -c help / Errbot first reply", f"{ours / theirs:.2f}",
         f"<= {REPLY_RATIO}", verdict(ours / theirs <= REPLY_RATIO)],
        ["  (the same in CPU time, for information)", f"{cpu_ratio:.2f}", "", ""],
        ["shiftbot run idle RSS - Errbot RSS (MB)", f"{ours_rss - errbot_rss:+.1f}", "<= 0",
         verdict(ours_rss <= errbot_rss)],
        ["  (its libraries alone - Errbot RSS, for information)",
         f"{statistics.median(floor_mb) - errbot_rss:+.1f}" if floor_mb else "-", "", ""],
    ]
    print_table("Targets (issue #16)", ["check", "value", "target", "verdict"], checks)
    return 0 if all(row[3] != "FAIL" for row in checks) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--peers-dir", type=Path, default=Path("/tmp/shiftbot-bench-peers"))
    parser.add_argument("--no-install", action="store_true", help="skip peers not installed")
    parser.add_argument("--tree", type=Path, help="measure the bot/ and handlers/ of this copy "
                        "(e.g. `git archive HEAD bot handlers`) instead of the working tree")
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes:
        asyncio.run(serve_fakes())
        return 0
    pin(OTHER_CORE)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.tree:
        TREE_ENV["PYTHONPATH"] = str(args.tree.resolve())
    args.peers_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name:
        tmp = Path(name)
        TREE_ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        found = candidates(tmp, args.peers_dir, install=not args.no_install)
        for index in range(args.runs + 1):  # interleaved; run 0 warms caches, uncounted
            for candidate in found:
                candidate.run_once(measure_rss="-c help" not in candidate.name)
                if index == 0:
                    candidate.times.clear()
                    candidate.cpu.clear()
                    candidate.rss.clear()
        ready_s, run_rss_mb = run_rss(tmp, args.runs)
        floor_mb = library_floor_rss(3)
    return report(found, ready_s, run_rss_mb, floor_mb)


if __name__ == "__main__":
    raise SystemExit(main())
