"""Channel aliases (``ops``) -> channel ids, per platform. Grants match the id, never a name.

A grant limited to ``channels: [ops]`` must apply in the one channel the operator meant, and a
channel *name* does not say which one that is: Mattermost names are unique only within a team
(the bot may sit in an ``ops`` of two teams), Slack channels are renamed, and a request's
``channel_name`` is whatever the request says. So an alias configured by name is resolved to
its channel id by the adapter (Mattermost: in the configured team, at startup; Slack: through
``conversations.list``), and an inbound message gets the alias only when its channel id *is*
that id. An alias that is not (or not yet) resolved grants nothing; it is logged (WARNING, with
its key path) and listed in ``/healthz`` under the ``channels`` component, one part per
platform. That component stays ok: the bot works, fail-closed, for everything else, and a 503
would make an orchestrator restart (or a load balancer drop) a bot whose problem is its config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.health import Health

log = logging.getLogger(__name__)

HEALTH_COMPONENT = "channels"
PENDING = "not resolved yet"


class AliasTable:
    """The aliases of one platform (``slack.channels`` or ``mattermost.channels``)."""

    def __init__(self, platform: str, configured: dict[str, str],
                 is_id: Callable[[str], bool], health: Health | None = None, *,
                 ids_verified: bool = False) -> None:
        self.platform = platform
        self.configured = dict(configured)
        self.health = health
        self.ids: dict[str, str] = {}  # alias -> channel id (what posting uses too)
        self._alias_by_id: dict[str, str] = {}
        self.unresolved: dict[str, str] = {}  # alias -> why it grants nothing
        self.drifted: dict[str, str] = {}  # pinned alias -> how its name moved away
        # Id-shaped values the adapter must verify (and else try as a name): alias -> value.
        self.candidates: dict[str, str] = {}
        # Aliases configured by channel name (alias -> name without '#'/'~'): the adapter
        # resolves these (id-shaped ones too, unless ``ids_verified``: see :data:`candidates`).
        self.names: dict[str, str] = {}
        for alias, value in configured.items():
            if is_id(value) and ids_verified:
                self.bind(alias, value)
            else:
                if is_id(value):
                    self.candidates[alias] = value
                self.names[alias] = value.lstrip("#~").lower()
                self.unresolved[alias] = PENDING
        self._report()

    def alias_for(self, channel_id: str | None) -> str | None:
        """The alias of the channel with this id, or None (only resolved ids match)."""
        return self._alias_by_id.get(channel_id) if channel_id else None

    def bind(self, alias: str, channel_id: str) -> None:
        """``alias`` is the channel with this id, for its grants and posts: the first id
        bound stays (a later, different one is only reported, see :meth:`check_pinned`)."""
        if alias in self.ids:
            self.check_pinned(alias, channel_id)
            return
        other = self._alias_by_id.get(channel_id)
        if other is not None and other != alias:
            # A channel has one alias (Caller.channel_alias): the first one keeps it.
            self.fail(alias, f"channel {channel_id} already is {self.platform}.channels.{other}")
            return
        self.ids[alias] = channel_id
        self._alias_by_id[channel_id] = alias
        if self.unresolved.pop(alias, None) is not None:
            self._report()

    def check_pinned(self, alias: str, channel_id: str | None) -> None:
        """A fresh lookup of a bound alias's name found ``channel_id`` (None: no such channel).
        The alias keeps its first id whatever the name points to now (see the module doc)."""
        pinned = self.ids[alias]
        if channel_id == pinned:
            if self.drifted.pop(alias, None) is not None:
                self._report()
            return
        name = self.names.get(alias, alias)
        why = (f"the name '{name}' now is channel {channel_id}" if channel_id
               else f"no channel is called '{name}' now")
        if self.drifted.get(alias) == why:
            return
        self.drifted[alias] = why
        log.error("%s.channels.%s: %s; the alias stays channel %s (renamed, or a new channel "
                  "took the name?); configure the alias by id to silence this",
                  self.platform, alias, why, pinned)
        self._report()

    def fail(self, alias: str, why: str) -> None:
        """``alias`` has no channel: it grants nothing. Logged once per reason."""
        if alias in self.ids:  # pinned: a failed lookup later does not move its grants
            return
        channel_id = self.ids.pop(alias, None)
        if channel_id is not None:
            self._alias_by_id.pop(channel_id, None)
        if self.unresolved.get(alias) == why:
            return
        self.unresolved[alias] = why
        log.warning("%s.channels.%s: %s; grants limited to channel '%s' match nothing",
                    self.platform, alias, why, alias)
        self._report()

    def _report(self) -> None:
        if self.health is None or not self.configured:
            return
        resolved = len(self.configured) - len(self.unresolved)
        detail = f"{resolved} of {len(self.configured)} aliases resolved"
        if self.unresolved:
            detail += "; granting nothing: " + ", ".join(
                f"{self.platform}.channels.{alias} ({why})"
                for alias, why in sorted(self.unresolved.items()))
        if self.drifted:
            detail += "; kept the first channel: " + ", ".join(
                f"{self.platform}.channels.{alias} ({why})"
                for alias, why in sorted(self.drifted.items()))
        self.health.set_part(HEALTH_COMPONENT, self.platform, True, detail)
