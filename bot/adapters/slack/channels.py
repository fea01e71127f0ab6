"""Channel aliases (``ops``, ``alerts``) <-> Slack channel ids.

Grants limited to channels match channel *ids* only (see :mod:`bot.adapters.aliases`): neither
a slash command's ``channel_name`` nor a channel's current name is ever turned into an alias,
so a channel renamed to ``#shifters``, or a ``#shifters`` in another workspace of an Enterprise
Grid org, does not inherit the grants of the channel the alias meant.

* An alias configured by id (``C0123456789``) needs no lookup at all.
* Aliases configured by name are resolved name -> id by paging ``conversations.list`` (1000 a
  page, stopping at the page that has the last of them): when the adapter starts (in the
  background, so a big workspace does not delay it), again after ``ttl`` seconds, and, while
  an alias is unresolved, when a message comes from a channel that is no alias (the bot may
  have been invited since), at most every ``NEGATIVE_TTL`` seconds. A message that arrives
  while such a paging runs waits for it (``LOOKUP_TIMEOUT``).
* A resolved alias is pinned to its first id for the life of the process: the re-resolution
  after ``ttl`` only *reports* (ERROR, ``/healthz``) a name that now belongs to another channel
  or to none, since after a rename anybody may create a new public channel with the old name.
  A restart resolves names again: an alias configured by id cannot be taken over at all.
* Posting to a ``#name`` that is no alias pages the same way once and caches the id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.aliases import PENDING, AliasTable

if TYPE_CHECKING:
    from bot.health import Health

log = logging.getLogger(__name__)

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
NEGATIVE_TTL = 300.0  # an alias name not found is looked for again after this (on demand)
FAILURE_RETRY = 30.0  # a failed paging is tried again after this (on demand)
LOOKUP_TIMEOUT = 2.0  # an inbound command never waits longer than this for a paging
LIST_PAGE = 1000


def is_channel_id(value: str) -> bool:
    return bool(CHANNEL_ID.match(value))


class ChannelDirectory:
    """Maps configured aliases to channel ids and back (``slack.channels``)."""

    def __init__(self, client: AsyncWebClient, aliases: dict[str, str], *, ttl: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic,
                 health: Health | None = None) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self.aliases = dict(aliases)
        self.table = AliasTable("slack", aliases, is_channel_id, health,
                                ids_verified=True)  # ids are upper case, names lower
        self._name_ids: dict[str, tuple[str, float]] = {}  # any name -> (id, expiry)
        self._list_lock = asyncio.Lock()
        self._refresh: asyncio.Future[None] | None = None  # the alias paging under way
        self._attempted_at: float | None = None
        self._resolved_at: float | None = None  # the last alias paging that got an answer
        self._failed = False
        self.lookups = 0  # API calls made (tests, and the docs' claims)

    def start(self) -> None:
        """Resolve the aliases configured by name now, in the background (call in the loop)."""
        if self.table.names:
            self._refresh_soon()

    async def close(self) -> None:
        refresh, self._refresh = self._refresh, None
        if refresh is not None:
            refresh.cancel()
            await asyncio.gather(refresh, return_exceptions=True)

    async def alias_for(self, channel_id: str | None) -> str | None:
        """The alias of the channel a message came from (by its id only), or None."""
        alias = self.table.alias_for(channel_id)
        if not channel_id or not self.table.names:
            return alias
        if self._due():
            self._refresh_soon()  # meanwhile the ids known so far answer
        refresh = self._refresh
        if alias is None and refresh is not None and self.table.unresolved \
                and not channel_id.startswith("D"):  # a DM is never a configured channel
            with contextlib.suppress(TimeoutError):  # the paging under way may find it
                await asyncio.wait_for(asyncio.shield(refresh), LOOKUP_TIMEOUT)
            alias = self.table.alias_for(channel_id)
        return alias

    def _due(self) -> bool:
        if self._refresh is not None:
            return False
        if self._attempted_at is None:
            return True
        now = self.clock()
        if self._failed:
            return now - self._attempted_at >= FAILURE_RETRY
        if self.table.unresolved:
            return now - self._attempted_at >= NEGATIVE_TTL
        return self._resolved_at is not None and now - self._resolved_at >= self.ttl

    def _refresh_soon(self) -> None:
        if self._refresh is not None:
            return
        refresh = asyncio.ensure_future(self._resolve_aliases())
        self._refresh = refresh

        def done(_: asyncio.Future[None]) -> None:
            if self._refresh is refresh:
                self._refresh = None

        refresh.add_done_callback(done)

    async def _resolve_aliases(self) -> None:
        self._attempted_at = self.clock()
        try:
            found = await self._scan(set(self.table.names.values()))
        except Exception as exc:
            self._failed = True
            log.warning("Slack conversations.list failed (%s); retrying in %.0f s when a "
                        "channel alias is needed", exc, FAILURE_RETRY)
            for alias, why in list(self.table.unresolved.items()):
                if why == PENDING:  # resolved ones keep their id: ids do not change
                    self.table.fail(alias, f"conversations.list failed: {exc}")
            return
        self._failed = False
        self._resolved_at = self.clock()
        for alias, name in self.table.names.items():
            if alias in self.table.ids:
                self.table.check_pinned(alias, found.get(name))  # never moves it
            elif name in found:
                self.table.bind(alias, found[name])
            else:
                self.table.fail(alias, f"no Slack channel named #{name} the bot can see "
                                       "(archived, private without the bot, or misspelt?)")

    async def resolve(self, target: str) -> str:
        """A channel id for an alias, a ``#name`` or an id (LookupError when unknown)."""
        value = self.aliases.get(target, target)
        if is_channel_id(value):
            return value
        if target in self.table.names:
            if self._due():
                self._refresh_soon()
            refresh = self._refresh
            if target not in self.table.ids and refresh is not None:
                await asyncio.shield(refresh)
            channel_id = self.table.ids.get(target)
            if channel_id is None:
                raise LookupError(f"slack.channels.{target}: "
                                  f"{self.table.unresolved.get(target, PENDING)}")
            return channel_id
        name = value.lstrip("#").lower()
        found = self._cached_id(name) or (await self._scan({name}, cached_ok=True)).get(name)
        if not found:
            raise LookupError(f"no Slack channel named #{name} (archived, private without the "
                              "bot, or misspelt?)")
        return found

    def _cached_id(self, name: str) -> str | None:
        entry = self._name_ids.get(name)
        return entry[0] if entry and entry[1] > self.clock() else None

    async def _scan(self, wanted: set[str], *, cached_ok: bool = False) -> dict[str, str]:
        """Page conversations.list until every wanted name is found (or the list ends).
        ``cached_ok``: names found by a paging that ran meanwhile need no other."""
        async with self._list_lock:  # one paging at a time (rate limits)
            found = {name: cached for name in wanted
                     if cached_ok and (cached := self._cached_id(name))}
            cursor: str | None = None
            while len(found) < len(wanted):
                kwargs: dict[str, Any] = {"types": "public_channel,private_channel",
                                          "exclude_archived": True, "limit": LIST_PAGE}
                if cursor:
                    kwargs["cursor"] = cursor
                self.lookups += 1
                page = await self.client.conversations_list(**kwargs)
                expiry = self.clock() + self.ttl
                for channel in page.get("channels") or []:
                    name = str(channel.get("name") or "").lower()
                    if name in wanted:
                        found[name] = str(channel["id"])
                        self._name_ids[name] = (found[name], expiry)
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
            return found
