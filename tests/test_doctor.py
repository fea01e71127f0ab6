"""``shiftbot doctor`` against the fakes (Slack, Mattermost, Sentry, GitLab on loopback, the demo
HTCondor backend, real Nagios plugins), one breakage at a time, closed ports, a server that
never answers, and the demo config through the real command."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CORE_HANDLERS, deep_merge
from fakes.condor import SilentServer, closed_port, demo_pool
from fakes.gitlab import GitLabState
from fakes.gitlab_doctor import ProjectGitLab
from fakes.mattermost import FakeMattermost
from fakes.sentry import TOKEN as SENTRY_TOKEN
from fakes.sentry import SentryState
from fakes.sentry_doctor import OrgSentry
from fakes.slack_doctor import ScopedSlack
from sqlalchemy import insert

from bot import db, doctor_remote
from bot.config import Config
from bot.doctor import diagnose
from bot.features import bind_sections
from bot.registry import Registry

REPO = Path(__file__).resolve().parent.parent
GITLAB_TOKEN = "glpat-shiftbot-test-token"
HANDLERS = [*CORE_HANDLERS, "handlers.status", "handlers.alerts_sentry", "handlers.restart",
            "handlers.restart_gitlab"]


def nagios(level: int, text: str) -> list[str]:
    return [sys.executable, "-c", f"print({text!r}); raise SystemExit({level})"]


@dataclass
class World:
    slack: ScopedSlack
    mm: FakeMattermost
    sentry: OrgSentry
    gitlab: ProjectGitLab

    def config(self) -> dict[str, Any]:
        """Everything configured and right."""
        ops = self.slack.add_channel("night-ops")
        return {
            "bot": {"handlers": HANDLERS},
            "slack": {"bot_token": self.slack.bot_token, "app_token": self.slack.app_token,
                      "api_url": self.slack.api_url,
                      "channels": {"ops": "#night-ops", "alerts": ops.id}},
            "mattermost": {"url": self.mm.url, "token": self.mm.bot_token,
                           "team": self.mm.team.name,
                           "channels": {"ops": "town-square",
                                        "alerts": self.mm.channel("town-square").id}},
            "sentry": {"api_url": self.sentry.api_url, "token": SENTRY_TOKEN, "org": "ligo"},
            "gitlab": {"url": self.gitlab.url, "token": GITLAB_TOKEN,
                       "project": "emfollow/gwcelery"},
            "condor": {"pools": {"demo": demo_pool()}},
            "status": {"checks": [
                {"name": "pipeline", "type": "nagios", "timeout_seconds": 10,
                 "command": nagios(2, "CRITICAL: 3 workers down")},
                {"name": "fine", "type": "nagios", "command": nagios(0, "OK: fine")}]},
        }


@pytest.fixture
async def world() -> AsyncIterator[World]:
    state = GitLabState(tokens=(GITLAB_TOKEN,))
    state.add_project("emfollow/gwcelery")
    async with ScopedSlack(scopes=doctor_remote.manifest_scopes()) as slack, \
            FakeMattermost() as mm, OrgSentry(SentryState()) as sentry, \
            ProjectGitLab(state) as gitlab:
        yield World(slack, mm, sentry, gitlab)


Run = Callable[..., Any]


@pytest.fixture
def run(make_config: Callable[..., Config]) -> Run:
    async def factory(overrides: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        config = make_config(overrides)
        registry = Registry().load(config.bot.handlers)
        assert bind_sections(config, registry.sections) == []
        out = io.StringIO()
        code = await diagnose(config, registry, out)
        lines = out.getvalue().splitlines()
        return code, {name_of(line): line for line in lines[:-1]}, lines[-1]

    return factory


def name_of(line: str) -> str:
    """The check's name: verdict, name and detail are separated by two spaces or more."""
    return re.split(r" {2,}", line, maxsplit=2)[1]


def verdict(lines: dict[str, str], name: str) -> str:
    return lines[name].split()[0]


async def test_everything_right_is_ok(world: World, run: Run) -> None:
    code, lines, summary = await run(world.config())
    assert code == 0, "\n".join(lines.values())
    expected_ok = ["database", "slack", "slack app token", "slack channel ops",
                   "slack channel alerts", "mattermost", "mattermost team",
                   "mattermost channel ops", "mattermost channel alerts", "sentry",
                   "gitlab emfollow/gwcelery", "condor demo"]
    assert {name: verdict(lines, name) for name in expected_ok} == dict.fromkeys(
        expected_ok, "OK")
    # A CRITICAL check is the pipeline's state: it ran, the installation is fine.
    assert verdict(lines, "status pipeline") == "RAN"
    assert "CRITICAL: 3 workers down" in lines["status pipeline"]
    assert verdict(lines, "status fine") == "RAN"
    assert "0 FAIL" in summary and "hint" not in "".join(lines.values())
    assert any(c.method == "auth.test" for c in world.slack.calls())  # really asked


def _break(world: World, what: str, config: dict[str, Any]) -> None:
    """Make one thing wrong (as operators do)."""
    if what == "slack token":
        config["slack"]["bot_token"] = "xoxb-revoked"
    elif what == "slack scope":
        world.slack.scopes = [s for s in world.slack.scopes or [] if s != "chat:write"]
    elif what == "slack channel":
        config["slack"]["channels"]["ops"] = "#no-such-channel"
    elif what == "mattermost token":
        config["mattermost"]["token"] = "wrong-token"
    elif what == "mattermost team":
        config["mattermost"]["team"] = "no-such-team"
    elif what == "mattermost channel":
        config["mattermost"]["channels"]["ops"] = "~nowhere"
    elif what == "sentry token":
        config["sentry"]["token"] = "sntrys-wrong"
    elif what == "sentry org":
        config["sentry"]["org"] = "not-ligo"
    elif what == "gitlab token":
        config["gitlab"]["token"] = "glpat-wrong"
    elif what == "gitlab project":
        config["gitlab"]["project"] = "emfollow/nothing"
    elif what == "condor pool":
        config["condor"]["pools"]["real"] = {
            "backend": "htcondor", "schedd_address": f"<127.0.0.1:{closed_port()}>",
            "timeout_seconds": 3}
    elif what == "status plugin":
        config["status"]["checks"][1]["command"] = ["/nonexistent/check_thing"]


BREAKAGES = {  # what -> (the line that must FAIL, words of its detail, words of its hint)
    "slack token": ("slack", "invalid_auth", "slack.bot_token"),
    "slack scope": ("slack", "missing scopes: chat:write", "reinstall the app"),
    "slack channel": ("slack channel ops", "no such channel", "slack.channels.ops"),
    "mattermost token": ("mattermost", "401", "mattermost.token"),
    "mattermost team": ("mattermost team", "no-such-team", "mattermost.team"),
    "mattermost channel": ("mattermost channel ops", "not found", "mattermost.channels.ops"),
    "sentry token": ("sentry", "401", "sentry.token"),
    "sentry org": ("sentry", "not-ligo: HTTP 404", "sentry.org"),
    "gitlab token": ("gitlab emfollow/gwcelery", "401", "gitlab.token"),
    "gitlab project": ("gitlab emfollow/nothing", "HTTP 404", "group/name"),
    "condor pool": ("condor real", "htcondor", "condor.pools.real"),
    "status plugin": ("status fine", "UNKNOWN", "could not run"),
}


@pytest.mark.parametrize("what", sorted(BREAKAGES))
async def test_each_breakage_fails_its_line_with_a_hint(world: World, run: Run,
                                                        what: str) -> None:
    config = world.config()
    _break(world, what, config)
    code, lines, summary = await run(config)
    name, detail, hint = BREAKAGES[what]
    assert code == 1
    assert verdict(lines, name) == "FAIL", lines[name]
    assert detail in lines[name].split(" -> hint: ")[0]
    assert hint in lines[name].split(" -> hint: ")[1]
    failed = [n for n in lines if verdict(lines, n) == "FAIL"]
    assert failed == [name], failed  # one thing broken: one FAIL line
    assert "1 FAIL" in summary
    for secret in ("xoxb-revoked", "wrong-token", "sntrys-wrong", "glpat-wrong"):
        assert secret not in "".join(lines.values())


async def test_schema_newer_than_the_code_fails(world: World, run: Run,
                                                make_bot: Any) -> None:
    config = world.config()
    bot = await make_bot(config)  # migrates the file the doctor then reads
    await bot.database.run(lambda conn: conn.execute(insert(db.schema_version).values(
        version=db.LATEST + 1, description="future", applied_at=db.utcnow())))
    code, lines, _ = await run(config)
    assert code == 1 and verdict(lines, "database") == "FAIL"
    assert "newer than this shiftbot" in lines["database"]
    assert "upgrade this shiftbot" in lines["database"]


async def test_closed_ports_fail_with_hints(run: Run) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    config = {
        "bot": {"handlers": HANDLERS, "database":
                f"postgresql://shiftbot:pw@127.0.0.1:{closed_port()}/shiftbot"},
        "slack": {"bot_token": "xoxb-1", "app_token": "xapp-1", "api_url": f"{dead}/api/"},
        "mattermost": {"url": dead, "token": "t", "team": "x"},
        "sentry": {"api_url": f"{dead}/api/0/", "token": "s", "org": "o"},
        "gitlab": {"url": dead, "token": "g", "project": "a/b"},
    }
    code, lines, _ = await run(config)
    assert code == 1
    for name in ("database", "slack", "mattermost", "sentry", "gitlab a/b"):
        assert verdict(lines, name) == "FAIL", lines[name]
        assert "hint: " in lines[name]
    assert "cannot connect" in lines["slack"] and "cannot connect" in lines["database"]
    assert ":pw@" not in lines["database"]  # the URL's password is masked
    assert verdict(lines, "condor") == "SKIP" and verdict(lines, "status") == "SKIP"


async def test_a_server_that_never_answers_is_cut_at_the_deadline(
        run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_remote, "DEADLINE", 1.5)
    with SilentServer() as silent:
        config = {"bot": {"handlers": HANDLERS},
                  "mattermost": {"url": f"http://127.0.0.1:{silent.port}", "token": "t",
                                 "team": "x"}}
        code, lines, _ = await run(config)
    assert code == 1
    assert verdict(lines, "mattermost") == "FAIL"
    assert "no answer within" in lines["mattermost"]


def test_manifest_scopes_match_the_built_in_list() -> None:
    """The Docker image has no config/slack-app-manifest.yaml: the list it uses is the same."""
    assert doctor_remote.manifest_scopes() == doctor_remote.MANIFEST_SCOPES
    assert doctor_remote.manifest_scopes(Path("/nonexistent")) == doctor_remote.MANIFEST_SCOPES


def test_demo_config_through_the_command(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    raw = deep_merge(raw, {"bot": {"database": f"sqlite:///{tmp_path / 'demo.db'}"}})
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    done = subprocess.run([sys.executable, "-m", "bot.cli", "doctor", "--config", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {name_of(line): line.split()[0] for line in done.stdout.splitlines()[:-1]}
    assert {n: lines[n] for n in ("slack", "mattermost", "gitlab")} == dict.fromkeys(
        ("slack", "mattermost", "gitlab"), "SKIP")
    assert lines["condor gwcelery"] == lines["condor everything"] == "OK"
    assert lines["database"] == "OK"
    status = {n: v for n, v in lines.items() if n.startswith("status ")}
    assert set(status) == {"status gwcelery", "status disk", "status http_port",
                           "status workers_low"}
    assert set(status.values()) == {"RAN"}
