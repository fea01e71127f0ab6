"""Mattermost channel aliases: names resolved to ids in the configured team, once at startup.

Grants limited to channels then match those ids only (:mod:`bot.adapters.aliases`): an ``ops``
in another team, or any request that merely says ``channel_name=ops``, gets nothing.

A configured value shaped like an id (26 lower-case letters and digits) is not trusted as one:
Mattermost gives a channel whose display name has no Latin letters exactly such a *name*. It is
checked with ``GET /channels/{id}`` (and must be a channel of the configured team), else tried
as a name in the team, else it stays unresolved: it grants nothing and is reported.
"""

from __future__ import annotations

import asyncio
import functools

from bot.adapters.aliases import AliasTable
from bot.adapters.mattermost.rest import MattermostRest, describe


async def resolve_aliases(rest: MattermostRest, team: str, table: AliasTable,
                          team_id: str = "") -> None:
    """Bind every alias not yet bound to its channel's id; the others fail (logged)."""
    for alias, name in table.names.items():
        if alias in table.ids:
            continue
        not_id = ""
        if alias in table.candidates:
            not_id = await _verified_id(rest, table.candidates[alias], team, team_id)
            if not not_id:
                table.bind(alias, table.candidates[alias])
                continue
        try:
            channel = await rest.retrying("channel lookup", functools.partial(
                rest.channel_by_name, team, name))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            table.fail(alias, f"{not_id}no channel '{name}' in team '{team}' the bot can "
                              f"see ({describe(exc)})")
            continue
        table.bind(alias, str(channel["id"]))


async def _verified_id(rest: MattermostRest, channel_id: str, team: str, team_id: str) -> str:
    """'' when ``channel_id`` is a channel of the team, else why not (to prefix a failure)."""
    try:
        channel = await rest.retrying("channel lookup", functools.partial(
            rest.channel, channel_id))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return f"no channel with id {channel_id} ({describe(exc)}), and "
    if not team_id or str(channel.get("team_id") or "") != team_id:
        return f"channel {channel_id} is not in team '{team}', and "
    return ""
