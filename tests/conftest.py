"""Shared fixtures: a bot built from a config dict, on a SQLite file in tmp_path."""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"
# slack_sdk honours HTTP(S)_PROXY but not NO_PROXY: tests talk to loopback only.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)

from bot.config import Config, parse_config  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.identity import Inbound  # noqa: E402

CORE_HANDLERS = ["handlers.builtin", "handlers.approvals", "handlers.audit", "sample_handlers"]

# People, roles and grants most tests share. Slack ids follow Slack's shape.
BASE: dict[str, Any] = {
    "bot": {"name": "testbot", "handlers": CORE_HANDLERS},
    "people": {
        "alice": {"name": "Alice", "slack": "U0ALICE01", "mattermost": "a" * 26},
        "bob": {"name": "Bob", "slack": "U0BOB0001", "mattermost": "b" * 26},
        "carol": {"name": "Carol", "slack": "U0CAROL01", "mattermost": "c" * 26},
        "dave": {"name": "Dave", "slack": "U0DAVE001"},
        "erin": {"name": "Erin", "slack": "U0ERIN001"},
    },
    "groups": {"shifters": ["alice", "bob"]},
    "roles": {
        "viewer": {"allow": ["help", "whoami", "why", "who-can", "sample.echo", "sample.table"]},
        "shifter": {
            "inherits": ["viewer"],
            "allow": ["sample.*", "audit"],
            "approval": {"sample.restart": "expert"},
        },
        "expert": {"inherits": ["shifter"], "allow": ["sample.*", "audit"]},
    },
    "grants": [
        {"role": "shifter", "groups": ["shifters"]},
        {"role": "expert", "people": ["carol", "erin"]},
        {"role": "viewer", "people": ["dave"], "channels": ["ops"]},
    ],
    "channels": {"ops": {}, "alerts": {}},
}


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture(autouse=True)
async def _close_shared_http() -> AsyncIterator[None]:
    """After every test: close the shared HTTP clients its loop made (status checks,
    restarts and alerts call ``bot.httpclient``), or aiohttp warns about unclosed sessions
    when the process exits."""
    yield
    from bot import httpclient

    await httpclient.close_all()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for the module (tests/postgres.py); the test skips,
    saying why, where the server binaries are not installed."""
    from postgres import temporary_postgres

    with temporary_postgres() as url:
        if url is None:
            pytest.skip("no PostgreSQL server binaries here (Debian package 'postgresql')")
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test once on a SQLite file, once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'both.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    def factory(overrides: dict[str, Any] | None = None, *, base: dict[str, Any] = BASE) -> Config:
        raw = deep_merge(base, {"bot": {"database": f"sqlite:///{tmp_path / 'bot.db'}"}})
        raw = deep_merge(raw, overrides or {})
        return parse_config(raw, tmp_path)

    return factory


@pytest.fixture
async def make_bot(
    make_config: Callable[..., Config],
) -> AsyncIterator[Callable[..., Awaitable[Bot]]]:
    bots: list[Bot] = []

    async def factory(overrides: dict[str, Any] | None = None, *, config: Config | None = None,
                      **kwargs: Any) -> Bot:
        bot = await Bot.create(config or make_config(overrides), **kwargs)
        bots.append(bot)
        return bot

    yield factory
    for bot in bots:
        await bot.close()
    from bot import httpclient

    await httpclient.close_all()  # the loop's shared sessions (status checks, restarts)


@pytest.fixture
async def slack() -> AsyncIterator[Any]:
    """A fake Slack on loopback (tests/fakes/slack.py) with its default workspace."""
    from fakes.slack import FakeSlack

    async with FakeSlack() as fake:
        yield fake


def console(user: str, text: str, channel: str | None = None) -> Inbound:
    """An inbound line from the console as ``user`` (a person key)."""
    return Inbound(platform="console", user_id=user, text=text, channel_id=channel,
                   channel_alias=channel)
