"""Mattermost channel aliases: names resolved to ids in the configured team, once at startup.

Grants limited to channels then match those ids only (:mod:`bot.adapters.aliases`): an ``ops``
in another team, or any request that merely says ``channel_name=ops``, gets nothing.
"""

from __future__ import annotations

import asyncio
import functools

from bot.adapters.aliases import AliasTable
from bot.adapters.mattermost.rest import MattermostRest, describe


async def resolve_aliases(rest: MattermostRest, team: str, table: AliasTable) -> None:
    """Bind every alias configured by name to its channel's id; the others fail (logged)."""
    for alias, name in table.names.items():
        try:
            channel = await rest.retrying("channel lookup", functools.partial(
                rest.channel_by_name, team, name))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            table.fail(alias, f"no channel '{name}' in team '{team}' the bot can see "
                              f"({describe(exc)})")
            continue
        table.bind(alias, str(channel["id"]))
