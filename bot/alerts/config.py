"""The ``sentry:`` and ``alerts:`` config sections (docs/alerts.md documents every key).

``gitlab:`` is the shared section of ``bot/integrations/gitlab.py`` (``GITLAB.of(config)``).
Durations are seconds or ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator

from bot.alerts.model import LEVELS
from bot.configbase import Strict
from bot.features import ConfigSection

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("expected a duration: seconds, or 90s, 5m, 2h, 1d")
        return float(match.group(1)) * _UNIT[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]

# The polling job's period: polls start within this of their instant. Here, not in the heavy
# bot/alerts/poll.py (which re-exports it), because handlers/alerts.py's @every reads it at import.
POLL_TICK_SECONDS = 30


class PollConfig(Strict):
    interval: Seconds = Field(300, ge=30, le=86400)  # between two polls of a project
    projects: list[str] = []  # project slugs to poll (empty: polling is off)


class SentryConfig(Strict):
    """``sentry:``: the internal integration's secret and API access."""

    client_secret: SecretStr | None = None  # verifies Sentry-Hook-Signature (HMAC-SHA256)
    api_url: str = "https://sentry.io/api/0/"
    token: SecretStr | None = None  # the integration's API token (Bearer)
    org: str | None = None  # organization slug (API paths)
    # The legacy WebHooks plugin signs nothing: its URL carries this secret
    # (/webhooks/sentry/legacy/<legacy_secret>).
    legacy_secret: SecretStr | None = None
    poll: PollConfig = PollConfig()
    timeout_seconds: float = Field(10, gt=0, le=120)  # one API request
    web_url: str | None = None  # builds issue links when a payload has none (sentry.io: org's)

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError("expected the API's address, e.g. https://sentry.io/api/0/")
        return value.rstrip("/") + "/"


class Route(Strict):
    """One routing rule: the first rule matching an alert decides where it goes."""

    projects: list[str] = []  # Sentry project slugs; empty: any
    environments: list[str] = []  # empty: any
    min_level: str = "debug"  # this level or worse
    channels: list[str] = Field(min_length=1)  # channel aliases (``channels:``)
    mention: list[str] = []  # people, groups or roles (``on-shift`` once the rota lands)

    @field_validator("min_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in LEVELS:
            raise ValueError(f"expected one of {', '.join(LEVELS)}")
        return value.lower()


class StormConfig(Strict):
    """More than ``threshold`` new alerts of one project and environment within ``window``:
    the rest become one summary post updated in place."""

    window: Seconds = Field(300, gt=0, le=86400)
    threshold: int = Field(5, ge=1, le=1000)


class AutoTicket(Strict):
    """When a GitLab issue is opened without anyone asking."""

    enabled: bool = False
    min_level: str = "error"
    environments: list[str] = []  # empty: any
    projects: list[str] = []  # empty: any
    on: list[str] = ["new", "regressed"]  # new, regressed

    @field_validator("min_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in LEVELS:
            raise ValueError(f"expected one of {', '.join(LEVELS)}")
        return value.lower()

    @field_validator("on")
    @classmethod
    def _on(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if v not in ("new", "regressed")]
        if bad:
            raise ValueError(f"unknown {bad[0]!r}: expected new, regressed")
        return value


class AlertsConfig(Strict):
    routes: list[Route] = []
    storm: StormConfig = StormConfig()
    auto_ticket: AutoTicket = AutoTicket()
    comment_every: Seconds = Field(3600, ge=0, le=7 * 86400)  # repeats -> one comment per this
    comment_on_resolve: bool = True  # a comment on the GitLab issue when Sentry resolves
    link_back: bool = True  # link the GitLab issue in Sentry (external-issues API)
    tags: list[str] = ["server_name", "environment", "release", "htcondor.cluster_id"]
    keep_days: int = Field(90, ge=1, le=3650)  # processed inbox rows kept this long
    retry_hours: float = Field(48, gt=0, le=24 * 30)  # a GitLab/Sentry task gives up after


SENTRY = ConfigSection("sentry", SentryConfig)
ALERTS = ConfigSection("alerts", AlertsConfig)
