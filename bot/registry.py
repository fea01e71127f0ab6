"""The one place where command declarations become commands.

Handler modules are imported (every ``handlers.*`` module not starting with ``_``, or the list in
``bot.handlers``); every function carrying ``@command`` metadata is registered, and so are the
feature hooks (``@every``, ``@route``, ``@on_thread_reply``: bot/hooks.py) and the module-level
feature declarations (``CONFIG``, ``MIGRATIONS``, ``check_config``: bot/features.py). Modules may
also define ``async def startup(bot)`` / ``async def shutdown(bot)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import ModuleType
from typing import Any

from bot.commands import CommandSpec, Family, specs_of
from bot.config import Config, ConfigError, Problem
from bot.features import ConfigCheck, ConfigSection, Migrations
from bot.hooks import JobSpec, RouteSpec, ThreadHook, job_of, routes_of, thread_owner_of


@dataclass(slots=True)
class FamilyEntry:
    name: str
    summary: str
    order: int = 100
    commands: dict[str, CommandSpec] = field(default_factory=dict)


class RegistryError(Exception):
    pass


# Top-level config keys of the core: no feature may declare a section by these names.
CORE_SECTIONS = frozenset(Config.model_fields)


class Registry:
    def __init__(self) -> None:
        self.families: dict[str, FamilyEntry] = {}
        self.modules: list[ModuleType] = []
        self.jobs: dict[str, JobSpec] = {}
        self.routes: list[RouteSpec] = []
        self.thread_hooks: dict[str, ThreadHook] = {}  # owner -> hook
        self.sections: dict[str, ConfigSection[Any]] = {}
        self.migrations: list[Migrations] = []
        self.config_checks: list[tuple[str, ConfigCheck]] = []
        # Roles a module's role provider may grant at check time (``PROVIDES_ROLES``): what
        # help answered before the handlers start must know may change (bot/quickhelp.py).
        self.provided_roles: set[str] = set()

    def add(self, spec: CommandSpec) -> None:
        family = self.families.setdefault(spec.family, FamilyEntry(spec.family, spec.summary))
        if spec.name in family.commands:
            raise RegistryError(f"command '{spec.words}' is declared twice")
        # A family may be a command and have subcommands (``status NAME``, ``status ack NAME``):
        # the parser tries the subcommand names first.
        if spec.destructive and spec.plan is None:
            # People confirm what they are shown: a destructive command must say what it does.
            raise RegistryError(f"destructive command '{spec.words}' declares no plan= step")
        family.commands[spec.name] = spec

    def add_module(self, module: ModuleType) -> None:
        declared = getattr(module, "FAMILY", None)
        for value in vars(module).values():
            if callable(value) and getattr(value, "__module__", None) == module.__name__:
                for spec in specs_of(value):
                    self.add(spec)
                self._add_hooks(value)
        self._add_feature(module)
        if isinstance(declared, Family):
            entry = self.families.setdefault(declared.name, FamilyEntry(declared.name, ""))
            entry.summary, entry.order = declared.summary, declared.order
        self.modules.append(module)

    def _add_hooks(self, func: Any) -> None:
        job = job_of(func)
        if job is not None:
            if job.name in self.jobs:
                raise RegistryError(f"job '{job.name}' is declared twice")
            self.jobs[job.name] = job
        for route in routes_of(func):
            if any((r.method, r.path) == (route.method, route.path) for r in self.routes):
                raise RegistryError(f"route {route.method} {route.path} is declared twice")
            self.routes.append(route)
        owner = thread_owner_of(func)
        if owner is not None:
            if owner in self.thread_hooks:
                raise RegistryError(f"two @on_thread_reply hooks for owner '{owner}'")
            self.thread_hooks[owner] = func

    def _add_feature(self, module: ModuleType) -> None:
        section = getattr(module, "CONFIG", None)
        if isinstance(section, ConfigSection):
            if section.name in self.sections or section.name in CORE_SECTIONS:
                raise RegistryError(f"{module.__name__}: config section '{section.name}' is "
                                    "already taken")
            self.sections[section.name] = section
        migrations = getattr(module, "MIGRATIONS", None)
        if isinstance(migrations, Migrations):
            if any(m.feature == migrations.feature for m in self.migrations):
                raise RegistryError(f"{module.__name__}: migrations of feature "
                                    f"'{migrations.feature}' are declared twice")
            self.migrations.append(migrations)
        self.provided_roles.update(getattr(module, "PROVIDES_ROLES", ()))
        check = getattr(module, "check_config", None)
        if callable(check):
            self.config_checks.append((module.__name__, check))

    def load(self, module_names: list[str] | None = None) -> Registry:
        if module_names is None:
            import handlers

            module_names = sorted(
                f"handlers.{m.name}"
                for m in pkgutil.iter_modules(handlers.__path__)
                if not m.name.startswith("_")
            )
            where = "bot.handlers"  # discovered, not configured: no index to name
        else:
            where = ""
        for index, name in enumerate(module_names):
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                # A misspelt module, or one whose dependency is not installed: a config (or
                # install) problem with its key path, not a traceback at startup.
                path = where or f"bot.handlers[{index}]"
                missing = exc.name or ""
                itself = bool(missing) and (name == missing or name.startswith(f"{missing}."))
                why = (f"no handler module '{name}'" if itself
                       else f"handler module '{name}' cannot be imported: {exc}")
                raise ConfigError([Problem(path, why, "check the module name and that its "
                                                      "package is installed")]) from None
            self.add_module(module)
        return self

    def find(self, family: str, name: str = "") -> CommandSpec | None:
        entry = self.families.get(family)
        return entry.commands.get(name) if entry else None

    def find_words(self, words: str) -> CommandSpec | None:
        """``condor rm``, ``condor.rm`` or ``help`` -> the spec."""
        family, _, name = words.replace(".", " ").strip().partition(" ")
        return self.find(family.lower(), name.strip().lower())

    def specs(self) -> list[CommandSpec]:
        ordered = sorted(self.families.values(), key=lambda f: (f.order, f.name))
        return [spec for family in ordered for spec in family.commands.values()]

    def permissions(self) -> set[str]:
        return {spec.permission_pattern() for spec in self.specs()}

    def command_words(self) -> list[str]:
        return sorted({spec.family for spec in self.specs()} | {s.words for s in self.specs()})

    def matching_permissions(self, glob: str) -> set[str]:
        return {p for p in self.permissions() if fnmatchcase(p, glob)}
