"""The one place where command declarations become commands.

Handler modules are imported (every ``handlers.*`` module not starting with ``_``, or the list in
``bot.handlers``); every function carrying ``@command`` metadata is registered. Modules may also
define ``async def startup(bot)`` / ``async def shutdown(bot)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import ModuleType

from bot.commands import CommandSpec, Family, specs_of


@dataclass(slots=True)
class FamilyEntry:
    name: str
    summary: str
    order: int = 100
    commands: dict[str, CommandSpec] = field(default_factory=dict)


class RegistryError(Exception):
    pass


class Registry:
    def __init__(self) -> None:
        self.families: dict[str, FamilyEntry] = {}
        self.modules: list[ModuleType] = []

    def add(self, spec: CommandSpec) -> None:
        family = self.families.setdefault(spec.family, FamilyEntry(spec.family, spec.summary))
        if spec.name in family.commands:
            raise RegistryError(f"command '{spec.words}' is declared twice")
        if ("" in family.commands) != (spec.name == "") and family.commands:
            raise RegistryError(f"'{spec.family}' mixes a bare command with subcommands")
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
        if isinstance(declared, Family):
            entry = self.families.setdefault(declared.name, FamilyEntry(declared.name, ""))
            entry.summary, entry.order = declared.summary, declared.order
        self.modules.append(module)

    def load(self, module_names: list[str] | None = None) -> Registry:
        if module_names is None:
            import handlers

            module_names = sorted(
                f"handlers.{m.name}"
                for m in pkgutil.iter_modules(handlers.__path__)
                if not m.name.startswith("_")
            )
        for name in module_names:
            self.add_module(importlib.import_module(name))
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
        return {spec.permission for spec in self.specs()}

    def command_words(self) -> list[str]:
        return sorted({spec.family for spec in self.specs()} | {s.words for s in self.specs()})

    def matching_permissions(self, glob: str) -> set[str]:
        return {p for p in self.permissions() if fnmatchcase(p, glob)}
