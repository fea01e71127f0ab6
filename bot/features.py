"""Feature declarations besides hooks: a config section and database migrations of its own.

A handler module that is a *feature* (status checks, alerts, meetings) may declare, at module
level::

    CONFIG = ConfigSection("status", StatusConfig)      # the `status:` section of the config
    MIGRATIONS = Migrations("status", [(1, "status checks and their history", _create)])

    def check_config(config: Config) -> list[Problem]:   # cross-checks for check-config
        ...

The core config (``bot/config.py``) knows only its own sections; every other top-level key is
a feature's. Once the handler modules are loaded, :func:`bind_sections` validates each with its
feature's model (problems carry the key path, ``status.checks[2].url``) and refuses a section
no loaded module declares. ``CONFIG.of(bot.config)`` is then the validated, typed model.

Migrations are numbered per feature and recorded in ``feature_schema`` (``bot/db.py``,
``migrate_features``) with the feature's name, so a feature's step 1 never collides with the
core's step 1 nor with another feature's.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from bot.config import Config, Problem, format_path, hint_for

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from bot.db import Database
    from bot.registry import Registry

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
# Declaring a feature loads no SQLAlchemy (handler modules stay cheap to import: console help).
Step = Callable[["Connection"], None]

# Sections later releases fill in. Configs may carry them empty before their feature exists
# (``status: {}``); with content, or any other unknown name, they need a loaded feature.
PLANNED_SECTIONS = frozenset({"status", "restart", "alerts", "gitlab", "sentry", "meetings",
                              "shifts", "digests"})


@dataclass(frozen=True, slots=True)
class ConfigSection(Generic[M]):
    """A feature's top-level config section, validated by ``model``."""

    name: str
    model: type[M]

    def of(self, config: Config) -> M | None:
        """The validated section (its defaults when absent), or None when it is absent and
        its model has required keys."""
        value = config.feature_sections.get(self.name)
        return value if isinstance(value, self.model) else None


@dataclass(frozen=True, slots=True)
class Migrations:
    """A feature's schema steps: ``(version, description, step(conn))``, append only."""

    feature: str
    steps: tuple[tuple[int, str, Step], ...]

    def __init__(self, feature: str, steps: list[tuple[int, str, Step]]) -> None:
        versions = [version for version, _, _ in steps]
        if versions != sorted(set(versions)) or (versions and versions[0] < 1):
            raise ValueError(f"{feature}: migration versions must be 1, 2, ... in order")
        object.__setattr__(self, "feature", feature)
        object.__setattr__(self, "steps", tuple(steps))

    @property
    def latest(self) -> int:
        return self.steps[-1][0] if self.steps else 0


ConfigCheck = Callable[[Config], list[Problem]]


def bind_sections(config: Config, sections: Mapping[str, ConfigSection[Any]]) -> list[Problem]:
    """Validate the feature sections of ``config`` with the declared ``sections``; stores them
    in ``config.feature_sections`` and returns the problems (empty: all good)."""
    from bot.configfile import register_raw_secrets, register_secrets

    problems: list[Problem] = []
    raw_sections = dict(config.model_extra or {})
    bound: dict[str, BaseModel] = {}
    for name, raw in raw_sections.items():
        section = sections.get(name)
        if section is None:
            problems += _undeclared(name, raw, sections)
            continue
        # Secret keys are masked before validation: no problem message can echo one.
        register_raw_secrets({} if raw is None else raw, section.model)
        try:
            bound[name] = section.model.model_validate({} if raw is None else raw)
        except ValidationError as exc:
            problems += _problems(name, section.model, exc)
    for name, section in sections.items():
        if name not in bound and name not in raw_sections:
            # Required keys: the feature is off until configured (of() gives None).
            with contextlib.suppress(ValidationError):
                bound[name] = section.model.model_validate({})
    register_secrets(bound)
    config.feature_sections = bound
    return problems


def run_checks(config: Config, registry: Registry) -> list[Problem]:
    """Every loaded feature's ``check_config(config)``; a failing check is a problem too."""
    problems: list[Problem] = []
    for module_name, check in registry.config_checks:
        try:
            problems += check(config)
        except Exception as exc:  # a bug in a check must not hide the other problems
            problems.append(Problem("", f"{module_name}.check_config failed: "
                                        f"{type(exc).__name__}: {exc}"))
    return problems


def _undeclared(name: str, raw: Any, sections: Mapping[str, ConfigSection[Any]]
                ) -> list[Problem]:
    if name in PLANNED_SECTIONS and raw in (None, {}):
        return []  # a placeholder for a later release: accepted while empty
    known = [f for f in Config.model_fields if f != "source_dir"] + list(sections)
    if name in PLANNED_SECTIONS:
        return [Problem(name, f"no loaded feature module declares the section '{name}'",
                        "leave it empty until its feature is installed, or add its module "
                        "to bot.handlers")]
    close = difflib.get_close_matches(name, known + sorted(PLANNED_SECTIONS), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(known)
    return [Problem(name, f"unknown key '{name}'", hint)]


def _problems(name: str, model: type[BaseModel], exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = (name, *error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'"
        problems.append(Problem(format_path(loc), message, hint_for(error, model, loc[1:])))
    return problems


def migrate_features(database: Database, migrations: Sequence[Migrations]) -> None:
    """Bring every feature's schema to its latest step (after the core's, before anything
    runs); each feature's versions are its own. A database newer than a feature is refused."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from bot import db

    try:
        # Two processes on one fresh SQLite file take turns (PostgreSQL: the advisory lock).
        with db.sqlite_migration_lock(database.engine), database.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # replicas starting together: one migrates
                conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
            for feature in migrations:
                _migrate_one(conn, feature)
    except SQLAlchemyError as exc:
        raise db.DatabaseError(f"bot.database: migrating the features failed: "
                               f"{str(exc).strip().splitlines()[0]}") from None


def _migrate_one(conn: Connection, feature: Migrations) -> None:
    from sqlalchemy import func, select

    from bot import db

    table = db.feature_schema
    found = conn.execute(select(func.max(table.c.version))
                         .where(table.c.feature == feature.feature)).scalar() or 0
    if found > feature.latest:
        raise db.SchemaError(f"the database has schema version {found} of feature "
                             f"'{feature.feature}', newer than this shiftbot's "
                             f"({feature.latest}): upgrade shiftbot")
    for version, description, step in feature.steps:
        if version > found:
            log.info("migrating feature %s to version %d: %s", feature.feature, version,
                     description)
            step(conn)
            conn.execute(table.insert().values(feature=feature.feature, version=version,
                                               description=description,
                                               applied_at=db.utcnow()))
