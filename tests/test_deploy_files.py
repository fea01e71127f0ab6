"""The operators' deployment files, parsed (no Docker engine nor systemd here): the compose file
(two replicas on one PostgreSQL, readiness checks), the systemd unit (non-root, hardened, the
installed ``shiftbot run --config``), the Dockerfile (non-root, state volume, health check) and
the config they mount."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.health import Health
from bot.http import HttpServer
from bot.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASS\b|KEY|DSN|DATABASE", re.IGNORECASE)
ENV_REFERENCE = re.compile(r"\$\{[A-Z_][A-Z0-9_]*(:?[?-][^}]*)?\}")


def routes() -> set[str]:
    """The paths the bot's own HTTP server answers (before adapters mount theirs)."""
    server = HttpServer(Health(), Metrics(), "127.0.0.1", 0)
    return {r.canonical for r in server.app.router.resources()}


def probed_path(command: str) -> str:
    found = re.findall(r"http://127\.0\.0\.1:8080(/[a-z]+)", command)
    assert len(found) == 1, command
    return found[0]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items()
            if "shiftbot" in str(s.get("image", "")) and "run" in s.get("command", [])}


def test_compose_two_replicas_share_one_postgresql(compose: dict[str, Any]) -> None:
    found = replicas(compose)
    assert len(found) == 2, sorted(compose["services"])
    databases = {s["environment"]["SHIFTBOT_DATABASE"] for s in found.values()}
    assert len(databases) == 1  # the same database for both
    url = databases.pop()
    assert url.startswith("postgresql") and "@postgres:5432/" in url
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert url.rsplit("/", 1)[1] == postgres["environment"]["POSTGRES_DB"]
    for service in found.values():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "--config" in service["command"]


def test_compose_replicas_are_checked_on_readyz(compose: dict[str, Any]) -> None:
    for name, service in replicas(compose).items():
        path = probed_path(" ".join(service["healthcheck"]["test"]))
        assert path == "/readyz", name
        assert path in routes()


def test_compose_replicas_run_unprivileged_and_read_only(compose: dict[str, Any]) -> None:
    for service in replicas(compose).values():
        assert service["read_only"] is True
        assert str(service["user"]).split(":")[0] not in ("0", "root")
        assert "no-new-privileges:true" in service["security_opt"]


def _literal_secrets(environment: dict[str, Any]) -> list[str]:
    """Secret-looking variables whose value holds no ${VAR} reference (a literal)."""
    return [key for key, value in environment.items()
            if SECRET_NAME.search(key) and not ENV_REFERENCE.search(str(value))]


def test_compose_has_no_literal_secret(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert _literal_secrets(service.get("environment", {})) == [], name
    # the check itself can fail: a literal is caught
    assert _literal_secrets({"SLACK_BOT_TOKEN": "xoxb-123", "HOST": "x"}) == ["SLACK_BOT_TOKEN"]


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((DEPLOY / "shiftbot.service").read_text())
    return parser


def test_unit_runs_the_installed_shiftbot_with_its_config() -> None:
    service = unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "shiftbot" and Path(argv[0]).is_absolute()
    assert argv[1] == "run"
    assert "--config" in argv and argv[argv.index("--config") + 1].endswith(".yaml")
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_is_unprivileged_and_hardened() -> None:
    service = unit()["Service"]
    assert service["User"] not in ("root", "0")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    state = f"/var/lib/{service['StateDirectory']}"
    assert state in service["ReadWritePaths"].split()
    assert service["WorkingDirectory"] == state
    assert service["CapabilityBoundingSet"] == ""
    assert "Environment" not in service or not SECRET_NAME.search(service["Environment"])


def dockerfile() -> list[str]:
    return (REPO / "Dockerfile").read_text().splitlines()


def test_dockerfile_runs_as_non_root_with_a_state_volume() -> None:
    lines = dockerfile()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    cmd = next(i for i, line in enumerate(lines) if line.startswith("CMD "))
    assert max(i for i, line in enumerate(lines) if line.startswith("USER ")) < cmd
    assert any(line.startswith("VOLUME ") and "/var/lib/shiftbot" in line for line in lines)
    comments = " ".join(line for line in lines if line.startswith("#")).lower()
    assert "read-only" in comments and "non-root" in comments


def test_dockerfile_health_check_is_a_route_and_no_secret_is_baked_in() -> None:
    text = "\n".join(dockerfile())
    check = text[text.index("HEALTHCHECK"):].split("\nCMD [")[0]
    assert probed_path(check) in routes()
    env = [line for line in dockerfile() if line.startswith(("ENV ", "ARG "))]
    assert not any(re.search(r"(TOKEN|SECRET|PASSWORD)\w*=", line) for line in env)


def test_the_mounted_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import load_config

    monkeypatch.setenv("SHIFTBOT_DATABASE", "postgresql+psycopg://shiftbot:pw-0123456789@"
                       "postgres:5432/shiftbot")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-0123456789-abcdef")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-0123456789-abcdef")
    config = load_config(str(DEPLOY / "shiftbot.yaml"))
    assert config.bot.database.startswith("postgresql")
    assert config.bot.http.host == "0.0.0.0" and config.bot.http.port == 8080
    assert config.slack is not None and config.slack.mode == "socket"
