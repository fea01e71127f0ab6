"""Configuration: validation messages with key paths and hints, secrets, check-config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import BASE, deep_merge

from bot.config import ConfigError, load_config, parse_config
from bot.configchecks import check_references
from bot.registry import Registry

REPO = Path(__file__).resolve().parent.parent


def problems_of(raw: dict, tmp_path: Path) -> list[str]:  # type: ignore[type-arg]
    try:
        config = parse_config(raw, tmp_path)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    registry = Registry().load(config.bot.handlers)
    return [str(p) for p in check_references(config, registry)]


def test_unknown_permission_suggests(tmp_path: Path) -> None:
    raw = deep_merge(BASE, {"roles": {"shifter": {"allow": ["sample.*", "audit", "sample.wpe"]}}})
    assert problems_of(raw, tmp_path) == [
        "roles.shifter.allow[2]: unknown permission 'sample.wpe' (did you mean 'sample.wipe'?)"]


def test_unknown_keys_are_errors_with_hints(tmp_path: Path) -> None:
    raw = deep_merge(BASE, {"bot": {"timezon": "UTC"}, "rolez": {}})
    found = problems_of(raw, tmp_path)
    assert "bot.timezon: unknown key 'timezon' (did you mean 'timezone'?)" in found
    assert any(p.startswith("rolez: unknown key 'rolez'") for p in found)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"grants": [{"role": "shifter", "groups": ["shifterz"]}]},
         "grants[0].groups[0]: unknown group 'shifterz' (did you mean 'shifters'?)"),
        ({"grants": [{"role": "shiftr", "people": ["alice"]}]},
         "grants[0].role: unknown role 'shiftr' (did you mean 'shifter'?)"),
        ({"grants": [{"role": "viewer", "people": ["alice"], "channels": ["opz"]}]},
         "grants[0].channels[0]: unknown channel alias 'opz' (did you mean 'ops'?)"),
        ({"grants": [{"role": "viewer"}]}, "grants[0]: grants the role to nobody"),
        ({"groups": {"shifters": ["alice", "zed"]}}, "groups.shifters[1]: unknown person 'zed'"),
        ({"roles": {"viewer": {"inherits": ["ghost"]}}},
         "roles.viewer.inherits[0]: unknown role 'ghost'"),
        ({"roles": {"viewer": {"approval": {"sample.echo": "boss"}}}},
         "roles.viewer.approval.sample.echo: unknown role 'boss'"),
        ({"bot": {"console_person": "zoe"}}, "bot.console_person: unknown person 'zoe'"),
        ({"slack": {"bot_token": "xoxb-1", "app_token": "xapp-1", "channels": {"alert": "C1"}}},
         "slack.channels.alert: unknown channel alias 'alert' (did you mean 'alerts'?)"),
        ({"slack": {"bot_token": "xoxb-1", "mode": "http"}},
         "slack.signing_secret: http mode needs the signing secret"),
        ({"bot": {"timezone": "Mars/Olympus"}}, "bot.timezone: Value error, unknown IANA timezone"),
        ({"people": {"alice": {"slack": "alice"}}}, "people.alice.slack: String should match"),
        ({"roles": {"a": {"inherits": ["b"]}, "b": {"inherits": ["a"]}}},
         "roles.a.inherits: role 'a' inherits itself"),
    ],
)
def test_reference_and_schema_problems(tmp_path: Path, overrides: dict, expected: str) -> None:  # type: ignore[type-arg]
    found = problems_of(deep_merge(BASE, overrides), tmp_path)
    assert any(p.startswith(expected) for p in found), found


def test_env_and_file_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env-0001")
    (tmp_path / "app_token").write_text("xapp-from-file-0002\n")
    raw = deep_merge(BASE, {"slack": {"bot_token": "${SLACK_BOT_TOKEN}",
                                      "app_token_file": "app_token"}})
    config = parse_config(raw, tmp_path)
    assert config.slack is not None
    assert config.slack.bot_token.get_secret_value() == "xoxb-from-env-0001"
    assert config.slack.app_token is not None
    assert config.slack.app_token.get_secret_value() == "xapp-from-file-0002"
    assert "xoxb-from-env" not in repr(config) and "xapp-from-file" not in repr(config)


def test_missing_env_and_file(tmp_path: Path) -> None:
    raw = deep_merge(BASE, {"slack": {"bot_token": "${NOPE_NOT_SET}",
                                      "app_token_file": "missing"}})
    found = problems_of(raw, tmp_path)
    assert "slack.bot_token: environment variable NOPE_NOT_SET is not set " \
           "(export it or use a *_file key)" in found
    assert any(p.startswith("slack.app_token_file: cannot read") for p in found)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=60)


def test_a_granted_alias_an_enabled_platform_does_not_map_is_a_warning(tmp_path: Path) -> None:
    raw = deep_merge(BASE, {
        "grants": [{"role": "viewer", "people": ["alice"], "channels": ["ops"]}],
        "slack": {"bot_token": "xoxb-1", "app_token": "xapp-1", "channels": {"ops": "C0OPS0001"}},
        "mattermost": {"url": "https://mm.example.org", "team": "t", "token": "t" * 26,
                       "channels": {"alerts": "alerts"}}})
    config = parse_config(raw, tmp_path)
    problems = check_references(config, Registry().load(config.bot.handlers))
    unmapped = [p for p in problems if p.path == "grants[0].channels[0]"]
    assert [(p.severity, str(p)) for p in unmapped] == [(
        "warning", "warning: grants[0].channels[0]: channel alias 'ops' is not mapped on "
        "mattermost: the grant applies in no mattermost channel (add it to "
        "mattermost.channels, or ignore this if that is intended)")]


def test_check_config_cli(tmp_path: Path) -> None:
    good = _cli("check-config", "--config", "config/demo.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Configuration OK." in good.stdout and "people:    4" in good.stdout
    broken = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    broken["roles"]["shifter"]["allow"].append("condor.rmm")
    index = len(broken["roles"]["shifter"]["allow"]) - 1
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    bad = _cli("check-config", "--config", str(path))
    assert bad.returncode == 1
    assert (f"roles.shifter.allow[{index}]: unknown permission 'condor.rmm' "
            "(did you mean 'condor.rm'?)") in bad.stdout


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented example must validate (with its secrets provided by the environment)."""
    for var in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET",
                "MATTERMOST_TOKEN", "MATTERMOST_COMMAND_TOKEN", "SHIFTBOT_ACTION_SECRET",
                "GITLAB_TOKEN", "SENTRY_CLIENT_SECRET", "SENTRY_TOKEN"):
        monkeypatch.setenv(var, f"{var.lower()}-value")
    config = load_config(REPO / "config/shiftbot.example.yaml")
    registry = Registry().load(config.bot.handlers)
    # Its submit file lives on the production submit host: check-config there reads it.
    assert [str(p) for p in check_references(config, registry)
            if p.path != "condor.pools.gwcelery.submit.gwcelery.file"] == []


def test_example_config_documents_every_key() -> None:
    """Every field of every section model appears in the example file."""
    from pydantic import BaseModel

    from bot.config import Config, _unwrap

    text = (REPO / "config/shiftbot.example.yaml").read_text()
    missing: list[str] = []

    def walk(model: type[BaseModel], path: str) -> None:
        for name, field in model.model_fields.items():
            if name == "source_dir":
                continue
            if f"{name}:" not in text:
                missing.append(f"{path}{name}")
            inner = _unwrap(field.annotation)
            if inner is not None and inner is not model:
                walk(inner, f"{path}{name}.")

    walk(Config, "")
    assert missing == []
