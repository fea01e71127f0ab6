"""Inbound deliveries claimed before they run: each chat message, slash command or click is
answered once, however many bot processes share the database and however often the platform
redelivers it (Slack retries, a Mattermost socket replay, two replicas on one websocket).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.dedupe import RecentKeys
from bot.messaging.claims import Claims

log = logging.getLogger(__name__)


class InboundClaims:
    """``await first(key)``: True for exactly one delivery of ``key`` across processes."""

    def __init__(self, claims: Claims, platform: str, ttl: timedelta) -> None:
        self.claims = claims
        self.platform = platform
        self.ttl = ttl
        # A repeat in this process is recognised without a database round trip.
        self.local = RecentKeys(ttl.total_seconds(), max_items=20_000)

    async def first(self, key: str | None) -> bool:
        if not key:
            return True  # nothing to recognise a repeat by
        if not self.local.first_time(key):
            return False  # this process saw it already (and claimed it, or lost the claim)
        try:
            return await self.claims.claim(f"inbound:{self.platform}:{key}", self.ttl)
        except Exception as exc:
            # Fail closed: without the claim another replica may be running it too, and
            # without the database nothing could be audited. The person sees no answer, the
            # operators see this line (and /healthz shows the database down).
            self.local.forget(key)
            log.error("could not claim %s delivery %s (%s: %s); not running it", self.platform,
                      key, type(exc).__name__, exc)
            return False
