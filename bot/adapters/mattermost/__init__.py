"""Mattermost adapter: mattermostautodriver REST, own websocket loop (docs/mattermost.md)."""

from bot.adapters.mattermost.adapter import MattermostAdapter
from bot.adapters.mattermost.register import register_commands_cli

__all__ = ["MattermostAdapter", "register_commands_cli"]
