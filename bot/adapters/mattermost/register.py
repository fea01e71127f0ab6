"""``shiftbot mattermost register-commands``: create or update the custom slash commands.

For ``/shiftbot`` and every alias in ``mattermost.commands`` the command is created in the team
(or updated when its URL or texts changed), pointing at ``<public_url>/mattermost/command``.
Their tokens are printed for ``mattermost.command_tokens``. Running it again changes nothing
and prints the same tokens. The bot account needs permission to manage slash commands.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, TextIO

from bot.adapters.mattermost.adapter import COMMAND_PATH
from bot.adapters.mattermost.rest import MattermostRest, describe, status_of
from bot.config import Config, MattermostConfig

COMPARED = ("url", "method", "auto_complete", "auto_complete_desc", "auto_complete_hint",
            "display_name", "description")


def desired_command(trigger: str, family: str | None, team_id: str, url: str) -> dict[str, Any]:
    """The command as shiftbot wants it registered."""
    if family:
        what = f"shiftbot {family} commands"
        hint = "[subcommand] [arguments]"
        desc = f"Run `{family} ...` through shiftbot ('/{trigger} --help' lists them)"
    else:
        what = "shiftbot"
        hint = "[command] [arguments]"
        desc = "Run a shiftbot command ('/shiftbot help' lists what you may run)"
    return {"team_id": team_id, "trigger": trigger, "method": "P", "url": url,
            "auto_complete": True, "auto_complete_desc": desc, "auto_complete_hint": hint,
            "display_name": what, "description": desc}


async def register_commands(config: MattermostConfig, public_url: str,
                            out: TextIO = sys.stdout) -> list[tuple[str, str, str]]:
    """Create or update the commands; returns ``(trigger, what happened, token)`` rows."""
    rest = MattermostRest(config)
    try:
        await rest.retrying("login", rest.login)
        team = await rest.retrying("team lookup", lambda: rest.team(config.team))
        existing = {c["trigger"]: c for c in await rest.retrying(
            "command list", lambda: rest.list_commands(team["id"])) if not c.get("delete_at")}
        url = public_url.rstrip("/") + COMMAND_PATH
        rows = []
        for trigger, family in config.commands.items():
            want = desired_command(trigger, family, team["id"], url)
            have = existing.get(trigger)
            if have is None:
                created = await rest.call("command create",
                                          functools.partial(rest.create_command, want))
                rows.append((trigger, "created", str(created["token"])))
            elif any(have.get(k) != want[k] for k in COMPARED):
                updated = await rest.call("command update",
                                          functools.partial(rest.update_command, {**have, **want}))
                rows.append((trigger, "updated", str(updated.get("token") or have["token"])))
            else:
                rows.append((trigger, "unchanged", str(have["token"])))
            print(f"/{trigger}: {rows[-1][1]} -> {url}", file=out)
        return rows
    finally:
        await rest.close()


async def register_commands_cli(config: Config, out: TextIO = sys.stdout,
                                err: TextIO = sys.stderr) -> int:
    """The CLI entry point: 0 on success, 1 when the server refused, 2 for config problems."""
    section = config.mattermost
    if section is None:
        print("No mattermost: section in the configuration.", file=err)
        return 2
    public_url = config.bot.http.public_url
    if not public_url:
        print("Set bot.http.public_url (how the Mattermost server reaches the bot) first.",
              file=err)
        return 2
    try:
        rows = await register_commands(section, public_url, out)
    except Exception as exc:
        status = status_of(exc)
        hint = ""
        if status == 401:
            hint = " (is mattermost.token the bot's access token?)"
        elif status == 403:
            hint = (" (the bot account may not manage slash commands: allow integrations "
                    "management for it, or make it a team admin)")
        elif status == 404:
            hint = f" (is '{section.team}' the team's URL name, and the bot a member?)"
        print(f"Registering the slash commands failed: {describe(exc)}{hint}", file=err)
        return 1
    configured = {t.get_secret_value() for t in section.command_tokens}
    print("\nPut these tokens in mattermost.command_tokens (secrets: prefer ${VAR} or a "
          "command_tokens_file):\n", file=out)
    print("mattermost:\n  command_tokens:", file=out)
    for trigger, _what, token in rows:
        print(f"    - \"{token}\"  # /{trigger}", file=out)
    missing = [trigger for trigger, _what, token in rows if token not in configured]
    if missing:
        print(f"\nThe configuration lacks the token(s) of {', '.join('/' + t for t in missing)}: "
              "those commands are refused until it has them.", file=out)
    return 0
