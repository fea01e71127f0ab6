"""``shiftbot doctor --config PATH``: the real connections an operator gets wrong at install time.

Each check prints one line: a verdict, what it checked, and (when it failed) a hint::

    OK    database                    postgresql, schema 6 (current), 9 feature schema(s) current
    FAIL  slack                       auth.test: invalid_auth -> hint: slack.bot_token must ...
    SKIP  mattermost                  not configured
    RAN   status gwcelery             CRITICAL: GWCelery workers are not responding (0.1 s)

(verdict, name and detail are separated by at least two spaces, for scripts.)

``SKIP`` is what the config does not use (not a problem); ``RAN`` is a status check that ran:
its level is the pipeline's state, not the installation's (a CRITICAL check still works). Checks
run concurrently, each group under its deadline. Exit status 1 when anything FAILed, else 0.

Nothing is changed: the database is read (never migrated), no message is posted, no pipeline
started; status checks run as ``status NAME`` would, without storing their results.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from bot.secrets import masker

if TYPE_CHECKING:
    from bot.config import Config
    from bot.doctor_local import Condor
    from bot.readiness import Versions
    from bot.registry import Registry

OK, FAIL, SKIP, RAN = "OK", "FAIL", "SKIP", "RAN"
DATABASE_DEADLINE = 10.0  # seconds; PostgreSQL's connect_timeout is set a little below it


@dataclass(frozen=True, slots=True)
class Outcome:
    """One line of the report."""

    verdict: str  # OK | FAIL | SKIP | RAN
    name: str
    detail: str
    hint: str = ""

    def line(self) -> str:
        text = f"{self.verdict:<5} {self.name:<26}  {_flat(self.detail)}"
        if self.hint:
            text += f" -> hint: {_flat(self.hint)}"
        return masker.mask(text)  # no secret in any spelling (a URL's password, a token)


def _flat(text: str) -> str:
    """One line: an error's continuation lines joined."""
    return " ".join(text.split())


class Failed(Exception):
    """A check's failure with what to do about it (raised inside a check)."""

    def __init__(self, detail: str, hint: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Check:
    """A group of lines (``slack`` gives its token's and its aliases'), under one deadline.
    ``run`` returns the outcomes; raising :class:`Failed` (or anything) FAILs ``name``."""

    name: str
    run: Callable[[], Awaitable[list[Outcome]]]
    deadline: float
    hint: str = ""  # when it does not finish in time


async def run_checks(checks: Sequence[Check]) -> list[Outcome]:
    """Every check concurrently; outcomes in the order of ``checks``."""
    groups = await asyncio.gather(*(_run_one(check) for check in checks))
    return [outcome for group in groups for outcome in group]


async def _run_one(check: Check) -> list[Outcome]:
    try:
        return await asyncio.wait_for(check.run(), check.deadline)
    except TimeoutError:
        return [Outcome(FAIL, check.name, f"no answer within {check.deadline:g} s",
                        check.hint)]
    except Failed as exc:
        return [Outcome(FAIL, check.name, exc.detail, exc.hint)]
    except Exception as exc:  # a check's bug is a FAIL line, not a traceback
        return [Outcome(FAIL, check.name, f"{type(exc).__name__}: {first_line(exc)}")]


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    text = str(orig if orig is not None else exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300] or type(exc).__name__


def skipped(name: str, why: str = "not configured") -> Check:
    async def run() -> list[Outcome]:
        return [Outcome(SKIP, name, why)]

    return Check(name, run, 1.0)


# ---------------------------------------------------------------------------- the database


def database_check(config: Config, registry: Registry) -> Check:
    """Connect, read the schema versions (core and features), compare with the code's."""

    async def run() -> list[Outcome]:
        return [await asyncio.to_thread(_database_sync, config, registry)]

    return Check("database", run, DATABASE_DEADLINE,
                 hint="bot.database: the server does not answer (host, port, firewall?)")


def _database_sync(config: Config, registry: Registry) -> Outcome:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from bot import db
    from bot.readiness import read_versions

    url = make_url(config.bot.database)
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(int(DATABASE_DEADLINE) - 2)})
    try:
        database = db.Database(url.render_as_string(hide_password=False), config.source_dir)
    except db.DatabaseError as exc:
        return Outcome(FAIL, "database", str(exc), "bot.database: check the URL's spelling")
    try:
        found = database.call(read_versions)
    except SQLAlchemyError as exc:
        return Outcome(FAIL, "database", f"cannot connect: {first_line(exc)}",
                       "bot.database: host, port, user, password and database name; "
                       "is the server up and reachable from here?")
    finally:
        database.engine.dispose()
    return _schema_outcome(database.dialect, found, db.LATEST,
                           {m.feature: m.latest for m in registry.migrations})


def _schema_outcome(dialect: str, found: Versions, core_known: int,
                    features_known: dict[str, int]) -> Outcome:
    newer = [f"core {found.core} > {core_known}"] if found.core > core_known else []
    newer += [f"{name} {found.features[name]} > {known}"
              for name, known in sorted(features_known.items())
              if found.features.get(name, 0) > known]
    if newer:
        return Outcome(FAIL, "database", f"{dialect}: the schema is newer than this "
                       f"shiftbot ({', '.join(newer)})",
                       "upgrade this shiftbot to the version the other replicas run")
    behind = [f"core {found.core} -> {core_known}"] if found.core < core_known else []
    behind += [f"{name} {found.features.get(name, 0)} -> {known}"
               for name, known in sorted(features_known.items())
               if found.features.get(name, 0) < known]
    if behind:
        return Outcome(OK, "database", f"{dialect}, reachable; `shiftbot run` will migrate "
                       f"it ({', '.join(behind)})")
    return Outcome(OK, "database", f"{dialect}, schema {found.core} (current), "
                   f"{len(features_known)} feature schema(s) current")


# ---------------------------------------------------------------------------- the command


def all_checks(config: Config, registry: Registry, condor: Condor) -> list[Check]:
    from bot.doctor_local import condor_checks, status_checks
    from bot.doctor_remote import gitlab_checks, mattermost_check, sentry_check, slack_check

    return [database_check(config, registry), slack_check(config), mattermost_check(config),
            sentry_check(config), *gitlab_checks(config), *condor_checks(config, condor),
            *status_checks(config, condor)]


async def diagnose(config: Config, registry: Registry, out: TextIO = sys.stdout) -> int:
    """Run every check, print one line each; 1 when anything failed, else 0."""
    from bot import httpclient
    from bot.doctor_local import Condor

    started = time.monotonic()
    condor = Condor(config)
    try:
        outcomes = await run_checks(all_checks(config, registry, condor))
    finally:
        await condor.close()
        await httpclient.close_all()
    for outcome in outcomes:
        print(outcome.line(), file=out)
    failed = sum(1 for o in outcomes if o.verdict == FAIL)
    counts = ", ".join(f"{sum(1 for o in outcomes if o.verdict == v)} {v}"
                       for v in (OK, FAIL, SKIP, RAN))
    print(f"{counts} in {time.monotonic() - started:.1f} s"
          + (": something is broken (the FAIL lines)" if failed else ""), file=out)
    return 1 if failed else 0


def doctor(path: str | None, out: TextIO = sys.stdout) -> int:
    """``shiftbot doctor``: load the config (and the feature sections), then diagnose."""
    from bot.config import ConfigError, load_config
    from bot.features import bind_sections
    from bot.registry import Registry

    try:
        config = load_config(path)
        registry = Registry().load(config.bot.handlers)
    except ConfigError as exc:
        for problem in exc.problems:
            print(masker.mask(f"FAIL  config  {problem}"), file=out)
        return 1
    problems = bind_sections(config, registry.sections)
    for problem in problems:
        print(masker.mask(f"FAIL  config  {problem} -> hint: shiftbot check-config"), file=out)
    if problems:
        return 1
    return asyncio.run(diagnose(config, registry, out))
