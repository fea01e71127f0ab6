"""The fake GitLab as ``shiftbot doctor`` needs it: ``GET /api/v4/projects/:id``.

``:id`` is the numeric id or the URL-encoded path; the answer carries ``id``, ``path_with_
namespace`` and ``web_url``. A bad token is ``401 {"message": "401 Unauthorized"}``, an unknown
project ``404 {"message": "404 Project Not Found"}`` (the base fake's rules).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from fakes.gitlab import FakeGitLab
from fakes.gitlab_issues import error

_PROJECT_ONLY = re.compile(r"^/projects/(?P<project>[^/]+)$")


class ProjectGitLab(FakeGitLab):
    def _route(self, request: web.Request, raw: str, body: dict[str, Any]) -> tuple[int, Any]:
        match = _PROJECT_ONLY.match(raw)
        if match is None or request.method != "GET":
            return super()._route(request, raw, body)
        self._authenticate(request)
        project = self.state.project(unquote(match["project"]))
        if project is None:
            raise error(404, "404 Project Not Found")
        return 200, {"id": project.id, "path_with_namespace": project.path,
                     "web_url": f"{self.state.web_url}/{project.path}"}
