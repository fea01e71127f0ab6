"""Logging (with secrets masked) and the bot's own error reporting to Sentry."""

from __future__ import annotations

import logging
from typing import Any

from bot.config import Config
from bot.secrets import install_log_masking, masker


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_masking()


def _mask(node: Any) -> Any:
    if isinstance(node, str):
        return masker.mask(node)
    if isinstance(node, dict):
        return {k: _mask(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask(v) for v in node]
    return node


def mask_event(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """Secrets never leave for Sentry: every string of the event is masked."""
    return _mask(event)  # type: ignore[no-any-return]


def init_sentry(config: Config, transport: Any = None) -> bool:
    """Report the bot's own errors when ``bot.sentry_dsn`` is set. Call inside the running loop
    (the asyncio integration hooks the current loop). ``transport`` lets tests capture events."""
    if config.bot.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.asyncio import AsyncioIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.stdlib import StdlibIntegration

    import bot

    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=config.bot.sentry_dsn.get_secret_value(),
        release=f"shiftbot@{bot.__version__}",
        environment=config.bot.environment,
        integrations=[
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            AsyncioIntegration(),
        ],
        # The stdlib integration patches subprocess.Popen to add SUBPROCESS_SENTRY_TRACE and
        # SUBPROCESS_BAGGAGE (with the DSN's public key) to every child's environment: check
        # plugins, restart commands and the HTCondor worker get only what they need.
        disabled_integrations=[StdlibIntegration()],
        before_send=mask_event,
        **options,
    )
    return True
