"""``check-config`` for the ``condor`` section: what would otherwise fail at submit time.

Each configured submit description is read (its ``file``, relative to the config file, or its
``text``) and checked as ``condor submit`` would: it must be readable, split into ``queue``
statements and set ``initialdir``. These are errors, reported with their key path
(``condor.pools.gwcelery.submit.gwcelery.file``) and never as a traceback.

``getenv`` asking for the whole environment (``true``, or only ``!exclusions``) and ``getenv``
names outside the pool's ``getenv_allow`` are warnings: shiftbot rewrites them at submit time
(:func:`bot.condor.submitdesc.restrict_description`), but the operator should know that the
jobs will not get what the description says. Runs in the bot's process: no bindings needed.
"""

from __future__ import annotations

from pathlib import Path

from bot.condor import submitdesc
from bot.condor.errors import CondorError
from bot.config import CondorPoolConfig, Config, Problem, SubmitDescription


def check_pools(config: Config) -> list[Problem]:
    """Problems of every pool's submit descriptions (errors and warnings)."""
    problems: list[Problem] = []
    for pool_name, pool in config.condor.pools.items():
        for name, description in pool.submit.items():
            problems += _check_description(config.source_dir, pool_name, pool, name,
                                           description)
    return problems


def _read(base: Path, description: SubmitDescription, path: str) -> tuple[str | None,
                                                                         Problem | None]:
    if description.text is not None:
        return description.text, None
    assert description.file is not None  # the schema requires exactly one of file/text
    file = Path(description.file)
    if not file.is_absolute():
        file = base / file
    hint = "condor submit and resubmit read it each time; a relative path is from the config file"
    try:
        return file.read_text(), None
    except OSError as exc:
        return None, Problem(f"{path}.file", f"cannot read {file}: {exc.strerror}", hint)
    except UnicodeDecodeError:
        return None, Problem(f"{path}.file", f"{file} is not UTF-8 text", hint)


def _check_description(base: Path, pool_name: str, pool: CondorPoolConfig, name: str,
                       description: SubmitDescription) -> list[Problem]:
    path = f"condor.pools.{pool_name}.submit.{name}"
    text, unreadable = _read(base, description, path)
    if text is None:
        return [unreadable] if unreadable is not None else []
    source = f"{path}.text" if description.text is not None else f"{path}.file"
    problems: list[Problem] = []
    try:
        parts = submitdesc.split(text, f"submit description {name}")
        submitdesc.check_initialdir(parts[-1], description.attributes,
                                    f"submit description {name}")
    except CondorError as exc:
        problems.append(Problem(source, str(exc)))
    allow_key = f"condor.pools.{pool_name}.getenv_allow"
    for where, value in submitdesc.getenv_values(text, description.attributes):
        at = source if where == "text" else f"{path}.{where}"
        rewrite = submitdesc.restrict_getenv(value, pool.getenv_allow)
        if rewrite.everything:
            problems.append(Problem(
                at, f"getenv = {value.strip()} would copy shiftbot's whole environment into "
                f"the job ads, readable by every user of the pool; it is submitted as "
                f"getenv = {rewrite.value}",
                f"list what the jobs need in {allow_key}, or set them with environment = ...",
                severity="warning"))
        elif rewrite.dropped:
            problems.append(Problem(
                at, f"getenv = {value.strip()}: not in {allow_key}, dropped: "
                f"{', '.join(rewrite.dropped)}; submitted as getenv = {rewrite.value}",
                "getenv_allow takes exact names; globs and macros are never passed on",
                severity="warning"))
    return problems
