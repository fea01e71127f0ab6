"""The words of restarts: command replies, the restart notice and its thread, ``restart list``.

Templates: ``restart_result.j2`` (a command or request that ran), ``restart_pipeline.j2`` (the
notice of a pipeline restart, updated as it moves), ``restart_list.j2``. What GitLab or a
command said is user text (marked); a command's output is a table (shown literally).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bot.markup import user
from bot.render import format_duration
from bot.reply import Level, Reply, Table, Visibility
from bot.restart.store import Run

if TYPE_CHECKING:
    from bot.integrations.gitlab import Pipeline
    from bot.restart.actions import HttpAction, Prepared
    from bot.restart.runners import CommandResult, HttpResult

# A URL shown as a link: nothing in it that chat markup would read (Slack's <url|text>,
# Markdown's emphasis and code).
_URL = re.compile(r"https?://[^\s<>|`*\[\]()]+")
# A pipeline's own ending says it all; other endings (error, timeout, lost) get their detail.
LEVELS_QUIET = frozenset({"success", "failed", "canceled", "skipped"})
LEVELS = {"success": Level.OK, "failed": Level.ERROR, "error": Level.ERROR,
          "timeout": Level.ERROR, "lost": Level.WARNING, "canceled": Level.WARNING,
          "skipped": Level.WARNING}


def link(url: str | None) -> str:
    """A pipeline's address as a link when it is a plain URL, else as user text."""
    if not url:
        return ""
    return url if _URL.fullmatch(url) else user(url)


def command_reply(prepared: Prepared, result: CommandResult, status: str,
                  detail: str) -> Reply:
    table = None
    if result.output:
        table = Table([f"output (last {len(result.output)} lines)"],
                      [[line] for line in result.output])
    return Reply(title=f"restart {prepared.target}: {status}", template="restart_result.j2",
                 data={"target": prepared.target, "summary": prepared.summary,
                       "status": status, "detail": detail, "seconds": result.seconds,
                       "answer": None},
                 table=table, level=LEVELS.get(status, Level.INFO),
                 visibility=Visibility.CHANNEL)


def http_reply(prepared: Prepared, action: HttpAction, result: HttpResult, ok: bool) -> Reply:
    expected = ", ".join(map(str, action.expect_status))
    status = "success" if ok else "failed"
    detail = f"HTTP {result.status}" + ("" if ok else f", expected {expected}")
    return Reply(title=f"restart {prepared.target}: {status}", template="restart_result.j2",
                 data={"target": prepared.target, "summary": prepared.summary,
                       "status": status, "detail": detail, "seconds": result.seconds,
                       "answer": result.body or None},
                 level=Level.OK if ok else Level.ERROR, visibility=Visibility.CHANNEL)


def pipeline_started(prepared: Prepared, run: Run, pipeline: Pipeline) -> Reply:
    where = (f"the thread of the restart notice in #{prepared.channel} and the audit log"
             if prepared.channel else "the audit log ('audit --command restart')")
    text = (f"Started pipeline #{pipeline.id} of {run.project} on {pipeline.ref} "
            f"({user(pipeline.status)}): {link(pipeline.web_url)}\n"
            f"Following it; its outcome goes to {where}.")
    return Reply(text, title=f"restart {prepared.target}: pipeline started", level=Level.OK,
                 visibility=Visibility.CHANNEL)


def pipeline_notice(run: Run, pipeline: Pipeline | None) -> Reply:
    status = pipeline.status if pipeline else (run.pipeline_status or "unknown")
    final = run.status if run.finished else None
    return Reply(template="restart_pipeline.j2", level=LEVELS.get(final or "", Level.INFO),
                 title=f"Restart of {run.target}", visibility=Visibility.CHANNEL,
                 data={"target": run.target, "who": run.person or run.platform_user,
                       "pipeline": run.pipeline_id, "project": run.project,
                       "status": status, "url": link(run.pipeline_url), "final": final,
                       "detail": run.detail if final and final not in LEVELS_QUIET else None})


def pipeline_outcome(run: Run, detail: str) -> Reply:
    took = (run.finished_at - run.started_at).total_seconds() \
        if run.finished_at is not None else None
    words = {"success": "succeeded", "failed": "failed", "canceled": "was canceled",
             "skipped": "was skipped"}
    said = words.get(run.status)
    if said is not None:
        text = f"Pipeline #{run.pipeline_id} {said}"
    else:
        text = f"Restart of {run.target} ended: {run.status}: {user(detail)}"
    who = run.person or run.platform_user
    text += f" (requested by {who}" + (f", after {format_duration(took)})" if took is not None
                                       else ")")
    return Reply(text, level=LEVELS.get(run.status, Level.INFO), visibility=Visibility.CHANNEL)


def list_reply(entries: list[dict[str, Any]]) -> Reply:
    if not entries:
        return Reply("No restart targets are configured (the restart: section of the config).",
                     title="Restart targets")
    return Reply(title="Restart targets", template="restart_list.j2",
                 data={"targets": entries})
