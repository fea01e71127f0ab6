"""The ``restart:`` section: named targets and how each one is restarted (docs/restart.md).

Four kinds, chosen by ``type``: ``command`` (an argv, no shell), ``http`` (one request, e.g. a
Nomad allocation restart), ``gitlab_pipeline`` (trigger a deployment pipeline and follow it),
``condor_resubmit`` (the condor handler's resubmit of a configured submit description).
Templates are checked here: every ``{slot}`` names a declared parameter, every parameter is used,
the program (``argv[0]``) and a URL's scheme and host hold no slot.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from bot.commands import PERMISSION_VALUE
from bot.configbase import Strict
from bot.restart import params

# Words after `restart` that are subcommands, so never target names.
RESERVED = frozenset({"list"})
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ParamSpec(Strict):
    """A value people may give as ``NAME=VALUE``: from a list, or matching a regex."""

    help: str = ""
    choices: list[str] | None = None
    pattern: str | None = None  # full match; \w, \d, [a-z] mean ASCII only
    default: str | None = None  # used when the parameter is not given; else it is required
    allow_leading_dash: bool = False
    max_length: int = Field(100, ge=1, le=500)

    @model_validator(mode="after")
    def _one_rule(self) -> ParamSpec:
        if (self.choices is None) == (self.pattern is None):
            raise ValueError("give exactly one of 'choices' (a list) and 'pattern' (a regex)")
        if self.pattern is not None:
            try:
                re.compile(self.pattern, re.ASCII)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a regex: {exc}") from None
        for value in [*(self.choices or []), *([self.default] if self.default else [])]:
            problem = params.check_value("value", self, value)
            if problem is not None:
                raise ValueError(problem.replace("value: ", "", 1))
        return self


class TargetBase(Strict):
    description: str = ""
    cooldown_seconds: float | None = Field(None, ge=0, le=7 * 86400)  # default: restart.*
    channel: str | None = None  # channel alias for notices; default: restart.channel
    params: dict[str, ParamSpec] = {}

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for name in value:
            if not params.PARAM_NAME.fullmatch(name):
                raise ValueError(f"parameter name {name!r}: lower-case letters, digits and _, "
                                 "starting with a letter")
        return value

    def templates(self) -> list[tuple[str, str]]:
        """(where, template) of every string that may hold slots."""
        return []

    @model_validator(mode="after")
    def _slots_declared(self) -> TargetBase:
        used: set[str] = set()
        for where, template in self.templates():
            try:
                names = params.slots(template)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            unknown = [n for n in names if n not in self.params]
            if unknown:
                raise ValueError(f"{where}: slot {{{unknown[0]}}} is not a declared parameter "
                                 f"(params: {', '.join(self.params) or 'none'})")
            used.update(names)
        unused = [n for n in self.params if n not in used]
        if unused:
            raise ValueError(f"parameter {unused[0]!r} is declared but no template uses it")
        return self


class CommandTarget(TargetBase):
    type: Literal["command"]
    argv: list[str] = Field(min_length=1)  # one element per argument; never a shell line
    # Added to the child's minimal environment. Plain values: a secret comes from ${VAR} or a
    # *_file, which the config loader registers with the masker (previews show it as ***).
    environment: dict[str, str] = {}
    cwd: str | None = None  # relative paths resolve against the config file's directory
    timeout_seconds: float = Field(60, gt=0, le=600)
    ok_exit_codes: list[int] = [0]
    output_lines: int = Field(20, ge=0, le=200)  # the tail of the output shown

    def templates(self) -> list[tuple[str, str]]:
        return [(f"argv[{i}]", arg) for i, arg in enumerate(self.argv)]

    @model_validator(mode="after")
    def _program(self) -> CommandTarget:
        program = self.argv[0]
        if "{" in program.replace("{{", ""):
            raise ValueError("argv[0] (the program) may not hold a {slot}")
        if any(c.isspace() for c in program):
            raise ValueError(f"argv[0] {program!r} holds a space: argv is a list, one "
                             "element per argument (no shell)")
        for name in self.environment:
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"environment: {name!r} is not a variable name")
        return self


class HttpTarget(TargetBase):
    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str  # slots allowed in the path and query (percent-encoded), not in scheme or host
    headers: dict[str, SecretStr] = {}  # secrets: masked in previews and logs
    body: Any = None  # JSON sent as the body; slots in its strings
    expect_status: list[int] = [200, 201, 202, 204]
    timeout_seconds: float = Field(30, gt=0, le=120)
    verify_tls: bool = True
    ca_file: str | None = None

    def templates(self) -> list[tuple[str, str]]:
        found = [("url", self.url)]
        _strings("body", self.body, found)
        return found

    @model_validator(mode="after")
    def _fixed_host(self) -> HttpTarget:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url {self.url!r}: expected http(s)://host/path")
        if "{" in parts.netloc:
            raise ValueError("url: the host may not hold a {slot} (only the path and query)")
        return self


class GitLabPipelineTarget(TargetBase):
    type: Literal["gitlab_pipeline"]
    project: str | None = None  # group/name or id; default: gitlab.project
    ref: str  # branch or tag
    trigger_token: SecretStr | None = None  # else gitlab.token starts it (POST /pipeline)
    variables: dict[str, str] = {}  # slots allowed in the values
    timeout_seconds: float = Field(3600, gt=0, le=86400)  # how long it is followed

    def templates(self) -> list[tuple[str, str]]:
        return [(f"variables.{k}", v) for k, v in self.variables.items()]

    @field_validator("variables")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a CI/CD variable name")
        return value


class CondorResubmitTarget(TargetBase):
    type: Literal["condor_resubmit"]
    submit: str  # a submit description of the pool (condor.pools.P.submit)
    pool: str | None = None  # default: condor.default_pool


Target = Annotated[CommandTarget | HttpTarget | GitLabPipelineTarget | CondorResubmitTarget,
                   Field(discriminator="type")]


class RestartConfig(Strict):
    cooldown_seconds: float = Field(300, ge=0, le=7 * 86400)  # between two restarts of one
    channel: str | None = None  # default channel alias of restart notices
    poll_seconds: float = Field(10, gt=0, le=600)  # first wait between pipeline polls
    poll_max_seconds: float = Field(60, gt=0, le=600)  # the longest wait (backoff cap)
    targets: dict[str, Target] = {}

    @field_validator("targets")
    @classmethod
    def _target_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not PERMISSION_VALUE.fullmatch(name):
                raise ValueError(f"target name {name!r}: letters, digits, _ and -, starting "
                                 "with a letter or digit, at most 64 (it completes the "
                                 "permission restart.NAME)")
            if name.lower() in RESERVED:
                raise ValueError(f"target name {name!r} is a subcommand of restart")
        return value

    def cooldown(self, target: TargetBase) -> float:
        return self.cooldown_seconds if target.cooldown_seconds is None \
            else target.cooldown_seconds

    def channel_of(self, target: TargetBase) -> str | None:
        return target.channel or self.channel


def _strings(where: str, value: Any, found: list[tuple[str, str]]) -> None:
    if isinstance(value, str):
        found.append((where, value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _strings(f"{where}.{key}", item, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _strings(f"{where}[{index}]", item, found)
