"""Config that would silently change who may do what is an error; secrets never leak from the
config into logs, tracebacks, problem messages or check-config output."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import BASE, CORE_HANDLERS, deep_merge

from bot.config import ConfigError, load_config, parse_config
from bot.configfile import read_yaml
from bot.secrets import MaskingFilter

REPO = Path(__file__).resolve().parent.parent


def problems(raw: dict, tmp_path: Path) -> list[str]:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, tmp_path)
    return [str(p) for p in caught.value.problems]


def load_problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "shiftbot.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p) for p in caught.value.problems]


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", "check-config", "--config", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO / "tests"), **(env or {})})


# ------------------------------------------------------------------ who may do what


def test_duplicate_yaml_keys_are_errors_with_path_and_line(tmp_path: Path) -> None:
    text = "\n".join([
        "people:",
        "  alice: {slack: U0ALICE01}",
        "  bob: {slack: U0BOB0001}",
        "  alice: {slack: U0MALLORY}",  # line 4: would silently replace alice's id
        "grants:",
        "  - role: viewer",
        "    people: [alice]",
        "    role: admin",  # line 8, inside the first list item
        "roles:",
        "  viewer: {allow: [help]}",
        "  admin: {allow: ['*']}",
        "grants: []",  # line 12: would silently drop every grant above
    ])
    assert load_problems(text, tmp_path) == [
        "people.alice: duplicate key 'alice' at line 4 (first at line 2) (YAML would silently "
        "keep only the last one: merge them)",
        "grants[0].role: duplicate key 'role' at line 8 (first at line 6) (YAML would silently "
        "keep only the last one: merge them)",
        "grants: duplicate key 'grants' at line 12 (first at line 5) (YAML would silently keep "
        "only the last one: merge them)",
    ]


@pytest.mark.parametrize(("text", "expected"), [
    # Two '<<' in one mapping: the second silently replaced what the first merged (expert
    # would hold the shifter's permissions, not the viewer's).
    ("roles:\n  viewer: &viewer {allow: [help]}\n  shifter: &shifter {allow: [help, whoami]}\n"
     "  expert:\n    <<: *viewer\n    <<: *shifter\n",
     ["roles.expert.<<: duplicate key '<<' at line 6 (first at line 5) (one merge key takes a "
      "list: <<: [*a, *b])",
      "roles.expert.allow: key 'allow' is merged from two mappings (lines 2 and 3) (YAML would "
      "silently take one of them: set it explicitly in this mapping)"]),
    # One '<<' with a list: the *first* mapping silently wins a key both give.
    ("a: &a {x: 1, y: 2}\nb: &b {x: 3}\nc:\n  <<: [*a, *b]\n",
     ["c.x: key 'x' is merged from two mappings (lines 1 and 2) (YAML would silently take one "
      "of them: set it explicitly in this mapping)"]),
])
def test_a_key_two_merges_give_is_an_error(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as error:
        read_yaml(text, "shiftbot.yaml")
    assert [str(p) for p in error.value.problems] == expected


def test_merge_keys_with_explicit_overrides_still_work() -> None:
    text = ("d: &d {x: 1, y: 2}\ne: {<<: *d, x: 5}\n"
            "a: &a {x: 1, y: 2}\nb: &b {<<: *a, z: 3}\nc: {<<: [*b, *a, *d], x: 4, y: 0}\n")
    raw = read_yaml(text, "shiftbot.yaml")
    assert raw["e"] == {"x": 5, "y": 2}  # the mapping's own key overrides the merged one
    assert raw["c"] == {"x": 4, "y": 0, "z": 3}  # one anchor reached twice is no conflict


def test_people_sharing_a_platform_account_are_errors(tmp_path: Path) -> None:
    raw = deep_merge(BASE, {"people": {
        "bob": {"slack": "U0ALICE01"},
        "dave": {"mattermost": "a" * 26},
        "erin": {"mattermost_username": "@Frank"},
        "frank": {"mattermost_username": "frank"},
    }})
    assert problems(raw, tmp_path) == [
        "people.bob.slack: 'U0ALICE01' is also people.alice.slack (one account is one person: "
        "the gate would give it the roles of only one of them)",
        f"people.dave.mattermost: '{'a' * 26}' is also people.alice.mattermost (one account "
        "is one person: the gate would give it the roles of only one of them)",
        "people.frank.mattermost_username: 'frank' is also people.erin.mattermost_username "
        "(one account is one person: the gate would give it the roles of only one of them)",
    ]


def test_two_aliases_of_one_channel_are_an_error(tmp_path: Path) -> None:
    raw = deep_merge(BASE, {"slack": {"bot_token": "xoxb-1", "app_token": "xapp-1",
                                      "channels": {"ops": "#Shifters", "alerts": "shifters"}}})
    assert problems(raw, tmp_path) == [
        "slack.channels.alerts: 'shifters' is also slack.channels.ops (a channel has one alias: "
        "grants limited to one of them would not apply there)"]


@pytest.mark.parametrize("name", ["everyone", "Everyone"])
def test_a_role_named_like_the_gates_baseline_is_an_error(tmp_path: Path, name: str) -> None:
    raw = deep_merge(BASE, {"roles": {name: {"allow": ["sample.*"]}}})
    assert problems(raw, tmp_path) == [
        f"roles.{name}: the role name '{name}' is reserved ('everyone' is what everybody holds "
        "(bot.unknown_user_allow): rename the role)"]


@pytest.mark.parametrize("url", ["mysql://bot@db/shiftbot", "postgres://bot@db/shiftbot",
                                 "shiftbot.db"])
def test_unsupported_database_urls_are_errors(tmp_path: Path, url: str) -> None:
    found = problems(deep_merge(BASE, {"bot": {"database": url}}), tmp_path)
    assert len(found) == 1 and found[0].startswith("bot.database: Value error, unsupported "
                                                   "database"), found
    assert "only sqlite and postgresql are supported" in found[0]
    for good in ("sqlite:///var/x.db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
        parse_config(deep_merge(BASE, {"bot": {"database": good}}), tmp_path)


@pytest.mark.parametrize("text", ["", "\n", "# nothing configured yet\n"])
def test_an_empty_file_is_one_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "shiftbot.yaml"
    assert load_problems(text, tmp_path) == [
        f"the configuration file {path} is empty (start from config/shiftbot.example.yaml)"]


# ------------------------------------------------------------------ secrets


@pytest.fixture
def masked_log() -> tuple[logging.Logger, io.StringIO]:
    """A logger whose handler masks like the bot's root handlers (setup_logging)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("test.config_safety")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_env_values_under_plain_keys_are_masked_in_logs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        masked_log: tuple[logging.Logger, io.StringIO]) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "plain-key-token-4711")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = parse_config(deep_merge(BASE, {"bot": {
        "environment": "${DEPLOY_TOKEN}",  # a plain str key, not a SecretStr
        "database": "sqlite:///${HOME}/bot.db"}}), tmp_path)
    logger, stream = masked_log
    logger.warning("environment is %s; database %s", config.bot.environment,
                   config.bot.database)
    assert "plain-key-token-4711" not in stream.getvalue()
    assert "environment is ***" in stream.getvalue()
    # ${HOME} and its like are paths, never secrets: they stay readable
    assert f"database sqlite:///{tmp_path}/home/bot.db" in stream.getvalue()


def test_traceback_text_is_masked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                  masked_log: tuple[logging.Logger, io.StringIO]) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", "https://traceback-token-0815@sentry.invalid/1")
    monkeypatch.setenv("PLAIN_TOKEN", "traceback-token-plain-key")
    config = parse_config(deep_merge(BASE, {"bot": {
        "sentry_dsn": "${UPSTREAM_TOKEN}", "name": "${PLAIN_TOKEN}"}}), tmp_path)
    assert config.bot.sentry_dsn is not None
    logger, stream = masked_log
    try:
        raise RuntimeError(f"login refused for {config.bot.sentry_dsn.get_secret_value()} "
                           f"as {config.bot.name}")
    except RuntimeError:
        logger.exception("upstream call failed")
    logger.warning("where from", stack_info=True)  # stack text goes through the filter too
    text = stream.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: login refused for *** as ***" in text
    assert "traceback-token" not in text


@pytest.mark.parametrize("case", ["env", "literal"])
def test_secrets_are_masked_in_problems_even_when_validation_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.setenv("TZ_TOKEN", "tz-token-value-1234")
    if case == "env":  # a ${VAR} in a key that fails validation and quotes its value
        raw = deep_merge(BASE, {"bot": {"timezone": "${TZ_TOKEN}"}})
    else:  # a literal token under a secret key, also pasted into such a key by mistake
        raw = deep_merge(BASE, {"bot": {"timezone": "tz-token-value-1234"}, "mattermost": {
            "url": "https://mm.example.org", "team": "ops", "token": "tz-token-value-1234"}})
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, tmp_path)
    text = "\n".join([str(caught.value), *map(str, caught.value.problems)])
    assert "bot.timezone: Value error, unknown IANA timezone '***'" in text
    assert "tz-token-value-1234" not in text


def test_check_config_output_never_shows_an_env_secret(tmp_path: Path) -> None:
    raw = deep_merge(BASE, {"bot": {"handlers": CORE_HANDLERS, "timezone": "${CHECK_TOKEN}",
                                    "environment": "${CHECK_TOKEN}"}})
    path = tmp_path / "shiftbot.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = check_config(path, {"CHECK_TOKEN": "check-config-token-99"})
    assert result.returncode == 1
    assert "bot.timezone: Value error, unknown IANA timezone '***'" in result.stdout
    assert "check-config-token-99" not in result.stdout + result.stderr


@pytest.mark.parametrize("value", ["tz\\token-value-1234", "tz'tok\"en-value-1234",
                                   "tz-token\x7fvalue-1234", "tz-tökén-value-1234"])
def test_an_escaped_secret_is_masked_in_problems(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                value: str) -> None:
    """Problems quote values with repr(): a secret holding a backslash, a quote, a control or
    non-ASCII character is printed escaped, and that spelling is masked too."""
    monkeypatch.setenv("TZ_TOKEN", value)
    with pytest.raises(ConfigError) as caught:
        parse_config(deep_merge(BASE, {"bot": {"timezone": "${TZ_TOKEN}"}}), tmp_path)
    text = "\n".join([str(caught.value), *map(str, caught.value.problems)])
    assert "tok" not in text and "value-1234" not in text, text


def test_check_config_warns_about_a_secret_too_short_to_mask(tmp_path: Path) -> None:
    (tmp_path / "short").write_text("xy\n")
    raw = deep_merge(BASE, {"bot": {"handlers": CORE_HANDLERS, "environment": "${SHORT_ONE}",
                                    "name_file": str(tmp_path / "short")}})
    raw["bot"].pop("name", None)
    path = tmp_path / "shiftbot.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = check_config(path, {"SHORT_ONE": "abc"})
    assert result.returncode == 0, result.stdout + result.stderr  # a warning, not an error
    assert ("warning: bot.environment: the secret from ${SHORT_ONE} is shorter than 4 "
            "characters") in result.stdout, result.stdout
    assert "warning: bot.name_file: the secret from " in result.stdout, result.stdout
