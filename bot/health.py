"""Per-component health, as ``/healthz`` reports it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.secrets import masker


@dataclass(slots=True)
class ComponentState:
    ok: bool
    detail: str = ""
    since: float = field(default_factory=time.time)


# A probe is awaited on every /healthz; it returns the component's state.
Probe = Callable[[], Awaitable[ComponentState]]


class Health:
    def __init__(self) -> None:
        self._states: dict[str, ComponentState] = {}
        self._probes: dict[str, Probe] = {}
        self._parts: dict[str, dict[str, ComponentState]] = {}

    def set(self, component: str, ok: bool, detail: str = "") -> None:
        """Record a state pushed by a component (adapters call this on connect/disconnect)."""
        previous = self._states.get(component)
        if previous is not None and previous.ok == ok:
            previous.detail = detail
            return
        self._states[component] = ComponentState(ok, detail)

    def set_part(self, component: str, part: str, ok: bool, detail: str) -> None:
        """One contributor's share of a component several report on (``channels``: one part
        per platform). The component is ok when every part is; its detail joins theirs."""
        parts = self._parts.setdefault(component, {})
        previous = parts.get(part)
        if previous is not None and previous.ok == ok:
            previous.detail = detail
            return
        parts[part] = ComponentState(ok, detail)

    def register(self, component: str, probe: Probe) -> None:
        """A component whose state is computed on demand (the database, a socket's age)."""
        self._probes[component] = probe

    async def snapshot(self) -> dict[str, ComponentState]:
        states = dict(self._states)
        for name, parts in self._parts.items():
            ordered = sorted(parts.items())
            states[name] = ComponentState(
                all(state.ok for _, state in ordered),
                "; ".join(f"{part}: {state.detail}" for part, state in ordered),
                max(state.since for _, state in ordered))
        for name, probe in self._probes.items():
            try:
                states[name] = await probe()
            except Exception as exc:  # a failing probe is an unhealthy component
                states[name] = ComponentState(False, f"probe failed: {exc}")
        if masker.active:  # /healthz is unauthenticated: no ${VAR} alias, no error's quote
            return {name: ComponentState(state.ok, masker.mask(state.detail), state.since)
                    for name, state in states.items()}  # copies: the stored states stay as set
        return states
