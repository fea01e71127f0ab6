"""Logging (with secrets masked) and the bot's own error reporting to Sentry."""

from __future__ import annotations

import logging
from typing import Any

from bot import __version__
from bot.config import Config
from bot.secrets import install_log_masking


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_masking()


def init_sentry(config: Config, transport: Any = None) -> bool:
    """Report the bot's own errors when ``bot.sentry_dsn`` is set. Call inside the running loop
    (the asyncio integration hooks the current loop). ``transport`` lets tests capture events."""
    if config.bot.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.asyncio import AsyncioIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=config.bot.sentry_dsn.get_secret_value(),
        release=f"shiftbot@{__version__}",
        environment=config.bot.environment,
        integrations=[
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            AsyncioIntegration(),
        ],
        send_default_pii=False,
        **options,
    )
    return True
