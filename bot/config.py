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
import re
from dataclasses import dataclass
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

from bot.condor.models import DEFAULT_GETENV_ALLOW
from bot.secrets import masker

# What a pool's `environment:` may set besides _CONDOR_* knobs: HTCondor's configuration file
# and credential paths (the worker never takes these from the bot's own environment).
WORKER_VARIABLES = frozenset({"CONDOR_CONFIG", "X509_USER_PROXY", "X509_CERT_DIR",
                              "BEARER_TOKEN_FILE"})

DEFAULT_CONFIG_PATH = Path("config/shiftbot.yaml")
# (dialect, driver) pairs bot/db.py supports; an empty driver is the default (psycopg for
# PostgreSQL, see bot/db.py).
DATABASES = frozenset({("sqlite", ""), ("sqlite", "pysqlite"), ("postgresql", ""),
                       ("postgresql", "psycopg"), ("postgresql", "psycopg2")})
ENV_CONFIG = "SHIFTBOT_CONFIG"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


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


# ----------------------------------------------------------------------------------- HTCondor


class SubmitDescription(Strict):
    """A submit description shiftbot may submit: from a file or inline, never from chat."""

    file: str | None = None  # path; relative paths resolve against the config file's directory
    text: str | None = Field(None, validate_default=True)  # inline description
    attributes: dict[str, str] = {}  # extra submit commands: accounting_group, ...
    batch_name: str | None = None  # the batch `resubmit` removes and waits for

    @field_validator("text")
    @classmethod
    def _one_source(cls, value: str | None, info: Any) -> str | None:
        if (value is None) == (info.data.get("file") is None):
            raise ValueError("set exactly one of 'file' and 'text'")
        return value

    @field_validator("attributes")
    @classmethod
    def _submit_commands(cls, value: dict[str, str]) -> dict[str, str]:
        from bot.condor.errors import CondorError
        from bot.condor.submitdesc import check_attributes

        try:
            check_attributes(value, "attributes")
        except CondorError as exc:
            raise ValueError(str(exc)) from None
        return value


class CondorPoolConfig(Strict):
    backend: Literal["htcondor", "demo"] = "htcondor"
    collector: str | None = None  # host[:port]; also used by `condor analyze` for slots
    schedd: str | None = None  # schedd name, located through the collector
    # <host:port?...> or host:port: talk to the schedd directly, no collector lookup
    schedd_address: str | None = Field(None, validate_default=True)
    scope: str | None = None  # constraint applied to every query and action
    timeout_seconds: float = Field(10, gt=0, le=300)  # deadline of each call to the schedd
    submit: dict[str, SubmitDescription] = {}
    environment: dict[str, str] = {}  # _CONDOR_* knobs for the worker (security, tokens)
    # Variables `getenv` in a submit description may copy into job ads (names, no globs):
    # getenv = true is submitted as this list (docs/condor.md).
    getenv_allow: list[str] = list(DEFAULT_GETENV_ALLOW)
    demo_jobs: int = Field(300, ge=0, le=1_000_000)  # demo backend: queue size
    demo_seed: int = 1
    demo_remove_delay_seconds: float = Field(2.0, ge=0)  # demo: how long removed jobs linger

    @field_validator("schedd_address")
    @classmethod
    def _reachable(cls, value: str | None, info: Any) -> str | None:
        if value is not None and not re.fullmatch(r"<[^<>\s]+>|[A-Za-z0-9_.:\[\]-]+:\d{1,5}",
                                                  value.strip()):
            raise ValueError("expected <host:port?...> or host:port")
        data = info.data
        if data.get("backend") == "htcondor" and value is None and data.get("collector") \
                and not data.get("schedd"):
            raise ValueError("with a collector, set 'schedd' (the schedd name to locate) or "
                             "'schedd_address'")
        return value

    @field_validator("scope")
    @classmethod
    def _valid_scope(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from bot.condor.constraints import validate
        from bot.condor.errors import CondorError

        try:
            validate(value, what="scope")
        except CondorError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("environment")
    @classmethod
    def _condor_knobs(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not (re.fullmatch(r"_CONDOR_[A-Za-z0-9_.]+", key) or key in WORKER_VARIABLES):
                raise ValueError(f"{key}: only _CONDOR_* variables, "
                                 + ", ".join(sorted(WORKER_VARIABLES)))
        return value

    @field_validator("getenv_allow")
    @classmethod
    def _variable_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r}: list variable names (no globs, no '!')")
        return value


class CondorConfig(Strict):
    default_pool: str | None = None  # default: the only pool, when there is one
    pools: dict[str, CondorPoolConfig] = {}
    resubmit_wait_seconds: float = Field(120, gt=0, le=600)  # how long resubmit waits for rm
    resubmit_poll_seconds: float = Field(1.0, gt=0, le=30)


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


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str
    hint: str = ""
    # A warning is printed by check-config but does not fail it (nor stop the console).
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        text = f"{text} ({self.hint})" if self.hint else text
        # Masked here, so no way of printing a problem can show a secret.
        return masker.mask(f"warning: {text}" if self.severity == "warning" else text)


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(masker.mask(str(p)) for p in problems))


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    return DEFAULT_CONFIG_PATH


def format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _hint_for(error: dict[str, Any], model: type[BaseModel] | None) -> str:
    if error["type"] == "extra_forbidden" and model is not None:
        name = str(error["loc"][-1])
        close = difflib.get_close_matches(name, list(model.model_fields), n=1)
        if close:
            return f"did you mean '{close[0]}'?"
        return "allowed: " + ", ".join(f for f in model.model_fields if f != "source_dir")
    return ""


def hint_for(error: dict[str, Any], root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The hint for a validation error at ``loc`` inside ``root`` (feature sections too)."""
    return _hint_for(error, _model_at(loc, root))


def _model_at(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> type[BaseModel] | None:
    """The model class that owns the last key of ``loc`` (for 'did you mean' hints)."""
    model: Any = root or Config
    for part in loc[:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return None
            model = _unwrap(field.annotation)
        elif isinstance(part, (int, str)) and model is not None:
            continue
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Find the model inside ``X | None``, ``dict[str, X]`` and ``list[X]``."""
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in args or ():
        found = _unwrap(arg)
        if found is not None:
            return found
    return None


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
            problems.append(Problem(format_path(loc), message, _hint_for(error, _model_at(loc))))
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


def secret_value(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
