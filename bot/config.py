"""The configuration file: one YAML document validated into typed models.

Loading order: ``--config PATH``, else ``$SHIFTBOT_CONFIG``, else ``config/shiftbot.yaml``.
Before validation every string may use ``${VAR}`` (environment) and every key ``k`` may instead
be given as ``k_file: /path`` (the file's content, stripped). Unknown keys are errors. Problems are
reported with their key path (``roles.shifter.allow[2]``) and a hint; see :func:`load_config`
and ``bot/configchecks.py`` for the checks that need the command registry; feature
sections (every top-level key that is not a core one) are validated in ``bot/features.py``.

Masking rule: every value that came from ``${VAR}`` or a ``*_file`` is a secret, whatever key it
sits under, and is registered with the masker *before* validation (so no problem message can
echo it); so is every value under a secret key. Exceptions: values shorter than 4 characters
(the masker would blank ordinary words) and ``bot.configfile.PLAIN_VARIABLES`` (paths and
names such as ``${HOME}`` in ``sqlite:///${HOME}/x.db``: masking them would blank every path
in the logs and hide nothing). The loading itself is in :mod:`bot.configfile`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from bot.condor.config import WORKER_VARIABLES as WORKER_VARIABLES
from bot.condor.config import CondorConfig as CondorConfig
from bot.condor.config import CondorPoolConfig as CondorPoolConfig
from bot.condor.config import SubmitDescription as SubmitDescription
from bot.configbase import ConfigError as ConfigError
from bot.configbase import Problem as Problem
from bot.configbase import Strict as Strict
from bot.configbase import _hint_for, _model_at, _unwrap  # noqa: F401 (tests)
from bot.configbase import format_path as format_path
from bot.configbase import hint_for as hint_for
from bot.configbase import secret_value as secret_value

DEFAULT_CONFIG_PATH = Path("config/shiftbot.yaml")
# (dialect, driver) pairs bot/db.py supports; an empty driver is the default (psycopg for
# PostgreSQL, see bot/db.py).
DATABASES = frozenset({("sqlite", ""), ("sqlite", "pysqlite"), ("postgresql", ""),
                       ("postgresql", "psycopg"), ("postgresql", "psycopg2")})
ENV_CONFIG = "SHIFTBOT_CONFIG"


# ---------------------------------------------------------------------------------------- bot


class HttpConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)  # 0 picks a free port (tests)
    public_url: str | None = None  # how chat servers reach us (buttons, slash commands)
    # Slow clients are cut (slowloris): a request head (also: an idle connection), a body.
    header_timeout_seconds: float = Field(15.0, gt=0, le=3600)
    body_timeout_seconds: float = Field(30.0, gt=0, le=3600)


class BotConfig(Strict):
    name: str = "shiftbot"
    timezone: str = "UTC"
    database: str = "sqlite:///var/shiftbot.db"
    http: HttpConfig = HttpConfig()
    sentry_dsn: SecretStr | None = None
    environment: str = "production"
    console_person: str | None = None
    # What anybody may run, identified or not (deny by default for everything else).
    unknown_user_allow: list[str] = ["help", "whoami"]
    templates_dir: str | None = None  # overrides config/templates/ file by file
    approval_timeout_minutes: float = Field(15, gt=0)
    confirmation_timeout_minutes: float = Field(5, gt=0)
    max_table_rows: int = Field(40, ge=1)
    handlers: list[str] | None = None  # handler modules to load; default: every handlers.* module

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r} (e.g. 'Europe/Zurich')") from exc
        return value

    @field_validator("sentry_dsn")
    @classmethod
    def _sentry_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        # sentry_sdk.init raises BadDsn only at console/run start: parse it here with the SDK's
        # own parser. The reason is quoted without the DSN's parts (a secret; the project
        # reason would quote its path).
        if value is None:
            return value
        from sentry_sdk.utils import BadDsn, Dsn

        try:
            Dsn(value.get_secret_value())
        except BadDsn as exc:
            reason = str(exc).split(" (", 1)[0]
            raise ValueError(f"not a Sentry DSN: {reason[:1].lower()}{reason[1:]} (expected "
                             "https://KEY@HOST/PROJECT, from the project's Client Keys)") from None
        return value

    @field_validator("database")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        # Only the scheme is quoted back: the rest of the URL may hold a password.
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        dialect, _, driver = scheme.partition("+")
        if (dialect, driver) not in DATABASES:
            given = f"'{scheme}://'" if scheme else "a URL without a scheme"
            raise ValueError(f"unsupported database {given}: only sqlite and postgresql are "
                             "supported (sqlite:///var/shiftbot.db, "
                             "postgresql+psycopg://user@host/db)")
        return value


# --------------------------------------------------------------------- people and permissions


class PersonConfig(Strict):
    name: str | None = None  # display name
    slack: str | None = Field(None, pattern=r"^[UW][A-Z0-9]{2,}$")  # immutable Slack user id
    mattermost: str | None = Field(None, pattern=r"^[a-z0-9]{26}$")  # immutable Mattermost id
    # A username is resolved to the immutable id by the Mattermost adapter at startup.
    mattermost_username: str | None = None
    email: str | None = None


class RoleConfig(Strict):
    description: str = ""
    allow: list[str] = []  # permission globs over family.subcommand: condor.*, status
    inherits: list[str] = []
    # permission glob -> role whose holder (another person) must approve: {"restart.*": expert}
    approval: dict[str, str] = {}


class GrantConfig(Strict):
    role: str
    people: list[str] = []
    groups: list[str] = []
    channels: list[str] | None = None  # channel aliases; None = everywhere


class ChannelConfig(Strict):
    description: str = ""


# --------------------------------------------------------------------------------- platforms


class SlackConfig(Strict):
    """The ``slack:`` section (``bot/adapters/slack``; install steps in ``docs/slack.md``)."""

    enabled: bool = True
    # socket: no inbound HTTP (works behind a site firewall); http: POST <events_path>.
    mode: Literal["socket", "http"] = "socket"
    bot_token: SecretStr  # xoxb-...
    app_token: SecretStr | None = None  # xapp-..., socket mode
    signing_secret: SecretStr | None = None  # http mode: every request's signature is checked
    api_url: str = "https://slack.com/api/"  # tests and proxies override it
    # slash command -> family it maps to (None: the full command line, as /shiftbot)
    commands: dict[str, str | None] = {"/shiftbot": None}
    # alias -> channel id (C...) or name (#ops, resolved to its id): grants match ids only
    channels: dict[str, str] = {}
    # Fast commands are answered inline when done within this; otherwise "working on it" first.
    ack_budget_seconds: float = Field(2.0, gt=0, lt=3)
    events_path: str = "/slack/events"  # http mode: commands, events and buttons arrive here
    ping_interval_seconds: float = Field(10, gt=0)  # socket mode: ping (and liveness check) period
    # /healthz reports Slack unhealthy after this long without a working connection.
    unhealthy_after_seconds: float = Field(60, gt=0)
    request_timeout_seconds: float = Field(10, gt=0)  # every Web API / response_url call
    channel_cache_seconds: float = Field(3600, gt=0)  # channel name <-> id lookups are kept


class MattermostConfig(Strict):
    """The ``mattermost:`` section (``bot/adapters/mattermost``; setup in ``docs/mattermost.md``).

    Time constants are settings so tests (and odd sites) can shrink or stretch them.
    """

    enabled: bool = True
    # The server as the bot reaches it: scheme://host[:port] (no path: Mattermost under a
    # sub-path is not supported by the client library). Port defaults to 443/80.
    url: str
    # The bot account's access token: created under Product menu > Integrations > Bot Accounts
    # (enabled in System Console > Integrations > Bot Accounts).
    token: SecretStr
    team: str  # team URL name: channel names and slash commands live in it
    verify_tls: bool = True  # false only for a test server with a self-signed certificate
    # Tokens of the custom slash commands (`shiftbot mattermost register-commands` prints them).
    # Requests with another token are refused with 401; an empty list refuses every command.
    command_tokens: list[SecretStr] = []
    command_prefix: str = Field("!", min_length=1)  # messages like `!condor q` are commands
    commands: dict[str, str | None] = {"shiftbot": None}  # slash trigger -> family (None: all)
    # alias -> channel name (resolved in `team` at startup) or id: grants match ids only
    channels: dict[str, str] = {}
    # HMAC key for button contexts. Unset: derived from the bot token (HMAC-SHA256 with a fixed
    # label), so rotating the token invalidates outstanding buttons.
    action_secret: SecretStr | None = None
    # How long buttons stay valid. Unset: the longer of the approval and confirmation timeouts
    # plus 5 minutes.
    action_ttl_minutes: float | None = Field(None, gt=0)
    request_timeout_seconds: float = Field(10, gt=0)  # deadline of every REST call
    # A slash command or button answered within this is answered inline; otherwise "working on
    # it" now and the answer later (Mattermost waits up to 30 s; people do not).
    ack_budget_seconds: float = Field(2.5, gt=0, lt=30)
    # The bot pings the socket this often; a socket with no event and no pong for two intervals
    # is dead and recycled. A connection up for one interval resets the reconnect backoff.
    ping_interval_seconds: float = Field(15, gt=0)
    reconnect_min_seconds: float = Field(1, gt=0)  # first reconnect delay (then doubled, jittered)
    reconnect_max_seconds: float = Field(60, gt=0)  # reconnect delay cap
    # /healthz reports Mattermost unhealthy after this long without a working socket.
    unhealthy_after_seconds: float = Field(60, gt=0)
    # A post (or click) is claimed in the database for this long: seen again within it (a
    # replay, another replica's socket), it is not run again.
    dedupe_seconds: float = Field(600, gt=0)

    @field_validator("url")
    @classmethod
    def _server_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must look like https://mattermost.example.org[:port]")
        if parts.path not in ("", "/"):
            raise ValueError("must not have a path (Mattermost under a sub-path is unsupported)")
        return value.strip().rstrip("/")

    @field_validator("commands")
    @classmethod
    def _triggers(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        return {trigger.strip().lstrip("/").lower(): family for trigger, family in value.items()}


class NoticesConfig(Strict):
    """The ``notices:`` section: the durable outbox (``bot/messaging/notices.py``)."""

    retry_min_seconds: float = Field(2, gt=0)  # first retry delay after a 5xx/timeout
    retry_max_seconds: float = Field(300, gt=0)  # retry delay cap (doubling up to it)
    # A delivery still failing this long after its notice was posted is marked failed,
    # counted, logged, and listed by `notices pending`.
    fail_after_hours: float = Field(24, gt=0)
    send_timeout_seconds: float = Field(30, gt=0)  # one attempt that takes longer is retried
    poll_seconds: float = Field(5, gt=0)  # how often the outbox is read (other replicas' rows)
    flush_timeout_seconds: float = Field(10, ge=0)  # shutdown waits this long for due rows
    # /healthz: the notices component is unhealthy when a notice waits longer than this.
    unhealthy_after_seconds: float = Field(600, gt=0)
    max_channels: int = Field(32, ge=1)  # channels sent to at once (one message each)


# ------------------------------------------------------------------------------------- root


class Config(Strict):
    bot: BotConfig = BotConfig()
    people: dict[str, PersonConfig] = {}
    groups: dict[str, list[str]] = {}
    roles: dict[str, RoleConfig] = {}
    grants: list[GrantConfig] = []
    channels: dict[str, ChannelConfig] = {}
    slack: SlackConfig | None = None
    mattermost: MattermostConfig | None = None
    condor: CondorConfig = CondorConfig()
    notices: NoticesConfig = NoticesConfig()

    # Every other top-level key is a feature's section (``status:``, ``alerts:``): kept as read
    # here, validated by the feature's own model once the handler modules are loaded
    # (bot/features.py: bind_sections), and refused if no loaded module declares it.
    model_config = ConfigDict(extra="allow", frozen=False)

    # Where the file was read from: relative paths (templates, submit files) resolve against it.
    source_dir: Path = Field(default=Path("."), exclude=True)
    _feature_sections: dict[str, BaseModel] = PrivateAttr(default_factory=dict)
    # Warnings found while reading the file (interpolation), printed by check-config; private:
    # not a key a config file could set.
    _load_warnings: list[Problem] = PrivateAttr(default_factory=list)

    @property
    def load_warnings(self) -> list[Problem]:
        return self._load_warnings

    @load_warnings.setter
    def load_warnings(self, value: list[Problem]) -> None:
        self._load_warnings = value

    @property
    def feature_sections(self) -> dict[str, BaseModel]:
        """The validated feature sections, by name (``ConfigSection.of`` reads them)."""
        return self._feature_sections

    @feature_sections.setter
    def feature_sections(self, value: dict[str, BaseModel]) -> None:
        self._feature_sections = value


# ------------------------------------------------------------------------------- loading


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    return DEFAULT_CONFIG_PATH


def _core_typos(raw: dict[str, Any]) -> list[Problem]:
    """Top-level keys that look like a misspelt core section (``rolez``). Other unknown keys
    are feature sections, checked once the handler modules are loaded (bot/features.py); this
    is for reporting them with the other problems when validation stops before that."""
    core = [f for f in Config.model_fields if f != "source_dir"]
    problems = []
    for key in raw:
        close = difflib.get_close_matches(str(key), core, n=1)
        if key not in core and close:
            problems.append(Problem(str(key), f"unknown key '{key}'",
                                    f"did you mean '{close[0]}'?"))
    return problems


def parse_config(raw: Any, source_dir: Path = Path(".")) -> Config:
    """Validate an already-parsed YAML tree (tests build configs from dicts)."""
    problems: list[Problem] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([Problem("", "the configuration must be a mapping of sections")])
    from bot.configfile import (
        ambiguity_problems,
        interpolate,
        register_raw_secrets,
        register_secrets,
    )

    expanded = interpolate(raw, (), problems, source_dir)
    register_raw_secrets(expanded)  # before any message could show one
    if any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    warnings, problems = problems, []  # short secrets: check-config prints them
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = f"unknown key '{loc[-1]}'"
            problems.append(Problem(format_path(loc), message,
                                    _hint_for(error, _model_at(loc, Config))))
        raise ConfigError(problems + _core_typos(expanded)) from None
    config.source_dir = source_dir
    config.load_warnings = warnings
    register_secrets(config)
    problems = ambiguity_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    file = resolve_config_path(path)
    try:
        # UTF-8 whatever the locale: YAML is UTF-8, and a C locale would refuse any accent.
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read config file {file}: {exc.strerror}",
                                   "pass --config PATH or set SHIFTBOT_CONFIG")]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError([Problem("", f"config file {file} is not UTF-8 text (byte "
                                   f"{exc.object[exc.start]:#04x} at line {line})",
                                   "save it as UTF-8")]) from None
    from bot.configfile import read_yaml

    # Duplicate keys, an empty file and broken YAML are errors (bot/configfile.py).
    return parse_config(read_yaml(text, str(file)), file.resolve().parent)

