"""Per-component health, as ``/healthz`` reports it (and ``/readyz``, bot/readiness.py, reads).

``/healthz`` answers "does the process live": its status is decided by the *liveness*
components only (an adapter's socket past its watchdog's grace, a probe that fails). The
database and the outbox are listed in its body too, but they are *readiness* matters
(:data:`READINESS_ONLY`): a database outage or a stuck outbox is not cured by restarting the
process, and restarting every replica while PostgreSQL restarts would only add to the outage.
"""

from __future__ import annotations

import asyncio
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

# Components that /healthz shows but that do not decide its status (see the module docstring).
PROBE_DEADLINE = 1.5  # seconds per probe; /healthz gives all of them 2 s (bot.http)
READINESS_ONLY = frozenset({"database", "notices"})


def alive(states: dict[str, ComponentState]) -> bool:
    """Whether the process lives: every component that is not :data:`READINESS_ONLY` is ok."""
    return all(state.ok for name, state in states.items() if name not in READINESS_ONLY)


class Health:
    def __init__(self, probe_deadline: float = PROBE_DEADLINE) -> None:
        self.probe_deadline = probe_deadline
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

    def has(self, component: str) -> bool:
        """Whether anything reports on ``component`` (an adapter registers once started)."""
        return component in self._states or component in self._parts \
            or component in self._probes

    async def _probed(self, probe: Probe) -> ComponentState:
        try:
            return await asyncio.wait_for(probe(), self.probe_deadline)
        except TimeoutError:
            return ComponentState(False, f"no answer within {self.probe_deadline:g} s")
        except Exception as exc:  # a failing probe is an unhealthy component
            return ComponentState(False, f"probe failed: {exc}")

    async def state(self, component: str) -> ComponentState | None:
        """One component's state (its probe awaited), None when nothing reports on it."""
        probe = self._probes.get(component)
        if probe is not None:
            state = await probe()
        elif component in self._parts:
            state = self._joined(self._parts[component])
        else:
            state = self._states.get(component)
        if state is None or not masker.active:
            return state
        return ComponentState(state.ok, masker.mask(state.detail), state.since)

    @staticmethod
    def _joined(parts: dict[str, ComponentState]) -> ComponentState:
        ordered = sorted(parts.items())
        return ComponentState(all(state.ok for _, state in ordered),
                              "; ".join(f"{part}: {state.detail}" for part, state in ordered),
                              max(state.since for _, state in ordered))

    async def snapshot(self) -> dict[str, ComponentState]:
        states = dict(self._states)
        for name, parts in self._parts.items():
            states[name] = self._joined(parts)
        # Concurrently, each with its deadline: a database that hangs must not take /healthz's
        # whole time (its status does not depend on it) nor delay the adapters' probes.
        names = list(self._probes)
        results = await asyncio.gather(*(self._probed(self._probes[n]) for n in names))
        states.update(zip(names, results, strict=True))
        if masker.active:  # /healthz is unauthenticated: no ${VAR} alias, no error's quote
            return {name: ComponentState(state.ok, masker.mask(state.detail), state.since)
                    for name, state in states.items()}  # copies: the stored states stay as set
        return states
