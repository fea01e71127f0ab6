"""Modules loaded at their first use: how a handler module stays cheap to import.

Loading the handler modules must not load what only running a command needs (SQLAlchemy for
a feature's store, Jinja2, HTTP clients): ``shiftbot console -c help`` loads every handler
module to list the commands, and answers before the database is opened (issue #16,
tests/test_import_cost.py). A handler module therefore names its feature's implementation
modules with :func:`lazy_module` instead of importing them::

    store = lazy_module("bot.shifts.store")   # imported when a command first uses it

and uses them as usual (``store.add_override(...)``). Declarations a module needs at import
time (its config model, decorators, constants) are imported normally from light modules.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """A stand-in for the module ``name``; the first attribute read imports it (the import
    system's locks make that safe from several threads) and every read is the module's."""

    __slots__ = ("_lazy_module", "_lazy_name")

    def __init__(self, name: str) -> None:
        self._lazy_name = name
        self._lazy_module: ModuleType | None = None

    def _load(self) -> ModuleType:
        module = self._lazy_module
        if module is None:
            module = importlib.import_module(self._lazy_name)
            object.__setattr__(self, "_lazy_module", module)
        return module

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def __setattr__(self, attribute: str, value: Any) -> None:
        if attribute in LazyModule.__slots__:
            object.__setattr__(self, attribute, value)
        else:  # tests patch a function through the handler's name for the module
            setattr(self._load(), attribute, value)

    def __delattr__(self, attribute: str) -> None:
        delattr(self._load(), attribute)

    def __repr__(self) -> str:
        state = "loaded" if self._lazy_module is not None else "not loaded yet"
        return f"<lazy module {self._lazy_name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """The module ``name``, imported at its first use (typed ``Any``: it stands in for it)."""
    return LazyModule(name)
