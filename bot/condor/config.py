"""The ``condor:`` section: HTCondor pools, their schedds, scopes, submit descriptions and the
worker's environment (docs/condor.md)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from bot.condor.models import DEFAULT_GETENV_ALLOW
from bot.configbase import Strict

# What a pool's `environment:` may set besides _CONDOR_* knobs: HTCondor's configuration file
# and credential paths (the worker never takes these from the bot's own environment).
WORKER_VARIABLES = frozenset({"CONDOR_CONFIG", "X509_USER_PROXY", "X509_CERT_DIR",
                              "BEARER_TOKEN_FILE"})


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
