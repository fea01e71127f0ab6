"""The issues part of the fake GitLab (tests/fakes/gitlab.py): create, list and search, get,
edit (close/reopen), notes; as in GitLab's doc/api/issues.md and doc/api/notes.md.

Search as GitLab does it (``Gitlab::SQL::Pattern.fuzzy_search``): the query is split into
words (a "quoted phrase" is one word), words shorter than three characters are dropped, and an
issue matches when every word occurs, case-insensitively, in one of the ``in`` fields (default
``title,description``). ``state`` is ``opened``, ``closed`` or ``all`` (the default); newest
first; ``per_page`` (default 20, at most 100) and ``page``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakes.gitlab import GitLabState, Project

_WORDS = re.compile(r'"[^"]+"|\S+')
SEARCH_FIELDS = ("title", "description")


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Issue:
    id: int
    iid: int
    project: Project
    title: str
    description: str
    labels: list[str]
    confidential: bool = False
    state: str = "opened"
    notes: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = field(default_factory=now_text)
    updated_at: str = field(default_factory=now_text)

    @property
    def comments(self) -> list[str]:
        """The bodies of the notes people (or the bot) wrote, oldest first."""
        return [n["body"] for n in self.notes if not n["system"]]


class _Answer(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def error(status: int, message: Any, key: str = "message") -> _Answer:
    return _Answer(status, {key: message})


def issue_json(web_url: str, issue: Issue) -> dict[str, Any]:
    return {
        "id": issue.id, "iid": issue.iid, "project_id": issue.project.id,
        "title": issue.title, "description": issue.description, "state": issue.state,
        "labels": list(issue.labels), "confidential": issue.confidential,
        "created_at": issue.created_at, "updated_at": issue.updated_at,
        "closed_at": None if issue.state == "opened" else issue.updated_at,
        "user_notes_count": len(issue.comments),
        "web_url": f"{web_url}/{issue.project.path}/-/issues/{issue.iid}",
        "references": {"short": f"#{issue.iid}", "full": f"{issue.project.path}#{issue.iid}"},
    }


def search_words(query: str) -> list[str]:
    words = [w.strip('"') for w in _WORDS.findall(query)]
    return [w.lower() for w in words if len(w) >= 3]


def matches(issue: Issue, words: list[str], fields: list[str]) -> bool:
    texts = [str(getattr(issue, f)).lower() for f in fields]
    return all(any(word in text for text in texts) for word in words)


class IssueRoutes:
    """Mixed into FakeGitLab: the ``_<route name>`` handlers of the issue routes."""

    state: GitLabState

    def _create_issue(self, project: Project, body: dict[str, Any]) -> tuple[int, Any]:
        if not body.get("title"):
            raise error(400, "title is missing", "error")
        if len(str(body["title"])) > 255:
            raise error(400, {"title": ["is too long (maximum is 255 characters)"]})
        labels = body.get("labels") or []
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        iid = 1 + sum(1 for i in self.state.issues if i.project is project)
        issue = Issue(next(self.state._ids), iid, project, str(body["title"]),
                      str(body.get("description") or ""), list(labels),
                      str(body.get("confidential", "")).lower() == "true")
        self.state.issues.append(issue)
        return 201, self.state.issue_json(issue)

    def _list_issues(self, project: Project, body: dict[str, Any]) -> tuple[int, Any]:
        state = body.get("state", "all")
        if state not in ("opened", "closed", "all"):
            raise error(400, "state does not have a valid value", "error")
        fields = str(body.get("in") or "title,description").split(",")
        if not fields or any(f not in SEARCH_FIELDS for f in fields):
            raise error(400, "in does not have a valid value", "error")
        words = search_words(str(body.get("search") or ""))
        found = [i for i in self.state.issues if i.project is project
                 and state in ("all", i.state) and matches(i, words, fields)]
        found.reverse()  # newest first (order_by created_at, sort desc: GitLab's default)
        per_page = min(max(int(body.get("per_page") or 20), 1), 100)
        start = (max(int(body.get("page") or 1), 1) - 1) * per_page
        return 200, [self.state.issue_json(i) for i in found[start:start + per_page]]

    def _issue(self, project: Project, iid: str) -> Issue:
        for issue in self.state.issues:
            if issue.project is project and issue.iid == int(iid):
                return issue
        raise error(404, "404 Not found")

    def _get_issue(self, project: Project, body: dict[str, Any], iid: str) -> tuple[int, Any]:
        return 200, self.state.issue_json(self._issue(project, iid))

    def _edit_issue(self, project: Project, body: dict[str, Any], iid: str) -> tuple[int, Any]:
        issue = self._issue(project, iid)
        event = body.get("state_event")
        if event is not None and event not in ("close", "reopen"):
            raise error(400, "state_event does not have a valid value", "error")
        if event in ("close", "reopen"):
            new_state = "closed" if event == "close" else "opened"
            if new_state != issue.state:
                issue.state = new_state
                self._system_note(issue, "closed" if event == "close" else "reopened")
        for name in ("title", "description"):
            if name in body:
                setattr(issue, name, str(body[name]))
        issue.updated_at = now_text()
        return 200, self.state.issue_json(issue)

    def _add_note(self, project: Project, body: dict[str, Any], iid: str) -> tuple[int, Any]:
        issue = self._issue(project, iid)
        if not body.get("body"):
            raise error(400, "body is missing", "error")
        return 201, self._note(issue, str(body["body"]), system=False)

    def _list_notes(self, project: Project, body: dict[str, Any], iid: str) -> tuple[int, Any]:
        return 200, list(reversed(self._issue(project, iid).notes))

    def _system_note(self, issue: Issue, text: str) -> None:
        self._note(issue, text, system=True)

    def _note(self, issue: Issue, text: str, *, system: bool) -> dict[str, Any]:
        note = {"id": next(self.state._ids), "body": text, "system": system,
                "author": {"username": "shiftbot"}, "created_at": now_text(),
                "noteable_type": "Issue", "noteable_iid": issue.iid}
        issue.notes.append(note)
        issue.updated_at = note["created_at"]
        return note
