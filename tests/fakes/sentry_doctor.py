"""The fake Sentry as ``shiftbot doctor`` needs it: ``GET /api/0/organizations/{org}/``.

Sentry answers the organization's details (``id``, ``slug``, ``name``) to a token allowed to
read it; an unknown slug is ``404 {"detail": "The requested resource does not exist"}``, a bad
token ``401`` (the base fake's authentication).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from fakes.sentry import NOT_FOUND, FakeSentry, _Answer

_ORGANIZATION = re.compile(r"^organizations/(?P<org>[^/]+)/$")


class OrgSentry(FakeSentry):
    def _route(self, request: web.Request, path: str, body: Any) -> tuple[int, Any]:
        match = _ORGANIZATION.match(path)
        if match is None or request.method != "GET":
            return super()._route(request, path, body)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.state.tokens:
            raise _Answer(401, {"detail": "Invalid token"})
        if match["org"] != self.state.org:
            raise _Answer(404, NOT_FOUND)
        return 200, {"id": "1", "slug": self.state.org, "name": self.state.org.upper()}
