"""The description of the GitLab issue opened for a Sentry issue (docs/alerts.md, "GitLab").

Rendered from ``config/templates/alerts_gitlab_issue.md.j2`` (an override directory's copy
first, as for chat templates) in a Jinja environment of its own: the text is GitLab Markdown,
not chat, so the chat filters (``user``, ``code``: sentinels resolved per chat dialect) do not
apply. The template gets the raw values and escapes them with this module's filters:

- ``md``: inline text shown as written and inert: Markdown punctuation backslash-escaped,
  ``<``, ``>``, ``&`` as entities (no HTML, no comments), ``@name`` broken with a zero-width
  joiner (nobody is notified), on one line with nothing hidden (``bot.markup.visible``);
- ``mdcode``: an inline code span no backtick inside can close;
- ``codeblock``: lines in a fenced block whose fence is longer than any backtick run inside;
- ``when``: a time as ``2024-05-01 12:00:03 UTC``.

The marker ``<!-- sentry-issue:<id> -->`` that lets a lost mapping be found again by search is
appended here, after the template, and any ``<!--`` the rendered text holds is broken first:
neither user text nor an edited template can forge the marker of another issue.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from bot.alerts.config import AlertsConfig
from bot.alerts.model import Frame, SentryAlert
from bot.markup import ZWJ, visible
from bot.render import SHIPPED_TEMPLATES, format_duration

TEMPLATE = "alerts_gitlab_issue.md.j2"
MAX_FRAMES = 8  # in-app frames of the latest event shown
MAX_LINE = 300  # characters of one code line shown
ZWNJ = "\u200c"  # breaks "<!--" in code blocks without changing what people read

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:=$%^])")
_MENTION = re.compile(r"@(?=\w)")
_BACKTICKS = re.compile(r"`+")
_URL_SAFE = "-._~:/?#=&%+,;@!$*'"  # percent-encoded otherwise: no ( ) [ ] < > " or spaces


def marker_for(subject: str) -> str:
    """``sentry:123`` -> ``<!-- sentry-issue:123 -->`` (metric alerts: ``sentry-metric:``)."""
    kind, _, ident = subject.partition(":")
    name = "sentry-issue" if kind == "sentry" else "sentry-metric"
    return f"<!-- {name}:{ident} -->"


def md(value: object) -> str:
    """Inline user text as inert GitLab Markdown."""
    text = visible(str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MENTION.sub("@" + ZWJ, text)


def mdcode(value: object) -> str:
    """User text as an inline code span that cannot be closed early (CommonMark)."""
    text = visible(str(value))
    if not text:
        return ""
    fence = "`" * (_longest_run(text) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def codeblock(lines: Iterable[str], info: str = "") -> str:
    """Lines in a fenced code block nothing inside can close; ``<!--`` is broken."""
    shown = [_code_line(line) for line in lines]
    fence = "`" * max(3, max((_longest_run(line) for line in shown), default=0) + 1)
    return "\n".join([fence + info, *shown, fence])


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"


def safe_url(value: str | None) -> str | None:
    """An http(s) address fit for ``[text](url)``; None for anything else."""
    if not value:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return quote(value.strip(), safe=_URL_SAFE)


def event_frames(event: dict[str, Any] | None) -> list[Frame]:
    """The frames of a Sentry event, oldest call first: the API's ``entries`` (camelCase) or
    a webhook event's ``exception`` (snake_case); the last exception's stack trace."""
    if not isinstance(event, dict):
        return []
    values: Any = None
    for entry in event.get("entries") or []:
        if isinstance(entry, dict) and entry.get("type") == "exception":
            values = (entry.get("data") or {}).get("values")
    if values is None:
        values = (event.get("exception") or {}).get("values")
    if not isinstance(values, list) or not values or not isinstance(values[-1], dict):
        return []
    frames = ((values[-1].get("stacktrace") or {}).get("frames")) or []
    return [frame for raw in frames if (frame := _frame(raw)) is not None]


def top_frames(frames: Sequence[Frame], limit: int = MAX_FRAMES) -> list[Frame]:
    """The innermost in-app frames, innermost first (all frames when none is in-app)."""
    chosen = [f for f in frames if f.in_app] or list(frames)
    return list(reversed(chosen[-limit:]))


def frame_lines(frames: Sequence[Frame]) -> list[str]:
    lines = []
    for frame in frames:
        where = f", line {frame.lineno}" if frame.lineno is not None else ""
        lines.append(f'File "{frame.filename}"{where}, in {frame.function}')
        if frame.context_line and frame.context_line.strip():
            lines.append("    " + frame.context_line.strip())
    return lines


def selected_tags(alert: SentryAlert, event: dict[str, Any] | None,
                  names: Sequence[str]) -> list[tuple[str, str]]:
    """``alerts.tags`` in their order, from the alert, else from the event."""
    known = dict(_event_tags(event))
    known.update(alert.tags)
    return [(name, known[name]) for name in names if known.get(name)]


def render_description(alert: SentryAlert, event: dict[str, Any] | None,
                       settings: AlertsConfig, job_command: str | None, *,
                       directories: Sequence[Path] = ()) -> str:
    """The issue's Markdown; ``event``: the latest event from the Sentry API, when there is
    one (else the frames the alert carried); ``directories``: template overrides first."""
    frames = top_frames(event_frames(event) or list(alert.frames))
    data = {
        "alert": alert, "sentry_url": safe_url(alert.web_url),
        "release": alert.release or _event_release(event),
        "frames": frames, "frame_lines": frame_lines(frames),
        "tags": selected_tags(alert, event, settings.tags), "job_command": job_command,
        "comment_every": format_duration(settings.comment_every),
        "regression_reopens": True,
    }
    text = _environment(tuple(directories)).get_template(TEMPLATE).render(data).strip()
    return text.replace("<!--", "<!" + ZWNJ + "--") + "\n\n" + marker_for(alert.subject) + "\n"


@functools.lru_cache(maxsize=8)
def _environment(directories: tuple[Path, ...]) -> Environment:
    found = [d for d in (*directories, SHIPPED_TEMPLATES) if d.is_dir()]
    env = Environment(loader=ChoiceLoader([FileSystemLoader(str(d)) for d in found]),
                      autoescape=False,  # Markdown: the filters escape what users wrote
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(md=md, mdcode=mdcode, codeblock=codeblock, when=when)
    return env


def _longest_run(text: str) -> int:
    return max((len(run) for run in _BACKTICKS.findall(text)), default=0)


def _code_line(line: str) -> str:
    line = visible(line)
    line = line if len(line) <= MAX_LINE else line[:MAX_LINE - 1] + "…"
    return line.replace("<!--", "<!" + ZWNJ + "--")


def _frame(raw: Any) -> Frame | None:
    if not isinstance(raw, dict):
        return None
    lineno = raw.get("lineNo", raw.get("lineno"))
    context = raw.get("context_line")
    if context is None and isinstance(raw.get("context"), list):
        context = next((str(c[1]) for c in raw["context"]
                        if isinstance(c, list) and len(c) == 2 and c[0] == lineno), None)
    return Frame(filename=str(raw.get("filename") or raw.get("absPath") or "?")[:300],
                 function=str(raw.get("function") or "?")[:200],
                 lineno=lineno if isinstance(lineno, int) else None,
                 in_app=bool(raw.get("inApp", raw.get("in_app"))),
                 context_line=str(context)[:MAX_LINE] if context is not None else None)


def _event_tags(event: dict[str, Any] | None) -> list[tuple[str, str]]:
    tags = event.get("tags") if isinstance(event, dict) else None
    pairs = []
    for tag in tags or []:
        if isinstance(tag, dict) and "key" in tag:
            pairs.append((str(tag["key"]), str(tag.get("value"))))
        elif isinstance(tag, list | tuple) and len(tag) == 2:
            pairs.append((str(tag[0]), str(tag[1])))
    return pairs


def _event_release(event: dict[str, Any] | None) -> str | None:
    release = event.get("release") if isinstance(event, dict) else None
    if isinstance(release, dict):
        release = release.get("version") or release.get("shortVersion")
    return str(release) if release else None
