"""A target and its parameter values -> exactly what would run, and how to show it.

The same :class:`Prepared` object feeds the preview (the plan step: confirmation and approval
cards, ``--dry-run``) and the run, so what people confirm is what runs. Secrets (header values,
trigger tokens, a command's extra environment) are shown as ``***``; the masker also runs over
every line, so a ``${VAR}`` that ended up in an argv is hidden too.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bot.commands import CommandError
from bot.restart import params
from bot.restart.config import (
    CommandTarget,
    CondorResubmitTarget,
    GitLabPipelineTarget,
    HttpTarget,
    TargetBase,
)
from bot.restart.runners import minimal_environment
from bot.secrets import MASK, masker


@dataclass(frozen=True, slots=True)
class CommandAction:
    argv: list[str]
    environment: dict[str, str]  # the target's own variables (secrets), on top of the minimal
    cwd: str | None
    timeout: float
    ok_exit_codes: list[int]
    output_lines: int


@dataclass(frozen=True, slots=True)
class HttpAction:
    method: str
    url: str
    headers: dict[str, str]  # secrets
    body: Any
    expect_status: list[int]
    timeout: float
    verify: bool | str


@dataclass(frozen=True, slots=True)
class PipelineAction:
    project: str
    ref: str
    variables: dict[str, str]
    trigger_token: str | None  # None: gitlab.token starts it (POST /projects/:id/pipeline)
    timeout: float


@dataclass(frozen=True, slots=True)
class CondorAction:
    pool: str | None
    submit: str


Action = CommandAction | HttpAction | PipelineAction | CondorAction


@dataclass(frozen=True, slots=True)
class Prepared:
    target: str
    kind: str
    action: Action
    values: dict[str, str]
    summary: str  # a verb phrase: "runs [...] (at most 60 s)"
    details: tuple[str, ...] = ()
    cooldown: float = 0.0
    channel: str | None = None

    @property
    def fingerprint(self) -> str:
        """What runs, secrets masked: the plan's target (a changed config asks again) and the
        run's ``action`` column."""
        return masker.mask(f"{self.target}: {self.summary}")


Described = tuple[Action, str, list[str]]


def prepare(name: str, target: TargetBase, values: dict[str, str], *, source_dir: Path,
            gitlab_project: str | None) -> Described:
    """(action, summary, detail lines) for ``target`` filled with ``values``: the summary is
    a verb phrase ("runs restart.sh --component worker (at most 60 s)"), the details are
    exact (the argv as a JSON list)."""
    if isinstance(target, CommandTarget):
        return _command(target, values, source_dir)
    if isinstance(target, HttpTarget):
        return _http(target, values, source_dir)
    if isinstance(target, GitLabPipelineTarget):
        return _pipeline(name, target, values, gitlab_project)
    if isinstance(target, CondorResubmitTarget):
        action = CondorAction(target.pool, target.submit)
        return action, f"resubmits {target.submit}", []
    raise CommandError(f"restart target {name} has an unknown type")


def resolve_program(program: str, source_dir: Path, path: str | None) -> str | None:
    """``argv[0]`` as a path: relative to the config file when it holds a ``/``, else looked
    up in the child's ``PATH``; None when there is no such executable."""
    if "/" in program:
        candidate = Path(program)
        if not candidate.is_absolute():
            candidate = source_dir / candidate
        return str(candidate) if shutil.which(str(candidate)) else None
    return shutil.which(program, path=path)


def _command(target: CommandTarget, values: dict[str, str],
             source_dir: Path) -> Described:
    extra = dict(target.environment)
    env = minimal_environment(extra)
    program = resolve_program(target.argv[0], source_dir, env.get("PATH"))
    if program is None:
        raise CommandError(f"the program {target.argv[0]} of this target is not an "
                           "executable file (restart config)")
    argv = [program, *(params.fill(arg, values) for arg in target.argv[1:])]
    cwd = None
    if target.cwd:
        cwd = str(Path(target.cwd) if Path(target.cwd).is_absolute() else source_dir / target.cwd)
    action = CommandAction(argv, extra, cwd, target.timeout_seconds, list(target.ok_exit_codes),
                           target.output_lines)
    shown = json.dumps(argv, ensure_ascii=True)
    inherited = sorted(set(env) - set(extra))
    details = [f"argv: {shown} (no shell)",
               f"environment: {', '.join(inherited) or 'empty'}"
               + "".join(f", {k}={masker.mask(extra[k])}" for k in sorted(extra)),
               f"timeout: {target.timeout_seconds:g} s"]
    if cwd:
        details.append(f"working directory: {cwd}")
    short = shlex.join([Path(program).name, *argv[1:]])
    return action, f"runs {short} (at most {target.timeout_seconds:g} s)", details


def _http(target: HttpTarget, values: dict[str, str],
          source_dir: Path) -> Described:
    url = params.fill(target.url, values, encode=lambda v: quote(v, safe=""))
    body = _fill_json(target.body, values)
    verify: bool | str = target.verify_tls
    if target.ca_file:
        ca = Path(target.ca_file)
        verify = str(ca if ca.is_absolute() else source_dir / ca)
    action = HttpAction(target.method, url,
                        {k: v.get_secret_value() for k, v in target.headers.items()},
                        body, list(target.expect_status), target.timeout_seconds, verify)
    expect = ", ".join(map(str, target.expect_status))
    details = [f"request: {target.method} {url}"]
    if target.headers:
        details.append("headers: " + ", ".join(f"{k}: {MASK}" for k in target.headers))
    if body is not None:
        details.append(f"body: {json.dumps(body, ensure_ascii=True, sort_keys=True)}")
    details.append(f"expects HTTP {expect} within {target.timeout_seconds:g} s")
    return action, f"sends {target.method} {url} (expects {expect})", details


def _pipeline(name: str, target: GitLabPipelineTarget, values: dict[str, str],
              default_project: str | None) -> Described:
    project = target.project or default_project
    if not project:
        raise CommandError(f"restart target {name} names no GitLab project (set "
                           "gitlab.project or the target's project)")
    variables = {k: params.fill(v, values) for k, v in target.variables.items()}
    token = target.trigger_token.get_secret_value() if target.trigger_token else None
    action = PipelineAction(project, target.ref, variables, token, target.timeout_seconds)
    shown = ", ".join(f"{k}={v}" for k, v in variables.items()) or "no variables"
    how = (f"POST /projects/{quote(project, safe='')}/trigger/pipeline (trigger token {MASK})"
           if token else f"POST /projects/{quote(project, safe='')}/pipeline (gitlab.token)")
    details = [f"request: {how}", f"ref: {target.ref}", f"variables: {shown}",
               f"followed for at most {target.timeout_seconds:g} s; the outcome goes to the "
               "notice's thread"]
    summary = (f"starts a pipeline of {project} on {target.ref} ({shown}) and follows it")
    return action, summary, details


def _fill_json(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return params.fill(value, values)
    if isinstance(value, dict):
        return {k: _fill_json(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_json(v, values) for v in value]
    return value
