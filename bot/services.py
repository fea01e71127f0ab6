"""``bot.services``: the clients handler modules share, looked up by their type.

A feature's ``startup(bot)`` adds its client (``bot.services.add(CondorService(...))``) and its
handlers get it back typed (``ctx.bot.services.get(CondorService)``): no string keys to
misspell, no ``Any`` to cast, and a type checker sees what comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class Services:
    def __init__(self) -> None:
        self._items: dict[type[Any], Any] = {}

    def add(self, service: T, kind: type[T] | None = None) -> T:
        """Keep ``service`` under its type (or ``kind``, e.g. a base class); replaces the one
        kept before."""
        self._items[kind or type(service)] = service
        return service

    def get(self, kind: type[T]) -> T | None:
        return cast(T | None, self._items.get(kind))

    def require(self, kind: type[T]) -> T:
        """The service, or LookupError naming the type (its module's startup did not run)."""
        service = self._items.get(kind)
        if service is None:
            raise LookupError(f"no {kind.__name__} service (is its handler module loaded?)")
        return cast(T, service)

    def ensure(self, kind: type[T], factory: Callable[[], T] | None = None) -> T:
        """The service, made with ``factory`` (default: ``kind()``) the first time."""
        service = self._items.get(kind)
        if service is None:
            service = self._items[kind] = (factory or kind)()
        return cast(T, service)

    def pop(self, kind: type[T]) -> T | None:
        return cast(T | None, self._items.pop(kind, None))

    def __contains__(self, kind: object) -> bool:
        return kind in self._items

    def __len__(self) -> int:
        return len(self._items)
