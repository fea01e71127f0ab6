"""The fake Slack as ``shiftbot doctor`` needs it: Slack's ``x-oauth-scopes`` response header.

Slack reports the scopes a token was granted in the ``x-oauth-scopes`` header of every Web API
answer (``auth.test`` included), comma-separated. :class:`ScopedSlack` adds it to the answers
to the bot token; ``scopes`` is what the app was granted (None: no header, as some proxies
strip it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from fakes.slack import FakeSlack


class ScopedSlack(FakeSlack):
    def __init__(self, *args: Any, scopes: Sequence[str] | None = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scopes = list(scopes) if scopes is not None else None

    async def _handle_api(self, request: web.Request) -> web.Response:
        response = await super()._handle_api(request)
        if self.scopes is not None and \
                request.headers.get("Authorization", "") == f"Bearer {self.bot_token}":
            response.headers["x-oauth-scopes"] = ",".join(self.scopes)
        return response
