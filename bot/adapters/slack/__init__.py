"""Slack adapter (slack-bolt): Socket Mode or HTTP mode. See ``docs/slack.md``."""

from bot.adapters.slack.adapter import SlackAdapter, Where

__all__ = ["SlackAdapter", "Where"]
