"""Channel aliases (``ops``, ``alerts``) <-> Slack channel ids, resolved lazily and cached.

Nothing is looked up at startup, so a bot in a workspace with thousands of channels does not
page through ``conversations.list`` (and hit its rate limit) every time it starts:

* an alias configured by id (``C0123456789``) needs no lookup at all;
* an inbound message from an unknown channel id costs one ``conversations.info`` (slash
  commands carry the channel name and cost nothing), cached for ``ttl`` seconds;
* posting to an alias configured by name pages ``conversations.list`` once, stopping at the
  page that has it, and caches the id.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
NEGATIVE_TTL = 300.0  # an id that is no configured channel is asked about again after this
LOOKUP_TIMEOUT = 2.0  # an inbound command never waits longer than this for a channel name
LIST_PAGE = 1000


def is_channel_id(value: str) -> bool:
    return bool(CHANNEL_ID.match(value))


class ChannelDirectory:
    """Maps configured aliases to channel ids and back (``slack.channels``)."""

    def __init__(self, client: AsyncWebClient, aliases: dict[str, str], *, ttl: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self.aliases = dict(aliases)
        self._alias_by_id: dict[str, str] = {}  # permanent: configured by id
        self._name_alias: dict[str, str] = {}  # channel name -> alias (configured by name)
        for alias, value in aliases.items():
            if is_channel_id(value):
                self._alias_by_id[value] = alias
            else:
                self._name_alias[value.lstrip("#").lower()] = alias
        self._learnt: dict[str, tuple[str | None, float]] = {}  # id -> (alias|None, expiry)
        self._name_ids: dict[str, tuple[str, float]] = {}  # name -> (id, expiry)
        self._list_lock = asyncio.Lock()
        self._inflight: dict[str, asyncio.Future[str | None]] = {}
        self.lookups = 0  # API calls made (tests and the docs' claim "lazily")

    async def alias_for(self, channel_id: str | None,
                        channel_name: str | None = None) -> str | None:
        """The alias of the channel a message came from, or None."""
        if not channel_id:
            return None
        alias = self._alias_by_id.get(channel_id)
        if alias is not None or not self._name_alias:
            return alias
        now = self.clock()
        if channel_name and channel_name not in ("directmessage", "privategroup"):
            return self._learn(channel_id, channel_name, now)  # slash commands carry the name
        learnt = self._learnt.get(channel_id)
        if learnt is not None and learnt[1] > now:
            return learnt[0]
        if channel_id.startswith("D"):
            return None  # a DM is never a configured channel
        pending = self._inflight.get(channel_id)
        if pending is None:  # one lookup per channel, however many messages wait for it
            pending = asyncio.ensure_future(self._lookup(channel_id))
            self._inflight[channel_id] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(channel_id, None))
        return await asyncio.shield(pending)

    async def _lookup(self, channel_id: str) -> str | None:
        self.lookups += 1
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                info = await self.client.conversations_info(channel=channel_id)
        except Exception as exc:
            log.warning("conversations.info %s failed (%s); treating it as no alias for now",
                        channel_id, exc)
            self._learnt[channel_id] = (None, self.clock() + 30.0)
            return None
        return self._learn(channel_id, str(info["channel"].get("name") or ""), self.clock())

    def _learn(self, channel_id: str, name: str, now: float) -> str | None:
        alias = self._name_alias.get(name.lower())
        self._learnt[channel_id] = (alias, now + (self.ttl if alias else NEGATIVE_TTL))
        if alias is not None:
            self._name_ids[name.lower()] = (channel_id, now + self.ttl)
        return alias

    async def resolve(self, target: str) -> str:
        """A channel id for an alias, a ``#name`` or an id (LookupError when unknown)."""
        value = self.aliases.get(target, target)
        if is_channel_id(value):
            return value
        name = value.lstrip("#").lower()
        found = self._cached_id(name)
        if found:
            return found
        async with self._list_lock:  # one paging at a time; waiters then find it cached
            found = self._cached_id(name)
            if found:
                return found
            await self._scan({name} | {n for n in self._name_alias if not self._cached_id(n)})
        found = self._cached_id(name)
        if not found:
            raise LookupError(f"no Slack channel named #{name} (archived, private without the "
                              "bot, or misspelt?)")
        return found

    def _cached_id(self, name: str) -> str | None:
        entry = self._name_ids.get(name)
        return entry[0] if entry and entry[1] > self.clock() else None

    async def _scan(self, wanted: set[str]) -> None:
        """Page conversations.list until every wanted name is found (or the list ends)."""
        cursor: str | None = None
        missing = set(wanted)
        while missing:
            kwargs: dict[str, Any] = {"types": "public_channel,private_channel",
                                      "exclude_archived": True, "limit": LIST_PAGE}
            if cursor:
                kwargs["cursor"] = cursor
            self.lookups += 1
            page = await self.client.conversations_list(**kwargs)
            now = self.clock()
            for channel in page.get("channels") or []:
                name = str(channel.get("name") or "").lower()
                if name in missing:
                    self._name_ids[name] = (channel["id"], now + self.ttl)
                    alias = self._name_alias.get(name)
                    if alias is not None:
                        self._learnt[channel["id"]] = (alias, now + self.ttl)
                    missing.discard(name)
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
